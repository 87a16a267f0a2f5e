"""Who may be called, and how often: opt-outs, the suppression list, frequency caps.

Every dial passes :func:`callflow.consent.gate.before_dial` (and ``prepare`` the suppression part
of it); what the agent collects is turned into a lasting opt-out by
:mod:`callflow.consent.optout`. The rules are one :class:`callflow.consent.rules.ContactRules`,
built from the settings today and meant to come from a flow file later.
"""

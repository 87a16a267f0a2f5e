"""Campaigns: many records of one Zoho module called through the same per-record workflow.

:mod:`~callflow.campaigns.model` defines a campaign, :mod:`~callflow.campaigns.store` keeps it
on the session table, :mod:`~callflow.campaigns.enumeration` reads its records from Zoho into S3
(:mod:`~callflow.campaigns.items`), :mod:`~callflow.campaigns.sessions` makes one session per
record, :mod:`~callflow.campaigns.counters` counts where they are,
:mod:`~callflow.campaigns.gate` tells admission whether a call may be dialled now,
:mod:`~callflow.campaigns.steps` are the campaign state machine's tasks and
:mod:`~callflow.campaigns.report` recounts and exports.
"""

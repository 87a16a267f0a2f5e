"""Flows: several call purposes in one deployment, each with its own agent, variables, mapping,
calling hours and retry policy (``config/flows/<name>.yaml``; see ``docs/flows.md``).

The loader is :mod:`callflow.flows.loading`, the file model :mod:`callflow.flows.model` and the
errors :mod:`callflow.flows.errors`; this package imports none of them, so a light module can
import the errors alone.
"""

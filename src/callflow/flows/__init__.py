"""Flows: several call purposes in one deployment, each with its own agent, variables, mapping,
calling hours and retry policy (``config/flows/<name>.yaml``; see ``docs/flows.md``)."""

from callflow.flows.loading import (
    DEFAULT_FLOW,
    Flow,
    FlowConfigError,
    FlowSet,
    UnknownFlow,
    load_flows,
)
from callflow.flows.model import FlowFile

__all__ = [
    "DEFAULT_FLOW",
    "Flow",
    "FlowConfigError",
    "FlowFile",
    "FlowSet",
    "UnknownFlow",
    "load_flows",
]

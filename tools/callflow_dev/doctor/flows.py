"""``callflow doctor`` on every flow file: its agent exists and allows the flow's overrides and
defines the items the flow's mapping reads, and the record fields the flow names exist on each
module with a usable type.

The checks are setup's own (:func:`callflow_dev.provisioning.check_zoho_fields`,
:func:`callflow_dev.provisioning.check_agent`), run on the settings as the flow changes them, so
a flow is held to exactly what the deployment's settings are held to. The flow built from the
settings is left to the sections that already check the settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from callflow.config import Settings
from callflow.flows.errors import FlowConfigError
from callflow.flows.loading import Flow, FlowSet, load_flows
from callflow.providers.errors import ProviderError
from callflow.providers.zoho.client import ZohoField
from callflow_dev.provisioning import Report, check_agent, check_zoho_fields


def flow_settings(settings: Settings, flow: Flow) -> Settings:
    """The settings as ``flow`` overrides them: what the setup checks read."""
    spec = flow.spec
    return settings.model_copy(
        update={
            "zoho_phone_field": spec.phones[0],
            "zoho_timezone_field": spec.timezone_field,
            "zoho_call_status_field": spec.status_field,
            "zoho_variable_fields": ",".join(spec.variables),
            "optout_field": spec.optout.field,
            "elevenlabs_agent_id": spec.agent.agent_id,
            "elevenlabs_overrides": json.dumps(spec.agent.overrides)
            if spec.agent.overrides
            else "",
        }
    )


def file_flows(settings: Settings, report: Report) -> list[Flow]:
    """The flows read from files, or none (each mistake reported) when a file does not load."""
    try:
        flows: FlowSet = load_flows(settings)
    except FlowConfigError as error:
        for problem in error.problems:
            report.problem(f"flow file: {problem}")
        return []
    found = [flow for flow in flows.flows.values() if flow.source != "settings"]
    if found:
        report.done(f"{len(found)} flow file(s) load: {', '.join(f.name for f in found)}")
    return found


def check_flow_fields(
    settings: Settings,
    flows: Sequence[Flow],
    modules: Sequence[str],
    fields_of: Callable[[str], Mapping[str, ZohoField]],
) -> list[str]:
    """Each flow's fields each module lacks or has with the wrong type, prefixed by the flow."""
    problems: list[str] = []
    for flow in flows:
        where = f"flow {flow.name} ({flow.source})"
        found = check_zoho_fields(flow_settings(settings, flow), flow.mapping, modules, fields_of)
        problems += [f"{where}: {problem}" for problem in found]
        for module in modules:
            known = fields_of(module)
            for name in flow.spec.phones[1:]:
                if name not in known:
                    problems.append(
                        f"{where}: {module} has no field {name} (in phone_fields); check its "
                        "API name"
                    )
    return problems


def check_flow_agents(
    settings: Settings,
    flows: Sequence[Flow],
    get_agent: Callable[[str], Mapping[str, Any]],
    report: Report,
) -> None:
    """Each flow's agent: it exists, defines the flow's mapped items, allows its overrides."""
    for flow in flows:
        agent_id = flow.spec.agent.agent_id
        report.info(f"flow {flow.name}: agent {agent_id}")
        try:
            agent = get_agent(agent_id)
        except ProviderError as error:
            if error.status == 404:
                report.problem(
                    f"flow {flow.name} ({flow.source}) names agent {agent_id}, which ElevenLabs "
                    "does not have; check agent.agent_id"
                )
                continue
            raise
        check_agent(
            flow_settings(settings, flow),
            agent,
            mapped_items=flow.mapping.items(),
            report=report,
        )

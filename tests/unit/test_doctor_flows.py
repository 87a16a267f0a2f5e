"""``callflow doctor`` on the flow files: a file that does not load, a field a module lacks, an
agent that does not exist, lacks a mapped item or does not allow the flow's override."""

from __future__ import annotations

import io
from pathlib import Path
from textwrap import dedent
from typing import Any

from callflow.config import Settings
from callflow.providers.errors import ProviderRejected
from callflow.providers.zoho.client import ZohoField
from callflow_dev.doctor.flows import check_flow_agents, check_flow_fields, file_flows
from callflow_dev.provisioning import Report

REMINDER = """\
agent:
  agent_id: agent_reminder
  overrides: {agent: {first_message: "Hi"}}
variables: [First_Name, Amount_Due]
phone_fields: [Phone, Mobile]
status_field: Reminder_Status
mapping:
  - {item: paid, field: Paid, type: boolean}
"""

FIELDS = {
    "Phone": ZohoField("Phone", "phone"),
    "First_Name": ZohoField("First_Name", "text"),
    "Reminder_Status": ZohoField("Reminder_Status", "picklist"),
    "Paid": ZohoField("Paid", "boolean"),
}


def settings(tmp_path: Path, text: str = REMINDER) -> Settings:
    (tmp_path / "reminder.yaml").write_text(dedent(text), encoding="utf-8")
    return Settings(flows_dir=str(tmp_path))


def agent(items: tuple[str, ...], first_message: bool) -> dict[str, Any]:
    return {
        "agent_id": "agent_reminder",
        "conversation_config": {"conversation": {"client_events": ["audio", "interruption"]}},
        "platform_settings": {
            "data_collection": {item: {"type": "string"} for item in items},
            "overrides": {
                "conversation_config_override": {"agent": {"first_message": first_message}}
            },
        },
    }


def test_a_flow_file_that_does_not_load_is_a_problem_with_its_line(tmp_path: Path) -> None:
    report = Report(io.StringIO())
    flows = file_flows(settings(tmp_path, REMINDER + "hours: {start: '25:00'}\n"), report)
    assert flows == []
    [problem] = report.problems
    assert "reminder.yaml: line 9: hours.start" in problem


def test_fields_a_module_lacks_are_named_with_their_flow(tmp_path: Path) -> None:
    config = settings(tmp_path)
    flows = file_flows(config, Report(io.StringIO()))
    problems = check_flow_fields(config, flows, ["Leads"], lambda module: FIELDS)
    assert len(problems) == 2, problems
    assert all(p.startswith("flow reminder (") for p in problems)
    assert any("no field Amount_Due" in p for p in problems)
    assert any("no field Mobile (in phone_fields)" in p for p in problems)
    everything = {
        **FIELDS,
        "Amount_Due": ZohoField("Amount_Due", "text"),
        "Mobile": FIELDS["Phone"],
    }
    assert check_flow_fields(config, flows, ["Leads"], lambda module: everything) == []


def test_a_flows_agent_is_checked_against_its_mapping_and_overrides(tmp_path: Path) -> None:
    config = settings(tmp_path)
    flows = file_flows(config, Report(io.StringIO()))

    good = Report(io.StringIO())
    check_flow_agents(config, flows, lambda agent_id: agent(("paid",), True), good)
    assert good.problems == []

    bad = Report(io.StringIO())
    check_flow_agents(config, flows, lambda agent_id: agent((), False), bad)
    assert any("data-collection item 'paid'" in p for p in bad.problems)
    assert any("agent.first_message" in p for p in bad.problems)


def test_a_flows_missing_agent_is_a_problem(tmp_path: Path) -> None:
    config = settings(tmp_path)
    flows = file_flows(config, Report(io.StringIO()))

    def missing(agent_id: str) -> dict[str, Any]:
        raise ProviderRejected("elevenlabs", "agent not found", status=404)

    report = Report(io.StringIO())
    check_flow_agents(config, flows, missing, report)
    [problem] = report.problems
    assert "names agent agent_reminder, which ElevenLabs does not have" in problem

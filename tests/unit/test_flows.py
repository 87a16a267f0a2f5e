"""Flow files: loading, the default flow from the settings, and every kind of mistake reported
with the file and the line."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from callflow.config import Settings
from callflow.flows.errors import FlowConfigError, UnknownFlow
from callflow.flows.loading import load_flows
from callflow.models import Outcome, Session

QUALIFY = """\
agent:
  agent_id: agent_qualify
  overrides:
    agent: {first_message: "Hi {{first_name}}"}
variables: [First_Name, Company]
mapping:
  - item: interested
    field: Interested
    type: boolean
status_field: Call_Status
outcomes:
  answered: Contacted
  no_answer: Attempted to Contact
hours:
  start: "10:00"
  end: "18:30"
  days: [mon, tue, 2]
retry:
  no_answer: {attempts: 5, delay_seconds: 600}
  voicemail: {attempts: 2, delay_seconds: 60}
machine: {detection: true, policy: continue}
caller_id: "+15550001111"
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(dedent(text), encoding="utf-8")
    return path


def problems_for(tmp_path: Path, text: str, name: str = "bad.yaml") -> list[str]:
    write(tmp_path, name, text)
    with pytest.raises(FlowConfigError) as raised:
        load_flows(Settings(flows_dir=str(tmp_path)))
    return raised.value.problems


def test_without_flow_files_the_default_flow_is_the_settings() -> None:
    settings = Settings(
        elevenlabs_agent_id="agent_env",
        zoho_variable_fields="First_Name,City",
        calling_hours_start="08:00",
        calling_days="0,6",
        max_attempts=4,
        retry_delay_seconds=90,
        infobip_from_number="+15550009999",
        elevenlabs_overrides='{"agent": {"language": "de"}}',
    )
    flows = load_flows(settings)
    flow = flows.get("")
    assert list(flows.flows) == ["default"] and flow is flows.default
    assert flow.spec.agent.agent_id == "agent_env"
    assert flow.spec.agent.overrides == {"agent": {"language": "de"}}
    assert flow.spec.variables == ["First_Name", "City"]
    assert flow.spec.hours.start == "08:00" and flow.spec.hours.days == [0, 6]
    no_answer = flow.spec.retry.rule_for(Outcome.NO_ANSWER)
    assert no_answer is not None and (no_answer.attempts, no_answer.delay_seconds) == (4, 90)
    assert flow.spec.retry.rule_for(Outcome.MACHINE) is not None
    assert flow.spec.retry.rule_for(Outcome.ANSWERED) is None
    assert flow.spec.caller_id == "+15550009999"
    assert "Lead_Status" in flow.mapping.fields("Leads")


def test_a_settings_flow_without_an_agent_id_still_loads() -> None:
    assert load_flows(Settings(elevenlabs_agent_id="")).default.spec.agent.agent_id == ""


def test_a_flow_file_sets_every_part_and_inherits_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "qualify.yaml", QUALIFY)
    flows = load_flows(Settings(flows_dir=str(tmp_path), zoho_timezone_field="Time_Zone"))
    flow = flows.get("qualify")
    spec = flow.spec
    assert spec.agent.agent_id == "agent_qualify"
    assert spec.agent.overrides == {"agent": {"first_message": "Hi {{first_name}}"}}
    assert spec.variables == ["First_Name", "Company"]
    assert flow.mapping.fields() == ["Interested"]
    assert flow.status_value(Outcome.ANSWERED, "Reached") == "Contacted"
    assert flow.status_value(Outcome.BUSY, "Busy") == "Busy"
    assert (spec.hours.start, spec.hours.end, spec.hours.days) == ("10:00", "18:30", [0, 1, 2])
    voicemail = spec.retry.rule_for(Outcome.MACHINE)
    assert voicemail is not None and voicemail.attempts == 2
    busy = spec.retry.rule_for(Outcome.BUSY)
    assert busy is not None and busy.attempts == 3  # from the settings
    assert spec.retry.most_attempts == 5
    assert spec.machine.detection and spec.machine.policy == "continue"
    assert spec.caller_id == "+15550001111"
    assert spec.timezone_field == "Time_Zone"  # inherited
    assert "default" in flows.flows  # the settings flow stays the default


def test_a_flow_names_a_mapping_file_relative_to_itself(tmp_path: Path) -> None:
    write(
        tmp_path,
        "reminder-map.yml.txt",
        "mappings:\n  - {item: paid, field: Paid, type: boolean}\n",
    )
    write(
        tmp_path,
        "reminder.yaml",
        "agent: {agent_id: agent_remind}\nmapping: reminder-map.yml.txt\n",
    )
    flow = load_flows(Settings(flows_dir=str(tmp_path))).get("reminder")
    assert flow.mapping.fields() == ["Paid"]


def test_the_default_flow_can_be_a_file(tmp_path: Path) -> None:
    write(tmp_path, "qualify.yaml", QUALIFY)
    flows = load_flows(Settings(flows_dir=str(tmp_path), default_flow="qualify"))
    assert flows.get("").name == "qualify"


def test_an_unknown_flow_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(UnknownFlow, match="'nope'"):
        load_flows(Settings()).get("nope")


def test_a_session_whose_flow_was_removed_falls_back_to_the_default() -> None:
    flows = load_flows(Settings())
    session = Session(session_id="s", module="Leads", record_id="1", flow="gone")
    assert flows.of(session) is flows.default


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("agent: {agent_id: a1}\nhours:\n  start: '09:00'\n  stat: '10:00'\n", 4, "hours.stat"),
        ("agent: {agent_id: a1}\nvariables: First_Name\n", 2, "variables"),
        ("agent: {agent_id: a1}\nhours:\n  start: '25:00'\n", 3, "expected a time"),
        ("agent: {agent_id: a1}\nhours:\n  end: '9:75'\n", 3, "expected a time"),
        ("agent: {agent_id: a1}\noutcomes:\n  answered: X\n  picked_up: Y\n", 4, "outcomes"),
        ("variables: [First_Name]\nhours: {start: '09:00'}\n", 1, "agent"),
        ("agent: {}\n", 1, "agent.agent_id"),
        ("agent: {agent_id: a1}\nretry:\n  busy: {attempts: 0}\n", 3, "retry.busy.attempts"),
        ("agent: {agent_id: a1}\nmachine: {policy: shout}\n", 2, "machine.policy"),
        ("agent: {agent_id: a1}\ncaller_id: nobody\n", 2, "caller_id"),
        ("agent: {agent_id: a1}\nhours: {days: [mon, funday]}\n", 2, "hours.days"),
    ],
    ids=[
        "unknown key",
        "wrong type",
        "bad time",
        "bad minutes",
        "unknown outcome",
        "missing agent",
        "missing agent id",
        "no attempts",
        "unknown machine policy",
        "bad caller id",
        "unknown weekday",
    ],
)
def test_a_flow_file_mistake_names_the_file_and_line(
    tmp_path: Path, text: str, line: int, words: str
) -> None:
    problems = problems_for(tmp_path, text)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{tmp_path / 'bad.yaml'}: line {line}: "), problems
    assert words in problems[0]


def test_every_mistake_of_a_file_is_reported(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, "agent: {agent_id: a1}\nhours: {start: x}\ncolour: red\n")
    assert sorted(p.split(": ")[1] for p in problems) == ["line 2", "line 3"]


def test_bad_yaml_syntax_names_the_line(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, "agent:\n  agent_id: a1\nhours: [unclosed\n")
    assert problems[0].startswith(f"{tmp_path / 'bad.yaml'}: line ")
    assert "not valid YAML" in problems[0]


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    assert "a flow file is a mapping" in problems_for(tmp_path, "- agent\n")[0]


def test_a_bad_inline_mapping_entry_names_its_line(tmp_path: Path) -> None:
    text = "agent: {agent_id: a1}\nmapping:\n  - {item: a, field: A, type: text}\n  - {item: b}\n"
    problems = problems_for(tmp_path, text)
    assert problems[0].startswith(f"{tmp_path / 'bad.yaml'}: line 4, mapping entry 2")


def test_a_duplicate_flow_name_names_both_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: same\nagent: {agent_id: a1}\n")
    problems = problems_for(tmp_path, "name: same\nagent: {agent_id: a2}\n", name="b.yaml")
    assert problems == [
        f"{tmp_path / 'b.yaml'}: line 1: flow name 'same' is already used by {tmp_path / 'a.yaml'}"
    ]


def test_a_default_flow_that_does_not_exist_stops_the_load(tmp_path: Path) -> None:
    with pytest.raises(FlowConfigError, match="CALLFLOW_DEFAULT_FLOW"):
        load_flows(Settings(flows_dir=str(tmp_path), default_flow="qualify"))


def test_a_missing_flows_directory_stops_the_load(tmp_path: Path) -> None:
    with pytest.raises(FlowConfigError, match="not a directory"):
        load_flows(Settings(flows_dir=str(tmp_path / "absent")))


def test_an_invalid_flow_file_stops_the_services_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callflow.config import reset_settings
    from callflow.services import get_services, reset_services

    write(tmp_path, "bad.yaml", "agent: {agent_id: a1}\ncolour: red\n")
    monkeypatch.setenv("CALLFLOW_FLOWS_DIR", str(tmp_path))
    reset_settings()
    reset_services()
    try:
        with pytest.raises(FlowConfigError, match="line 2"):
            get_services()
    finally:
        monkeypatch.delenv("CALLFLOW_FLOWS_DIR")
        reset_settings()
        reset_services()


def test_the_example_flow_files_validate() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples" / "flows"
    flows = load_flows(Settings(flows_dir=str(examples)))
    assert {"qualify", "reminder"} <= set(flows.flows)
    reminder = flows.get("reminder")
    assert reminder.spec.voicemail_policy == "leave_message"
    assert reminder.spec.phones == ["Mobile", "Phone"]
    assert reminder.mapping.fields() == ["Paid", "Promised_Payment_Date"]
    assert flows.get("qualify").spec.voicemail_policy == "retry"

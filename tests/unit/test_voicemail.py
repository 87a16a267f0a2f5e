"""Voicemail per flow: a detected machine is hung up and written back as voicemail
(``hangup``), connected to the agent told a machine answered (``leave_message``), or hung up
and tried again like a call nobody answered (``retry``).

The Infobip events of the Infobip tests are applied to a session on an in-process moto, with
the in-memory Calls API of :mod:`tests.unit.test_call_events`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from callflow.flows.model import FlowFile
from callflow.lifecycle import calling
from callflow.lifecycle.call_events import handle
from callflow.lifecycle.writeback import label
from callflow.models import ANSWERED_BY_MACHINE, Outcome, Session
from callflow.services import Services
from callflow_bridge.relay import agent_variables

from .test_call_events import PHONE, FakeCallsApi, event, infobip, services

__all__ = ["infobip", "services"]  # the fixtures, used by name


def with_flow(services: Services, tmp_path: Path, text: str) -> None:
    """Make the flow in ``text`` (agent and detection added) the default, with detection on."""
    (tmp_path / "vm.yaml").write_text(
        "agent: {agent_id: agent_vm}\nmachine: {detection: true}\n" + text, encoding="utf-8"
    )
    services.settings = services.settings.model_copy(
        update={"flows_dir": str(tmp_path), "default_flow": "vm"}
    )


def test_hangup_ends_the_call_as_voicemail_without_a_retry(
    services: Services, infobip: FakeCallsApi, tmp_path: Path
) -> None:
    with_flow(services, tmp_path, "voicemail: hangup\n")
    handle(services, event("established"))

    assert handle(services, event("machine detected")) == "machine: hung up"
    assert infobip.hangups == [(PHONE, {"errorCode": "MACHINE_DETECTED"})]
    assert infobip.dialogs == []
    assert handle(services, event("machine hung up")) == "call ended: machine"
    assert calling.plan_retry(services, {"session_id": "s1"})["action"] == calling.WRITE_BACK
    assert label(services.store.require("s1").outcome) == "Reached voicemail"


@pytest.mark.parametrize(("attempts", "action"), [(3, calling.WAIT), (2, calling.WRITE_BACK)])
def test_retry_hangs_up_and_tries_again_as_after_no_answer(
    services: Services, infobip: FakeCallsApi, tmp_path: Path, attempts: int, action: str
) -> None:
    rule = f"retry: {{no_answer: {{attempts: {attempts}, delay_seconds: 60}}}}\n"
    with_flow(services, tmp_path, "voicemail: retry\n" + rule)
    handle(services, event("established"))

    assert handle(services, event("machine detected")) == "machine: hung up"
    assert infobip.dialogs == []
    handle(services, event("machine hung up"))

    assert calling.plan_retry(services, {"session_id": "s1"})["action"] == action
    session = services.store.require("s1")
    if action == calling.WRITE_BACK:  # attempt 2 of 2
        assert session.outcome is Outcome.MACHINE
        assert session.outcome_detail.startswith("machine on all 2 attempts")
    else:
        assert session.attempt == 3


def test_leave_message_connects_the_agent_and_tells_it_a_machine_answered(
    services: Services, infobip: FakeCallsApi, tmp_path: Path
) -> None:
    with_flow(services, tmp_path, "voicemail: leave_message\n")
    handle(services, event("established"))

    assert handle(services, event("machine detected")) == "dialog created"
    assert infobip.hangups == []
    session = services.store.require("s1")
    assert agent_variables(session)[ANSWERED_BY_MACHINE] is True


def test_a_person_is_told_to_the_agent_as_no_machine_and_no_detection_adds_nothing() -> None:
    base = Session(session_id="s", module="Leads", record_id="1", variables={"first_name": "A"})
    human = base.model_copy(update={"machine_detection": "HUMAN"})
    assert agent_variables(human) == {"first_name": "A", ANSWERED_BY_MACHINE: False}
    assert agent_variables(base) == {"first_name": "A"}


@pytest.mark.parametrize(
    ("document", "policy"),
    [
        ({}, "hangup"),
        ({"machine": {"policy": "continue"}}, "leave_message"),
        ({"machine": {"policy": "continue"}, "voicemail": "retry"}, "retry"),
        ({"voicemail": "leave_message"}, "leave_message"),
    ],
)
def test_an_unset_voicemail_policy_is_the_machine_policy_of_before(
    document: dict[str, object], policy: str
) -> None:
    spec = FlowFile.model_validate({"name": "x", "agent": {"agent_id": "a"}, **document})
    assert spec.voicemail_policy == policy


def test_a_machine_outcome_follows_the_no_answer_rule_only_under_retry() -> None:
    spec = FlowFile.model_validate(
        {
            "name": "x",
            "agent": {"agent_id": "a"},
            "voicemail": "retry",
            "retry": {"no_answer": {"attempts": 5}, "voicemail": {"attempts": 1}},
        }
    )
    rule = spec.retry_rule(Outcome.MACHINE)
    assert rule is not None and rule.attempts == 5
    hangup = spec.model_copy(update={"voicemail": "hangup"})
    other = hangup.retry_rule(Outcome.MACHINE)
    assert other is not None and other.attempts == 1

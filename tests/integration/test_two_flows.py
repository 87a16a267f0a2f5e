"""Two flows on one running stack, through the real handlers, moto's ASL and the stand-ins: a
trigger naming no flow gets the default flow's agent and mapping, one naming ``reminder`` the
reminder's (its own stand-in agent, variables, mapping and status values)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from callflow.models import Outcome, SessionStatus
from callflow_dev.local.demo import (
    REMINDER_AGENT_ID,
    Printer,
    _scenarios,
    reminder_options,
    reminder_problems,
    run_scenario,
)
from callflow_dev.local.stack import AGENT_ID, LocalStack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(reminder_options(brief_clips_ms=700, fast_retries=True)) as running:
        yield running


def test_each_trigger_is_called_and_written_back_by_its_own_flow(
    stack: LocalStack, tmp_path: Path
) -> None:
    scenarios = _scenarios()
    reminder = run_scenario(
        stack, scenarios["reminder"], tmp_path, Printer(quiet=True), phone="(415) 555-4101"
    )
    default = run_scenario(
        stack,
        replace(scenarios["answered"], name="default"),
        tmp_path,
        Printer(quiet=True),
        phone="(415) 555-4102",
    )

    assert reminder_problems(stack, reminder) == []
    assert reminder.session.status is SessionStatus.COMPLETED

    assert default.session.flow == "default"
    assert default.session.outcome is Outcome.ANSWERED
    assert default.conversation is not None and default.conversation.agent_id == AGENT_ID
    assert default.record_after["Interested"] is True
    assert default.record_after.get("Reminder_Status") is None
    assert default.record_after.get("Paid") is None
    assert reminder.conversation is not None
    assert reminder.conversation.agent_id == REMINDER_AGENT_ID

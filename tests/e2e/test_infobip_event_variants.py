"""What the generic variant run cannot see: under the Infobip event variants, the stand-in's own
record of the call (how many dialogs it made, how each attempt ended) is as the variant says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callflow.models import Outcome, Session
from callflow_dev.local import variants
from callflow_dev.local.demo import Printer, _scenarios, run_scenario
from callflow_dev.local.stack import LocalStack, StackOptions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackOptions(brief_clips_ms=900, retry_delay_seconds=1)) as running:
        yield running


def _run(stack: LocalStack, name: str, phone: str) -> Session:
    with variants.applied(stack, variants.lookup([name])):
        result = run_scenario(
            stack, _scenarios()["answered"], None, Printer(quiet=True), phone=phone
        )
    return result.session


def test_a_lost_dialog_answer_still_leaves_exactly_one_dialog(stack: LocalStack) -> None:
    session = _run(stack, "infobip-dialog-create-answer-lost", "(415) 555-3701")

    made = [d for d in stack.infobip.dialogs.values() if d.parent_call_id == session.call_id]
    assert [d.id for d in made] == [session.dialog_id]
    assert session.conversation_id


def test_a_failing_dialog_is_hung_up_on_every_attempt_and_says_why(stack: LocalStack) -> None:
    session = _run(stack, "infobip-dialog-failed", "(415) 555-3702")

    assert session.outcome is Outcome.AGENT_UNAVAILABLE
    assert "DIALOG_FAILED" in session.outcome_detail
    assert session.attempt == session.max_attempts
    hung_up = [r for r in stack.infobip.requests if r.path.endswith("/hangup")]
    assert len(hung_up) >= session.max_attempts

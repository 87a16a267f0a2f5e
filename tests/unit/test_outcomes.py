"""The outcome written back combines what Infobip and the bridge saw of the call."""

from __future__ import annotations

from typing import Any

import pytest

from callflow.lifecycle.outcomes import combined
from callflow.models import Outcome, Session


def session(outcome: Outcome, conversation_id: str = "", **bridge: Any) -> Session:
    return Session(
        session_id="s1",
        module="Leads",
        record_id="1",
        outcome=outcome,
        conversation_id=conversation_id,
        bridge=bridge,
    )


def test_answered_and_talked_is_reached() -> None:
    talked = session(Outcome.ANSWERED, "conv_1", end_reason="agent_ended")
    assert combined(talked) == (Outcome.ANSWERED, "")


def test_answered_but_refused_by_the_agent_is_not_reached() -> None:
    refused = session(
        Outcome.ANSWERED,
        end_reason="agent_error",
        end_detail="agent closed 1008 Concurrency limit of 4 conversations reached",
    )
    outcome, detail = combined(refused)
    assert outcome is Outcome.AGENT_UNAVAILABLE
    assert "nobody spoke" in detail and "Concurrency limit" in detail


def test_answered_but_never_bridged_says_so() -> None:
    outcome, detail = combined(session(Outcome.ANSWERED))
    assert outcome is Outcome.AGENT_UNAVAILABLE
    assert detail == "answered, but nobody spoke: the call was never connected to the agent"


def test_a_conversation_the_agent_dropped_is_reached_but_says_so() -> None:
    dropped = session(
        Outcome.ANSWERED, "conv_1", end_reason="agent_error", end_detail="agent closed 1011"
    )
    assert combined(dropped) == (
        Outcome.AGENT_DROPPED,
        "the agent's side failed mid-call (agent closed 1011)",
    )


@pytest.mark.parametrize("outcome", [Outcome.NO_ANSWER, Outcome.BUSY, Outcome.MACHINE])
def test_calls_that_were_not_answered_keep_their_outcome(outcome: Outcome) -> None:
    assert combined(session(outcome))[0] is outcome

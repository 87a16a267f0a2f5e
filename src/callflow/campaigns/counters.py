"""A campaign's counters: where its sessions are, and how the finished ones ended.

Every session of a campaign is in exactly one *phase* counter:

- ``queued``: created, scheduled (waiting for calling hours or its next attempt) or waiting for a
  slot (admission);
- ``dialling``: the call is being placed or rings;
- ``in_call``: answered and talking, or just ended and its next step being decided;
- ``writing_back``: the agent's results are being collected and written to the record;
- ``written_back``: done, the outcome is on the record;
- ``writeback_failed``: done, but the record could not be written (replayable).

A finished session (``written_back`` or ``writeback_failed``) also counts in one *result*
counter: ``reached`` (a person answered and talked to the agent: answered, agent dropped),
``cancelled`` (never dialled: the campaign was cancelled or its window ended), ``failed`` (the
call could not be made or its outcome never came: failed, timeout) or ``not_reached`` (every
other outcome: no answer, busy, rejected, voicemail, invalid number, outside hours, no agent).

The counts move with each session's status change (:func:`count_transition`, called by
:class:`callflow.store.SessionStore` after each successful conditional write, so a transition
counts once): one ``UpdateItem`` on the campaign's item, the old counters -1 and the new +1.
A count whose write fails is lost (logged), never doubled; the campaign's finish step recounts
every session (:func:`tally`), so the final counters are exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from callflow.aws import CONDITION_FAILED, error_code
from callflow.models import Outcome, SessionStatus

PHASES: dict[SessionStatus, str] = {
    SessionStatus.CREATED: "queued",
    SessionStatus.SCHEDULED: "queued",
    SessionStatus.QUEUED: "queued",
    SessionStatus.DIALING: "dialling",
    SessionStatus.RINGING: "dialling",
    SessionStatus.IN_CALL: "in_call",
    SessionStatus.CALL_ENDED: "in_call",
    SessionStatus.COLLECTING: "writing_back",
    SessionStatus.WRITING_BACK: "writing_back",
    SessionStatus.COMPLETED: "written_back",
    SessionStatus.WRITEBACK_FAILED: "writeback_failed",
}
_FINISHED = frozenset({SessionStatus.COMPLETED, SessionStatus.WRITEBACK_FAILED})
_REACHED = frozenset({Outcome.ANSWERED, Outcome.AGENT_DROPPED})
_FAILED = frozenset({Outcome.FAILED, Outcome.TIMEOUT})


def result_of(outcome: Outcome | None) -> str:
    """The result counter of a finished session with ``outcome``."""
    if outcome in _REACHED:
        return "reached"
    if outcome is Outcome.CANCELLED:
        return "cancelled"
    if outcome in _FAILED or outcome is None:
        return "failed"
    return "not_reached"


def counts(status: SessionStatus | None, outcome: Outcome | None) -> Counter[str]:
    """The counters one session in ``status`` with ``outcome`` adds to (none for no session)."""
    if status is None:
        return Counter()
    found = Counter({PHASES[status]: 1})
    if status in _FINISHED:
        found[result_of(outcome)] += 1
    return found


def delta(
    before: tuple[SessionStatus | None, Outcome | None],
    after: tuple[SessionStatus | None, Outcome | None],
) -> dict[str, int]:
    """What a session moving from ``before`` to ``after`` changes, zeros left out."""
    change = Counter(counts(*after))
    change.subtract(counts(*before))
    return {name: value for name, value in change.items() if value}


def tally(sessions: Iterable[tuple[SessionStatus, Outcome | None]]) -> dict[str, int]:
    """Every phase and result counter over ``sessions`` (status, outcome), counted afresh."""
    total: Counter[str] = Counter()
    for status, outcome in sessions:
        total.update(counts(status, outcome))
    return dict(total)


def campaign_key(campaign_id: str) -> dict[str, str]:
    """The table key of a campaign's item."""
    return {"pk": f"campaign#{campaign_id}"}


def add(table: Any, campaign_id: str, change: dict[str, int]) -> bool:
    """Add ``change`` to the campaign's counters in one update; ``False`` when there is no such
    campaign (nothing is written then: a session never creates a campaign item)."""
    if not change:
        return True
    names = {"#counters": "counters"}
    values: dict[str, Any] = {":zero": 0}
    sets = []
    for i, (name, amount) in enumerate(sorted(change.items())):
        names[f"#c{i}"] = name
        values[f":d{i}"] = amount
        sets.append(f"#counters.#c{i} = if_not_exists(#counters.#c{i}, :zero) + :d{i}")
    try:
        table.update_item(
            Key=campaign_key(campaign_id),
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_exists(#counters)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except Exception as error:
        if error_code(error) != CONDITION_FAILED:
            raise
        return False
    return True


def count_transition(
    table: Any,
    campaign_id: str,
    before: tuple[SessionStatus | None, Outcome | None],
    after: tuple[SessionStatus | None, Outcome | None],
) -> None:
    """Count one session's status change on its campaign; a failure is logged, not raised (the
    session's own write has happened, and the finish step recounts)."""
    from callflow.observability import logger

    change = delta(before, after)
    if not change:
        return
    try:
        add(table, campaign_id, change)
    except Exception as error:
        logger.warning(
            "campaign counters not updated; the finish step recounts",
            extra={"campaign_id": campaign_id, "error": type(error).__name__},
        )

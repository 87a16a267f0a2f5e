"""The workflow's admission step: take a slot in every pool before the call is dialled.

``Admit`` runs before every attempt's ``PlaceCall``. With a slot free in every pool
(:func:`callflow.admission.slots.configured_pools`) it records the slots on the session and
answers ``dial``. Without one it raises :class:`NoSlotFree`: the state machine's own Retry
(backoff with full jitter) asks again, so the waiting is Step Functions', not a loop in code,
and the session shows ``queued`` meanwhile. Each ask is bounded:

- by calling hours: a call still queued when they close waits for the next opening (back through
  the Wait state), and its deadline starts again then;
- by a deadline (``admission_deadline_seconds`` of queueing): past it the call ends ``cancelled``
  and is written back like any other outcome.

A call of a campaign asks its campaign first, at every admission
(:func:`callflow.campaigns.gate.campaign_gate`), before its calling hours and any slot:

- ``cancelled`` (by the operator, or its window has ended): the call ends ``cancelled`` with the
  gate's reason and is written back like any other outcome;
- ``closed`` (outside the campaign's window): back through the Wait state until it reopens;
- ``paused``: back through the Wait state for ``campaign_pause_recheck_seconds``, then ask again.

Waiting in the Wait state holds no slot and clears ``queued_at``, so the deadline restarts when
the call queues for a slot again: a long pause or a closed night does not cancel it.

Once admitted, the attempt passes the opt-out and frequency-cap check
(:func:`callflow.consent.gate.before_dial`): a suppressed or capped call gives its slots back and
ends ``suppressed`` or ``capped``, never dialled.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from callflow.admission.pools import Refusal, holder_id
from callflow.admission.slots import configured_pools
from callflow.campaigns.gate import campaign_gate
from callflow.consent import gate
from callflow.consent.caps import CapsBusy
from callflow.lifecycle.calling import (
    WAIT,
    attempt_to_place,
    calling_hours,
    finish_without_call,
    next_state,
)
from callflow.models import Outcome, Session, SessionStatus, iso, utcnow
from callflow.observability import Metric, count, logger, seconds
from callflow.services import Services

DIAL = "dial"
"""The action of an admitted call: on to ``PlaceCall``."""


class NoSlotFree(Exception):
    """A pool the call needs is full; the workflow's Retry asks again (the name is part of the
    ASL's contract)."""


def admit(services: Services, state: dict[str, Any]) -> dict[str, Any]:
    """Admit the session's next attempt, queue it (raising :class:`NoSlotFree`), or end it."""
    settings = services.settings
    session = services.store.require(state["session_id"])
    attempt = attempt_to_place(session)
    now = utcnow()
    held = _campaign_hold(services, session, now)
    if held is not None:
        return held
    zone = session.timezone or settings.default_timezone
    opening = calling_hours(services, session).next_opening(now, zone)
    if opening > now:
        return _wait(services, session, opening, "calling hours closed while queued")
    pools = configured_pools(settings)
    holder = holder_id(session.session_id, attempt)
    refusal = services.pools.acquire(pools, holder, settings.lease_seconds)
    if refusal is not None:
        return _queue(services, session, attempt, refusal, now)
    try:
        barred = gate.before_dial(
            services.flows.of(session).contact_rules,
            services.suppressions,
            services.caps,
            session,
            attempt,
        )
    except CapsBusy as error:
        services.pools.release(pools, holder)
        raise NoSlotFree(str(error)) from error
    if barred is not None:
        services.pools.release(pools, holder)
        return finish_without_call(services, session, barred.outcome, barred.detail)
    slots = {pool.name: holder for pool in pools}
    moved = services.store.advance(
        session.session_id,
        SessionStatus.QUEUED,
        attempt=attempt,
        fields={"slots": slots, "queued_at": ""},
        event="admitted",
        detail={"attempt": attempt},
    ) or services.store.set_fields(
        session.session_id,
        {"slots": slots, "queued_at": ""},
        only_if_equal={"attempt": attempt, "status": SessionStatus.QUEUED.value},
        event="admitted",
        detail={"attempt": attempt, "waited_s": _waited(session, now)},
    )
    if moved is None:
        # Nothing but this step moves a session out of its place before the dial: it moved on
        # some other way, so the slots are not needed.
        services.pools.release(pools, holder)
        logger.warning("session moved on while being admitted; not dialling")
        return next_state(services, session.session_id, "write_back")
    count(Metric.CALLS_ADMITTED)
    seconds(Metric.SLOT_WAIT_SECONDS, _waited(session, now))
    return next_state(services, session.session_id, DIAL)


def _campaign_hold(services: Services, session: Session, now: datetime) -> dict[str, Any] | None:
    """The workflow state when the session's campaign holds the call back (see the module
    docstring); ``None`` for a single trigger or an open campaign. An unreadable campaign item
    raises :class:`NoSlotFree`: the Retry asks again rather than dialling without its answer."""
    if not session.campaign_id:
        return None
    try:
        answer = campaign_gate(services.store, session.campaign_id, now)
    except (BotoCoreError, ClientError) as error:
        raise NoSlotFree(f"campaign unreadable: {type(error).__name__}") from error
    if answer.verdict == "cancelled":
        return finish_without_call(services, session, Outcome.CANCELLED, answer.reason)
    if answer.verdict == "closed" and answer.reopens_at is not None:
        return _wait(services, session, answer.reopens_at, answer.reason)
    if answer.verdict == "paused":
        pause = timedelta(seconds=services.settings.campaign_pause_recheck_seconds)
        return _wait(services, session, now + pause, answer.reason)
    return None


def _wait(services: Services, session: Session, until: datetime, why: str) -> dict[str, Any]:
    """Back through the workflow's Wait state until ``until``, holding no slot and with the
    queueing deadline cleared. The timeline gets ``why`` once per stretch of waiting, not at
    every recheck of a long pause."""
    repeated = bool(session.timeline) and session.timeline[-1].event == why
    services.store.set_fields(
        session.session_id,
        {"next_attempt_at": iso(until), "queued_at": ""},
        event=None if repeated else why,
        detail=None if repeated else {"until": iso(until)},
    )
    return next_state(services, session.session_id, WAIT, until)


def _queue(
    services: Services, session: Session, attempt: int, refusal: Refusal, now: datetime
) -> dict[str, Any]:
    """Mark the session queued (the first refusal), or end it past the deadline; otherwise
    raise :class:`NoSlotFree` for the Retry."""
    full = ", ".join(refusal.full)
    deadline = services.settings.admission_deadline_seconds
    if session.status is not SessionStatus.QUEUED or session.attempt != attempt:
        services.store.advance(
            session.session_id,
            SessionStatus.QUEUED,
            attempt=attempt,
            fields={"queued_at": iso(now)},
            event="queued",
            detail={"attempt": attempt, "full": list(refusal.full)},
        )
        count(Metric.CALLS_QUEUED)
    elif not session.queued_at:
        services.store.set_fields(session.session_id, {"queued_at": iso(now)})
    elif _queued_since(session) + timedelta(seconds=deadline) <= now:
        hours = deadline / 3600
        return finish_without_call(
            services,
            session,
            Outcome.CANCELLED,
            f"no free slot ({full}) after {hours:g} h queued",
        )
    raise NoSlotFree(f"no free slot: {full}")


def _queued_since(session: Session) -> datetime:
    return datetime.fromisoformat(session.queued_at.replace("Z", "+00:00"))


def _waited(session: Session, now: datetime) -> float:
    """Seconds the session has been queued (0 when it was not)."""
    if not session.queued_at:
        return 0.0
    return round((now - _queued_since(session)).total_seconds(), 3)

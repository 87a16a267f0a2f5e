"""What an Infobip call event does to its session.

Events arrive in any order and more than once (Infobip retries slow webhooks). Each handler is a
conditional write first and an action second, so only the first delivery of an event that moves
the session forward acts: the dialog to the bridge is created once, the waiting workflow task is
resumed once, and an event of an earlier attempt changes nothing.

A delivery can fail between the write and the action (AWS or Infobip unavailable: the API answers
503 and Infobip delivers the event again). The redelivery finds the write done and finishes the
action: CALL_ESTABLISHED requests the dialog if none was requested, CALL_FINISHED / CALL_FAILED
resumes the waiting task with the outcome stored (a token already used makes that a no-op).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from callflow.lifecycle import workflow
from callflow.models import (
    Outcome,
    Session,
    SessionStatus,
    hash_token,
    iso,
    new_bridge_token,
    utcnow,
)
from callflow.observability import Metric, count, logger
from callflow.providers.errors import ProviderRejected, RetryableProviderError
from callflow.services import Services

if TYPE_CHECKING:
    from callflow.providers.infobip.events import InfobipEvent

MACHINE_STATE = "MACHINE_DETECTED"


def handle(services: Services, event: InfobipEvent) -> str:
    """Apply one event; the returned word says what happened (logged, and in the response)."""
    session_id = event.session_id
    attempt = event.attempt
    if not session_id or attempt is None:
        return "ignored: not a callflow call"

    kind = event.type
    if kind == "CALL_RINGING":
        moved = services.store.advance(
            session_id,
            SessionStatus.RINGING,
            attempt=attempt,
            fields={"call_state": "RINGING"},
            same_attempt=True,
        )
        return "ringing" if moved else _not_applied(services, session_id, attempt)
    if kind == "CALL_ESTABLISHED":
        moved = services.store.advance(
            session_id,
            SessionStatus.IN_CALL,
            attempt=attempt,
            fields={"call_state": "ESTABLISHED", "call_answered_at": iso(utcnow())},
            event="answered",
            same_attempt=True,
        )
        if moved is None:
            return _answered_again(services, session_id, attempt, event.call_id)
        count(Metric.CALLS_ANSWERED)
        if services.settings.infobip_machine_detection:
            return "answered: waiting for machine detection"
        return connect_bridge(services, session_id, attempt, event.call_id)
    if kind == "MACHINE_DETECTION_FINISHED":
        return _machine_detected(services, session_id, attempt, event)
    if kind in ("CALL_FINISHED", "CALL_FAILED"):
        return _call_ended(services, session_id, attempt, event)
    return f"ignored: {kind}"


def _not_applied(services: Services, session_id: str, attempt: int) -> str:
    """Why a conditional write refused an event (read only then: the usual path is one write)."""
    session = services.store.get(session_id)
    if session is None:
        return "ignored: unknown session"
    if attempt != session.attempt:
        return "ignored: event of another attempt"
    return "duplicate"


def _answered_again(services: Services, session_id: str, attempt: int, call_id: str) -> str:
    """A CALL_ESTABLISHED whose write was already done: request the dialog if the delivery that
    did the write failed before requesting it (:func:`connect_bridge`'s claim keeps this to one
    dialog); otherwise a duplicate."""
    session = services.store.get(session_id)
    if session is None:
        return "ignored: unknown session"
    if attempt != session.attempt:
        return "ignored: event of another attempt"
    waiting = session.status is SessionStatus.IN_CALL and not session.dialog_requested
    if waiting and not services.settings.infobip_machine_detection:
        return connect_bridge(services, session_id, attempt, call_id)
    return "duplicate"


def connect_bridge(services: Services, session_id: str, attempt: int, call_id: str) -> str:
    """Create the dialog from the answered call to the bridge's WebSocket.

    One event handler claims the request (a conditional write on ``dialog_requested``), so
    duplicate and concurrent events do not create a second dialog. If Infobip created the dialog
    but its answer was lost, the claim is released and a redelivered event would create another:
    nothing here looks for an existing dialog first.

    The per-session token is made here, sent to Infobip in the child call's customData (the bridge
    reads it from the ``websocket:connected`` frame) and stored only as a hash.
    """
    token = new_bridge_token()
    claimed = services.store.set_fields(
        session_id,
        {"dialog_requested": True, "bridge_token_hash": hash_token(token)},
        only_if_absent="dialog_requested",
        only_if_equal={"attempt": attempt, "status": SessionStatus.IN_CALL.value},
        event="connecting agent",
    )
    if claimed is None:
        return "duplicate: dialog already requested or call over"
    try:
        dialog = services.infobip.create_dialog(
            call_id or claimed.call_id,
            custom_data={"session_id": session_id, "bridge_token": token, "attempt": str(attempt)},
        )
    except RetryableProviderError:
        # Let Infobip's redelivery of this event try again (the API answers 503).
        services.store.set_fields(session_id, {"dialog_requested": False})
        raise
    except ProviderRejected as error:
        # Nobody will ever talk to this person: end the call instead of leaving them in silence.
        logger.error("dialog refused; hanging up", extra={"error": error.message})
        services.infobip.hangup_call(call_id or claimed.call_id)
        return f"dialog refused: {error.message}"
    services.store.set_fields(session_id, {"dialog_id": dialog.id}, event="dialog created")
    return "dialog created"


def _machine_detected(
    services: Services, session_id: str, attempt: int, event: InfobipEvent
) -> str:
    if event.detection_result != "MACHINE":
        return connect_bridge(services, session_id, attempt, event.call_id)
    marked = services.store.set_fields(
        session_id,
        {"call_state": MACHINE_STATE},
        only_if_equal={"attempt": attempt},
        event="answering machine",
    )
    if marked is None:
        return _not_applied(services, session_id, attempt)
    if services.settings.machine_policy == "continue":
        return connect_bridge(services, session_id, attempt, event.call_id)
    services.infobip.hangup_call(event.call_id)
    return "machine: hung up"


def _call_ended(services: Services, session_id: str, attempt: int, event: InfobipEvent) -> str:
    current = services.store.get(session_id)
    if current is None:
        return "ignored: unknown session"
    if attempt != current.attempt:
        return "ignored: event of another attempt"
    outcome = event.outcome() or Outcome.FAILED
    if current.call_state == MACHINE_STATE:
        outcome = Outcome.MACHINE
    detail = (
        "" if outcome is Outcome.ANSWERED else (event.error_description or event.error_name or "")
    )
    moved = services.store.advance(
        session_id,
        SessionStatus.CALL_ENDED,
        attempt=attempt,
        fields={
            "outcome": outcome.value,
            "outcome_detail": detail,
            "call_duration": int(event.duration or 0),
            "call_ended_at": iso(utcnow()),
        },
        event="call ended",
        detail={"outcome": outcome.value, "duration": event.duration or 0},
        same_attempt=True,
    )
    if moved is None:
        return _ended_again(services, current, attempt)
    if outcome is not Outcome.ANSWERED:
        count(
            Metric.CALLS_UNREACHED
            if outcome in (Outcome.NO_ANSWER, Outcome.BUSY)
            else (Metric.CALLS_FAILED)
        )
    resumed = workflow.resume(
        services.sfn, moved.task_token, _ended(outcome, attempt, int(event.duration or 0))
    )
    logger.info("call ended", extra={"outcome": outcome.value, "resumed": resumed})
    return f"call ended: {outcome.value}"


def _ended_again(services: Services, current: Session, attempt: int) -> str:
    """A call-end event whose write was already done (``current`` was read before the write was
    refused): resume the waiting task with the stored outcome, in case the delivery that stored it
    failed before resuming. A token already used or timed out makes this a duplicate."""
    if current.status is not SessionStatus.CALL_ENDED or current.attempt != attempt:
        return "duplicate"
    outcome = current.outcome or Outcome.FAILED
    output = _ended(outcome, attempt, current.call_duration)
    if not workflow.resume(services.sfn, current.task_token, output):
        return "duplicate"
    logger.info("call ended: resumed on redelivery", extra={"outcome": outcome.value})
    return f"call ended: {outcome.value}"


def _ended(outcome: Outcome, attempt: int, duration: int) -> dict[str, Any]:
    """What the task waiting for the call's outcome is resumed with."""
    return {"outcome": outcome.value, "attempt": attempt, "duration": duration}

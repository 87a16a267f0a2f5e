"""What an Infobip call event does to its session.

Events arrive in any order and more than once (Infobip retries slow webhooks). Each handler is a
conditional write first and an action second, so only the first delivery of an event that moves
the session forward acts: the dialog to the bridge is created once, the waiting workflow task is
resumed once, and an event of an earlier attempt changes nothing.

The dialog needs two facts: the call is established (CALL_ESTABLISHED) and, with detection on,
Infobip's verdict on who answered (MACHINE_DETECTION_FINISHED / _FAILED). Each event stores its
fact and reads back the other in the same write, so whichever is stored last sees both and
creates the dialog; the claim on ``dialog_requested`` keeps that to one.

Each leg of a dialog is a call with its own events, and the WebSocket leg's carry the dialog's
customData, so they name the session too: only the phone leg's events decide the outcome and the
duration; the WebSocket leg's are told apart by ``parentCallId`` and by the session's call id.

A delivery can fail between the write and the action (AWS or Infobip unavailable: the API answers
503 and Infobip may deliver the event again, though nothing documents that it will). Retryable
failures creating the dialog are therefore retried here, within the delivery, and every attempt
first looks for a dialog already made for the call (a creation whose answer was lost), so the
dialog exists once. A redelivery finds the write done and finishes the action.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any, Literal

from callflow.admission import slots
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
from callflow.providers.infobip.events import DIALOG_FAILURE_EVENTS
from callflow.services import Services

if TYPE_CHECKING:
    from callflow.providers.infobip.calls import DialogInfo
    from callflow.providers.infobip.events import InfobipEvent

MACHINE_STATE = "MACHINE_DETECTED"
HUMAN, MACHINE, DETECTION_FAILED = "HUMAN", "MACHINE", "FAILED"

CONNECTING = "connecting agent"
"""The timeline entry of the dialog's claim."""
DIALOG_RATE = "infobip-dialogs"
"""The account-wide schedule of Infobip dialog creations."""

DIALOG_TRIES = 3
"""Dialog creations tried within one event delivery before giving up on a retryable failure."""
DIALOG_BACKOFF_S = 0.25
"""The first pause between those tries; it doubles after each (0.25 s, 0.5 s): short enough that
the webhook still answers well inside Infobip's patience."""

Verdict = Literal["connect", "hangup", "wait"]


def handle(services: Services, event: InfobipEvent) -> str:
    """Apply one event; the returned word says what happened (logged, and in the response)."""
    if event.type in DIALOG_FAILURE_EVENTS and not event.custom_data and event.call_id:
        event = _with_call_data(services, event)
    session_id = event.session_id
    attempt = event.attempt
    if not session_id or attempt is None:
        return "ignored: not a callflow call"

    kind = event.type
    if event.websocket_leg and kind not in DIALOG_FAILURE_EVENTS:
        return f"ignored: {kind} of the WebSocket leg"
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
        return _answered(services, session_id, attempt, event.call_id)
    if kind in ("MACHINE_DETECTION_FINISHED", "MACHINE_DETECTION_FAILED"):
        return _machine_detection(services, session_id, attempt, event)
    if kind in ("CALL_FINISHED", "CALL_FAILED"):
        return _call_ended(services, session_id, attempt, event)
    if kind in DIALOG_FAILURE_EVENTS:
        return _dialog_failed(services, session_id, attempt, event)
    return f"ignored: {kind}"


def _answered(services: Services, session_id: str, attempt: int, call_id: str) -> str:
    """Record the answer; without machine detection the same write claims the dialog request.

    The claim needs no condition of its own: this write is the one that moves the attempt into
    IN_CALL (a duplicate or a reconciliation that got there first makes it fail, and
    :func:`_answered_again` takes over), ``dialog_requested`` is cleared when the attempt is
    placed, and every other claim requires the attempt to be IN_CALL already. So no one can
    have claimed this attempt's dialog before it; one write less on the way to the first words.
    With detection on, the verdict may still be missing, so the claim stays in
    :func:`connect_bridge`. Detection is a flow's choice and the session is not read before
    this write, so the claim is folded in only when no flow of the deployment detects."""
    claim = not any(flow.spec.machine.detection for flow in services.flows.flows.values())
    fields: dict[str, Any] = {"call_state": "ESTABLISHED", "call_answered_at": iso(utcnow())}
    if claim:
        fields["dialog_requested"] = True
    moved = services.store.advance(
        session_id,
        SessionStatus.IN_CALL,
        attempt=attempt,
        fields=fields,
        event="answered",
        then_event=CONNECTING if claim else None,
        same_attempt=True,
    )
    if moved is None:
        return _answered_again(services, session_id, attempt, call_id)
    count(Metric.CALLS_ANSWERED)
    if claim:
        return connect_bridge(services, session_id, attempt, call_id, claimed=moved)
    return connect_when_ready(services, moved, attempt, call_id)


def _with_call_data(services: Services, event: InfobipEvent) -> InfobipEvent:
    """ERROR and MEDIA_STREAM_FAILED carry no customData: take it (and whether the call is a
    dialog's child) from the call they name, as Infobip describes it now. A call Infobip no
    longer knows leaves the event as it is (ignored as not ours)."""
    try:
        call = services.infobip.get_call(event.call_id)
    except ProviderRejected as error:
        if error.status == 404:
            return event
        raise
    custom = call.get("customData")
    if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
        return event
    parent = call.get("parentCallId")
    return dataclasses.replace(
        event,
        custom_data=dict(custom),
        parent_call_id=event.parent_call_id or (parent if isinstance(parent, str) else ""),
    )


def _not_applied(services: Services, session_id: str, attempt: int) -> str:
    """Why a conditional write refused an event (read only then: the usual path is one write)."""
    session = services.store.get(session_id)
    if session is None:
        return "ignored: unknown session"
    if attempt != session.attempt:
        return "ignored: event of another attempt"
    return "duplicate"


def _verdict(services: Services, session: Session) -> Verdict:
    """Whether the answered call goes to the agent, given what detection said (so far)."""
    spec = services.flows.of(session).spec
    machine = spec.machine
    if not machine.detection:
        return "connect"
    result = session.machine_detection
    if result == HUMAN:
        return "connect"
    if result == MACHINE:
        # leave_message: the agent is told (answered_by_machine) and leaves its message.
        return "connect" if spec.voicemail_policy == "leave_message" else "hangup"
    if result:  # FAILED, or a result Infobip added later: nobody can say who answered
        return "connect" if machine.detection_failed == "connect" else "hangup"
    return "wait"


def connect_when_ready(services: Services, session: Session, attempt: int, call_id: str) -> str:
    """Create the dialog if this write completed both facts (established, and detection's
    verdict when detection is on); otherwise say what is still missing. Also the way in for the
    workflow's check of a call whose CALL_ESTABLISHED was lost
    (:func:`callflow.lifecycle.calling.check_call`)."""
    if session.status is not SessionStatus.IN_CALL:
        return "detection stored: waiting for CALL_ESTABLISHED"
    verdict = _verdict(services, session)
    if verdict == "wait":
        return "answered: waiting for machine detection"
    if verdict == "hangup":
        return "answered: hung up after machine detection"
    if session.dialog_requested:
        return "duplicate: dialog already requested"
    return connect_bridge(services, session.session_id, attempt, call_id or session.call_id)


def _answered_again(services: Services, session_id: str, attempt: int, call_id: str) -> str:
    """A CALL_ESTABLISHED whose write was already done: request the dialog if the delivery that
    did the write failed before requesting it (:func:`connect_bridge`'s claim keeps this to one
    dialog); otherwise a duplicate."""
    session = services.store.get(session_id)
    if session is None:
        return "ignored: unknown session"
    if attempt != session.attempt:
        return "ignored: event of another attempt"
    if session.status is SessionStatus.IN_CALL and not session.dialog_requested:
        return connect_when_ready(services, session, attempt, call_id)
    return "duplicate"


def connect_bridge(
    services: Services,
    session_id: str,
    attempt: int,
    call_id: str,
    *,
    claimed: Session | None = None,
) -> str:
    """Create the dialog from the answered call to the bridge's WebSocket, exactly once.

    One event handler claims the request (a conditional write on ``dialog_requested``), so
    duplicate and concurrent events do not create a second dialog. A retryable failure (429,
    5xx, timeout) is tried again here, with backoff, and each try first asks Infobip for a dialog
    already made for the call: a creation that succeeded at Infobip but whose answer was lost is
    found, not repeated. When the tries run out the claim is released and the error raised (503):
    a redelivery starts over, still looking first.

    The per-session token is made right before a creation, stored only as a hash, and sent in the
    child call's customData (the bridge reads it from the ``websocket:connected`` frame). A dialog
    found instead of created keeps the hash stored for it. In per-session routing the attempt's
    own config (``media_config_id``, made when the call was placed) already carries the
    attempt's token in its URL: the dialog goes to it and no token is made here.

    ``claimed`` is the session as the write that already made the claim returned it
    (:func:`_answered`); without it the claim is made here.
    """
    from callflow.lifecycle import media_configs  # its Infobip client: not for every event

    if claimed is None:
        claimed = services.store.set_fields(
            session_id,
            {"dialog_requested": True},
            only_if_absent="dialog_requested",
            only_if_equal={"attempt": attempt, "status": SessionStatus.IN_CALL.value},
            event=CONNECTING,
        )
    if claimed is None:
        return "duplicate: dialog already requested or call over"
    parent = call_id or claimed.call_id
    try:
        dialog, found = _find_or_create_dialog(
            services, session_id, attempt, parent, claimed.media_config_id
        )
    except RetryableProviderError:
        services.store.set_fields(session_id, {"dialog_requested": False})
        raise
    except ProviderRejected as error:
        # Nobody will ever talk to this person: end the call instead of leaving them in silence.
        logger.error("dialog refused; hanging up", extra={"error": error.message})
        services.store.set_fields(
            session_id,
            {"dialog_failure": f"the dialog was refused: {error.message}"[:300]},
            only_if_equal={"attempt": attempt},
            event="dialog refused",
        )
        services.infobip.hangup_call(parent)
        media_configs.close(services, session_id, claimed.media_config_id)
        return f"dialog refused: {error.message}"
    services.store.set_fields(
        session_id,
        {"dialog_id": dialog.id},
        event="dialog found" if found else "dialog created",
        detail={"dialog_id": dialog.id},
    )
    return "dialog found" if found else "dialog created"


def _find_or_create_dialog(
    services: Services, session_id: str, attempt: int, parent: str, config_id: str
) -> tuple[DialogInfo, bool]:
    """The call's dialog, looked for before every creation; True when it was found. With the
    attempt's own ``config_id`` the dialog goes there, its token already in the config's URL."""
    for tried in range(1, DIALOG_TRIES + 1):
        try:
            existing = _existing_dialog(services, parent)
            if existing is not None:
                return existing, True
            _dialog_turn(services)
            custom = {"session_id": session_id, "attempt": str(attempt)}
            if config_id:
                dialog = services.infobip.create_dialog(
                    parent, custom_data=custom, config_id=config_id
                )
                return dialog, False
            token = new_bridge_token()
            services.store.set_fields(session_id, {"bridge_token_hash": hash_token(token)})
            custom["bridge_token"] = token
            return services.infobip.create_dialog(parent, custom_data=custom), False
        except RetryableProviderError as error:
            if tried == DIALOG_TRIES:
                raise
            logger.warning(
                "dialog creation failed; trying again",
                extra={"try": tried, "status": error.status, "error": error.message},
            )
            _sleep(DIALOG_BACKOFF_S * 2 ** (tried - 1))
    raise AssertionError("unreachable: the last try returns or raises")  # pragma: no cover


def _dialog_turn(services: Services) -> None:
    """Wait for a turn at the account's dialog-creation rate. Admission keeps the calls in
    progress few, so the wait is short; should the schedule be fuller than the wait allowed,
    the dialog goes at once rather than leave a person who answered in silence (Infobip's 429
    is then retried like any other)."""
    settings = services.settings
    wait = services.rates.reserve(
        DIALOG_RATE, settings.infobip_dialogs_per_second, settings.rate_max_wait_seconds
    )
    if wait is None:
        logger.warning("dialog creation rate is full; creating the dialog anyway")
    elif wait > 0:
        _sleep(wait)


def _existing_dialog(services: Services, parent: str) -> DialogInfo | None:
    """The dialog Infobip already has for the call; a listing Infobip refuses (not a passing
    failure) must not cost the person the call, so it counts as none."""
    try:
        return services.infobip.find_dialog(parent)
    except ProviderRejected as error:
        logger.warning("could not list the call's dialogs", extra={"error": error.message})
        return None


def _sleep(seconds: float) -> None:
    """The pause between dialog tries (a seam for tests)."""
    time.sleep(seconds)


def _machine_detection(
    services: Services, session_id: str, attempt: int, event: InfobipEvent
) -> str:
    """Store detection's verdict (once per attempt), then act on it: hang up a machine (or an
    undecided call, by policy), or connect when the call is established too."""
    failed = event.type == "MACHINE_DETECTION_FAILED"
    result = DETECTION_FAILED if failed else (event.detection_result or DETECTION_FAILED)
    fields: dict[str, Any] = {
        "machine_detection": result,
        "machine_detection_reason": event.reason[:300],
    }
    if result == MACHINE:
        fields["call_state"] = MACHINE_STATE
    marked = services.store.set_fields(
        session_id,
        fields,
        only_if_absent="machine_detection",
        only_if_equal={"attempt": attempt},
        event="machine detection failed" if failed else "machine detection",
        detail={"result": result, "reason": event.reason[:300]} if failed else {"result": result},
    )
    if marked is None:
        session = services.store.get(session_id)
        if session is None:
            return "ignored: unknown session"
        if attempt != session.attempt:
            return "ignored: event of another attempt"
        live = (SessionStatus.DIALING, SessionStatus.RINGING, SessionStatus.IN_CALL)
        if session.status not in live:
            return "duplicate"
        # Redelivered (or a second verdict): finish what the first delivery may not have.
        marked = session
    return _act_on_detection(services, marked, attempt, event.call_id or marked.call_id)


def _act_on_detection(services: Services, session: Session, attempt: int, call_id: str) -> str:
    if _verdict(services, session) != "hangup":
        return connect_when_ready(services, session, attempt, call_id)
    if session.machine_detection == MACHINE:
        # The cause the call's CALL_FINISHED (and Infobip's logs) will name.
        services.infobip.hangup_call(call_id, error_code="MACHINE_DETECTED")
        return "machine: hung up"
    services.infobip.hangup_call(call_id)
    return "machine detection failed: hung up"


def _dialog_failed(services: Services, session_id: str, attempt: int, event: InfobipEvent) -> str:
    """The dialog to the bridge (or its media stream) failed: the person hears nobody, so the
    call is hung up and its outcome says why (agent_unavailable, retried like one). An ERROR
    during a conversation already under way is only recorded: it names an action that failed,
    not the call."""
    from callflow.lifecycle import media_configs  # its Infobip client: not for every event

    reason = f"{event.type}: {event.reason}" if event.reason else event.type
    session = services.store.set_fields(
        session_id,
        {"dialog_failure": reason[:300]},
        only_if_absent="dialog_failure",
        only_if_equal={"attempt": attempt},
        event="dialog failed",
        detail={"type": event.type, "reason": event.reason[:300]},
    ) or services.store.get(session_id)
    if session is None:
        return "ignored: unknown session"
    if attempt != session.attempt:
        return "ignored: event of another attempt"
    if session.status is not SessionStatus.IN_CALL:
        return f"{event.type}: the call is not live"
    if event.type == "ERROR" and session.conversation_id:
        return "error noted: the conversation goes on"
    phone_call = session.call_id or event.parent_call_id or event.call_id
    services.infobip.hangup_call(phone_call)
    media_configs.close(services, session_id, session.media_config_id)
    return f"{event.type}: hung up"


def _call_ended(services: Services, session_id: str, attempt: int, event: InfobipEvent) -> str:
    from callflow.lifecycle import media_configs  # its Infobip client: not for every event

    current = services.store.get(session_id)
    if current is None:
        return "ignored: unknown session"
    if attempt != current.attempt:
        return "ignored: event of another attempt"
    if current.call_id and event.call_id != current.call_id:
        return f"ignored: {event.type} of another leg"
    outcome, detail = _outcome(services, current, event)
    moved = services.store.advance(
        session_id,
        SessionStatus.CALL_ENDED,
        attempt=attempt,
        fields={
            "outcome": outcome.value,
            "outcome_detail": detail[:500],
            "call_duration": int(event.duration or 0),
            "call_ended_at": iso(utcnow()),
        },
        event="call ended",
        detail={"outcome": outcome.value, "duration": event.duration or 0},
        same_attempt=True,
    )
    if moved is None:
        return _ended_again(services, current, attempt)
    media_configs.close(services, session_id, moved.media_config_id)
    slots.release_quietly(services, moved)
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


def _outcome(services: Services, current: Session, event: InfobipEvent) -> tuple[Outcome, str]:
    """The phone call's outcome from its end event and what the session saw during the call.

    "Answered" is CALL_ESTABLISHED having been seen (``call_answered_at``), or the end event
    saying so; a call hung up within its first second has a duration of 0 but was answered.
    """
    outcome = event.outcome(established=bool(current.call_answered_at)) or Outcome.FAILED
    detail = event.error_description or event.error_name or ""
    if current.machine_detection == MACHINE or current.call_state == MACHINE_STATE:
        return Outcome.MACHINE, detail
    if outcome is not Outcome.ANSWERED:
        return outcome, detail
    if current.machine_detection == DETECTION_FAILED and _verdict(services, current) == "hangup":
        why = current.machine_detection_reason or "no reason given"
        return Outcome.FAILED, (
            f"answering-machine detection failed ({why}); hung up, as "
            "CALLFLOW_MACHINE_DETECTION_FAILED=hangup asks"
        )
    if current.dialog_failure and not current.conversation_id:
        return Outcome.AGENT_UNAVAILABLE, (
            f"answered, but nobody spoke: the call's dialog to the agent failed "
            f"({current.dialog_failure})"
        )
    return outcome, ""


def _ended_again(services: Services, current: Session, attempt: int) -> str:
    """A call-end event whose write was already done (``current`` was read before the write was
    refused): resume the waiting task with the stored outcome, in case the delivery that stored it
    failed before resuming. A token already used or timed out makes this a duplicate."""
    from callflow.lifecycle import media_configs  # its Infobip client: not for every event

    if current.status is not SessionStatus.CALL_ENDED or current.attempt != attempt:
        return "duplicate"
    # The delivery that ended the call may have failed before deleting the attempt's config
    # and releasing its slots.
    media_configs.close(services, current.session_id, current.media_config_id)
    slots.release_quietly(services, current)
    outcome = current.outcome or Outcome.FAILED
    output = _ended(outcome, attempt, current.call_duration)
    if not workflow.resume(services.sfn, current.task_token, output):
        return "duplicate"
    logger.info("call ended: resumed on redelivery", extra={"outcome": outcome.value})
    return f"call ended: {outcome.value}"


def _ended(outcome: Outcome, attempt: int, duration: int) -> dict[str, Any]:
    """What the task waiting for the call's outcome is resumed with."""
    return {"outcome": outcome.value, "attempt": attempt, "duration": duration}

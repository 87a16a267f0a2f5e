"""Infobip Calls API events (the ``Event`` webhook schema of Infobip's voice OpenAPI file).

Each event type keeps its ``customData`` somewhere else, and getting that wrong silently turns
every event into "not a callflow call". Per the spec:

- live-call events (``CallProperties``: CALL_RINGING, CALL_PRE_ESTABLISHED, CALL_ESTABLISHED, ...)
  carry it at ``properties.call.customData``;
- CALL_FINISHED / CALL_FAILED (``CallWithErrorCodeProperties``) at
  ``properties.callLog.customData``, next to ``state``, ``duration``, ``answerTime``,
  ``errorCode{id,name,description}`` and ``hangupSource``;
- MACHINE_DETECTION_FINISHED / _FAILED (``MachineDetectionProperties`` /
  ``MachineDetectionFailedProperties``) at ``properties.customData``;
- DIALOG_FAILED (``DialogWithErrorCodeProperties``) on the dialog's calls,
  ``properties.dialog.parentCall.customData`` (the phone call's) first;
- ERROR and MEDIA_STREAM_FAILED (``ErrorProperties``, ``MediaStreamFailedProperties``) carry none:
  the handler asks Infobip for the call named by ``callId``.

Each leg of a dialog is a call with its own events, and the WebSocket leg carries the dialog's
customData, so the session's identifiers alone do not say which leg an event is about:
``parent_call_id`` (``Call.parentCallId`` / ``CallLog.parentCallId``, set only on a dialog's child
call) does, and the handler also compares ``callId`` with the session's phone call.

The expected place is read first and the others are tried after it, so a shape Infobip changes
later still finds the session. Unknown event types parse (the API acknowledges and ignores them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callflow.models import Outcome, is_session_id

LIVE_CALL_EVENTS = frozenset(
    {
        "CALL_STARTED",
        "CALL_RECEIVED",
        "CALL_RINGING",
        "CALL_PRE_ESTABLISHED",
        "CALL_ESTABLISHED",
        "CALL_MEDIA_CHANGED",
        "CALL_DISCONNECTED",
        "CALL_RECONNECTED",
    }
)
CALL_END_EVENTS = frozenset({"CALL_FINISHED", "CALL_FAILED"})
MACHINE_DETECTION_EVENTS = frozenset({"MACHINE_DETECTION_FINISHED", "MACHINE_DETECTION_FAILED"})
#: Events saying the dialog to the bridge (or its media stream) failed: nobody will talk to the
#: person on this call.
DIALOG_FAILURE_EVENTS = frozenset({"DIALOG_FAILED", "ERROR", "MEDIA_STREAM_FAILED"})
#: Event types that always concern one call: for them a missing ``callId`` is a malformed body.
CALL_EVENTS = LIVE_CALL_EVENTS | CALL_END_EVENTS | MACHINE_DETECTION_EVENTS

TIMELINE_PREFIX = "infobip "
"""Timeline entries of the events as received are named this plus the event type."""

MAX_ATTEMPT = 1000
"""The highest attempt number an event may carry; callflow numbers attempts from 1 up to the
configured ``max_attempts``, so anything beyond this is not a call it placed."""
MAX_CALL_SECONDS = 86400
"""The longest ``callLog.duration`` accepted: a day, far past any call Infobip lets last."""

#: Error names meaning the person's phone did ring but nobody picked up in time.
_NO_ANSWER = frozenset({"NO_ANSWER"})
_BUSY = frozenset({"BUSY"})
_REJECTED = frozenset({"REJECTED", "DECLINED"})
_MACHINE = frozenset({"MACHINE_DETECTED"})


class InvalidEvent(ValueError):
    """The body is not an Infobip call event; ``reason`` says what is wrong with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class InfobipEvent:
    """One call event, with what the project uses taken from wherever its type keeps it."""

    type: str
    call_id: str
    dialog_id: str = ""
    timestamp: str = ""
    custom_data: Mapping[str, str] = field(default_factory=dict)
    state: str = ""
    """The call's state as the event reports it (``call.state`` or ``callLog.state``)."""
    error_name: str = ""
    error_description: str = ""
    duration: int | None = None
    """Seconds of conversation, from ``callLog.duration`` (CALL_FINISHED / CALL_FAILED)."""
    answer_time: str = ""
    hangup_source: str = ""
    detection_result: str = ""
    """HUMAN or MACHINE, from answering-machine detection."""
    parent_call_id: str = ""
    """The dialog's parent call when this event is about a dialog's child (WebSocket) leg."""
    reason: str = ""
    """Why something failed: MACHINE_DETECTION_FAILED's and MEDIA_STREAM_FAILED's ``reason``,
    ERROR's ``errorCode``/``errorDetails``, DIALOG_FAILED's ``errorCode``."""

    @property
    def websocket_leg(self) -> bool:
        """Whether the event names itself as a dialog's child call (our WebSocket leg)."""
        return bool(self.parent_call_id) and self.parent_call_id != self.call_id

    @property
    def session_id(self) -> str:
        """The session the call belongs to, from ``customData``; empty for a call not placed by
        callflow (none given, or not shaped like a session id)."""
        raw = self.custom_data.get("session_id", "")
        return raw if is_session_id(raw) else ""

    @property
    def attempt(self) -> int | None:
        """The attempt number from ``customData``; ``None`` when it is missing or is not a number
        from 1 to :data:`MAX_ATTEMPT` in ASCII digits (``str.isdigit`` alone accepts "²", which
        ``int`` refuses)."""
        raw = self.custom_data.get("attempt", "")
        if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_ATTEMPT)):
            return None
        number = int(raw)
        return number if 1 <= number <= MAX_ATTEMPT else None

    @property
    def answered(self) -> bool:
        """The person (or a machine) picked up: the call has an answer time or talk time."""
        return bool(self.answer_time) or (self.duration or 0) > 0 or self.state == "ESTABLISHED"

    def outcome(self, *, established: bool = False) -> Outcome | None:
        """How the call ended, for CALL_FINISHED / CALL_FAILED; None for every other event.

        ``established``: CALL_ESTABLISHED was seen for the call, so it was answered even when
        this event shows no answer time and no talk time.

        A call that was answered counts as answered whatever the hangup cause (a dropped line
        after a conversation is still a conversation), except when Infobip ended it because a
        machine picked up. Unanswered calls map by error name first, call state second.
        """
        if self.type not in CALL_END_EVENTS:
            return None
        name = self.error_name.upper()
        if name in _MACHINE or self.detection_result == "MACHINE":
            return Outcome.MACHINE
        if self.answered or established:
            return Outcome.ANSWERED
        if name in _NO_ANSWER or self.state == "NO_ANSWER":
            return Outcome.NO_ANSWER
        if name in _BUSY or self.state == "BUSY":
            return Outcome.BUSY
        if name in _REJECTED:
            return Outcome.REJECTED
        return Outcome.FAILED


def parse_event(body: Any) -> InfobipEvent:
    """Validate the envelope and pull out what the project uses; raise :class:`InvalidEvent`."""
    if not isinstance(body, dict):
        raise InvalidEvent("the event is not a JSON object")
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidEvent("'type' is missing or not a string")
    call_id = _optional_str(body, "callId", "callId")
    if not call_id and kind in CALL_EVENTS:
        raise InvalidEvent(f"'callId' is missing on a {kind} event")
    properties = body.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise InvalidEvent("'properties' is not an object")
    call = _object(properties, "call", "properties.call")
    call_log = _object(properties, "callLog", "properties.callLog")
    dialog = _object(properties, "dialog", "properties.dialog")
    if kind == "DIALOG_FAILED" and not call:
        # The phone call of the dialog stands in for the call: its id and customData.
        call = _object(dialog, "parentCall", "properties.dialog.parentCall")
        call_id = call_id or _optional_str(call, "id", "properties.dialog.parentCall.id")
    record = call_log if kind in CALL_END_EVENTS or (call_log and not call) else call
    error = _object(record, "errorCode", "errorCode")
    machine = _object(record, "machineDetection", "machineDetection")
    detection = _optional_str(properties, "detectionResult", "properties.detectionResult")
    detection = detection or _optional_str(machine, "detectionResult", "detectionResult")
    return InfobipEvent(
        type=kind,
        call_id=call_id,
        dialog_id=_optional_str(body, "dialogId", "dialogId")
        or _optional_str(record, "dialogId", "dialogId")
        or _optional_str(dialog, "id", "properties.dialog.id"),
        timestamp=_optional_str(body, "timestamp", "timestamp"),
        custom_data=_custom_data(kind, properties, call, call_log),
        state=_optional_str(record, "state", "state"),
        error_name=_optional_str(error, "name", "errorCode.name"),
        error_description=_optional_str(error, "description", "errorCode.description"),
        duration=_optional_int(record, "duration", "callLog.duration", MAX_CALL_SECONDS),
        answer_time=_optional_str(record, "answerTime", "answerTime"),
        hangup_source=_optional_str(record, "hangupSource", "hangupSource"),
        detection_result=detection.upper(),
        parent_call_id=_optional_str(record, "parentCallId", "parentCallId"),
        reason=_reason(kind, properties),
    )


def _reason(kind: str, properties: dict[str, Any]) -> str:
    """What a failure event says about why, in one line."""
    if kind in ("MACHINE_DETECTION_FAILED", "MEDIA_STREAM_FAILED"):
        return _optional_str(properties, "reason", "properties.reason")
    if kind == "ERROR":
        code = _optional_str(properties, "errorCode", "properties.errorCode")
        details = _optional_str(properties, "errorDetails", "properties.errorDetails")
        return ": ".join(part for part in (code, details) if part)
    if kind == "DIALOG_FAILED":
        error = _object(properties, "errorCode", "properties.errorCode")
        name = _optional_str(error, "name", "properties.errorCode.name")
        description = _optional_str(error, "description", "properties.errorCode.description")
        return ": ".join(part for part in (name, description) if part)
    return ""


def _custom_data(
    kind: str, properties: dict[str, Any], call: dict[str, Any], call_log: dict[str, Any]
) -> dict[str, str]:
    places: list[tuple[dict[str, Any], str]] = [
        (call, "properties.call.customData"),
        (call_log, "properties.callLog.customData"),
        (properties, "properties.customData"),
    ]
    if kind in CALL_END_EVENTS:
        places.insert(0, places.pop(1))
    elif kind in MACHINE_DETECTION_EVENTS:
        places.insert(0, places.pop(2))
    for holder, where in places:
        value = holder.get("customData")
        if value is None:
            continue
        if not isinstance(value, dict):
            raise InvalidEvent(f"'{where}' is not an object")
        for key, item in value.items():
            if not isinstance(item, str):
                raise InvalidEvent(f"'{where}.{key}' is not a string")
        if value:
            return dict(value)
    return {}


def _object(holder: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = holder.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent(f"'{where}' is not an object")
    return value


def _optional_str(holder: dict[str, Any], key: str, where: str) -> str:
    value = holder.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidEvent(f"'{where}' is not a string")
    return value


def _optional_int(holder: dict[str, Any], key: str, where: str, maximum: int) -> int | None:
    """The integer at ``key``, from 0 to ``maximum``; bounded so that what reaches DynamoDB is a
    number it can store (its Decimal refuses 10**40) and that means something."""
    value = holder.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent(f"'{where}' is not an integer")
    if not 0 <= value <= maximum:
        raise InvalidEvent(f"'{where}' is out of range (0 to {maximum})")
    return value

"""The call session: the one record every part of the system reads and advances.

A session's life is ordered by ``progress``: within an attempt the call phases climb
(scheduled < queued < dialing < ringing < in_call < call_ended), a new attempt starts above every
phase of the previous one, and the post-call phases sit above all attempts. Every status change is a
conditional write on ``progress`` (see :mod:`callflow.store`), which is what makes duplicate and
out-of-order provider events harmless: a late CALL_RINGING after CALL_FINISHED, or an event of
attempt 1 after attempt 2 began, simply fails the condition and is dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

DynamicValue = str | int | float | bool


class SessionStatus(StrEnum):
    """Where a session is in its life; the order is :func:`progress_of`'s, not the enum's."""

    CREATED = "created"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    """Due to be dialled, waiting for a free slot in every pool the call needs (admission)."""
    DIALING = "dialing"
    RINGING = "ringing"
    IN_CALL = "in_call"
    CALL_ENDED = "call_ended"
    COLLECTING = "collecting"
    WRITING_BACK = "writing_back"
    WRITEBACK_FAILED = "writeback_failed"
    COMPLETED = "completed"


#: Rank of each call phase inside one attempt.
_CALL_PHASE_RANK = {
    SessionStatus.SCHEDULED: 1,
    SessionStatus.QUEUED: 2,
    SessionStatus.DIALING: 3,
    SessionStatus.RINGING: 4,
    SessionStatus.IN_CALL: 5,
    SessionStatus.CALL_ENDED: 6,
}
#: Post-call phases, above any attempt. A failed writeback can be replayed (back to
#: WRITING_BACK) only through :meth:`callflow.store.SessionStore.reopen_writeback`.
_POST_CALL_RANK = {
    SessionStatus.COLLECTING: 100_000,
    SessionStatus.WRITING_BACK: 100_001,
    SessionStatus.WRITEBACK_FAILED: 100_002,
    SessionStatus.COMPLETED: 100_003,
}
ACTIVE_STATUSES = frozenset(
    {
        SessionStatus.CREATED,
        SessionStatus.SCHEDULED,
        SessionStatus.QUEUED,
        SessionStatus.DIALING,
        SessionStatus.RINGING,
        SessionStatus.IN_CALL,
        SessionStatus.CALL_ENDED,
        SessionStatus.COLLECTING,
        SessionStatus.WRITING_BACK,
    }
)


def progress_of(status: SessionStatus, attempt: int = 0) -> int:
    """The total order on session states; see the module docstring."""
    if status is SessionStatus.CREATED:
        return 0
    if status in _CALL_PHASE_RANK:
        return attempt * 10 + _CALL_PHASE_RANK[status]
    return _POST_CALL_RANK[status]


class Outcome(StrEnum):
    """How a call session ended, as written back to the CRM."""

    ANSWERED = "answered"
    AGENT_UNAVAILABLE = "agent_unavailable"
    """Picked up, but no agent conversation: the agent refused or could not be reached, or the
    call was never connected to the bridge. The person heard nobody."""
    AGENT_DROPPED = "agent_dropped"
    """Picked up and talked to, then the agent's side failed mid-call (1002/1011)."""
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    REJECTED = "rejected"
    FAILED = "failed"
    MACHINE = "machine"
    INVALID_PHONE = "invalid_phone"
    OUTSIDE_HOURS = "outside_hours"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    """Never dialled: its campaign was cancelled, or admission's deadline passed while queued."""
    SUPPRESSED = "suppressed"
    """Never dialled: the person opted out (the record's opt-out checkbox, or the number is on
    the suppression list)."""
    CAPPED = "capped"
    """Never dialled: the record or the number reached its frequency cap (N dials in the rolling
    window); a later trigger, after the window, may call."""


#: Outcomes after which another attempt is worth it.
ANSWERED_BY_MACHINE = "answered_by_machine"
"""The dynamic variable the bridge adds to the agent's when answering-machine detection gave a
verdict on the call: ``true`` when a machine answered (a ``voicemail: leave_message`` flow's
agent then leaves its message), ``false`` otherwise. Absent when detection is off."""

RETRYABLE_OUTCOMES = frozenset({Outcome.NO_ANSWER, Outcome.BUSY, Outcome.AGENT_UNAVAILABLE})


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """``dt`` as ISO 8601 in UTC, to the millisecond, with a ``Z`` suffix."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_session_id() -> str:
    """A random session id (32 hex characters)."""
    return uuid.uuid4().hex


_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_session_id(value: str) -> bool:
    """Whether ``value`` can name a session: 1 to 64 ASCII letters, digits, ``-`` or ``_`` (what
    :func:`new_session_id` makes, with room for other ids), so that a value from outside can go
    into a table key and a log line as it is."""
    return _SESSION_ID.fullmatch(value) is not None


def new_bridge_token() -> str:
    """The per-session secret the bridge checks; it travels in the dialog's customData."""
    return secrets.token_urlsafe(24)


MEDIA_IDENTIFIER_SEPARATOR = "."


def media_identifier(session_id: str, token: str) -> str:
    """The session id and bridge token as one value, ``<session id>.<token>`` (neither alphabet
    has a dot; 97 characters at most): the WEBSOCKET endpoint's ``identifier``, which has no
    documented length limit but is meant for one short value."""
    return f"{session_id}{MEDIA_IDENTIFIER_SEPARATOR}{token}"


def hash_token(token: str) -> str:
    """Only the hash is stored, so reading the table does not let anyone join a call."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    """Whether ``token`` hashes to ``token_hash``, compared in constant time."""
    return hmac.compare_digest(hash_token(token), token_hash)


class TimelineEntry(BaseModel):
    """One event in a session's history: when (ISO 8601, UTC), what, and its details."""

    at: str
    event: str
    detail: dict[str, Any] = Field(default_factory=dict)


class Session(BaseModel):
    """A call session as stored in DynamoDB (one item, ``pk = session#<id>``)."""

    session_id: str
    module: str
    record_id: str
    status: SessionStatus = SessionStatus.CREATED
    progress: int = 0
    attempt: int = 0
    max_attempts: int = 3
    campaign_id: str = ""
    """The campaign the session belongs to; empty for a single trigger."""
    flow: str = ""
    """The flow the trigger named (:mod:`callflow.flows`); empty for the default flow."""
    agent_id: str = ""
    """The flow's ElevenLabs agent, read by the bridge (which has no flow files); empty uses
    ``CALLFLOW_ELEVENLABS_AGENT_ID``."""
    agent_overrides: dict[str, Any] = Field(default_factory=dict)
    """The flow's ``conversation_config_override``, sent by the bridge at initiation."""
    caller_id: str = ""
    """The flow's caller id; empty uses ``CALLFLOW_INFOBIP_FROM_NUMBER``."""
    phone_numbers: list[dict[str, str]] = Field(default_factory=list)
    """The record's numbers in the flow's order (``{"field": ..., "raw": ...}``, empty ones
    left out): the fallbacks of :func:`callflow.lifecycle.numbers.next_number`."""
    phone_field: str = ""
    """The record field of the number in use (``phone_raw``, ``phone``)."""
    phone_from_attempt: int = 1
    """The first attempt on the number in use: its retry rule counts from here."""
    attempt_numbers: dict[str, str] = Field(default_factory=dict)
    """Attempt -> the field whose number it dialled (``"1": "Phone"``)."""
    slots: dict[str, str] = Field(default_factory=dict)
    """Admission slots this attempt holds: pool name -> lease id (see :mod:`callflow.admission`)."""
    queued_at: str = ""
    """When the session first waited for admission (bounds the wait by a deadline)."""

    phone: str = ""
    """E.164 once prepared; the raw field value until then."""
    phone_raw: str = ""
    timezone: str = ""
    variables: dict[str, DynamicValue] = Field(default_factory=dict)
    record: dict[str, Any] = Field(default_factory=dict)
    """The record's fields as read at trigger time (the "before" picture)."""

    call_id: str = ""
    dialog_id: str = ""
    dialog_requested: bool = False
    call_state: str = ""
    machine_detection: str = ""
    """This attempt's detection result as Infobip reported it: HUMAN, MACHINE or FAILED (empty
    until one arrives); the dialog waits for it when detection is on."""
    machine_detection_reason: str = ""
    dialog_failure: str = ""
    """Why this attempt's dialog to the bridge failed (DIALOG_FAILED, ERROR, MEDIA_STREAM_FAILED,
    or a refused creation); empty when it did not."""
    bridge_token_hash: str = ""
    media_config_id: str = ""
    """This attempt's own media-stream config (per-session routing), deleted when it ends."""
    media_claimed_hash: str = ""
    """The bridge token hash whose media stream the bridge admitted: a token admits one stream."""
    media_ids_found_in: str = ""
    """Where the admitted stream carried the session id and token (``callflow_bridge.protocol.
    PLACES``): what the operator learns about Infobip from a real call."""
    media_first_frame: dict[str, Any] = Field(default_factory=dict)
    """The shape (keys and value types, values redacted) of the admitted stream's first frame and
    of its upgrade request: what Infobip really sends, for ``callflow doctor``."""
    media_unmatched_frame: dict[str, Any] = Field(default_factory=dict)
    """The shape (values redacted) of a first media frame that named this session but no usable
    token, as the bridge refused it."""
    conversation_id: str = ""
    """The session's own conversation: the first one the bridge announces (kept once set)."""
    agent_signed_url: str = ""
    """A signed URL for this attempt's agent conversation, fetched when the call was placed so the
    bridge need not ask ElevenLabs once the person answers (:mod:`callflow.lifecycle.agent_url`).
    A secret: whoever holds it can start a conversation on the account. Never logged, and not
    shown by the status route."""
    agent_signed_url_at: int = 0
    """When :attr:`agent_signed_url` was fetched (Unix seconds): ElevenLabs accepts a signed URL
    for 15 minutes to start a conversation."""
    task_token: str = ""
    """Token of the workflow task waiting for the current attempt's outcome."""
    analysis_task_token: str = ""

    outcome: Outcome | None = None
    outcome_detail: str = ""
    next_attempt_at: str = ""
    call_answered_at: str = ""
    call_ended_at: str = ""
    call_duration: int = 0

    not_before: str = ""
    """The earliest the first attempt may be placed (ISO 8601, UTC): a callback's time; empty
    for a call placed at once. Calling hours still apply on top."""
    callback_of: str = ""
    """The session whose call asked for this one (a callback); empty otherwise."""
    record_audio: bool = False
    """Whether the bridge records the call (:class:`callflow.recording.rules.RecordingRules`,
    decided at trigger time)."""
    recording_max_seconds: int = 0
    """The longest recording the bridge keeps for this call (0: none is kept)."""
    recording: dict[str, Any] = Field(default_factory=dict)
    """What the bridge stored: ``status`` (``stored``, ``failed``, ``empty``), the S3 ``key``,
    ``bytes``, ``seconds``, ``truncated``, or the ``error``; empty until the bridge is done."""

    results: dict[str, Any] = Field(default_factory=dict)
    """What the agent collected: conversation status, summary, data collection, termination."""
    writeback: dict[str, Any] = Field(default_factory=dict)
    """The receipt of the CRM writeback: fields written, note id, call id, errors."""
    bridge: dict[str, Any] = Field(default_factory=dict)
    """What the bridge recorded: end reason, formats, metrics."""
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)

    created_at: str = ""
    updated_at: str = ""
    expires_at: int = 0

    @property
    def active(self) -> bool:
        """Whether the session is still under way (neither completed nor failed at writeback)."""
        return self.status in ACTIVE_STATUSES

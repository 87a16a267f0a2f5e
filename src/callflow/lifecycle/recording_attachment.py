"""The call's recording on the CRM record: read from S3, attached through Zoho's Attachments API.

Runs in the note step, before the note, which says what became of it. The bridge stores the file
after the call ends, usually long before the writeback runs (the post-call analysis comes later
still); should the writeback come first, it waits for it, bounded: ``wait_seconds`` after the
call ended, then the note says the recording is unavailable. That decision is final for the
session (kept in the receipt), so the note, a retried step and a replay agree; the file itself
stays in S3 until the bucket's lifecycle rule expires it.

Never attached twice: the upload goes through the writeback's ``_create_once`` (the ``sent``
mark, then a look for the file by its name, which carries the session id), with its own receipt.
A missing, failed or partial recording, S3 unreachable, a file past Zoho's limit or Zoho refusing
it, each ends as "unavailable" with the reason, never as a failed writeback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from callflow.models import Session
from callflow.observability import logger
from callflow.providers.errors import ProviderRejected
from callflow.providers.zoho.client import MAX_ATTACHMENT_BYTES
from callflow.recording.storage import CONTENT_TYPE, StorageUnavailable, get_recording
from callflow.services import Services

CreateOnce = Callable[..., None]
"""The writeback's ``_create_once(services, session, receipt, key, *, find, create, event)``."""

POLL_SECONDS = 1.0


def recording_file_name(session: Session) -> str:
    """The attachment's name; it carries the session id, by which a retry finds it."""
    return f"call-recording-{session.session_id}.wav"


def expected(session: Session) -> bool:
    """Whether the call should have a recording: it was to be recorded and it connected."""
    return session.record_audio and bool(session.call_answered_at or session.bridge)


def attach_recording(
    services: Services,
    session: Session,
    receipt: dict[str, Any],
    create_once: CreateOnce,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Attach the recording, or record in the receipt why it is unavailable (see the module)."""
    if receipt.get("recording_id") or receipt.get("recording_unavailable"):
        return
    session = _await_recording(services, session, sleep)
    reason = _attach(services, session, receipt, create_once)
    if reason:
        receipt["recording_unavailable"] = reason[:300]
        services.store.set_fields(
            session.session_id,
            {"writeback": receipt},
            event="recording unavailable",
            detail={"reason": receipt["recording_unavailable"]},
        )


def note_line(session: Session, receipt: dict[str, Any]) -> str:
    """What the note says of the recording; empty when none was expected."""
    if receipt.get("recording_id"):
        seconds = session.recording.get("seconds")
        length = f", {seconds} s" if isinstance(seconds, int | float) else ""
        return f"Recording: attached as {recording_file_name(session)}{length}"
    if receipt.get("recording_unavailable"):
        return f"Recording: unavailable ({receipt['recording_unavailable']})"
    return ""


def _await_recording(
    services: Services, session: Session, sleep: Callable[[float], None]
) -> Session:
    """The session once the bridge has said what it stored, or at the wait's end."""
    ended = session.call_ended_at or session.updated_at
    deadline = _epoch(ended) + services.recording_rules.wait_seconds if ended else 0.0
    while not session.recording and time.time() < deadline:
        sleep(min(POLL_SECONDS, max(0.0, deadline - time.time())))
        session = services.store.require(session.session_id)
    return session


def _attach(
    services: Services, session: Session, receipt: dict[str, Any], create_once: CreateOnce
) -> str:
    """Attach the file; the reason it is unavailable, or empty when attached."""
    state = session.recording
    status = state.get("status")
    if status == "failed":
        return f"not stored: {state.get('error', 'unknown error')}"
    if status == "empty":
        return "nothing was recorded"
    rules = services.recording_rules
    key = str(state.get("key") or rules.key(session.session_id))
    # Not stored as far as the session says (the bridge died, or its write was lost): S3 is
    # looked at anyway, the file may be there.
    try:
        stored = get_recording(services.recordings_s3, rules.bucket, key)
    except StorageUnavailable as error:
        return f"storage unavailable: {error}"
    if stored is None:
        return "none was stored (the bridge ended without storing one)"
    if stored.size > MAX_ATTACHMENT_BYTES:
        return (
            f"{stored.size // 1_000_000} MB is past Zoho's attachment limit; kept in the "
            f"recordings bucket as {key}"
        )
    name = recording_file_name(session)
    try:
        create_once(
            services,
            session,
            receipt,
            "recording_id",
            find=lambda: services.zoho.find_attachment(session.module, session.record_id, name),
            create=lambda: services.zoho.upload_attachment(
                session.module, session.record_id, name, stored.content, CONTENT_TYPE
            ),
            event="recording attached",
        )
    except ProviderRejected as error:
        logger.warning("Zoho refused the recording", extra={"error": error.message})
        return f"Zoho refused the file: {error.message}"
    return ""


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

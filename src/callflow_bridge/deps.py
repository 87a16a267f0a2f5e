"""What the bridge needs from the outside world, as small injectable pieces.

The relay never imports a provider client: it is given async callables. Production builds them
from :class:`callflow.config.Settings` (:meth:`BridgeDeps.from_settings`); tests and the local
stack hand in their own, pointed at stand-ins, so a relay runs without network access to anyone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import IO, Any, Protocol

from callflow.config import Settings
from callflow.models import Session, SessionStatus

from .recording import StoreRecording

SignedUrl = Callable[[str], Awaitable[str]]
"""A signed URL for a conversation with the agent it is given (empty: the configured one)."""
Hangup = Callable[[str], Awaitable[bool]]
ToolHandler = Callable[[str, dict[str, Any]], Awaitable[str]]


class SessionAccess(Protocol):
    """The :class:`callflow.store.SessionStore` methods the bridge uses (blocking)."""

    def get(self, session_id: str) -> Session | None:
        """The session, or ``None`` when there is none."""

    def set_fields(
        self,
        session_id: str,
        fields: dict[str, Any],
        *,
        only_if_absent: str | None = None,
        only_if_equal: dict[str, Any] | None = None,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Session | None:
        """Set fields without moving the status; ``None`` when a condition failed."""

    def claim_media_stream(
        self,
        session_id: str,
        token_hash: str,
        statuses: Collection[SessionStatus],
        *,
        found_in: str = "",
        first_frame: dict[str, Any] | None = None,
    ) -> Session | None:
        """Admit the one media stream of a bridge token; ``None`` when the session is unknown,
        the token is not its current one, its status is not in ``statuses``, or a stream was
        already admitted with that token. ``found_in`` and ``first_frame`` (the first frame's
        shape, values redacted) are stored with the claim."""

    def note_unmatched_media(self, shape: dict[str, Any]) -> None:
        """Keep the shape of a media stream that named no session, for the operator."""

    def set_conversation(self, session_id: str, conversation_id: str) -> Session | None:
        """Store the session's conversation unless it has another; ``None`` when it does."""

    def index_conversation(self, conversation_id: str, session_id: str) -> bool:
        """Remember which session a conversation belongs to; ``False`` when the conversation is
        already another session's."""


@dataclass(frozen=True)
class BridgeDeps:
    """``signed_url()`` opens a conversation with the configured agent; ``hangup(call_id)`` ends
    the phone call through Infobip; ``tool_handler(name, parameters)`` answers the agent's client
    tool calls (``None``: every call is answered with a clear error); ``store_recording(session_id,
    file)`` keeps a call's recording and returns its key (``None``: no call is recorded)."""

    signed_url: SignedUrl
    hangup: Hangup
    tool_handler: ToolHandler | None = None
    store_recording: StoreRecording | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> BridgeDeps:
        """The production pieces: signed URLs for the configured agent, hang-ups through Infobip
        (run in a thread, the client blocks), and no tool handler."""
        from callflow.providers.elevenlabs.client import AsyncElevenLabsClient
        from callflow.providers.infobip.calls import InfobipClient

        elevenlabs = AsyncElevenLabsClient(settings)
        infobip = InfobipClient(settings)

        async def signed_url(agent_id: str) -> str:
            return await elevenlabs.get_signed_url(agent_id or settings.elevenlabs_agent_id or None)

        async def hangup(call_id: str) -> bool:
            # The Infobip client is blocking httpx: keep it off the event loop.
            return await asyncio.to_thread(infobip.hangup_call, call_id)

        return cls(signed_url=signed_url, hangup=hangup, store_recording=_s3_recordings(settings))


def _s3_recordings(settings: Settings) -> StoreRecording | None:
    """Recordings to the configured bucket (SSE-S3, bounded retries); ``None`` without one."""
    from callflow.recording.rules import RecordingRules
    from callflow.recording.storage import put_recording, s3_client

    rules = RecordingRules.from_settings(settings)
    if not rules.bucket:
        return None
    s3 = s3_client(settings.aws_region, rules.upload_attempts)

    async def store_recording(session_id: str, body: IO[bytes]) -> str:
        key = rules.key(session_id)
        await asyncio.to_thread(put_recording, s3, rules.bucket, key, body)
        return key

    return store_recording

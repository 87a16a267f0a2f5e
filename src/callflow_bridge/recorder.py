"""What the relay writes to the session, without holding up the audio.

Every write goes to a thread (the session store is blocking boto3) and is awaited before the call's
end is recorded, so the end entry is always the session's last word from the bridge. A failed
write is logged and dropped: the live call matters more than its record.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .deps import SessionAccess

logger = logging.getLogger("callflow_bridge.recorder")


class SessionRecorder:
    """Writes to one session; :meth:`later` for writes during the call, :meth:`write` at its end."""

    def __init__(self, store: SessionAccess) -> None:
        self.store = store
        self.session_id = ""
        self._conversation_id = ""
        """The conversation stored and indexed for the session (so it is written once)."""
        self._pending: set[asyncio.Task[None]] = set()

    def later(self, fields: dict[str, Any], event: str, detail: dict[str, Any]) -> None:
        """Write in the background (the audio goes on meanwhile)."""
        task = asyncio.create_task(self.write(fields, event, detail))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def write(self, fields: dict[str, Any], event: str, detail: dict[str, Any]) -> None:
        """Write now. A ``conversation_id`` among the fields is kept apart: it becomes the
        session's conversation only if the session has none yet, and only then is it indexed,
        so the post-call webhook, which names only the conversation, finds the session."""
        conversation_id = str(fields.get("conversation_id") or "")
        rest = {key: value for key, value in fields.items() if key != "conversation_id"}
        try:
            await asyncio.to_thread(
                self.store.set_fields, self.session_id, rest, event=event, detail=detail
            )
            if conversation_id and conversation_id != self._conversation_id:
                await self._keep_conversation(conversation_id)
        except Exception as error:  # a failed write must not end a live call
            logger.warning("session write failed: %s", error, extra={"session_id": self.session_id})

    async def _keep_conversation(self, conversation_id: str) -> None:
        extra = {"session_id": self.session_id, "conversation_id": conversation_id}
        kept = await asyncio.to_thread(
            self.store.set_conversation, self.session_id, conversation_id
        )
        if kept is None:
            logger.warning("session has another conversation: this one not kept", extra=extra)
            return
        indexed = await asyncio.to_thread(
            self.store.index_conversation, conversation_id, self.session_id
        )
        if not indexed:
            logger.warning("the conversation is indexed to another session", extra=extra)
            return
        self._conversation_id = conversation_id

    async def settle(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for the background writes still running."""
        pending = [task for task in self._pending if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

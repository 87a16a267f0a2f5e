"""The ElevenLabs side of a call: the conversation's socket and what the agent has said of it.

The leg connects with a signed URL, opens the conversation with the record's dynamic variables,
sends the caller's audio and keypresses, and reads the agent's messages as plain dicts for the
relay to act on. It answers the agent's client-tool calls itself, and works out from the close
code and any ``error`` event why the agent left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from callflow.config import Settings
from callflow.models import DynamicValue
from callflow.providers.errors import ProviderError

from . import protocol
from .call_end import EndReason
from .deps import BridgeDeps

#: Agent frames are JSON with base64 audio; a second of 48 kHz PCM is ~130 kB.
AGENT_MAX_MESSAGE = 2 * 1024 * 1024


class AgentUnavailable(Exception):
    """The conversation could not be opened; the message is the call's end detail."""


class AgentLeg:
    """One agent conversation."""

    def __init__(self, settings: Settings, deps: BridgeDeps) -> None:
        self.settings = settings
        self.deps = deps
        self.socket: ClientConnection | None = None
        self.ready = False
        """The conversation is open and the early audio sent: caller audio goes straight in."""
        self.ended: tuple[EndReason, str] | None = None
        """Why the agent left, once it has."""
        self.conversation_id = ""
        self.close: dict[str, Any] | None = None
        """The agent's close code and reason."""
        self.end_call_requested = False
        """The agent called its ``end_call`` tool."""
        self.error: dict[str, Any] = {}
        """The last ``error`` event, which explains the close that follows."""
        self._interrupted_id = -1
        self._tool_answers: set[asyncio.Task[None]] = set()

    async def open(
        self,
        variables: dict[str, DynamicValue],
        agent_id: str = "",
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """Connect to ``agent_id`` (the session's flow's; empty: the configured agent) and send
        the conversation's initiation with ``overrides`` (``None``: the configured ones);
        :class:`AgentUnavailable` if it cannot be done within ``bridge_agent_connect_timeout``."""
        timeout = self.settings.bridge_agent_connect_timeout
        chosen = self.settings.overrides if overrides is None else overrides
        try:
            url = await asyncio.wait_for(self.deps.signed_url(agent_id), timeout)
            self.socket = await connect(
                url,
                open_timeout=timeout,
                max_size=AGENT_MAX_MESSAGE,
                compression=None,
                close_timeout=2,
            )
            await self.socket.send(json.dumps(protocol.initiation(variables, chosen)))
        except InvalidStatus as error:
            status = error.response.status_code
            raise AgentUnavailable(f"agent refused the connection: {status}") from None
        except (ProviderError, TimeoutError, OSError, WebSocketException) as error:
            detail = str(error) if isinstance(error, ProviderError) else type(error).__name__
            raise AgentUnavailable(f"agent unreachable: {detail}"[:200]) from None

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        """The agent's messages (JSON objects; anything else is skipped) until it closes."""
        socket = self.socket
        assert socket is not None
        with contextlib.suppress(ConnectionClosed):
            async for message in socket:
                if not isinstance(message, str):
                    continue
                try:
                    data = json.loads(message)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    yield data

    def why_closed(self) -> tuple[EndReason, str]:
        """Why the conversation ended, from its close code and the last ``error`` event."""
        socket = self.socket
        assert socket is not None
        code = socket.close_code
        reason = socket.close_reason or ""
        self.close = {"code": code, "reason": reason}
        text = str(self.error.get("message") or self.error.get("error_type") or reason)
        # 1000 is the agent ending the conversation (end_call, max duration); anything else,
        # or no close frame at all, is the agent failing.
        kind = EndReason.AGENT_ENDED if code == 1000 else EndReason.AGENT_ERROR
        return kind, f"agent closed {code} {text}".strip()[:200]

    async def send(self, text: str) -> None:
        """Send a message; a conversation that just closed is not an error here (its close is
        handled where its messages are read)."""
        if self.socket is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.socket.send(text)

    def interrupted(self, event_id: object) -> None:
        """The caller interrupted the agent: its audio up to ``event_id`` is stale."""
        if isinstance(event_id, int):
            self._interrupted_id = max(self._interrupted_id, event_id)

    def stale(self, event_id: object) -> bool:
        """Audio of a turn the caller already interrupted."""
        return isinstance(event_id, int) and event_id <= self._interrupted_id

    def tool_call(self, call: dict[str, Any]) -> None:
        """Answer a ``client_tool_call`` in the background (tools may take a while)."""
        call_id = call.get("tool_call_id")
        name = call.get("tool_name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            return
        params = call.get("parameters")
        task = asyncio.create_task(
            self._answer_tool(call_id, name, params if isinstance(params, dict) else {})
        )
        self._tool_answers.add(task)
        task.add_done_callback(self._tool_answers.discard)

    async def _answer_tool(self, call_id: str, name: str, params: dict[str, Any]) -> None:
        handler = self.deps.tool_handler
        if handler is None:
            result, is_error = f"client tool {name!r} is not available on phone calls", True
        else:
            try:
                result, is_error = await handler(name, params), False
            except Exception as error:  # the agent gets the failure as the tool's answer
                result, is_error = f"client tool {name!r} failed: {error}", True
        await self.send(protocol.client_tool_result(call_id, result, is_error))

    async def shut(self) -> None:
        """Close the conversation (the call is over on the phone side)."""
        if self.socket is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self.socket.close(1000, "call ended")

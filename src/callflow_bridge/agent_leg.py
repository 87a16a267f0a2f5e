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
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from picows import WSAutoPingStrategy, WSError, WSInvalidStatusError, ws_connect

from callflow.config import Settings
from callflow.models import DynamicValue
from callflow.providers.errors import ProviderError

from . import protocol
from .call_end import EndReason
from .deps import BridgeDeps
from .sockets import KEEPALIVE_S, PicowsSocket, SocketClosed

logger = logging.getLogger("callflow_bridge.agent_leg")

#: Agent frames are JSON with base64 audio; a second of 48 kHz PCM is ~130 kB.
AGENT_MAX_MESSAGE = 2 * 1024 * 1024


class AgentUnavailable(Exception):
    """The conversation could not be opened; the message is the call's end detail."""


class AgentLeg:
    """One agent conversation."""

    def __init__(self, settings: Settings, deps: BridgeDeps) -> None:
        self.settings = settings
        self.deps = deps
        self.socket: PicowsSocket | None = None
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
        self.signed_url_source = ""
        """``prefetched`` (the session's, fetched when the call was placed) or ``fetched``."""
        self._first: dict[str, Any] | None = None
        self._overrides: dict[str, Any] = settings.overrides
        """The ``conversation_config_override`` sent at initiation (the session's flow's)."""
        self._interrupted_id = -1
        self._tool_answers: set[asyncio.Task[None]] = set()

    async def open(
        self,
        variables: dict[str, DynamicValue],
        prefetched_url: str = "",
        agent_id: str = "",
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """Connect to ``agent_id`` (the session's flow's; empty: the configured agent) and send
        the conversation's initiation with ``overrides`` (``None``: the configured ones);
        :class:`AgentUnavailable` if it cannot be done within ``bridge_agent_connect_timeout``.

        ``prefetched_url`` is the signed URL fetched when the call was placed (see
        :func:`usable_signed_url`). It is tried first, saving the round trip to ElevenLabs; when
        the agent does not take it (the handshake fails, or the socket sends an ``error`` or
        closes before its first message: ElevenLabs' answer to a spent or expired signature),
        a fresh URL is fetched and the conversation opened with that, as without one."""
        timeout = self.settings.bridge_agent_connect_timeout
        self._overrides = self.settings.overrides if overrides is None else overrides
        if prefetched_url:
            why = await self._open_prefetched(prefetched_url, variables)
            if not why:
                self.signed_url_source = "prefetched"
                return
            logger.info("prefetched signed URL not accepted (%s); fetching a fresh one", why)
        try:
            url = await asyncio.wait_for(self.deps.signed_url(agent_id), timeout)
        except (ProviderError, TimeoutError, OSError) as error:
            detail = str(error) if isinstance(error, ProviderError) else type(error).__name__
            raise AgentUnavailable(f"agent unreachable: {detail}"[:200]) from None
        self.signed_url_source = "fetched"
        await self._start(url, variables)

    async def _open_prefetched(self, url: str, variables: dict[str, DynamicValue]) -> str:
        """Open the conversation with a prefetched URL and read the agent's first message;
        ``""`` when the agent took it (the message is kept for :meth:`messages`), else why not
        (the socket is closed again)."""
        try:
            await self._start(url, variables)
            self._first = await asyncio.wait_for(
                self._first_message(), self.settings.bridge_agent_connect_timeout
            )
        except AgentUnavailable as error:
            why = str(error)
        except TimeoutError:
            why = "no first message"
        else:
            if self._first is not None:
                return ""
            why = "refused before the conversation started"
        await self.shut()
        self.socket, self.error = None, {}
        return why

    async def _first_message(self) -> dict[str, Any] | None:
        """The agent's first JSON object, or ``None`` when it is an ``error`` or the socket
        closes first (the conversation did not start)."""
        messages = self.messages()
        async with contextlib.aclosing(messages):
            async for message in messages:
                if message.get("type") == "error":
                    self.error = protocol.event_body(message, "error_event")
                    return None
                return message
        return None

    async def _start(self, url: str, variables: dict[str, DynamicValue]) -> None:
        timeout = self.settings.bridge_agent_connect_timeout
        try:
            self.socket = await asyncio.wait_for(_connect(url, timeout), timeout)
            await self.socket.send(json.dumps(protocol.initiation(variables, self._overrides)))
        except WSInvalidStatusError as error:
            status = error.response.status if error.response is not None else "no status"
            raise AgentUnavailable(f"agent refused the connection: {status}") from None
        except (TimeoutError, OSError, WSError, SocketClosed) as error:
            raise AgentUnavailable(f"agent unreachable: {type(error).__name__}"[:200]) from None

    async def messages(self) -> AsyncGenerator[dict[str, Any]]:
        """The agent's messages (JSON objects; anything else is skipped) until it closes; the
        first one read by :meth:`open` comes first."""
        first, self._first = self._first, None
        if first is not None:
            yield first
        socket = self.socket
        assert socket is not None
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
            with contextlib.suppress(SocketClosed):
                await self.socket.send(text)

    def send_audio_now(self, message: bytes) -> None:
        """:meth:`send_audio` without waiting for the socket to drain (see :meth:`drained`)."""
        if self.socket is not None:
            with contextlib.suppress(SocketClosed):
                self.socket.send_text_now(message)

    @property
    def writable(self) -> bool:
        """A send would not wait for the socket's write buffer to drain."""
        return self.socket is None or self.socket.writable

    async def drained(self) -> None:
        """Wait while the socket's write buffer is over its high-water mark."""
        if self.socket is not None:
            await self.socket.drained()

    def on_audio(self, handler: Callable[[dict[str, Any]], None] | None) -> None:
        """Hand each ``audio`` message that arrives while :meth:`messages` waits to ``handler``
        at once, in the frame's callback (see :mod:`callflow_bridge.sockets`); those are not
        yielded by :meth:`messages`. What it skips (not text, not a JSON object) is skipped
        here too; every other message goes through :meth:`messages`. ``None`` stops it."""
        socket = self.socket
        if socket is None:
            return
        if handler is None:
            socket.dispatch = None
            return

        def dispatch(message: str | bytes) -> bool:
            if not isinstance(message, str):
                return True
            try:
                data = json.loads(message)
            except ValueError:
                return True
            if not isinstance(data, dict):
                return True
            if data.get("type") != "audio":
                return False
            handler(data)
            return True

        socket.dispatch = dispatch

    async def send_audio(self, message: bytes) -> None:
        """Send a :func:`~callflow_bridge.protocol.user_audio_chunk` message, as :meth:`send`."""
        if self.socket is not None:
            with contextlib.suppress(SocketClosed):
                await self.socket.send_text(message)

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
            with contextlib.suppress(SocketClosed, OSError):
                await self.socket.close(1000, "call ended")


async def _connect(url: str, handshake_timeout_s: float) -> PicowsSocket:
    """Open the agent's socket: no compression (picows offers none), keepalive pings as
    ``websockets`` sent them, a message limit of :data:`AGENT_MAX_MESSAGE`."""
    _, listener = await ws_connect(
        lambda: PicowsSocket(AGENT_MAX_MESSAGE),
        url,
        websocket_handshake_timeout=handshake_timeout_s,
        enable_auto_ping=True,
        auto_ping_idle_timeout=KEEPALIVE_S,
        auto_ping_reply_timeout=KEEPALIVE_S,
        auto_ping_strategy=WSAutoPingStrategy.PING_PERIODICALLY,
        max_frame_size=AGENT_MAX_MESSAGE,
        use_aiofastnet=False,
    )
    assert isinstance(listener, PicowsSocket)
    return listener


#: How far ahead of the bridge's clock a prefetched URL's fetch time may be and still be trusted
#: (the place-call task and the bridge run on different hosts).
CLOCK_SKEW_S = 60.0


def usable_signed_url(
    url: str, fetched_at: int, max_age_s: float, now: float, agent_id: str = ""
) -> str:
    """``url`` when it was fetched at most ``max_age_s`` before ``now`` (Unix seconds) and, when
    ``agent_id`` is given (the session's flow's agent), it is that agent's; else ``""`` (the
    bridge fetches a fresh one). ElevenLabs accepts a signed URL for 15 minutes to start a
    conversation; ``max_age_s`` is set below that."""
    if not url or fetched_at <= 0:
        return ""
    if agent_id and signed_url_agent(url) != agent_id:
        return ""
    age = now - fetched_at
    return url if -CLOCK_SKEW_S <= age <= max_age_s else ""


def signed_url_agent(url: str) -> str:
    """The agent a signed URL opens: its ``agent_id`` query parameter (ElevenLabs' signed
    conversation URLs carry it next to the signature); ``""`` when it has none."""
    values = parse_qs(urlsplit(url).query).get("agent_id") or [""]
    return values[0]

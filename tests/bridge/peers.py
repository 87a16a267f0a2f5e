"""Minimal, precisely controllable peers for the bridge tests, speaking the real wire formats.

``AgentPeer`` is an ElevenLabs agent endpoint: it validates every client message against the
official AsyncAPI contract (``callflow_dev.sandbox.asyncapi``), answers the initiation with
``conversation_initiation_metadata`` and then runs a per-test script. ``PhoneLeg`` is Infobip's
side: the ``websocket:connected`` frame with customData flattened in, then binary PCM frames at
a chosen pace. The full scripted stand-ins live in ``callflow_dev.sandbox``; these exist so a test
can place an interruption or a close at an exact moment.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from callflow_dev.sandbox.asyncapi import validate_client_message


def tone(rate: int, ms: int, value: int) -> bytes:
    """A constant-valued s16le block: loud enough to be speech, and recognisable byte for byte."""
    return np.full(rate * ms // 1000, value, dtype="<i2").tobytes()


def sine(rate: int, ms: int, hz: float = 440.0, amplitude: int = 8000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


@dataclass
class AgentCall:
    """One conversation as the agent saw it."""

    ws: ServerConnection
    initiation: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    contract_errors: list[str] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    closed_at: float | None = None

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def send_audio(self, audio: bytes, event_id: int) -> None:
        await self.send(
            {
                "type": "audio",
                "audio_event": {
                    "audio_base_64": base64.b64encode(audio).decode(),
                    "event_id": event_id,
                },
            }
        )

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    async def wait_for(self, condition: Callable[[], bool], within_s: float = 3.0) -> None:
        deadline = time.monotonic() + within_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.01)


Script = Callable[[AgentCall], Awaitable[None]]


async def idle(call: AgentCall) -> None:
    """Say nothing; keep the conversation open until the bridge closes it."""
    await call.ws.wait_closed()


class AgentPeer:
    """An agent WebSocket endpoint on loopback (port 0)."""

    def __init__(
        self,
        script: Script = idle,
        *,
        input_format: str = "pcm_16000",
        output_format: str = "pcm_16000",
        metadata_delay_s: float = 0.0,
        refuse_with: int | None = None,
        conversation_id: str = "conv_test_1",
    ) -> None:
        self.script = script
        self.input_format = input_format
        self.output_format = output_format
        self.metadata_delay_s = metadata_delay_s
        self.refuse_with = refuse_with
        self.conversation_id = conversation_id
        self.calls: list[AgentCall] = []
        self.connections = 0
        self._server: Server | None = None
        self.url = ""

    async def __aenter__(self) -> AgentPeer:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._route, compression=None
        )
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/v1/convai/conversation?conversation_signature=sig"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        self.connections += 1
        if self.refuse_with is not None:
            return connection.respond(HTTPStatus(self.refuse_with), "refused\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        call = AgentCall(ws, first)
        call.contract_errors += validate_client_message(first)
        if first.get("type") != "conversation_initiation_client_data":
            call.contract_errors.append("first message is not the initiation")
        self.calls.append(call)
        if self.metadata_delay_s:
            await asyncio.sleep(self.metadata_delay_s)
        await call.send(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "conversation_id": self.conversation_id,
                    "agent_output_audio_format": self.output_format,
                    "user_input_audio_format": self.input_format,
                },
            }
        )
        reader = asyncio.create_task(self._read(call))
        try:
            await self.script(call)
        finally:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 3)
            reader.cancel()

    async def _read(self, call: AgentCall) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in call.ws:
                message = json.loads(raw)
                call.contract_errors += validate_client_message(message)
                call.messages.append(message)
                chunk = message.get("user_audio_chunk")
                if isinstance(chunk, str):
                    call.audio += base64.b64decode(chunk)
        call.closed_at = time.monotonic()


@dataclass
class PhoneLeg:
    """Infobip's side of one media stream."""

    ws: ClientConnection
    rate: int
    received: list[tuple[float, bytes | str]] = field(default_factory=list)
    sent_frames: int = 0
    sent_at: list[float] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        custom: dict[str, str],
        rate: int = 16000,
        content_type: str | None = None,
    ) -> PhoneLeg:
        ws = await connect(url, compression=None, open_timeout=5, close_timeout=2)
        hello = {
            "event": "websocket:connected",
            "content-type": content_type or f"audio/l16;rate={rate}",
            **custom,
        }
        await ws.send(json.dumps(hello))
        leg = cls(ws, rate)
        leg._reader = asyncio.create_task(leg._read())
        return leg

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                self.received.append((time.monotonic(), message))

    @property
    def frame_bytes(self) -> int:
        return self.rate * 2 // 50

    async def play(self, audio: bytes, *, until_closed: bool = False) -> None:
        """Send ``audio`` as 20 ms frames at real time, on an absolute clock."""
        step = self.frame_bytes
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(audio), step)):
            delay = start + index * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self.ws.send(audio[offset : offset + step])
            except ConnectionClosed:
                if until_closed:
                    return
                raise
            self.sent_frames += 1
            self.sent_at.append(time.monotonic())

    async def silence(self, ms: int, *, until_closed: bool = False) -> None:
        await self.play(bytes(self.rate * 2 * ms // 1000), until_closed=until_closed)

    def audio_frames(self) -> list[bytes]:
        return [m for _, m in self.received if isinstance(m, bytes)]

    def texts(self) -> list[str]:
        return [m for _, m in self.received if isinstance(m, str)]

    async def closed(self, within_s: float = 3.0) -> None:
        await asyncio.wait_for(self.ws.wait_closed(), within_s)
        if self._reader is not None:
            await self._reader

    async def hang_up(self) -> None:
        await self.ws.close(1000, "callee hung up")
        if self._reader is not None:
            await self._reader

"""One live call: Infobip's media stream on one side, the ElevenLabs agent on the other.

The relay runs two loops. The *phone loop* reads Infobip's frames: each caller frame goes to the
agent at once (or into a bounded early buffer until the agent is ready), and each 20 ms of caller
audio releases one 20 ms frame of the agent's queued audio (see :mod:`bridge.pacing`). The *agent
loop* reads the agent's messages: audio is converted and queued, interruptions flush the queue and
Infobip's buffer, pings are answered at once, transcripts are kept.

Ends, and what each does to the other leg:

- the agent ends (close 1000, e.g. after ``end_call``) or fails (1002/1008/1011, refused at
  connect): the queued audio is played out (bounded), then the call is hung up through the Infobip
  API and the media socket closed; the caller hears the last sentence in full;
- Infobip closes (the person hung up): the agent conversation is closed at once;
- a format that cannot be served, or the server's shutdown deadline: both legs are closed.

Every end records the reason, close codes, formats, metrics and the bounded transcript on the
session; the conversation id is stored the moment the agent announces it.

Metrics, per call (see :mod:`bridge.metrics`): ``ConnectTimeMs`` runs from the accepted
``websocket:connected`` frame to ``conversation_initiation_metadata``. ``TurnLatencyMs`` runs from
the end of the caller's speech to the first frame of the agent's answer *sent to Infobip* (after
pacing, which is what the caller hears). The end of speech is found by energy: the last caller
frame above ``SPEECH_DBFS``, measured as the frames arrive. The agent's ``user_transcript`` was
not used: it arrives after the agent's own end-of-turn detection and ASR, so it would hide part
of the latency being measured, and its timing is not under the bridge's control. A latency is
recorded once per agent turn that follows caller speech. ``FramesRelayed`` counts caller frames
sent to the agent plus agent frames sent to the caller (silence excluded); ``Conversions`` counts
audio chunks that went through a resampler or μ-law codec; ``Underruns`` counts silence frames
sent while the agent was mid-utterance (see :mod:`bridge.pacing`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from collections import deque
from enum import StrEnum
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from callflow.config import Settings
from callflow.models import DynamicValue, SessionStatus, iso, token_matches, utcnow
from callflow.providers.errors import ProviderError
from callflow_bridge.audio import AudioFormat, UnsupportedFormat

from . import protocol
from .deps import BridgeDeps, SessionAccess
from .formats import CallFormats, phone_rate
from .metrics import BridgeMetrics, CallMetrics
from .pacing import OutboundPacer

logger = logging.getLogger("bridge.relay")

#: Session phases in which a media stream may join. Provider events may arrive in any order, so
#: the WebSocket can come before the session has seen CALL_ESTABLISHED.
LIVE_STATUSES = frozenset({SessionStatus.DIALING, SessionStatus.RINGING, SessionStatus.IN_CALL})
FIRST_FRAME_TIMEOUT_S = 5.0
#: Caller audio louder than this counts as speech when timing the agent's turn latency (the end
#: of caller speech is the last loud frame). The test is RMS against this level, done as mean
#: power against the equivalent threshold: ``callflow_bridge.audio.rms_dbfs`` costs ~15 us a
#: frame in float64 and a logarithm, a float32 dot product ~5 us, and this runs on every caller
#: frame.
SPEECH_DBFS = -45.0
_SPEECH_POWER = (32768.0 * 10 ** (SPEECH_DBFS / 20)) ** 2
#: Agent frames are JSON with base64 audio; a second of 48 kHz PCM is ~130 kB.
AGENT_MAX_MESSAGE = 2 * 1024 * 1024
#: Beyond the queued audio, how long a drain may wait for Infobip's clock before hanging up.
DRAIN_GRACE_S = 1.0
#: After the queue is played out, how long to keep sending (silence) before hanging up. With
#: one frame out per frame in, any burst in the caller's stream leaves a standing backlog in the
#: far end's playback buffer (frames received, not yet played); hanging up at once cuts it off,
#: which is the "last sentence cut short" failure integrators report.
DRAIN_TAIL_S = 0.4
_DTMF_DIGITS = frozenset("0123456789*#ABCD")
_EARLY_TEXT_LIMIT = 16


def is_speech(frame: bytes) -> bool:
    """``rms_dbfs(frame) > SPEECH_DBFS``, without the float64 copy and the logarithm."""
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    return float(np.dot(samples, samples)) > samples.size * _SPEECH_POWER


class EndReason(StrEnum):
    """Why a call ended; a metric dimension, so the set is small and fixed."""

    AGENT_ENDED = "agent_ended"
    AGENT_ERROR = "agent_error"
    AGENT_UNAVAILABLE = "agent_unavailable"
    CALLER_HUNG_UP = "caller_hung_up"
    PHONE_LEG_ERROR = "phone_leg_error"
    UNSUPPORTED_FORMAT = "unsupported_format"
    SHUTDOWN = "shutdown"
    BRIDGE_ERROR = "bridge_error"


#: Ends after which the bridge itself must end the phone call.
_HANG_UP = frozenset(
    {
        EndReason.AGENT_ENDED,
        EndReason.AGENT_ERROR,
        EndReason.AGENT_UNAVAILABLE,
        EndReason.UNSUPPORTED_FORMAT,
        EndReason.BRIDGE_ERROR,
    }
)


class Rejected(Exception):
    """The media stream was refused before anything was relayed (close 1008)."""


class CallRelay:
    """Relays one call; :meth:`run` returns when both legs are closed and the end is recorded."""

    def __init__(
        self,
        phone: ServerConnection,
        settings: Settings,
        store: SessionAccess,
        deps: BridgeDeps,
        metrics: BridgeMetrics,
    ) -> None:
        self.phone = phone
        self.settings = settings
        self.store = store
        self.deps = deps
        self.metrics = metrics
        self.call = CallMetrics()
        self.session_id = ""
        self.admitted = False
        self.agent: ClientConnection | None = None
        self.formats: CallFormats | None = None
        self.conversation_id = ""
        self.end_reason: EndReason | None = None
        self.end_detail = ""
        self._connected_at = time.monotonic()
        self._finished = asyncio.Event()
        self._agent_ready = False
        self._agent_end: tuple[EndReason, str] | None = None
        self._agent_error: dict[str, Any] = {}
        self._draining = False
        self._interrupted_id = -1
        self._early: deque[bytes] = deque()
        self._early_bytes = 0
        self._early_dropped = 0
        self._early_text: list[str] = []
        self._credit = 0
        self._frame_bytes = 0
        self._pacer: OutboundPacer | None = None
        self._last_loud = 0.0
        self._speech_pending = False
        self._prev_audio = False
        self._malformed = 0
        self._clears = 0
        self._hangup_result: str = ""
        self._transcript: deque[dict[str, Any]] = deque(maxlen=settings.bridge_transcript_limit)
        self._background: set[asyncio.Task[Any]] = set()
        self._drain_timer: asyncio.TimerHandle | None = None
        self.variables: dict[str, DynamicValue] = {}
        self._content_type = ""
        self._rate = 0
        self._early_limit = 0
        self.agent_close: dict[str, Any] | None = None
        self.end_call_requested = False

    # --- public ---------------------------------------------------------------------------

    async def admit(self) -> bool:
        """Read the connected frame and check the session; closes 1008 and returns False when
        the stream is refused. Nothing has contacted the agent at that point."""
        try:
            first = await asyncio.wait_for(self.phone.recv(), FIRST_FRAME_TIMEOUT_S)
            hello = protocol.parse_connected(first)
            self.session_id = hello.session_id
            session = await asyncio.to_thread(self.store.get, hello.session_id)
            # One answer for "no such session" and "wrong token": no oracle for session ids.
            if session is None or not token_matches(hello.token, session.bridge_token_hash):
                raise Rejected("unknown session or bad token")
            if session.status not in LIVE_STATUSES:
                raise Rejected(f"session is {session.status.value}, not in a call")
        except (TimeoutError, protocol.BadFrame, Rejected) as error:
            message = (
                "no websocket:connected frame" if isinstance(error, TimeoutError) else str(error)
            )
            logger.warning(
                "media stream refused: %s", message, extra={"session_id": self.session_id}
            )
            with contextlib.suppress(ConnectionClosed):
                await self.phone.close(1008, message[:120])
            return False
        except ConnectionClosed:
            return False
        except Exception as error:  # the session store failed: a server error, not a refusal
            logger.error(
                "session lookup failed: %s",
                type(error).__name__,
                extra={"session_id": self.session_id},
            )
            with contextlib.suppress(ConnectionClosed):
                await self.phone.close(1011, "session store unavailable")
            return False
        self.variables = session.variables
        self.admitted = True
        self._connected_at = time.monotonic()
        self._content_type = hello.content_type
        return True

    async def run(self) -> None:
        """Relay until the call ends, then record the end."""
        try:
            await self._relay()
        except Exception as error:  # a bug must still end the call cleanly and be recorded
            logger.exception("relay failed", extra={"session_id": self.session_id})
            self._finish(EndReason.BRIDGE_ERROR, type(error).__name__)
            await self._teardown()
        await self._record_end()

    def shutdown(self) -> None:
        """The server's drain deadline passed: end now, closing the media socket with 1001."""
        self._finish(EndReason.SHUTDOWN, "bridge shutting down")

    # --- the relay ------------------------------------------------------------------------

    async def _relay(self) -> None:
        try:
            rate = phone_rate(self._content_type, self.settings.infobip_sample_rate)
            phone_format = AudioFormat.phone(rate)
        except UnsupportedFormat as error:
            self._finish(EndReason.UNSUPPORTED_FORMAT, str(error))
            await self._teardown()
            return
        self._rate = rate
        self._frame_bytes = phone_format.frame_bytes()
        self._pacer = OutboundPacer(self._frame_bytes, 0, rate * 2)
        self._early_limit = rate * 2 * self.settings.bridge_max_early_audio_ms // 1000
        phone_task = asyncio.create_task(self._phone_loop(), name=f"phone-{self.session_id}")
        agent_task = asyncio.create_task(self._agent_loop(), name=f"agent-{self.session_id}")
        phone_task.add_done_callback(self._leg_failed)
        agent_task.add_done_callback(self._leg_failed)
        try:
            await self._finished.wait()
        finally:
            await self._teardown(phone_task, agent_task)

    def _leg_failed(self, task: asyncio.Task[None]) -> None:
        """A bug in either loop must end the call (and be logged), not leave it half alive."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        logger.error(
            "%s failed", task.get_name(), exc_info=error, extra={"session_id": self.session_id}
        )
        self._finish(EndReason.BRIDGE_ERROR, f"{task.get_name().split('-')[0]} loop: {error!r}")

    def _finish(self, reason: EndReason, detail: str = "") -> None:
        if self.end_reason is None:
            self.end_reason = reason
            self.end_detail = detail
            self._finished.set()

    async def _teardown(
        self,
        phone_task: asyncio.Task[None] | None = None,
        agent_task: asyncio.Task[None] | None = None,
    ) -> None:
        reason = self.end_reason or EndReason.BRIDGE_ERROR
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        if agent_task is not None and not agent_task.done():
            agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent_task
        if self.agent is not None:
            with contextlib.suppress(ConnectionClosed, OSError):
                await self.agent.close(1000, "call ended")
        if reason in _HANG_UP:
            await self._hang_up()
        if reason is EndReason.SHUTDOWN:
            await self.phone.close(1001, "bridge shutting down")
        else:
            await self.phone.close(1000, reason.value)
        if phone_task is not None and not phone_task.done():
            phone_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await phone_task

    async def _hang_up(self) -> None:
        """End the phone call through the API (the media socket alone may leave it up)."""
        try:
            session = await asyncio.to_thread(self.store.get, self.session_id)
            call_id = session.call_id if session is not None else ""
            if not call_id:
                self._hangup_result = "no call id"
                return
            done = await self.deps.hangup(call_id)
            self._hangup_result = "hung up" if done else "already over"
        except Exception as error:  # the end is still recorded; the call ends with the socket
            logger.warning("hangup failed: %s", error, extra={"session_id": self.session_id})
            self._hangup_result = f"failed: {type(error).__name__}"

    # --- phone leg ------------------------------------------------------------------------

    async def _phone_loop(self) -> None:
        try:
            async for message in self.phone:
                if isinstance(message, bytes):
                    await self._caller_audio(message)
                else:
                    await self._phone_text(message)
        except ConnectionClosed:
            pass
        if self._agent_end is not None:
            self._finish(*self._agent_end)
        elif self.phone.close_code in (1000, 1001, None):
            self._finish(EndReason.CALLER_HUNG_UP, f"media socket closed {self.phone.close_code}")
        else:
            self._finish(
                EndReason.PHONE_LEG_ERROR,
                f"media socket closed {self.phone.close_code} {self.phone.close_reason}".strip(),
            )

    async def _caller_audio(self, frame: bytes) -> None:
        size = len(frame)
        if size == 0 or size & 1:
            self._malformed += 1
            return
        now = time.monotonic()
        if is_speech(frame):
            self._last_loud = now
            self._speech_pending = True
        if self._agent_ready:
            formats = self.formats
            assert formats is not None and self.agent is not None
            data = frame if formats.to_agent.identity else formats.to_agent.convert(frame)
            if not formats.to_agent.identity:
                self.call.conversions += 1
            if data:
                with contextlib.suppress(ConnectionClosed):
                    await self.agent.send(protocol.user_audio_chunk(data))
            self.call.frames_relayed += 1
        elif self._agent_end is None:
            self._keep_early(frame)
        await self._ticks(size, now)

    async def _ticks(self, size: int, now: float) -> None:
        """One frame out for each frame's worth of caller audio in."""
        pacer = self._pacer
        assert pacer is not None
        self._credit += size
        while self._credit >= self._frame_bytes:
            self._credit -= self._frame_bytes
            tick = pacer.tick(now)
            if tick.frame is None:
                continue
            await self.phone.send(tick.frame)
            if tick.audio:
                self.call.frames_relayed += 1
                if not self._prev_audio and self._speech_pending:
                    self.call.add_turn_latency((now - self._last_loud) * 1000)
                    self._speech_pending = False
            self._prev_audio = tick.audio
        if self._draining and pacer.queued_bytes == 0 and self._agent_end is not None:
            self._draining = False
            if self._drain_timer is not None:
                self._drain_timer.cancel()
            # Everything is sent, but the far end plays from a jitter buffer that one-in-one-out
            # pacing never drains: keep the stream going (silence) a moment before hanging up.
            self._drain_timer = asyncio.get_running_loop().call_later(
                DRAIN_TAIL_S, self._finish, *self._agent_end
            )

    def _keep_early(self, frame: bytes) -> None:
        self._early.append(frame)
        self._early_bytes += len(frame)
        while self._early_bytes > self._early_limit:
            self._early_bytes -= len(self._early.popleft())
            self._early_dropped += 1

    async def _phone_text(self, message: str) -> None:
        data = protocol.parse_phone_text(message)
        if data is None:
            self._malformed += 1
            return
        if data.get("event") == protocol.DTMF_EVENT:
            digit = data.get("digit")
            if not isinstance(digit, str) or digit not in _DTMF_DIGITS:
                self._malformed += 1
                return
            text = protocol.dtmf_message(digit, self.settings.bridge_dtmf_mode)
            if text is None:
                return
            if self._agent_ready and self.agent is not None:
                with contextlib.suppress(ConnectionClosed):
                    await self.agent.send(text)
            elif len(self._early_text) < _EARLY_TEXT_LIMIT:
                self._early_text.append(text)
        # Other events (there are none documented) are ignored.

    # --- agent leg ------------------------------------------------------------------------

    async def _agent_loop(self) -> None:
        try:
            url = await asyncio.wait_for(
                self.deps.signed_url(), self.settings.bridge_agent_connect_timeout
            )
            self.agent = await connect(
                url,
                open_timeout=self.settings.bridge_agent_connect_timeout,
                max_size=AGENT_MAX_MESSAGE,
                compression=None,
                close_timeout=2,
            )
            init = protocol.initiation(self.variables, self.settings.overrides)
            await self.agent.send(json.dumps(init))
        except InvalidStatus as error:
            status = error.response.status_code
            self._agent_gone(EndReason.AGENT_UNAVAILABLE, f"agent refused the connection: {status}")
            return
        except (ProviderError, TimeoutError, OSError, WebSocketException) as error:
            detail = str(error) if isinstance(error, ProviderError) else type(error).__name__
            self._agent_gone(EndReason.AGENT_UNAVAILABLE, f"agent unreachable: {detail}"[:200])
            return
        agent = self.agent
        try:
            async for message in agent:
                if isinstance(message, str):
                    await self._agent_message(message)
        except ConnectionClosed:
            pass
        code = agent.close_code
        reason = agent.close_reason or ""
        self.agent_close = {"code": code, "reason": reason}
        failure = self._agent_error
        text = str(failure.get("message") or failure.get("error_type") or reason)
        # 1000 is the agent ending the conversation (end_call, max duration); anything else,
        # or no close frame at all, is the agent failing.
        kind = EndReason.AGENT_ENDED if code == 1000 else EndReason.AGENT_ERROR
        self._agent_gone(kind, f"agent closed {code} {text}".strip()[:200])

    def _agent_gone(self, reason: EndReason, detail: str) -> None:
        """The agent leg is over: play out what is queued, then end the call."""
        self._agent_ready = False
        self._agent_end = (reason, detail)
        pacer = self._pacer
        if pacer is not None and self.formats is not None and self._resampling_out():
            # The resampler holds back its last few milliseconds until told the stream ended.
            pacer.push(self.formats.to_phone.convert(b"", last=True), time.monotonic())
        if pacer is None or pacer.queued_bytes == 0:
            self._finish(reason, detail)
            return
        self._draining = True
        # Infobip's frames are the clock; should they stop, do not wait forever.
        wait = pacer.queued_seconds + DRAIN_GRACE_S
        self._drain_timer = asyncio.get_running_loop().call_later(
            wait, self._finish, reason, detail
        )

    def _resampling_out(self) -> bool:
        formats = self.formats
        return formats is not None and formats.agent_output.rate != formats.phone.rate

    async def _agent_message(self, message: str) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind == "audio":
            self._agent_audio(protocol.event_body(data, "audio_event"))
        elif kind == "ping":
            event_id = protocol.event_body(data, "ping_event").get("event_id")
            if isinstance(event_id, int) and self.agent is not None:
                await self.agent.send(protocol.pong(event_id))
        elif kind == "interruption":
            await self._interruption(protocol.event_body(data, "interruption_event"))
        elif kind == "conversation_initiation_metadata":
            await self._metadata(
                protocol.event_body(data, "conversation_initiation_metadata_event")
            )
        elif kind == "user_transcript":
            body = protocol.event_body(data, "user_transcription_event")
            self._remember("user", body.get("user_transcript"))
        elif kind == "agent_response":
            body = protocol.event_body(data, "agent_response_event")
            self._remember("agent", body.get("agent_response"))
        elif kind == "agent_response_correction":
            self._correct(protocol.event_body(data, "agent_response_correction_event"))
        elif kind == "client_tool_call":
            self._tool_call(protocol.event_body(data, "client_tool_call"))
        elif kind == "agent_tool_response":
            body = protocol.event_body(data, "agent_tool_response")
            if body.get("tool_name") == "end_call":
                self.end_call_requested = True
        elif kind == "error":
            self._agent_error = protocol.event_body(data, "error_event")
        # Every other type (vad_score, tentative transcripts, ...) is ignored by design.

    def _agent_audio(self, event: dict[str, Any]) -> None:
        event_id = event.get("event_id")
        if isinstance(event_id, int) and event_id <= self._interrupted_id:
            return  # audio of the turn the caller just interrupted
        encoded = event.get("audio_base_64")
        formats = self.formats
        if not isinstance(encoded, str) or formats is None or self._pacer is None:
            return
        try:
            audio = base64.b64decode(encoded)
        except (binascii.Error, ValueError):
            return
        if not formats.to_phone.identity:
            self.call.conversions += 1
        self._pacer.push(formats.to_phone.convert(audio), time.monotonic())

    async def _interruption(self, event: dict[str, Any]) -> None:
        event_id = event.get("event_id")
        if isinstance(event_id, int):
            self._interrupted_id = max(self._interrupted_id, event_id)
        if self._pacer is not None and self._pacer.started:
            self._pacer.clear()
            self._prev_audio = False
            self._clears += 1
            with contextlib.suppress(ConnectionClosed):
                await self.phone.send(protocol.CLEAR_FRAME)

    async def _metadata(self, event: dict[str, Any]) -> None:
        self.call.connect_time_ms = (time.monotonic() - self._connected_at) * 1000
        cid = event.get("conversation_id")
        self.conversation_id = cid if isinstance(cid, str) else ""
        try:
            self.formats = CallFormats.negotiate(
                self._rate,
                str(event.get("user_input_audio_format", "")),
                str(event.get("agent_output_audio_format", "")),
            )
        except UnsupportedFormat as error:
            self._store_later(
                {"conversation_id": self.conversation_id} if self.conversation_id else {},
                "agent connected",
                {"conversation_id": self.conversation_id, "error": str(error)},
            )
            self._finish(EndReason.UNSUPPORTED_FORMAT, str(error))
            return
        fields: dict[str, Any] = {"bridge": {"formats": self.formats.describe()}}
        if self.conversation_id:
            fields["conversation_id"] = self.conversation_id
        self._store_later(
            fields,
            "agent connected",
            {
                "conversation_id": self.conversation_id,
                "connect_ms": round(self.call.connect_time_ms, 1),
                **self.formats.describe(),
            },
        )
        await self._flush_early()

    async def _flush_early(self) -> None:
        """Send what the caller said while the agent was connecting, then go live."""
        formats, agent = self.formats, self.agent
        assert formats is not None and agent is not None
        with contextlib.suppress(ConnectionClosed):
            while self._early:
                frame = self._early.popleft()
                self._early_bytes -= len(frame)
                data = formats.to_agent.convert(frame)
                if not formats.to_agent.identity:
                    self.call.conversions += 1
                if data:
                    await agent.send(protocol.user_audio_chunk(data))
                self.call.frames_relayed += 1
            for text in self._early_text:
                await agent.send(text)
            self._early_text.clear()
        self._agent_ready = self.end_reason is None and self._agent_end is None

    def _remember(self, role: str, text: object) -> None:
        if isinstance(text, str) and text:
            self._transcript.append({"role": role, "text": text, "at": iso(utcnow())})

    def _correct(self, event: dict[str, Any]) -> None:
        original = event.get("original_agent_response")
        corrected = event.get("corrected_agent_response")
        if not isinstance(corrected, str):
            return
        for entry in reversed(self._transcript):
            if entry["role"] == "agent" and entry["text"] == original:
                entry["text"] = corrected
                entry["corrected"] = True
                return
        self._remember("agent", corrected)

    def _tool_call(self, call: dict[str, Any]) -> None:
        call_id = call.get("tool_call_id")
        name = call.get("tool_name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            return
        params = call.get("parameters")
        task = asyncio.create_task(
            self._answer_tool(call_id, name, params if isinstance(params, dict) else {})
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _answer_tool(self, call_id: str, name: str, params: dict[str, Any]) -> None:
        handler = self.deps.tool_handler
        if handler is None:
            result, is_error = f"client tool {name!r} is not available on phone calls", True
        else:
            try:
                result, is_error = await handler(name, params), False
            except Exception as error:  # the agent gets the failure as the tool's answer
                result, is_error = f"client tool {name!r} failed: {error}", True
        if self.agent is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.agent.send(protocol.client_tool_result(call_id, result, is_error))

    # --- recording ------------------------------------------------------------------------

    def _store_later(self, fields: dict[str, Any], event: str, detail: dict[str, Any]) -> None:
        """Write to the session without holding up the audio (awaited before the end is)."""
        task = asyncio.create_task(self._store(fields, event, detail))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _store(self, fields: dict[str, Any], event: str, detail: dict[str, Any]) -> None:
        try:
            await asyncio.to_thread(
                self.store.set_fields, self.session_id, fields, event=event, detail=detail
            )
            conversation_id = fields.get("conversation_id")
            if conversation_id:
                # The post-call webhook names only the conversation: let it find the session.
                await asyncio.to_thread(
                    self.store.index_conversation, conversation_id, self.session_id
                )
        except Exception as error:  # a failed write must not end a live call
            logger.warning("session write failed: %s", error, extra={"session_id": self.session_id})

    async def _record_end(self) -> None:
        reason = self.end_reason or EndReason.BRIDGE_ERROR
        pending = [task for task in self._background if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=5)
        pacer = self._pacer
        if pacer is not None:
            self.call.underruns = pacer.underruns
        bridge: dict[str, Any] = {
            "end_reason": reason.value,
            "end_detail": self.end_detail,
            "phone_close": {"code": self.phone.close_code, "reason": self.phone.close_reason},
            "agent_close": self.agent_close,
            "formats": self.formats.describe() if self.formats else {},
            "metrics": self.call.summary(),
            "clears": self._clears,
            "malformed_frames": self._malformed,
            "early_frames_dropped": self._early_dropped,
            "hangup": self._hangup_result,
            "end_call_requested": self.end_call_requested,
        }
        fields: dict[str, Any] = {"bridge": bridge, "transcript": list(self._transcript)}
        if self.conversation_id:
            fields["conversation_id"] = self.conversation_id
        await self._store(
            fields,
            "bridge ended",
            {
                "reason": reason.value,
                "detail": self.end_detail,
                "conversation_id": self.conversation_id,
            },
        )
        self.metrics.call_ended(self.call, reason.value)
        logger.info(
            "call ended: %s %s",
            reason.value,
            self.end_detail,
            extra={"session_id": self.session_id, "conversation_id": self.conversation_id},
        )

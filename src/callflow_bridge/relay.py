"""One live call: Infobip's media stream on one side, the ElevenLabs agent on the other.

The relay runs two loops and owns only what ties them together. The *phone loop* reads Infobip's
frames: each caller frame goes to the agent at once (or, until the agent is ready, into the early
buffer, :mod:`callflow_bridge.early_audio`), and each 20 ms of caller audio releases one 20 ms frame
of the agent's queued audio (:mod:`callflow_bridge.phone_leg`). The *agent loop* reads the agent's
messages (:mod:`callflow_bridge.agent_leg`): audio is converted and queued, interruptions flush the
queue and Infobip's buffer, pings are answered at once, transcripts are kept
(:mod:`callflow_bridge.transcript`). Each loop's hot message (caller audio, agent audio) is handled
in the socket's frame callback whenever the loop is waiting for it (the same code, without a task
step per frame; see :mod:`callflow_bridge.sockets`); the phone loop waits for a socket over its
high-water mark after each message, as the awaited sends did before. The sockets are
:class:`callflow_bridge.sockets.MessageSocket` (picows), so nothing here depends on the WebSocket
library.

Ends (:mod:`callflow_bridge.call_end`), and what each does to the other leg:

- the agent ends (close 1000, e.g. after ``end_call``) or fails (1002/1008/1011, refused at
  connect): the queued audio is played out (bounded), then the call is hung up through the Infobip
  API and the media socket closed; the caller hears the last sentence in full;
- Infobip closes (the person hung up): the agent conversation is closed at once;
- a format that cannot be served, or the server's shutdown deadline: both legs are closed.

Every end records the reason, close codes, formats, metrics and the bounded transcript on the
session (:mod:`callflow_bridge.recorder`); the conversation id is stored the moment the agent
announces it.

Metrics, per call (see :mod:`callflow_bridge.metrics`): ``ConnectTimeMs`` runs from the accepted
``websocket:connected`` frame to ``conversation_initiation_metadata``. ``TurnLatencyMs`` is
measured as :mod:`callflow_bridge.turns` describes. ``FramesRelayed`` counts caller frames sent to
the agent plus agent frames sent to the caller (silence excluded); ``Conversions`` counts audio
chunks that went through a resampler or μ-law codec; ``Underruns`` counts silence frames sent
while the agent was mid-utterance (see :mod:`callflow_bridge.pacing`).
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import functools
import json
import logging
import time
from typing import Any

from callflow.config import Settings
from callflow.models import (
    ANSWERED_BY_MACHINE,
    DynamicValue,
    Session,
    SessionStatus,
    hash_token,
    token_matches,
)

from . import protocol
from .agent_leg import AgentLeg, AgentUnavailable, usable_signed_url
from .audio import UnsupportedFormat
from .call_end import CallEnd, EndReason
from .deps import BridgeDeps, SessionAccess
from .early_audio import EarlyAudio
from .formats import CallFormats, phone_rate
from .metrics import BridgeMetrics, CallMetrics
from .phone_leg import PhoneLeg
from .recorder import SessionRecorder
from .recording import CallRecording
from .recording import store as store_recording
from .sockets import PhoneSocket, SocketClosed
from .transcript import Transcript
from .turns import SPEECH_DBFS, TurnTimer, is_speech

__all__ = ["SPEECH_DBFS", "CallRelay", "EndReason", "is_speech"]

logger = logging.getLogger("callflow_bridge.relay")

#: Session phases in which a media stream may join. Provider events may arrive in any order, so
#: the WebSocket can come before the session has seen CALL_ESTABLISHED.
LIVE_STATUSES = frozenset({SessionStatus.DIALING, SessionStatus.RINGING, SessionStatus.IN_CALL})
FIRST_FRAME_TIMEOUT_S = 5.0
#: Beyond the queued audio, how long a drain may wait for Infobip's clock before hanging up.
DRAIN_GRACE_S = 1.0
#: After the queue is played out, how long to keep sending (silence) before hanging up. With
#: one frame out per frame in, any burst in the caller's stream leaves a standing backlog in the
#: far end's playback buffer (frames received, not yet played); hanging up at once cuts it off,
#: which is the "last sentence cut short" failure integrators report.
DRAIN_TAIL_S = 0.4
_DTMF_DIGITS = frozenset("0123456789*#ABCD")


REFUSED = "unknown session or bad token"
"""The one answer to a stream without a usable token (an unknown session, a wrong token, one
already used): the answer does not tell them apart (the log does)."""


class Rejected(Exception):
    """The media stream was refused before anything was relayed (close 1008 with the message);
    ``why`` is logged, never sent."""

    def __init__(self, message: str, *, why: str = "") -> None:
        super().__init__(message)
        self.why = why


class CallRelay:
    """Relays one call; :meth:`run` returns when both legs are closed and the end is recorded."""

    def __init__(
        self,
        phone: PhoneSocket,
        settings: Settings,
        store: SessionAccess,
        deps: BridgeDeps,
        metrics: BridgeMetrics,
        *,
        prefix: str = "",
    ) -> None:
        self.socket = phone
        self.prefix = prefix
        """The secret path segment (``/secret``) the stream's path starts with."""
        self.settings = settings
        self.store = store
        self.deps = deps
        self.metrics = metrics
        self.call = CallMetrics()
        self.end = CallEnd()
        self.turns = TurnTimer()
        self.agent = AgentLeg(settings, deps)
        self.transcript = Transcript(settings.bridge_transcript_limit)
        self.recorder = SessionRecorder(store)
        self.session_id = ""
        self.admitted = False
        self.variables: dict[str, DynamicValue] = {}
        self.agent_id = ""
        """The session's flow's agent; empty opens the configured one."""
        self.agent_overrides: dict[str, Any] | None = None
        """The session's flow's overrides; ``None`` (a session from before flows) sends the
        configured ones."""
        self.prefetched_url = ""
        """The session's signed URL when still fresh (a secret: never logged)."""
        self.phone: PhoneLeg | None = None
        self.formats: CallFormats | None = None
        self.early: EarlyAudio | None = None
        self.recording: CallRecording | None = None
        """Both sides of the call, when the session asks for a recording."""
        self._record_seconds = 0
        self._content_type = ""
        self._connected_at = time.monotonic()
        self._draining = False

    # --- public ---------------------------------------------------------------------------

    async def admit(self) -> bool:
        """Read the connected frame and claim the session's media stream; closes 1008 and
        returns False when the stream is refused. The claim is one conditional write (token,
        live status, token not used before), so of two streams presenting the same token one
        is admitted. Nothing has contacted the agent at that point."""
        try:
            first = await asyncio.wait_for(self.socket.recv(), FIRST_FRAME_TIMEOUT_S)
            upgrade = self._upgrade()
            hello = protocol.parse_connected(first, upgrade)
            self.session_id = self.recorder.session_id = hello.session_id
            session = await asyncio.to_thread(
                functools.partial(
                    self.store.claim_media_stream,
                    hello.session_id,
                    hash_token(hello.token),
                    LIVE_STATUSES,
                    found_in=hello.found_in,
                    first_frame=protocol.describe(protocol.parse_phone_text(str(first)), upgrade),
                )
            )
            if session is None:
                raise await self._refusal(hello)
        except protocol.Unmatched as error:
            await self._unmatched(error)
            return False
        except (TimeoutError, protocol.BadFrame, Rejected) as error:
            message = (
                "no websocket:connected frame" if isinstance(error, TimeoutError) else str(error)
            )
            why = f" ({error.why})" if isinstance(error, Rejected) and error.why else ""
            logger.warning(
                "media stream refused: %s%s", message, why, extra={"session_id": self.session_id}
            )
            with contextlib.suppress(SocketClosed):
                await self.socket.close(1008, message[:120])
            return False
        except SocketClosed:
            return False
        except Exception as error:  # the session store failed: a server error, not a refusal
            logger.error(
                "session lookup failed: %s",
                type(error).__name__,
                extra={"session_id": self.session_id},
            )
            with contextlib.suppress(SocketClosed):
                await self.socket.close(1011, "session store unavailable")
            return False
        self.variables = agent_variables(session)
        self.agent_id = session.agent_id
        self.agent_overrides = session.agent_overrides if session.flow else None
        if session.record_audio and self.deps.store_recording is not None:
            self._record_seconds = session.recording_max_seconds
        self.prefetched_url = usable_signed_url(
            session.agent_signed_url,
            session.agent_signed_url_at,
            self.settings.bridge_signed_url_max_age_seconds,
            time.time(),
            session.agent_id,
        )
        self.admitted = True
        self._connected_at = time.monotonic()
        self._content_type = hello.content_type
        return True

    def _upgrade(self) -> protocol.Upgrade:
        socket = self.socket
        return protocol.Upgrade.from_request(socket.path, self.prefix, socket.headers)

    async def _unmatched(self, error: protocol.Unmatched) -> None:
        """A stream that named no session with a token anywhere: log and keep what arrived
        (its shape, values redacted), then close 1008 with the reason. The shape goes on the
        session too when a usable session id was among what arrived, and otherwise to the
        table's one record of the latest such stream (the doctor reads it)."""
        message = str(error)
        logger.warning(
            "media stream refused: %s; it carried %s",
            message,
            json.dumps(error.shape, sort_keys=True),
            extra={"media_shape": error.shape},
        )
        try:
            await asyncio.to_thread(self.store.note_unmatched_media, error.shape)
            if error.session_hint:
                await asyncio.to_thread(
                    self.store.set_fields,
                    error.session_hint,
                    {"media_unmatched_frame": error.shape},
                )
        except Exception as failure:  # the close below matters more than the record
            logger.warning("could not keep the unmatched stream: %s", type(failure).__name__)
        with contextlib.suppress(SocketClosed):
            await self.socket.close(1008, message[:120])

    async def _refusal(self, hello: protocol.Connected) -> Rejected:
        """Why the claim was refused, read only then (admission itself is one write).

        One answer for "no such session", "wrong token" and "token already used": no oracle
        for session ids. Only the log tells a reused token apart."""
        session = await asyncio.to_thread(self.store.get, hello.session_id)
        if session is None or not token_matches(hello.token, session.bridge_token_hash):
            return Rejected(REFUSED)
        if session.status not in LIVE_STATUSES:
            return Rejected(f"session is {session.status.value}, not in a call")
        if token_matches(hello.token, session.media_claimed_hash):
            return Rejected(REFUSED, why="a stream was admitted with this token before")
        return Rejected(REFUSED, why="the session changed during admission")

    async def run(self) -> None:
        """Relay until the call ends, then record the end."""
        try:
            await self._relay()
        except Exception as error:  # a bug must still end the call cleanly and be recorded
            logger.exception("relay failed", extra={"session_id": self.session_id})
            self.end.finish(EndReason.BRIDGE_ERROR, type(error).__name__)
            await self._teardown()
        await self._record_end()

    def shutdown(self) -> None:
        """The server's drain deadline passed: end now, closing the media socket with 1001."""
        self.end.finish(EndReason.SHUTDOWN, "bridge shutting down")

    # --- the relay ------------------------------------------------------------------------

    async def _relay(self) -> None:
        try:
            rate = phone_rate(self._content_type, self.settings.infobip_sample_rate)
            self.phone = PhoneLeg(self.socket, rate, self.call, self.turns)
        except UnsupportedFormat as error:
            self.end.finish(EndReason.UNSUPPORTED_FORMAT, str(error))
            await self._teardown()
            return
        self.early = EarlyAudio(rate * 2 * self.settings.bridge_max_early_audio_ms // 1000)
        if self._record_seconds > 0:
            self.recording = self.phone.recording = CallRecording(rate, self._record_seconds)
        phone_task = asyncio.create_task(self._phone_loop(), name=f"phone-{self.session_id}")
        agent_task = asyncio.create_task(self._agent_loop(), name=f"agent-{self.session_id}")
        phone_task.add_done_callback(self._leg_failed)
        agent_task.add_done_callback(self._leg_failed)
        try:
            await self.end.finished.wait()
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
        self.end.finish(EndReason.BRIDGE_ERROR, f"{task.get_name().split('-')[0]} loop: {error!r}")

    async def _teardown(
        self,
        phone_task: asyncio.Task[None] | None = None,
        agent_task: asyncio.Task[None] | None = None,
    ) -> None:
        self.end.cancel_timer()
        if agent_task is not None and not agent_task.done():
            agent_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent_task
        await self.agent.shut()
        if self.end.hangs_up:
            await self._hang_up()
        if self.end.final_reason is EndReason.SHUTDOWN:
            await self.socket.close(1001, "bridge shutting down")
        else:
            await self.socket.close(1000, self.end.final_reason.value)
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
                self.end.hangup_result = "no call id"
                return
            done = await self.deps.hangup(call_id)
            self.end.hangup_result = "hung up" if done else "already over"
        except Exception as error:  # the end is still recorded; the call ends with the socket
            logger.warning("hangup failed: %s", error, extra={"session_id": self.session_id})
            self.end.hangup_result = f"failed: {type(error).__name__}"

    # --- phone leg ------------------------------------------------------------------------

    async def _phone_loop(self) -> None:
        socket = self.socket
        # Caller audio that arrives while this loop waits is relayed in the frame's own callback
        # (the same code, see callflow_bridge.sockets); the rest comes through the loop.
        socket.dispatch = self._caller_now
        try:
            async for message in socket:
                if isinstance(message, bytes):
                    self._caller_audio(message)
                else:
                    await self._phone_text(message)
                await self._drained()
        except SocketClosed:
            pass
        finally:
            socket.dispatch = None
        if self.agent.ended is not None:
            self.end.finish(*self.agent.ended)
        elif socket.close_code in (1000, 1001, None):
            self.end.finish(EndReason.CALLER_HUNG_UP, f"media socket closed {socket.close_code}")
        else:
            self.end.finish(
                EndReason.PHONE_LEG_ERROR,
                f"media socket closed {socket.close_code} {socket.close_reason}".strip(),
            )

    def _caller_now(self, message: str | bytes) -> bool:
        """Relay caller audio at once, unless a socket is over its high-water mark (then the
        loop relays it and waits) or it is a text frame (the loop handles those)."""
        if not isinstance(message, bytes) or not (self.socket.writable and self.agent.writable):
            return False
        self._caller_audio(message)
        return True

    async def _drained(self) -> None:
        """Backpressure: wait while either socket's write buffer is over its high-water mark."""
        if not self.socket.writable:
            await self.socket.drained()
        if not self.agent.writable:
            await self.agent.drained()

    def _caller_audio(self, frame: bytes) -> None:
        """A caller frame: to the agent (or the early buffer), and one paced frame back."""
        phone = self.phone
        assert phone is not None and self.early is not None
        if not phone.valid_audio(frame):
            return
        if self.recording is not None:
            self.recording.caller(frame)
        now = time.monotonic()
        self.turns.caller_frame(frame, now)
        agent = self.agent
        if agent.ready:
            formats = self.formats
            assert formats is not None
            to_agent = formats.to_agent
            data = frame if to_agent.identity else to_agent.convert(frame)
            if not to_agent.identity:
                self.call.conversions += 1
            if data:
                agent.send_audio_now(protocol.user_audio_chunk(data))
            self.call.frames_relayed += 1
        elif agent.ended is None:
            self.early.keep(frame)
        phone.release(len(frame), now)
        if self._draining and phone.pacer.queued_bytes == 0 and agent.ended is not None:
            self._draining = False
            # Everything is sent, but the far end plays from a jitter buffer that one-in-one-out
            # pacing never drains: keep the stream going (silence) a moment before hanging up.
            self.end.finish_after(DRAIN_TAIL_S, *agent.ended)

    async def _phone_text(self, message: str) -> None:
        assert self.phone is not None and self.early is not None
        data = protocol.parse_phone_text(message)
        if data is None:
            self.phone.malformed += 1
            return
        event = data.get("event")
        self.phone.frames.text(event if isinstance(event, str) else "")
        if event == protocol.DTMF_EVENT:
            digit = data.get("digit")
            if not isinstance(digit, str) or digit not in _DTMF_DIGITS:
                self.phone.malformed += 1
                return
            text = protocol.dtmf_message(digit, self.settings.bridge_dtmf_mode)
            if text is None:
                return
            if self.agent.ready:
                await self.agent.send(text)
            else:
                self.early.keep_text(text)
        # Other events (there are none documented) are ignored.

    # --- agent leg ------------------------------------------------------------------------

    async def _agent_loop(self) -> None:
        agent = self.agent
        try:
            await agent.open(
                self.variables, self.prefetched_url, self.agent_id, self.agent_overrides
            )
        except AgentUnavailable as error:
            self._agent_gone(EndReason.AGENT_UNAVAILABLE, str(error))
            return
        # Audio that arrives while the loop waits is queued for the caller in the frame's own
        # callback; every other message comes through the loop.
        agent.on_audio(self._audio_message)
        try:
            async for message in agent.messages():
                await self._agent_message(message)
        finally:
            agent.on_audio(None)
        self._agent_gone(*agent.why_closed())

    def _agent_gone(self, reason: EndReason, detail: str) -> None:
        """The agent leg is over: play out what is queued, then end the call."""
        self.agent.ready = False
        self.agent.ended = (reason, detail)
        phone = self.phone
        if phone is not None and self.formats is not None and self._resampling_out():
            # The resampler holds back its last few milliseconds until told the stream ended.
            phone.pacer.push(self.formats.to_phone.convert(b"", last=True), time.monotonic())
        if phone is None or phone.pacer.queued_bytes == 0:
            self.end.finish(reason, detail)
            return
        self._draining = True
        # Infobip's frames are the clock; should they stop, do not wait forever.
        self.end.finish_after(phone.pacer.queued_seconds + DRAIN_GRACE_S, reason, detail)

    def _resampling_out(self) -> bool:
        formats = self.formats
        return formats is not None and formats.agent_output.rate != formats.phone.rate

    async def _agent_message(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        agent = self.agent
        if kind == "audio":
            self._audio_message(data)
        elif kind == "ping":
            event_id = protocol.event_body(data, "ping_event").get("event_id")
            if isinstance(event_id, int):
                await agent.send(protocol.pong(event_id))
        elif kind == "interruption":
            agent.interrupted(protocol.event_body(data, "interruption_event").get("event_id"))
            if self.phone is not None:
                await self.phone.clear()
        elif kind == "conversation_initiation_metadata":
            await self._metadata(
                protocol.event_body(data, "conversation_initiation_metadata_event")
            )
        elif kind == "user_transcript":
            body = protocol.event_body(data, "user_transcription_event")
            self.transcript.remember("user", body.get("user_transcript"))
        elif kind == "agent_response":
            body = protocol.event_body(data, "agent_response_event")
            self.transcript.remember("agent", body.get("agent_response"))
        elif kind == "agent_response_correction":
            body = protocol.event_body(data, "agent_response_correction_event")
            self.transcript.correct(
                body.get("original_agent_response"), body.get("corrected_agent_response")
            )
        elif kind == "client_tool_call":
            agent.tool_call(protocol.event_body(data, "client_tool_call"))
        elif kind == "agent_tool_response":
            body = protocol.event_body(data, "agent_tool_response")
            if body.get("tool_name") == "end_call":
                agent.end_call_requested = True
        elif kind == "error":
            agent.error = protocol.event_body(data, "error_event")
        # Every other type (vad_score, tentative transcripts, ...) is ignored by design.

    def _audio_message(self, data: dict[str, Any]) -> None:
        self._agent_audio(protocol.event_body(data, "audio_event"))

    def _agent_audio(self, event: dict[str, Any]) -> None:
        if self.agent.stale(event.get("event_id")):
            return  # audio of the turn the caller just interrupted
        encoded = event.get("audio_base_64")
        formats, phone = self.formats, self.phone
        if not isinstance(encoded, str) or formats is None or phone is None:
            return
        try:
            audio = binascii.a2b_base64(encoded)
        except (binascii.Error, ValueError):
            return
        if not formats.to_phone.identity:
            self.call.conversions += 1
        phone.queue(formats.to_phone.convert(audio), time.monotonic())

    async def _metadata(self, event: dict[str, Any]) -> None:
        assert self.phone is not None
        self.call.connect_time_ms = (time.monotonic() - self._connected_at) * 1000
        cid = event.get("conversation_id")
        conversation_id = self.agent.conversation_id = cid if isinstance(cid, str) else ""
        try:
            self.formats = CallFormats.negotiate(
                self.phone.format.rate,
                str(event.get("user_input_audio_format", "")),
                str(event.get("agent_output_audio_format", "")),
            )
        except UnsupportedFormat as error:
            self.recorder.later(
                {"conversation_id": conversation_id} if conversation_id else {},
                "agent connected",
                {"conversation_id": conversation_id, "error": str(error)},
            )
            self.end.finish(EndReason.UNSUPPORTED_FORMAT, str(error))
            return
        fields: dict[str, Any] = {"bridge": {"formats": self.formats.describe()}}
        if conversation_id:
            fields["conversation_id"] = conversation_id
        self.recorder.later(
            fields,
            "agent connected",
            {
                "conversation_id": conversation_id,
                "connect_ms": round(self.call.connect_time_ms, 1),
                "signed_url": self.agent.signed_url_source,
                **self.formats.describe(),
            },
        )
        await self._flush_early()

    async def _flush_early(self) -> None:
        """Send what the caller said while the agent was connecting, then go live."""
        formats, early, agent = self.formats, self.early, self.agent
        assert formats is not None and early is not None
        for frame in early.frames():
            data = formats.to_agent.convert(frame)
            if not formats.to_agent.identity:
                self.call.conversions += 1
            if data:
                await agent.send_audio(protocol.user_audio_chunk(data))
            self.call.frames_relayed += 1
        for text in early.texts():
            await agent.send(text)
        agent.ready = self.end.reason is None and agent.ended is None

    # --- recording ------------------------------------------------------------------------

    async def _store_recording(self) -> None:
        """After the end is recorded (the writeback waits, bounded, for this): the recording
        goes to S3 and what happened onto the session; a failure costs only the file."""
        recording, keep = self.recording, self.deps.store_recording
        if recording is None or keep is None:
            return
        self.recording = None
        if self.phone is not None:
            self.phone.recording = None
        result = await store_recording(recording, keep, self.session_id)
        if result["status"] == "failed":
            logger.warning(
                "recording not stored: %s",
                result["error"],
                extra={"session_id": self.session_id},
            )
        await self.recorder.write(
            {"recording": result}, f"recording {result['status']}", dict(result)
        )

    async def _record_end(self) -> None:
        reason = self.end.final_reason
        await self.recorder.settle()
        phone, agent = self.phone, self.agent
        if phone is not None:
            self.call.underruns = phone.pacer.underruns
        bridge: dict[str, Any] = {
            "end_reason": reason.value,
            "end_detail": self.end.detail,
            "phone_close": {"code": self.socket.close_code, "reason": self.socket.close_reason},
            "agent_close": agent.close,
            "formats": self.formats.describe() if self.formats else {},
            "metrics": self.call.summary(),
            "clears": phone.clears if phone else 0,
            "malformed_frames": phone.malformed if phone else 0,
            "phone_frames": phone.frames.summary() if phone else {},
            "early_frames_dropped": self.early.dropped if self.early else 0,
            "hangup": self.end.hangup_result,
            "end_call_requested": agent.end_call_requested,
        }
        fields: dict[str, Any] = {"bridge": bridge, "transcript": self.transcript.entries()}
        if agent.conversation_id:
            fields["conversation_id"] = agent.conversation_id
        await self.recorder.write(
            fields,
            "bridge ended",
            {
                "reason": reason.value,
                "detail": self.end.detail,
                "conversation_id": agent.conversation_id,
            },
        )
        await self._store_recording()
        self.metrics.call_ended(self.call, reason.value)
        logger.info(
            "call ended: %s %s",
            reason.value,
            self.end.detail,
            extra={"session_id": self.session_id, "conversation_id": agent.conversation_id},
        )


def agent_variables(session: Session) -> dict[str, DynamicValue]:
    """The session's dynamic variables, with :data:`ANSWERED_BY_MACHINE` when detection gave a
    verdict (the call only reaches the bridge on a machine when the flow says leave_message)."""
    if not session.machine_detection:
        return session.variables
    return {**session.variables, ANSWERED_BY_MACHINE: session.machine_detection == "MACHINE"}

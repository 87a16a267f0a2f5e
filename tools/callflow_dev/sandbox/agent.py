"""The scripted ElevenLabs agent: the server side of the agent WebSocket, turn by turn.

It is a stand-in that *listens*: it decides when the caller's turn is over from the energy of the
audio it actually receives, as the real service's turn taking does, and answers with recorded
speech. So a bridge that drops, delays, mis-converts or mis-paces audio makes this agent answer
late, never, or over the caller, which is exactly what the bridge's tests need to see.

What it holds the client to, like ElevenLabs (its AsyncAPI contract, in
``callflow_dev/schemas/elevenlabs/agent.asyncapi.json``):

- every client frame is JSON text and valid against the contract (checked with
  :mod:`callflow_dev.sandbox.asyncapi`); the first one is ``conversation_initiation_client_data``;
  overrides not enabled on the agent, dynamic variables that are not string/number/boolean, and
  missing required variables are refused: an ``error`` event, then close 1008;
- pings (``ping_event {event_id, ping_ms}``) must be answered with ``pong``; a missing pong is a
  violation on the record;
- 60 s (``input_timeout_s``) without ``user_audio_chunk`` closes the conversation with 1002.

What it does:

- ``conversation_initiation_metadata`` with the agent's fixed audio formats, then the greeting;
- after each caller turn (speech, then ``end_of_turn_silence_ms`` of quiet) a ``user_transcript``
  and the next line of the script; the last line calls the ``end_call`` system tool
  (``agent_tool_response``), sends the rest of its audio, and closes 1000;
- audio goes out as ``audio`` events in ``chunk_ms`` chunks, ``lead_ms`` ahead of real time (the
  real service is faster than real time too); every chunk of one agent turn carries that turn's
  ``event_id``, and ids only grow, so "drop audio whose event_id <= the interruption's" works;
- when the caller talks over an interruptible turn and ``interruption`` is among the client
  events: an ``interruption`` event with that turn's id, the rest of the turn is dropped, and the
  agent answers with its "repeat" line once the caller is done;
- misbehaviour on demand for tests: ``refuse_with`` (1008/1011 right after initiation),
  ``drop_after_s`` (1011 mid-call).

Everything that happened ends up in a :class:`ConversationRecord`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from callflow.providers.elevenlabs.client import override_paths
from callflow_bridge.audio import FRAME_MS, AudioFormat, Converter, rms_dbfs
from callflow_dev.sandbox.asyncapi import contract, validate_client_message
from callflow_dev.sandbox.clips import CLIP_RATE, load_clip, truncate_pcm

logger = logging.getLogger(__name__)

PCM_16K = AudioFormat("pcm", CLIP_RATE)
FRAME_BYTES_16K = PCM_16K.frame_bytes()

SPEC_DEFAULT_CLIENT_EVENTS = (
    "audio",
    "interruption",
    "agent_response",
    "user_transcript",
    "tentative_user_transcript",
    "conversation_initiation_metadata",
    "ping",
)
"""What the contract says an agent sends when its config lists no client events."""

DEFAULT_CLIENT_EVENTS = (*SPEC_DEFAULT_CLIENT_EVENTS, "agent_tool_response", "client_tool_call")
"""The sandbox agent also reports its tool calls (``end_call``), as phone agents usually do."""

ALWAYS_SENT = frozenset({"error", "conversation_initiation_metadata"})


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentLine:
    """A line the agent says: text (``{{variable}}`` placeholders, like ElevenLabs) and a clip."""

    text: str
    clip: str


@dataclass(frozen=True)
class DialogueStep:
    """One exchange: what the caller is taken to have said, and the agent's answer to it."""

    caller_text: str
    reply: AgentLine
    collects: Mapping[str, object] = field(default_factory=dict)
    ends_call: bool = False


@dataclass(frozen=True)
class ClientTool:
    """A client tool the agent calls once after its greeting; the client must answer it."""

    tool_name: str
    parameters: Mapping[str, object] = field(default_factory=dict)
    timeout_s: float = 5.0


def next_tuesday(today: date | None = None) -> date:
    """The first Tuesday strictly after ``today``: the visit date the demo caller agrees to."""
    start = today or datetime.now(UTC).date()
    days = (1 - start.weekday()) % 7 or 7
    return start + timedelta(days=days)


def demo_steps(today: date | None = None) -> tuple[DialogueStep, ...]:
    """The solar-lead qualification call of ``make demo``."""
    return (
        DialogueStep(
            caller_text="Yes, speaking. Sure, I have a minute.",
            reply=AgentLine(
                "Great. To see what you could save, roughly how much is your monthly "
                "electricity bill?",
                "agent_ask_bill",
            ),
            collects={"interested": True},
        ),
        DialogueStep(
            caller_text="It's about a hundred and fifty dollars a month.",
            reply=AgentLine(
                "Thanks. Could one of our advisors visit you next Tuesday to take a look?",
                "agent_ask_visit",
            ),
            collects={"monthly_bill": 150},
        ),
        DialogueStep(
            caller_text="Tuesday works for me.",
            reply=AgentLine(
                "Perfect, you're booked for next Tuesday. Thanks {{first_name}}, have a great day!",
                "agent_closing",
            ),
            collects={"visit_date": next_tuesday(today).isoformat(), "lead_status": "Qualified"},
            ends_call=True,
        ),
    )


def optout_steps() -> tuple[DialogueStep, ...]:
    """A call in which the person asks not to be called again: the agent collects ``opt_out``
    and ends the call. (The stand-in has no recording of this answer and says its closing clip;
    the transcript carries the words.)"""
    return (
        DialogueStep(
            caller_text="Please don't call me again. Take me off your list.",
            reply=AgentLine(
                "Understood, {{first_name}}. We won't call you again. Sorry for the trouble, "
                "goodbye.",
                "agent_closing",
            ),
            collects={"opt_out": True, "interested": False},
            ends_call=True,
        ),
    )


def reminder_steps() -> tuple[DialogueStep, ...]:
    """A payment reminder: the person says they have paid; the agent collects ``paid`` and ends
    the call. (The stand-in says its recorded clips; the transcript carries these words.)"""
    return (
        DialogueStep(
            caller_text="Yes, speaking. I paid it yesterday.",
            reply=AgentLine(
                "Thank you, {{first_name}}, I have noted that your payment of {{amount_due}} "
                "is made. Goodbye!",
                "agent_closing",
            ),
            collects={"paid": True},
            ends_call=True,
        ),
    )


def callback_steps(today: date | None = None) -> tuple[DialogueStep, ...]:
    """A call in which the person asks to be called back tomorrow at ten (their local time): the
    agent collects ``callback_at`` as ISO 8601 without an offset and ends the call. (As in
    :func:`optout_steps`, the stand-in says its closing clip; the transcript carries the words.)"""
    tomorrow = (today or datetime.now(UTC).date()) + timedelta(days=1)
    return (
        DialogueStep(
            caller_text="I can't talk right now. Could you call me back tomorrow at ten?",
            reply=AgentLine(
                "Of course, {{first_name}}. I'll call you back tomorrow at ten. Goodbye.",
                "agent_closing",
            ),
            collects={"callback_at": f"{tomorrow.isoformat()}T10:00:00"},
            ends_call=True,
        ),
    )


@dataclass(frozen=True)
class AgentConfig:
    """The agent's settings (as configured on ElevenLabs) plus the sandbox's script and knobs."""

    agent_id: str = "agent_sandbox"
    user_input_audio_format: str = "pcm_16000"
    agent_output_audio_format: str = "pcm_16000"
    required_variables: tuple[str, ...] = ("first_name",)
    allowed_overrides: frozenset[str] = frozenset()
    """Dotted override paths enabled on the agent (``agent.first_message``, ``tts.voice_id``);
    a path also allows everything under it."""
    client_events: tuple[str, ...] = DEFAULT_CLIENT_EVENTS
    greeting: AgentLine = AgentLine(
        "Hi {{first_name}}, this is Sam from Acme Solar. You asked about solar panels for your "
        "home. Do you have a minute?",
        "agent_greeting",
    )
    steps: tuple[DialogueStep, ...] = field(default_factory=demo_steps)
    repeat: AgentLine = AgentLine("Sorry, go ahead. Let me ask that again.", "agent_repeat")
    overlap_text: str = "Hello?"
    """Transcript of caller speech that neither interrupts nor answers (said over the greeting)."""
    interruption_text: str = "Sorry, what was that again?"
    greeting_interruptible: bool = False
    """Callers say "Hello?" as they answer; it should not cut the greeting short."""
    client_tool: ClientTool | None = None
    # turn taking
    speech_threshold_dbfs: float = -40.0
    min_speech_ms: int = 60
    end_of_turn_silence_ms: int = 600
    response_delay_ms: int = 250
    """Time to "think" before answering (the LLM), part of the turn latency."""
    # audio out
    chunk_ms: int = 200
    lead_ms: int = 400
    clip_max_ms: int | None = None
    """Say only the first ``clip_max_ms`` of each clip (time-scaled tests)."""
    # keep-alive and limits
    ping_interval_s: float = 2.0
    pong_timeout_s: float = 2.0
    init_timeout_s: float = 10.0
    input_timeout_s: float = 60.0
    max_duration_s: float = 600.0
    # misbehaviour on demand
    refuse_with: int | None = None
    drop_after_s: float | None = None

    def __post_init__(self) -> None:
        AudioFormat.parse(self.user_input_audio_format)
        AudioFormat.parse(self.agent_output_audio_format)
        if self.refuse_with not in (None, 1008, 1011):
            raise ValueError("refuse_with must be 1008 or 1011")
        if self.chunk_ms < FRAME_MS or self.end_of_turn_silence_ms < FRAME_MS:
            raise ValueError("chunk_ms and end_of_turn_silence_ms must be at least one frame")
        load_clip(self.greeting.clip)
        load_clip(self.repeat.clip)
        for step in self.steps:
            load_clip(step.reply.clip)


# --- the record ---------------------------------------------------------------------------------


@dataclass
class TranscriptEntry:
    """One line of the conversation's transcript, as the REST stand-in reports it."""

    role: str
    """``agent`` or ``user``, as in ElevenLabs' transcript."""
    message: str
    time_in_call_secs: float


@dataclass
class SentTurn:
    """One agent turn as sent: its audio in the output format, and whether it was cut short."""

    name: str
    event_id: int
    text: str
    audio: bytes = b""
    started_s: float = 0.0
    interrupted: bool = False


@dataclass
class CallerTurn:
    """One caller turn as the agent heard it, in seconds since the conversation started."""

    started_s: float
    ended_s: float
    transcript: str
    outcome: str
    """``answered``, ``interrupted`` (talked over the agent), ``overlap`` or ``unexpected``."""
    reply_audio_s: float | None = None

    @property
    def latency_s(self) -> float | None:
        """End of the caller's turn to the first audio of the agent's answer."""
        return None if self.reply_audio_s is None else self.reply_audio_s - self.ended_s


@dataclass
class ConversationRecord:
    """What happened in one conversation: what the REST stand-in reports as the conversation
    (transcript, collected data, termination) and what tests compare (audio, violations)."""

    conversation_id: str
    agent_id: str
    dynamic_variables: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    transcript: list[TranscriptEntry] = field(default_factory=list)
    collected: dict[str, object] = field(default_factory=dict)
    termination_reason: str = ""
    close_code: int | None = None
    close_reason: str = ""
    closed_by: str = ""
    """``agent`` or ``client``."""
    received_audio: bytes = b""
    """Everything the caller sent, as 16 kHz s16le PCM (whatever the input format)."""
    sent_turns: list[SentTurn] = field(default_factory=list)
    caller_turns: list[CallerTurn] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    pings_sent: int = 0
    pong_delays_ms: list[float] = field(default_factory=list)
    interruptions: int = 0
    dtmf_updates: list[str] = field(default_factory=list)
    contextual_updates: list[str] = field(default_factory=list)
    user_messages: list[str] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None

    @property
    def turn_latencies_s(self) -> list[float]:
        """The latency of each caller turn that got an answer with audio, in order."""
        return [t.latency_s for t in self.caller_turns if t.latency_s is not None]

    @property
    def call_successful(self) -> bool:
        """Whether the agent itself ended the conversation with a normal close (1000)."""
        return self.closed_by == "agent" and self.close_code == 1000


# --- the socket -------------------------------------------------------------------------------


class AgentSocketClosed(Exception):
    """Raised by an :class:`AgentSocket` adapter's ``recv`` when the client has gone."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"socket closed ({code}) {reason}".strip())
        self.code = code
        self.reason = reason


class AgentSocket(Protocol):
    """The three calls the agent makes; a ``websockets`` ServerConnection fits as it is.

    ``recv`` raises ``websockets.exceptions.ConnectionClosed`` or :class:`AgentSocketClosed`
    when the client has closed the socket.
    """

    async def recv(self) -> str | bytes:
        """The client's next frame; a binary one is refused by the agent (frames are JSON text)."""

    async def send(self, message: str) -> None:
        """Send one text frame (a JSON event) to the client."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket with a WebSocket close code and reason."""


@dataclass(frozen=True)
class _End:
    code: int
    reason: str
    termination_reason: str
    error_type: str | None = None
    """Send an ``error`` event of this type before closing."""


class _Refused(Exception):
    def __init__(self, end: _End) -> None:
        super().__init__(end.reason)
        self.end = end


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def render(text: str, variables: Mapping[str, object]) -> str:
    """Fill ``{{name}}`` placeholders from the dynamic variables (unknown ones stay as they are)."""

    def fill(match: re.Match[str]) -> str:
        value = variables.get(match.group(1))
        return match.group(0) if value is None else str(value)

    return _PLACEHOLDER.sub(fill, text)


# --- the agent ----------------------------------------------------------------------------------


class ScriptedAgent:
    """Serves one conversation on one socket: ``record = await ScriptedAgent(config).run(ws)``."""

    def __init__(self, config: AgentConfig, *, conversation_id: str | None = None) -> None:
        self.config = config
        self.input_format = AudioFormat.parse(config.user_input_audio_format)
        self.output_format = AudioFormat.parse(config.agent_output_audio_format)
        self.record = ConversationRecord(
            conversation_id=conversation_id or f"conv_{uuid.uuid4().hex}",
            agent_id=config.agent_id,
        )
        self._client_events = set(config.client_events)
        self._t0 = 0.0
        self._event_id = 0
        self._ws: AgentSocket | None = None
        self._end: asyncio.Future[_End] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # listening
        self._to_16k = Converter(self.input_format, PCM_16K, quality="HQ")
        self._received = bytearray()
        self._pending = bytearray()
        self._last_audio_at = 0.0
        self._speech_run_ms = 0
        self._silence_ms = 0
        self._in_turn = False
        self._turn_started_s = 0.0
        self._turn_interrupting = False
        # speaking
        self._step = 0
        self._speaker: asyncio.Task[None] | None = None
        self._current: SentTurn | None = None
        self._current_interruptible = False
        self._current_ends_call = False
        self._playing_until = 0.0
        self._awaiting_reply: CallerTurn | None = None
        # keep-alive
        self._pings: dict[int, float] = {}
        self._last_ping_ms: int | None = None
        self._tool_call_id: str | None = None
        self._tool_deadline: float | None = None

    # --- time and sending -----------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _in_call_s(self) -> float:
        return self._now() - self._t0

    def _next_event_id(self) -> int:
        self._event_id += 1
        return self._event_id

    async def _emit(self, message: dict[str, Any]) -> None:
        """Send a server event, unless the agent's client events leave it out (as ElevenLabs
        does). Only event types the contract defines can be sent at all."""
        kind = message.get("type", "")
        if not contract().has_server_type(kind):
            raise ValueError(f"{kind!r} is not a server event of the agent contract")
        if kind not in ALWAYS_SENT and kind not in self._client_events:
            return
        assert self._ws is not None
        await self._ws.send(json.dumps(message))

    def _finish(self, end: _End) -> None:
        if self._end is not None and not self._end.done():
            self._end.set_result(end)

    def _violation(self, text: str) -> None:
        logger.info("agent %s: violation: %s", self.record.conversation_id, text)
        self.record.violations.append(text)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        """A helper task ends quietly when the client has gone; any other failure is the
        agent's own crash, which the real service reports as 1011."""
        try:
            await coro
        except (ConnectionClosed, AgentSocketClosed):
            pass
        except Exception:
            logger.exception("agent %s: internal error", self.record.conversation_id)
            self._finish(
                _End(1011, "Internal server error", "agent error", "unknown_websocket_crash")
            )

    # --- the conversation -----------------------------------------------------------------

    async def run(self, ws: AgentSocket) -> ConversationRecord:
        """Hold the conversation until one side closes; the record says what happened."""
        self._ws = ws
        self._t0 = self._now()
        self._end = asyncio.get_running_loop().create_future()
        record = self.record
        try:
            await self._initiate(ws)
            receiver = self._spawn(self._receive(ws))
            self._spawn(self._watch())
            if "ping" in self._client_events:
                self._spawn(self._ping())
            self._say(self.config.greeting, interruptible=self.config.greeting_interruptible)
            if self.config.client_tool is not None:
                self._spawn(self._call_tool(self.config.client_tool))
            end = await self._end
            if record.closed_by != "client":
                receiver.cancel()
                await self._close(ws, end)
        except _Refused as refused:
            await self._close(ws, refused.end)
        except (ConnectionClosed, AgentSocketClosed) as closed:
            self._record_client_close(closed)
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(BaseException):
                    await task
            self._check_pongs(final=True)
            record.received_audio = bytes(self._received)
            record.ended_at = datetime.now(UTC)
        return record

    def _record_client_close(self, closed: ConnectionClosed | AgentSocketClosed) -> None:
        if isinstance(closed, AgentSocketClosed):
            code, reason = closed.code, closed.reason
        else:
            frame = closed.rcvd
            code, reason = (frame.code, frame.reason) if frame is not None else (1006, "")
        self.record.close_code = code
        self.record.close_reason = reason
        self.record.closed_by = "client"
        self.record.termination_reason = f"Client disconnected: {code}"

    async def _close(self, ws: AgentSocket, end: _End) -> None:
        record = self.record
        record.close_code = end.code
        record.close_reason = end.reason
        record.closed_by = "agent"
        record.termination_reason = end.termination_reason
        with contextlib.suppress(ConnectionClosed, AgentSocketClosed):
            if end.error_type is not None:
                error = {
                    "type": "error",
                    "error_event": {
                        "code": end.code,
                        "message": end.reason,
                        "error_type": end.error_type,
                        "reason": end.reason,
                    },
                }
                await self._emit(error)
            # a close reason is at most 123 bytes of UTF-8
            await ws.close(end.code, end.reason.encode()[:120].decode(errors="ignore"))

    async def _initiate(self, ws: AgentSocket) -> None:
        config = self.config
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=config.init_timeout_s)
        except TimeoutError:
            raise _Refused(
                _End(
                    1008,
                    "No conversation initiation message",
                    "initiation timeout",
                    "missing_fields",
                )
            ) from None
        message = self._parse(raw)
        if message.get("type") != "conversation_initiation_client_data":
            self._violation(f"first message is {message.get('type') or 'untyped'}")
            raise _Refused(
                _End(
                    1008,
                    "First message must be conversation_initiation_client_data",
                    "invalid first message",
                    "invalid_message",
                )
            )
        variables = message.get("dynamic_variables") or {}
        self.record.dynamic_variables = dict(variables)
        self.record.user_id = message.get("user_id")
        overrides = message.get("conversation_config_override") or {}
        self.record.overrides = dict(overrides)
        self._check_initiation(variables, overrides)
        if config.refuse_with is not None:
            error_type = "value_error" if config.refuse_with == 1008 else "unknown_websocket_crash"
            raise _Refused(_End(config.refuse_with, "Conversation refused", "refused", error_type))
        client_events = overrides.get("conversation", {}).get("client_events")
        if client_events:
            self._client_events = set(client_events)
        metadata = {
            "type": "conversation_initiation_metadata",
            "conversation_initiation_metadata_event": {
                "conversation_id": self.record.conversation_id,
                "agent_output_audio_format": self.output_format.name,
                "user_input_audio_format": self.input_format.name,
            },
        }
        await self._emit(metadata)
        self._last_audio_at = self._now()

    def _check_initiation(self, variables: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
        for path in override_paths(overrides):
            allowed = any(
                path == enabled or path.startswith(f"{enabled}.")
                for enabled in self.config.allowed_overrides
            )
            if not allowed:
                self._violation(f"override {path} is not enabled on the agent")
                raise _Refused(
                    _End(
                        1008,
                        f"Override for field '{path}' is not allowed by config.",
                        "override not allowed",
                        "override_error",
                    )
                )
        bad = [k for k, v in variables.items() if not isinstance(v, str | int | float | bool)]
        if bad:
            self._violation(f"dynamic variables of unsupported type: {', '.join(sorted(bad))}")
            raise _Refused(
                _End(
                    1008,
                    "Dynamic variables must be string, number or boolean: "
                    + ", ".join(sorted(bad)),
                    "invalid dynamic variables",
                    "value_error",
                )
            )
        missing = [name for name in self.config.required_variables if name not in variables]
        if missing:
            self._violation(f"missing dynamic variables: {', '.join(missing)}")
            raise _Refused(
                _End(
                    1008,
                    f"Missing required dynamic variables: {', '.join(missing)}",
                    "missing dynamic variable",
                    "missing_dynamic_variable",
                )
            )

    def _parse(self, raw: str | bytes) -> dict[str, Any]:
        """A client frame as a contract-valid message, or a refusal (1008) naming the problem."""
        if isinstance(raw, bytes):
            self._violation("binary frame (every frame must be JSON text)")
            raise _Refused(
                _End(1008, "Invalid message: binary frame", "invalid message", "invalid_message")
            )
        try:
            message = json.loads(raw)
        except ValueError:
            self._violation(f"frame is not JSON: {raw[:60]!r}")
            raise _Refused(
                _End(1008, "Invalid message: not JSON", "invalid message", "invalid_message")
            ) from None
        errors = validate_client_message(message)
        if errors:
            self._violation(f"invalid {_kind(message)} message: {'; '.join(errors)}")
            raise _Refused(
                _End(1008, f"Invalid message: {errors[0]}", "invalid message", "invalid_message")
            )
        assert isinstance(message, dict)
        return message

    async def _receive(self, ws: AgentSocket) -> None:
        try:
            while True:
                message = self._parse(await ws.recv())
                await self._handle(message)
        except _Refused as refused:
            self._finish(refused.end)
        except (ConnectionClosed, AgentSocketClosed) as closed:
            self._record_client_close(closed)
            self._finish(_End(1000, "", self.record.termination_reason))

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind is None:
            await self._on_audio(message["user_audio_chunk"])
        elif kind == "pong":
            sent = self._pings.pop(message["event_id"], None)
            if sent is None:
                self._violation(f"pong for unknown ping {message['event_id']}")
            else:
                delay_ms = (self._now() - sent) * 1000
                self.record.pong_delays_ms.append(delay_ms)
                self._last_ping_ms = round(delay_ms)
        elif kind == "conversation_initiation_client_data":
            self._violation("conversation_initiation_client_data sent twice")
        elif kind == "contextual_update":
            self.record.contextual_updates.append(message["text"])
            if "dtmf" in message["text"].lower():
                self.record.dtmf_updates.append(message["text"])
        elif kind == "user_message":
            text = message.get("text") or ""
            self.record.user_messages.append(text)
            self._add_transcript("user", text)
        elif kind == "client_tool_result":
            self.record.tool_results.append(dict(message))
            if message["tool_call_id"] != self._tool_call_id:
                self._violation(f"client_tool_result for unknown call {message['tool_call_id']}")
            self._tool_deadline = None

    # --- listening --------------------------------------------------------------------------

    async def _on_audio(self, chunk_b64: str) -> None:
        self._last_audio_at = self._now()
        try:
            data = base64.b64decode(chunk_b64, validate=True)
        except binascii.Error:
            self._violation("user_audio_chunk is not base64")
            return
        if self.input_format.codec == "pcm" and len(data) % 2:
            self._violation(f"user_audio_chunk of {len(data)} bytes is not whole 16-bit samples")
            data = data[:-1]
        pcm = self._to_16k.convert(data)
        self._received.extend(pcm)
        self._pending.extend(pcm)
        while len(self._pending) >= FRAME_BYTES_16K:
            frame = bytes(self._pending[:FRAME_BYTES_16K])
            del self._pending[:FRAME_BYTES_16K]
            await self._on_frame(frame)

    async def _on_frame(self, frame: bytes) -> None:
        config = self.config
        if rms_dbfs(frame) > config.speech_threshold_dbfs:
            self._speech_run_ms += FRAME_MS
            self._silence_ms = 0
            if not self._in_turn and self._speech_run_ms >= config.min_speech_ms:
                self._in_turn = True
                self._turn_started_s = self._in_call_s() - self._speech_run_ms / 1000
                self._turn_interrupting = False
                if self._agent_playing() and self._current_interruptible:
                    await self._interrupt()
            return
        self._speech_run_ms = 0
        if not self._in_turn:
            return
        self._silence_ms += FRAME_MS
        if self._silence_ms >= config.end_of_turn_silence_ms:
            self._in_turn = False
            await self._end_caller_turn()

    def _agent_playing(self) -> bool:
        return self._now() < self._playing_until

    async def _interrupt(self) -> None:
        if "interruption" not in self._client_events or self._current is None:
            return
        self._turn_interrupting = True
        self.record.interruptions += 1
        self._current.interrupted = True
        if self._speaker is not None:
            self._speaker.cancel()
        self._playing_until = self._now()
        await self._emit(
            {"type": "interruption", "interruption_event": {"event_id": self._current.event_id}}
        )

    async def _end_caller_turn(self) -> None:
        config = self.config
        ended_s = self._in_call_s() - self._silence_ms / 1000
        ends_call = False
        reply: AgentLine | None
        if self._turn_interrupting:
            outcome, text, reply = "interrupted", config.interruption_text, config.repeat
            ends_call = self._current_ends_call
        elif self._agent_playing():
            outcome, text, reply = "overlap", config.overlap_text, None
        elif self._step < len(config.steps):
            step = config.steps[self._step]
            self._step += 1
            outcome, text, reply = "answered", step.caller_text, step.reply
            self.record.collected.update(step.collects)
            ends_call = step.ends_call
        else:
            outcome, text, reply = "unexpected", config.overlap_text, None
        turn = CallerTurn(self._turn_started_s, ended_s, text, outcome)
        self.record.caller_turns.append(turn)
        self._add_transcript("user", text, at_s=turn.started_s)
        await self._emit(
            {
                "type": "user_transcript",
                "user_transcription_event": {
                    "user_transcript": text,
                    "event_id": self._next_event_id(),
                },
            }
        )
        if reply is not None:
            self._awaiting_reply = turn
            self._say(
                reply,
                interruptible=True,
                ends_call=ends_call,
                delay_s=config.response_delay_ms / 1000,
            )

    # --- speaking ---------------------------------------------------------------------------

    def _say(
        self, line: AgentLine, *, interruptible: bool, ends_call: bool = False, delay_s: float = 0
    ) -> None:
        if self._speaker is not None and not self._speaker.done():
            self._speaker.cancel()
        self._speaker = self._spawn(self._speak(line, interruptible, ends_call, delay_s))

    async def _speak(
        self, line: AgentLine, interruptible: bool, ends_call: bool, delay_s: float
    ) -> None:
        config = self.config
        if delay_s:
            await asyncio.sleep(delay_s)
        pcm = truncate_pcm(load_clip(line.clip), CLIP_RATE, config.clip_max_ms)
        audio = Converter(PCM_16K, self.output_format, quality="HQ").convert(pcm, last=True)
        text = render(line.text, self.record.dynamic_variables)
        turn = SentTurn(line.clip, self._next_event_id(), text, started_s=self._in_call_s())
        self.record.sent_turns.append(turn)
        self._current = turn
        self._current_interruptible = interruptible
        self._current_ends_call = ends_call
        self._add_transcript("agent", text)
        await self._emit(
            {
                "type": "agent_response",
                "agent_response_event": {"agent_response": text, "event_id": turn.event_id},
            }
        )
        chunk_bytes = self.output_format.frame_bytes(config.chunk_ms)
        chunk_s = config.chunk_ms / 1000
        duration_s = len(audio) / self.output_format.bytes_per_sample / self.output_format.rate
        start = self._now()
        self._playing_until = start + duration_s
        for index, offset in enumerate(range(0, len(audio), chunk_bytes)):
            send_at = start + index * chunk_s - config.lead_ms / 1000
            delay = send_at - self._now()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = audio[offset : offset + chunk_bytes]
            await self._emit(
                {
                    "type": "audio",
                    "audio_event": {
                        "audio_base_64": base64.b64encode(chunk).decode("ascii"),
                        "event_id": turn.event_id,
                    },
                }
            )
            turn.audio += chunk
            if index == 0:
                if self._awaiting_reply is not None:
                    self._awaiting_reply.reply_audio_s = self._in_call_s()
                    self._awaiting_reply = None
                if ends_call:
                    await self._end_call_tool()
        if ends_call:
            self._finish(_End(1000, "Call ended by agent", "end_call tool was called."))

    async def _end_call_tool(self) -> None:
        await self._emit(
            {
                "type": "agent_tool_response",
                "agent_tool_response": {
                    "tool_name": "end_call",
                    "tool_call_id": f"toolu_{uuid.uuid4().hex[:20]}",
                    "tool_type": "system",
                    "is_error": False,
                    "is_called": True,
                    "event_id": self._next_event_id(),
                },
            }
        )

    def _add_transcript(self, role: str, text: str, at_s: float | None = None) -> None:
        seconds = self._in_call_s() if at_s is None else at_s
        self.record.transcript.append(TranscriptEntry(role, text, round(max(seconds, 0.0), 3)))

    async def _call_tool(self, tool: ClientTool) -> None:
        if "client_tool_call" not in self._client_events:
            return
        self._tool_call_id = f"toolu_{uuid.uuid4().hex[:20]}"
        self._tool_deadline = self._now() + tool.timeout_s
        await self._emit(
            {
                "type": "client_tool_call",
                "client_tool_call": {
                    "tool_name": tool.tool_name,
                    "tool_call_id": self._tool_call_id,
                    "parameters": dict(tool.parameters),
                    "event_id": self._next_event_id(),
                },
            }
        )

    # --- keep-alive and limits --------------------------------------------------------------

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.config.ping_interval_s)
            self._check_pongs(final=False)
            event_id = self._next_event_id()
            self._pings[event_id] = self._now()
            self.record.pings_sent += 1
            await self._emit(
                {
                    "type": "ping",
                    "ping_event": {"event_id": event_id, "ping_ms": self._last_ping_ms},
                }
            )

    def _check_pongs(self, *, final: bool) -> None:
        """Pings unanswered for ``pong_timeout_s`` are violations; at the end, younger ones are
        forgiven (the close may simply have overtaken the pong)."""
        now = asyncio.get_running_loop().time()
        for event_id, sent in list(self._pings.items()):
            if now - sent >= self.config.pong_timeout_s:
                self._violation(f"no pong for ping {event_id}")
                del self._pings[event_id]
            elif final:
                del self._pings[event_id]

    async def _watch(self) -> None:
        config = self.config
        while True:
            await asyncio.sleep(0.05)
            now = self._now()
            if now - self._last_audio_at >= config.input_timeout_s:
                self._finish(
                    _End(
                        1002,
                        f"No user audio received for {config.input_timeout_s:g}s",
                        "input timeout",
                        "transport_receive_timeout",
                    )
                )
            elif config.drop_after_s is not None and now - self._t0 >= config.drop_after_s:
                self._finish(
                    _End(1011, "Internal server error", "dropped", "unknown_websocket_crash")
                )
            elif now - self._t0 >= config.max_duration_s:
                self._finish(
                    _End(
                        1000, "Max call duration exceeded", "max duration", "max_duration_exceeded"
                    )
                )
            if self._tool_deadline is not None and now >= self._tool_deadline:
                self._tool_deadline = None
                self._violation(f"no client_tool_result for {self._tool_call_id}")


def _kind(message: object) -> str:
    if isinstance(message, dict):
        return str(
            message.get("type")
            or ("user_audio_chunk" if "user_audio_chunk" in message else "untyped")
        )
    return type(message).__name__


# --- a standalone server ------------------------------------------------------------------------

SignatureCheck = Callable[[str | None, str | None], bool]
"""``check(conversation_signature, agent_id) -> bool`` for the socket's query parameters."""


@dataclass
class AgentServer:
    """A running agent WebSocket server; ``url`` accepts any path."""

    host: str
    port: int
    records: list[ConversationRecord] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The socket URL at ElevenLabs' conversation path (the server accepts any path)."""
        return f"ws://{self.host}:{self.port}/v1/convai/conversation"


@asynccontextmanager
async def serve_agent(
    host: str,
    port: int,
    config: AgentConfig | Callable[[str | None], AgentConfig],
    *,
    check_signature: SignatureCheck | None = None,
    on_conversation_end: Callable[[ConversationRecord], None] | None = None,
) -> AsyncIterator[AgentServer]:
    """Serve scripted conversations on ``host:port`` (0 = a free port) until the block exits.

    ``config`` may be a function of the ``agent_id`` query parameter. A socket whose
    ``conversation_signature`` fails ``check_signature`` is refused with HTTP 403 before the
    upgrade; every finished conversation is appended to ``server.records`` and passed to
    ``on_conversation_end``.
    """
    state = AgentServer(host=host, port=port)

    def query(request: Request) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(request.path).query).items()}

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if check_signature is None:
            return None
        params = query(request)
        if check_signature(params.get("conversation_signature"), params.get("agent_id")):
            return None
        return connection.respond(HTTPStatus.FORBIDDEN, "invalid conversation signature\n")

    async def handle(connection: ServerConnection) -> None:
        assert connection.request is not None
        agent_id = query(connection.request).get("agent_id")
        agent_config = config(agent_id) if callable(config) else config
        record = await ScriptedAgent(agent_config).run(connection)
        state.records.append(record)
        if on_conversation_end is not None:
            on_conversation_end(record)

    async with serve(
        handle, host, port, process_request=process_request, compression=None, max_size=2**20
    ) as server:
        state.port = server.sockets[0].getsockname()[1]
        yield state

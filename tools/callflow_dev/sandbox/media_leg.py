"""The simulated callee: Infobip's side of the media-stream WebSocket, with a person on the phone.

Infobip connects to the bridge as a WebSocket *client* (no auth header), announces the call with a
``websocket:connected`` text frame carrying the dialog's ``customData`` flattened into it (or, as
``placement`` chooses, elsewhere or nowhere: :data:`ID_PLACEMENTS`), and then
streams 20 ms binary frames of 16-bit little-endian mono PCM at the configured rate, silence
included, for as long as the call lasts. What the bridge sends back is played out of a buffer at
real time, one frame per 20 ms; ``{"action": "clear"}`` empties that buffer (barge-in). Any other
text frame is a protocol violation (the real Infobip may hang up on it), so it is recorded.

The person follows a :class:`CalleeScript`: each turn is a clip, said when the agent has finished
talking (the played audio's energy rose above a threshold, then stayed under it for a while), or
said *over* the agent (``barge_in_after_ms``), or a DTMF key press. Timing runs on one clock started
at connect time: tick ``k`` is sent at ``start + k * 20 ms`` (so the pace cannot drift however long
the call), and the recording of what was played lines up sample for sample with what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callflow_bridge.audio import FRAME_MS, AudioFormat, Converter, rms_dbfs
from callflow_dev.sandbox.clips import CLIP_RATE, load_clip, truncate_pcm

logger = logging.getLogger(__name__)

RESERVED_KEYS = ("event", "content-type")
"""Keys of the ``websocket:connected`` frame that customData may not overwrite."""

ID_PLACEMENTS = ("top-level", "customData", "identifier", "query", "headers", "nowhere")
"""Where the callee may show the dialog's identifiers, each a plausible reading of Infobip's
undocumented socket: customData flattened into the connected frame (what integrators report),
nested under ``customData``, the endpoint's ``identifier`` as a frame key, customData as the
upgrade's query string or as its headers, or nowhere at all (Pipecat's and Infobip's own samples
read nothing from the connection)."""


class CalleeScriptError(ValueError):
    """A callee script that cannot be performed (a turn with neither a clip nor a digit, ...)."""


@dataclass(frozen=True)
class CalleeTurn:
    """One thing the person does: say a clip, or press a key.

    ``immediately``: at once when the call is answered, before hearing anything ("Hello?").
    ``barge_in_after_ms``: this long after the agent started talking, while it still talks
    (falls back to "after the agent finished" when the agent stops sooner).
    Otherwise the turn starts when the agent has finished its turn.
    """

    clip: str | None = None
    dtmf: str | None = None
    dtmf_duration_ms: int = 250
    immediately: bool = False
    barge_in_after_ms: int | None = None
    max_ms: int | None = None
    """Say only the first ``max_ms`` of the clip (time-scaled tests)."""

    def __post_init__(self) -> None:
        if (self.clip is None) == (self.dtmf is None):
            raise CalleeScriptError("a callee turn needs exactly one of clip or dtmf")
        if self.dtmf is not None and (len(self.dtmf) != 1 or self.dtmf not in "0123456789*#"):
            raise CalleeScriptError(f"invalid DTMF digit {self.dtmf!r}")
        if self.barge_in_after_ms is not None and self.barge_in_after_ms < 0:
            raise CalleeScriptError("barge_in_after_ms must not be negative")

    @property
    def label(self) -> str:
        """The clip's name, or ``dtmf:<digit>`` for a key press."""
        return self.clip if self.clip is not None else f"dtmf:{self.dtmf}"


@dataclass(frozen=True)
class CalleeScript:
    """What the person says, and how they judge that the agent has finished talking."""

    turns: tuple[CalleeTurn, ...]
    speech_threshold_dbfs: float = -40.0
    """Played audio louder than this is the agent talking."""
    end_of_agent_turn_ms: int = 600
    """Quiet this long after the agent talked = the agent has finished its turn."""
    hangup_after_s: float = 8.0
    """After the last turn, hang up when nothing was heard for this long."""
    max_duration_s: float = 120.0

    def __post_init__(self) -> None:
        if self.end_of_agent_turn_ms < FRAME_MS:
            raise CalleeScriptError("end_of_agent_turn_ms must be at least one frame")
        if self.max_duration_s <= 0 or self.hangup_after_s <= 0:
            raise CalleeScriptError("durations must be positive")

    @classmethod
    def default(cls) -> CalleeScript:
        """The demo dialogue: "Hello?" at once, then one answer after each agent turn."""
        return cls(
            turns=(
                CalleeTurn(clip="person_hello", immediately=True),
                CalleeTurn(clip="person_confirm"),
                CalleeTurn(clip="person_bill"),
                CalleeTurn(clip="person_visit"),
            )
        )

    @classmethod
    def opting_out(cls) -> CalleeScript:
        """ "Hello?" at once, then, after the greeting, asks not to be called again."""
        return cls(
            turns=(
                CalleeTurn(clip="person_hello", immediately=True),
                CalleeTurn(clip="person_bye"),
            )
        )

    @classmethod
    def interrupting(cls, barge_in_after_ms: int = 1200) -> CalleeScript:
        """Like :meth:`default`, but talks over the agent's second question (the visit)."""
        return cls(
            turns=(
                CalleeTurn(clip="person_hello", immediately=True),
                CalleeTurn(clip="person_confirm"),
                CalleeTurn(clip="person_bill"),
                CalleeTurn(clip="person_interrupt", barge_in_after_ms=barge_in_after_ms),
                CalleeTurn(clip="person_visit"),
            )
        )


@dataclass
class TurnTiming:
    """When a callee turn happened, in seconds since the socket connected."""

    label: str
    started_s: float
    ended_s: float | None = None
    agent_audio_s: float | None = None
    """When agent speech was next heard after this turn ended (None: never)."""
    over_agent: bool = False
    """The turn started while the agent was talking."""
    talked_over: bool = False
    """The turn ended while the agent was talking: it has no answer latency."""

    @property
    def latency_s(self) -> float | None:
        """Time from the end of this turn to the agent's answer being heard."""
        if self.ended_s is None or self.agent_audio_s is None:
            return None
        return self.agent_audio_s - self.ended_s


@dataclass
class MediaLegResult:
    """Everything the callee sent, heard and saw during the call."""

    sample_rate: int
    sent: bytes = b""
    played: bytes = b""
    received_frames: int = 0
    received_bytes: int = 0
    clears: int = 0
    protocol_errors: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    hung_up_by: str = ""
    """``bridge`` (it closed the socket), ``callee`` (stop set, silence) or ``max_duration``."""
    turns: list[TurnTiming] = field(default_factory=list)
    connected_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def duration_s(self) -> float:
        """The call's length, from the 16-bit audio the callee sent (silence included)."""
        return len(self.sent) / 2 / self.sample_rate


def stereo_wav(result: MediaLegResult, path: str | Path) -> Path:
    """Write the call as a stereo WAV: left = the caller (sent), right = the agent (played)."""
    left = np.frombuffer(result.sent, dtype="<i2")
    right = np.frombuffer(result.played, dtype="<i2")
    length = max(len(left), len(right))
    frames = np.zeros((length, 2), dtype="<i2")
    frames[: len(left), 0] = left
    frames[: len(right), 1] = right
    target = Path(path)
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(result.sample_rate)
        wav.writeframes(frames.tobytes())
    return target


@lru_cache(maxsize=64)
def _clip_at_rate(name: str, rate: int, max_ms: int | None) -> bytes:
    pcm = truncate_pcm(load_clip(name), CLIP_RATE, max_ms)
    converter = Converter(AudioFormat("pcm", CLIP_RATE), AudioFormat.phone(rate), quality="HQ")
    return converter.convert(pcm, last=True)


EventHook = Callable[[str, dict[str, Any]], None]


class _Callee:
    """The per-call state machine, advanced once per 20 ms tick."""

    def __init__(self, rate: int, script: CalleeScript, on_event: EventHook | None) -> None:
        self.fmt = AudioFormat.phone(rate)
        self.frame_bytes = self.fmt.frame_bytes()
        self.silence = bytes(self.frame_bytes)
        self.script = script
        self.on_event = on_event
        self.result = MediaLegResult(sample_rate=rate)
        self.playback = bytearray()
        self.sent = bytearray()
        self.played = bytearray()
        self.next_turn = 0
        self.speaking: bytes | None = None
        self.speak_pos = 0
        self.current: TurnTiming | None = None
        self.heard_since_turn = False
        """The agent was heard since the last turn started."""
        self.agent_started_s: float | None = None
        """When the agent's current stretch of speech began (None while quiet)."""
        self.quiet_ms = 0
        self.last_heard_s = 0.0
        self.awaiting_answer: TurnTiming | None = None
        self.pending_text: list[str] = []
        """Text frames (DTMF) to send before this tick's audio."""

    def emit(self, name: str, **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(name, data)

    # --- receiving ------------------------------------------------------------------------

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.result.received_frames += 1
            self.result.received_bytes += len(message)
            if len(message) % 2:
                self.result.protocol_errors.append(
                    f"binary frame of {len(message)} bytes is not whole 16-bit samples"
                )
                message = message[:-1]
            self.playback.extend(message)
            return
        try:
            payload = json.loads(message)
        except ValueError:
            self.result.protocol_errors.append(f"text frame is not JSON: {message[:80]!r}")
            return
        if payload == {"action": "clear"}:
            self.result.clears += 1
            dropped = len(self.playback)
            self.playback.clear()
            self.emit("clear", dropped_ms=dropped // 2 * 1000 // self.fmt.rate)
            return
        self.result.protocol_errors.append(f"unexpected text frame: {message[:120]}")

    # --- one tick -------------------------------------------------------------------------

    def tick(self, now_s: float) -> bytes:
        """Play one frame, advance the script, and return the frame to send."""
        frame = bytes(self.playback[: self.frame_bytes])
        del self.playback[: self.frame_bytes]
        if len(frame) < self.frame_bytes:
            frame += bytes(self.frame_bytes - len(frame))
        self.played.extend(frame)
        self._listen(frame, now_s)
        self._maybe_start_turn(now_s)
        out = self._speak(now_s)
        self.sent.extend(out)
        return out

    def _listen(self, frame: bytes, now_s: float) -> None:
        loud = rms_dbfs(frame) > self.script.speech_threshold_dbfs
        if loud:
            if self.agent_started_s is None:
                self.agent_started_s = now_s
                self.emit("agent_audio_started", at_s=round(now_s, 3))
            if self.awaiting_answer is not None and self.speaking is None:
                self.awaiting_answer.agent_audio_s = now_s
                self.awaiting_answer = None
            self.heard_since_turn = True
            self.quiet_ms = 0
            self.last_heard_s = now_s
        else:
            self.quiet_ms += FRAME_MS
            if self.quiet_ms >= self.script.end_of_agent_turn_ms:
                self.agent_started_s = None

    def _agent_finished(self) -> bool:
        return self.heard_since_turn and self.quiet_ms >= self.script.end_of_agent_turn_ms

    def _maybe_start_turn(self, now_s: float) -> None:
        if self.speaking is not None or self.next_turn >= len(self.script.turns):
            return
        turn = self.script.turns[self.next_turn]
        due = turn.immediately or self._agent_finished()
        if not due and turn.barge_in_after_ms is not None and self.agent_started_s is not None:
            due = (now_s - self.agent_started_s) * 1000 >= turn.barge_in_after_ms
        if not due:
            return
        self.next_turn += 1
        timing = TurnTiming(
            label=turn.label, started_s=now_s, over_agent=self.agent_started_s is not None
        )
        self.result.turns.append(timing)
        self.heard_since_turn = False
        self.emit("turn_started", turn=turn.label, at_s=round(now_s, 3))
        if turn.dtmf is not None:
            self._press(turn, timing, now_s)
            return
        assert turn.clip is not None  # checked in CalleeTurn
        self.speaking = _clip_at_rate(turn.clip, self.fmt.rate, turn.max_ms)
        self.speak_pos = 0
        self.current = timing

    def _press(self, turn: CalleeTurn, timing: TurnTiming, now_s: float) -> None:
        frame = {"event": "websocket:dtmf", "digit": turn.dtmf, "duration": turn.dtmf_duration_ms}
        self.pending_text.append(json.dumps(frame))
        timing.ended_s = now_s
        self.awaiting_answer = timing
        self.emit("turn_ended", turn=turn.label, at_s=round(now_s, 3))

    def _speak(self, now_s: float) -> bytes:
        if self.speaking is None:
            return self.silence
        chunk = self.speaking[self.speak_pos : self.speak_pos + self.frame_bytes]
        self.speak_pos += self.frame_bytes
        if self.speak_pos >= len(self.speaking):
            self.speaking = None
            if self.current is not None:
                self.current.ended_s = now_s + FRAME_MS / 1000
                # Ending while the agent still talks (say, "Hello?" over its greeting), the turn
                # gets no answer of its own: the agent's audio then is not a reply to it.
                self.current.talked_over = self.agent_started_s is not None
                self.awaiting_answer = None if self.current.talked_over else self.current
                self.emit("turn_ended", turn=self.current.label, at_s=round(now_s, 3))
                self.current = None
            self.heard_since_turn = False
            self.quiet_ms = 0
            self.last_heard_s = now_s
        if len(chunk) < self.frame_bytes:
            chunk += bytes(self.frame_bytes - len(chunk))
        return chunk

    def script_done_and_silent(self, now_s: float) -> bool:
        """Every turn was taken and nothing was heard for ``hangup_after_s``."""
        return (
            self.next_turn >= len(self.script.turns)
            and self.speaking is None
            and not self.playback
            and now_s - self.last_heard_s >= self.script.hangup_after_s
        )


async def run_media_leg(
    url: str,
    custom_data: dict[str, str],
    sample_rate: int,
    script: CalleeScript,
    *,
    stop: asyncio.Event | None = None,
    on_event: EventHook | None = None,
    open_timeout_s: float = 10.0,
    placement: str = "top-level",
    identifier: str = "",
) -> MediaLegResult:
    """Be the callee on the media WebSocket at ``url`` until someone hangs up.

    ``placement`` (one of :data:`ID_PLACEMENTS`) says where ``custom_data`` (or, for
    ``"identifier"``, the endpoint's ``identifier``) travels.

    Returns when the bridge closes the socket, when ``stop`` is set (the person hangs up: close
    1000), after the script's ``hangup_after_s`` of silence following its last turn, or at its
    ``max_duration_s``.
    """
    fmt = AudioFormat.phone(sample_rate)  # UnsupportedFormat for a rate Infobip does not offer
    clashing = [key for key in custom_data if key in RESERVED_KEYS]
    if clashing:
        raise ValueError(f"customData may not contain {', '.join(clashing)}")
    bad = [key for key, value in custom_data.items() if not isinstance(value, str)]
    if bad:
        raise ValueError(f"customData values must be strings: {', '.join(bad)}")
    for turn in script.turns:
        if turn.clip is not None:
            _clip_at_rate(turn.clip, fmt.rate, turn.max_ms)  # unknown clips fail before dialling

    if placement not in ID_PLACEMENTS:
        raise ValueError(f"placement must be one of {', '.join(ID_PLACEMENTS)}")

    hello: dict[str, Any] = {
        "event": "websocket:connected",
        "content-type": f"audio/l16;rate={fmt.rate}",
    }
    headers: dict[str, str] = {}
    if placement == "top-level":
        hello.update(custom_data)
    elif placement == "customData":
        hello["customData"] = dict(custom_data)
    elif placement == "identifier" and identifier:
        hello["identifier"] = identifier
    elif placement == "query" and custom_data:
        url += ("&" if "?" in url else "?") + urlencode(custom_data)
    elif placement == "headers":
        headers = dict(custom_data)

    loop = asyncio.get_running_loop()
    async with connect(
        url,
        open_timeout=open_timeout_s,
        close_timeout=2,
        max_size=2**20,
        compression=None,
        additional_headers=headers,
    ) as ws:
        callee = _Callee(fmt.rate, script, on_event)
        result = callee.result
        result.connected_at = datetime.now(UTC)
        await ws.send(json.dumps(hello))
        callee.emit("connected", rate=fmt.rate)
        start = loop.time()
        receiver = asyncio.create_task(_receive(ws, callee))
        try:
            result.hung_up_by = await _pace(ws, callee, start, stop, receiver, loop)
        finally:
            if result.hung_up_by != "bridge":
                await ws.close(1000, "callee hung up")
            with contextlib.suppress(asyncio.CancelledError):
                receiver.cancel()
                await receiver
        result.close_code = ws.close_code
        result.close_reason = ws.close_reason or ""
    result.sent = bytes(callee.sent)
    result.played = bytes(callee.played)
    result.ended_at = datetime.now(UTC)
    callee.emit("closed", code=result.close_code, by=result.hung_up_by)
    logger.info(
        "media leg ended: %s after %.2fs, close %s, %d protocol errors",
        result.hung_up_by,
        result.duration_s,
        result.close_code,
        len(result.protocol_errors),
    )
    return result


async def _receive(ws: ClientConnection, callee: _Callee) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            callee.on_message(message)


async def _pace(
    ws: ClientConnection,
    callee: _Callee,
    start: float,
    stop: asyncio.Event | None,
    receiver: asyncio.Task[None],
    loop: asyncio.AbstractEventLoop,
) -> str:
    """Send one frame per 20 ms tick against the start time; return who ended the call."""
    period = FRAME_MS / 1000
    max_ticks = math.ceil(callee.script.max_duration_s / period)
    for tick in range(max_ticks):
        delay = start + tick * period - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if stop is not None and stop.is_set():
            return "callee"
        if receiver.done():
            return "bridge"
        now_s = tick * period
        frame = callee.tick(now_s)
        try:
            while callee.pending_text:
                await ws.send(callee.pending_text.pop(0))
            await ws.send(frame)
        except ConnectionClosed:
            return "bridge"
        if callee.script_done_and_silent(now_s):
            return "callee"
    return "max_duration"

"""Infobip's side of a call: caller frames in, the agent's audio out at the caller's own pace.

Each 20 ms of caller audio that arrives releases one 20 ms frame of the agent's queued audio (see
:mod:`callflow_bridge.pacing`): Infobip's stream is the clock, so the output can neither drift nor
run ahead of real time. One exception starts that clock: nothing is sent to Infobip until the
agent first speaks, so the agent's first frame goes out the moment it is queued (:meth:`queue`)
instead of on the caller's next frame. Infobip starts playing it then, and the caller's frames
release the following ones, each no later than the one before it ends (one frame out per frame in,
as before), so the playback buffer never runs ahead by more than that one frame.
"""

from __future__ import annotations

import contextlib

from . import protocol
from .audio import AudioFormat
from .frame_stats import FrameStats
from .metrics import CallMetrics
from .pacing import OutboundPacer, Tick
from .recording import CallRecording
from .sockets import MessageSocket, SocketClosed
from .turns import TurnTimer


class PhoneLeg:
    """The media socket of one call, its outbound pacer and what it counts."""

    def __init__(
        self, socket: MessageSocket, rate: int, metrics: CallMetrics, turns: TurnTimer
    ) -> None:
        self.socket = socket
        self.format = AudioFormat.phone(rate)
        self.frame_bytes = self.format.frame_bytes()
        self.pacer = OutboundPacer(self.frame_bytes, 0, rate * 2)
        self.metrics = metrics
        self.turns = turns
        self.malformed = 0
        """Frames that could not be audio (empty, odd length) or text that was not JSON."""
        self.clears = 0
        """``clear`` frames sent (barge-in)."""
        self.frames = FrameStats()
        """What the stream sent: sizes, cadence, text events (for the operator's doctor)."""
        self.recording: CallRecording | None = None
        """Where each frame sent (or silence, before the agent first spoke) is also kept, when
        the call is recorded."""
        self._credit = 0
        self._playing = False
        """Whether anything was sent to Infobip yet (its playback clock has started)."""

    def valid_audio(self, frame: bytes) -> bool:
        """Whether a binary frame can be 16-bit PCM; counts the ones that cannot."""
        if not frame or len(frame) & 1:
            self.malformed += 1
            return False
        return True

    def queue(self, audio: bytes, now: float) -> None:
        """Queue agent audio (phone-leg format); the agent's very first frame is sent at once."""
        pacer = self.pacer
        pacer.push(audio, now)
        if not self._playing and pacer.queued_bytes >= self.frame_bytes:
            self._send(pacer.tick(now), now)

    def release(self, size: int, now: float) -> None:
        """``size`` bytes of caller audio arrived: send one frame out for each frame's worth
        (written at once; the caller waits for the socket to drain)."""
        self.frames.audio(size, now)
        self._credit += size
        pacer = self.pacer
        while self._credit >= self.frame_bytes:
            self._credit -= self.frame_bytes
            tick = pacer.tick(now)
            if tick.frame is None:
                if self.recording is not None:
                    self.recording.agent(pacer.silence)
                continue
            self._send(tick, now)

    def _send(self, tick: Tick, now: float) -> None:
        frame = tick.frame
        if frame is None:
            return
        self._playing = True
        self.socket.send_now(frame)
        if self.recording is not None:
            self.recording.agent(frame)
        if tick.audio:
            self.metrics.frames_relayed += 1
        latency = self.turns.agent_frame_sent(tick.audio, now)
        if latency is not None:
            self.metrics.add_turn_latency(latency)

    async def clear(self) -> None:
        """Barge-in: drop the queued agent audio here and in Infobip's playback buffer."""
        if not self.pacer.started:
            return
        self.pacer.clear()
        self.turns.agent_interrupted()
        self.clears += 1
        with contextlib.suppress(SocketClosed):
            await self.socket.send(protocol.CLEAR_FRAME)

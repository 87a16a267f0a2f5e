"""Real-time pacing of the agent's audio towards the phone leg.

Infobip plays whatever it receives into a buffer that cannot be interrupted, and calls have been
seen to drop when the output stream has gaps once audio started. So the bridge never sends the
agent's audio as it arrives: it queues it (already in the phone leg's format) and releases exactly
one 20 ms frame for each 20 ms of caller audio that Infobip sends. Infobip's own stream is the
clock, so the output can neither drift nor run ahead of real time, and a ``clear`` on barge-in
only has to flush the little that is in flight.

The queue is a single ``bytearray`` with a read offset: appending and slicing a frame are the only
per-frame work, and the buffer is compacted only when the consumed prefix grows large.
"""

from __future__ import annotations

from typing import NamedTuple

#: Cap on queued agent audio. The agent streams faster than real time; a minute of queued speech
#: is far more than one turn, and the cap keeps the memory of a call bounded.
MAX_QUEUE_SECONDS = 60
#: When the queue runs dry this soon after the agent's last chunk, the agent is mid-utterance and
#: the stream is late: that frame is an underrun. Later than this, the agent has simply finished.
UNDERRUN_WINDOW_S = 0.1
_COMPACT_AT = 64 * 1024


class Tick(NamedTuple):
    """What one tick produced: the frame to send (``None`` before the agent ever spoke), whether
    it carries agent audio, and whether it was an underrun. (A named tuple: one is made per
    20 ms frame, and the silent ones are made once per pacer.)"""

    frame: bytes | None
    audio: bool
    underrun: bool


_NOTHING = Tick(None, False, False)


class OutboundPacer:
    """Frames the agent's audio and hands out one frame per tick; silence once audio started."""

    def __init__(self, frame_bytes: int, silence_byte: int = 0, bytes_per_second: int = 0) -> None:
        if frame_bytes <= 0 or frame_bytes % 2:
            raise ValueError(f"frame size must be a positive even number of bytes: {frame_bytes}")
        self.frame_bytes = frame_bytes
        self.silence = bytes([silence_byte]) * frame_bytes
        self._quiet = Tick(self.silence, False, False)
        self._underrun = Tick(self.silence, False, True)
        self.max_bytes = (bytes_per_second or frame_bytes * 50) * MAX_QUEUE_SECONDS
        self._buffer = bytearray()
        self._offset = 0
        self.started = False
        self.last_audio_at = 0.0
        self._was_audio = False
        self.frames_sent = 0
        self.audio_frames = 0
        self.underruns = 0
        self.dropped_bytes = 0

    @property
    def queued_bytes(self) -> int:
        """Agent audio queued and not yet handed out, in bytes."""
        return len(self._buffer) - self._offset

    @property
    def queued_seconds(self) -> float:
        """The queued audio in seconds (each frame being 20 ms)."""
        return self.queued_bytes / (self.frame_bytes * 50)

    def push(self, audio: bytes, now: float) -> None:
        """Queue agent audio (phone-leg format); what exceeds the cap is dropped, newest last."""
        if not audio:
            return
        room = self.max_bytes - self.queued_bytes
        if len(audio) > room:
            self.dropped_bytes += len(audio) - max(room, 0)
            audio = audio[: max(room, 0)]
        self._buffer += audio
        self.started = True
        self.last_audio_at = now

    def clear(self) -> int:
        """Drop everything queued (barge-in); returns how many bytes were dropped."""
        dropped = self.queued_bytes
        self._buffer = bytearray()
        self._offset = 0
        self._was_audio = False
        return dropped

    def tick(self, now: float) -> Tick:
        """The frame for this 20 ms of caller audio."""
        if not self.started:
            return _NOTHING
        available = self.queued_bytes
        if available >= self.frame_bytes:
            start = self._offset
            self._offset = start + self.frame_bytes
            frame = bytes(self._buffer[start : self._offset])
            self._compact()
            self._was_audio = True
            self.frames_sent += 1
            self.audio_frames += 1
            return Tick(frame, True, False)
        recent = now - self.last_audio_at < UNDERRUN_WINDOW_S
        if available and not recent:
            # The agent finished on a partial frame: pad it with silence rather than hold it.
            frame = bytes(self._buffer[self._offset :]) + self.silence[available:]
            self._buffer = bytearray()
            self._offset = 0
            self._was_audio = True
            self.frames_sent += 1
            self.audio_frames += 1
            return Tick(frame, True, False)
        underrun = self._was_audio and recent
        self._was_audio = False
        self.frames_sent += 1
        if underrun:
            self.underruns += 1
            return self._underrun
        return self._quiet

    def _compact(self) -> None:
        if self._offset >= _COMPACT_AT:
            del self._buffer[: self._offset]
            self._offset = 0

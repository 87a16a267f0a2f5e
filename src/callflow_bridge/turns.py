"""Turn latency: from the end of the caller's speech to the agent's answer reaching the caller.

The end of speech is found by energy: the last caller frame above :data:`SPEECH_DBFS`, measured as
the frames arrive. The agent's ``user_transcript`` was not used: it arrives after the agent's own
end-of-turn detection and ASR, so it would hide part of the latency being measured, and its timing
is not under the bridge's control. The answer is the first agent frame *sent to Infobip* (after
pacing, which is what the caller hears). A latency is recorded once per agent turn that follows
caller speech.
"""

from __future__ import annotations

import numpy as np

#: Caller audio louder than this counts as speech. The test is RMS against this level, done as
#: mean power against the equivalent threshold: ``callflow_bridge.audio.rms_dbfs`` costs ~15 us a
#: frame in float64 and a logarithm, a float32 dot product ~5 us, and this runs on every caller
#: frame.
SPEECH_DBFS = -45.0
_SPEECH_POWER = (32768.0 * 10 ** (SPEECH_DBFS / 20)) ** 2


def is_speech(frame: bytes) -> bool:
    """``rms_dbfs(frame) > SPEECH_DBFS``, without the float64 copy and the logarithm."""
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
    return float(np.dot(samples, samples)) > samples.size * _SPEECH_POWER


class TurnTimer:
    """Follows caller speech and agent frames; :meth:`agent_frame_sent` yields each latency."""

    def __init__(self) -> None:
        self._last_loud = 0.0
        self._speech_pending = False
        self._agent_was_talking = False

    def caller_frame(self, frame: bytes, now: float) -> None:
        """A caller frame arrived at ``now``."""
        if is_speech(frame):
            self._last_loud = now
            self._speech_pending = True

    def agent_frame_sent(self, audio: bool, now: float) -> float | None:
        """A frame went to the caller (agent audio or silence); the latency in ms when it starts
        the agent's answer to speech the caller finished."""
        latency = None
        if audio and not self._agent_was_talking and self._speech_pending:
            latency = (now - self._last_loud) * 1000
            self._speech_pending = False
        self._agent_was_talking = audio
        return latency

    def agent_interrupted(self) -> None:
        """The agent's turn was cut off: its next audio starts a new turn."""
        self._agent_was_talking = False

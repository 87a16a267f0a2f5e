"""Recording both sides of a call while it is relayed, and the WAV file made at its end.

Two channels, the caller on the left and the agent on the right, 16-bit PCM at the phone leg's
rate (what the leg carries: nothing is resampled for the file). Two channels rather than a mono
mix because the relay already has the two sides in step for free: each caller frame releases one
outbound frame (:mod:`callflow_bridge.phone_leg`), so the n-th frame of each channel is the same
20 ms, and keeping them apart lets whoever listens or re-transcribes tell the speakers apart with
no mixing (no clipping, no gain choices). The cost is twice a mono file: 64 kB a second at 16 kHz,
57.6 MB for Infobip's default 15-minute maximum, inside Zoho's 100 MB attachment limit.

On the hot path a frame is one ``write`` into a buffered spool file (the buffered writer copies it
into its own buffer; no object is made per frame), and each channel stops at the call's maximum
duration, so a call's recording is bounded on disk and in memory. The WAV is written at the end,
in a thread, a block at a time.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import wave
from collections.abc import Awaitable, Callable
from typing import IO, Any

import numpy as np

from callflow.recording.storage import StorageUnavailable

StoreRecording = Callable[[str, IO[bytes]], Awaitable[str]]
"""``store(session_id, wav_file)`` keeps the file (S3) and returns its key."""

SPOOL_BUFFER = 64 * 1024
"""Bytes each channel's spool holds in memory before a write to its file (about a second)."""
_BLOCK_SAMPLES = 16 * 1024


class CallRecording:
    """The spools of one call's two channels; :meth:`write_wav` makes the file."""

    def __init__(self, rate: int, max_seconds: int, directory: str | None = None) -> None:
        self.rate = rate
        self.limit = rate * 2 * max_seconds
        """Bytes per channel kept at most."""
        self.caller_bytes = 0
        self.agent_bytes = 0
        self.truncated = False
        """Whether the call outlasted the limit (its end is not recorded)."""
        # Open for the call's life, closed by close() (store() always calls it).
        self._caller: IO[bytes] = tempfile.TemporaryFile(dir=directory, buffering=SPOOL_BUFFER)  # noqa: SIM115
        self._agent: IO[bytes] = tempfile.TemporaryFile(dir=directory, buffering=SPOOL_BUFFER)  # noqa: SIM115

    def caller(self, frame: bytes) -> None:
        """A frame the caller sent."""
        if self.caller_bytes + len(frame) > self.limit:
            self.truncated = True
            return
        self._caller.write(frame)
        self.caller_bytes += len(frame)

    def agent(self, frame: bytes) -> None:
        """A frame sent to the caller (the agent's audio, or silence)."""
        if self.agent_bytes + len(frame) > self.limit:
            self.truncated = True
            return
        self._agent.write(frame)
        self.agent_bytes += len(frame)

    @property
    def seconds(self) -> float:
        """The recording's length (the longer channel's)."""
        return max(self.caller_bytes, self.agent_bytes) / (self.rate * 2)

    @property
    def empty(self) -> bool:
        """Whether nothing was recorded."""
        return self.caller_bytes == 0 and self.agent_bytes == 0

    def write_wav(self, out: IO[bytes]) -> int:
        """Write the stereo WAV to ``out`` (blocking: run it in a thread); returns its size. The
        shorter channel is padded with silence to the longer one's length."""
        samples = max(self.caller_bytes, self.agent_bytes) // 2
        for spool in (self._caller, self._agent):
            spool.flush()
            spool.seek(0)
        start = out.tell()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(self.rate)
            wav.setnframes(samples)
            done = 0
            while done < samples:
                count = min(_BLOCK_SAMPLES, samples - done)
                block = np.zeros((count, 2), dtype="<i2")
                for channel, spool in enumerate((self._caller, self._agent)):
                    data = spool.read(count * 2)
                    got = len(data) // 2
                    block[:got, channel] = np.frombuffer(data, dtype="<i2", count=got)
                wav.writeframes(block.tobytes())
                done += count
        return out.tell() - start

    def close(self) -> None:
        """Drop the spools (their files were never linked: closing frees them)."""
        self._caller.close()
        self._agent.close()


async def store(recording: CallRecording, keep: StoreRecording, session_id: str) -> dict[str, Any]:
    """Make the WAV and keep it; what happened, for the session's ``recording``. Never raises for
    a storage failure: the call's result is written without the file."""
    seconds, truncated = round(recording.seconds, 2), recording.truncated
    started = time.monotonic()
    try:
        if recording.empty:
            return {"status": "empty"}
        with tempfile.TemporaryFile() as wav_file:
            size = await asyncio.to_thread(recording.write_wav, wav_file)
            wav_file.seek(0)
            key = await keep(session_id, wav_file)
    except StorageUnavailable as error:
        return {"status": "failed", "error": str(error), "seconds": seconds}
    except OSError as error:  # the spool or the file (a full disk)
        return {"status": "failed", "error": f"file: {type(error).__name__}", "seconds": seconds}
    finally:
        recording.close()
    return {
        "status": "stored",
        "key": key,
        "bytes": size,
        "seconds": seconds,
        "truncated": truncated,
        "store_ms": round((time.monotonic() - started) * 1000),
    }

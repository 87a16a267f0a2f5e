"""The recorded voices of the sandbox: WAV clips the simulated callee and the scripted agent speak.

The clips are committed as 16 kHz mono 16-bit WAV files so that both stand-ins send *real* speech
through the bridge: energy-based turn taking and interruption only mean something with audio that
has the pauses and loudness of a voice. Loading checks the format rather than trusting the file
name, because a clip at the wrong rate would silently play at the wrong speed.
"""

from __future__ import annotations

import wave
from functools import lru_cache
from pathlib import Path

CLIPS_DIR = Path(__file__).resolve().parent / "clips"
CLIP_RATE = 16000
"""Every clip is 16-bit little-endian mono PCM at this rate."""


class ClipError(ValueError):
    """A clip that does not exist or is not 16 kHz mono 16-bit PCM."""


def clip_names() -> list[str]:
    """Names (file stems) of every committed clip, sorted."""
    return sorted(path.stem for path in CLIPS_DIR.glob("*.wav"))


@lru_cache(maxsize=64)
def load_clip(name: str) -> bytes:
    """The PCM samples of clip ``name`` (s16le, 16 kHz, mono), cached after the first read."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ClipError(f"invalid clip name {name!r}")
    path = CLIPS_DIR / f"{name}.wav"
    if not path.is_file():
        raise ClipError(f"unknown clip {name!r}; known clips: {', '.join(clip_names())}")
    with wave.open(str(path), "rb") as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getcomptype())
        if shape != (1, 2, CLIP_RATE, "NONE"):
            raise ClipError(
                f"clip {name!r} is channels={shape[0]} width={shape[1]} rate={shape[2]} "
                f"{shape[3]}; expected mono 16-bit {CLIP_RATE} Hz PCM"
            )
        return wav.readframes(wav.getnframes())


def clip_ms(name: str) -> int:
    """Duration of a clip in whole milliseconds."""
    return pcm_ms(load_clip(name), CLIP_RATE)


def pcm_ms(pcm: bytes, rate: int) -> int:
    """Duration of s16le mono PCM at ``rate`` in whole milliseconds."""
    return len(pcm) // 2 * 1000 // rate


def truncate_pcm(pcm: bytes, rate: int, max_ms: int | None) -> bytes:
    """The first ``max_ms`` of s16le mono PCM (all of it when ``max_ms`` is None).

    Tests use shortened clips so a whole dialogue runs in a couple of seconds of real time.
    """
    if max_ms is None:
        return pcm
    if max_ms < 0:
        raise ValueError("max_ms must not be negative")
    return pcm[: rate * max_ms // 1000 * 2]

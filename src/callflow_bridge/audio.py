"""Audio formats and the one streaming converter, used by the bridge and the provider stand-ins.

The phone leg (Infobip) is 16-bit little-endian mono PCM ("audio/l16") at 8, 16, 24 or 32 kHz in
20 ms frames. The agent leg (ElevenLabs) names its formats ``pcm_<rate>`` or ``ulaw_8000``. A
:class:`Converter` turns a stream of one into the other: G.711 μ-law through lookup tables and
rate changes through ``soxr``'s streaming resampler, which keeps its filter state between chunks so
frame boundaries do not click.

The resampling recipe is a parameter because it is a latency trade: soxr's "HQ" recipe delays a
2:1 stream (8 <-> 16 kHz) by about 96 ms in each direction, a tenth of a second added to every
turn of a live call, while "LQ" (16-bit precision, plenty for a phone line) delays 12-24 ms. Live
calls use :data:`LIVE_QUALITY`; the stand-ins, which prepare recorded clips, may ask for "HQ".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import soxr

FRAME_MS = 20
PHONE_RATES = (8000, 16000, 24000, 32000)
AGENT_PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)


class UnsupportedFormat(ValueError):
    """An audio format the bridge cannot serve; the message is the call's end reason."""


@dataclass(frozen=True)
class AudioFormat:
    """An audio format: ``pcm`` (16-bit little-endian) or ``ulaw``, at a sample rate."""

    codec: str  # "pcm" (s16le) or "ulaw"
    rate: int

    @classmethod
    def parse(cls, name: str) -> AudioFormat:
        """``pcm_16000`` / ``ulaw_8000`` (ElevenLabs' names) into a format."""
        codec, _, rate_text = name.partition("_")
        if not rate_text.isdigit():
            raise UnsupportedFormat(f"unknown audio format {name!r}")
        rate = int(rate_text)
        if (codec == "pcm" and rate in AGENT_PCM_RATES) or (codec == "ulaw" and rate == 8000):
            return cls(codec, rate)
        raise UnsupportedFormat(f"unsupported audio format {name!r}")

    @classmethod
    def phone(cls, rate: int) -> AudioFormat:
        """The phone leg's format at ``rate``; :class:`UnsupportedFormat` unless it is in
        :data:`PHONE_RATES`."""
        if rate not in PHONE_RATES:
            raise UnsupportedFormat(f"unsupported phone-leg sample rate {rate}")
        return cls("pcm", rate)

    @property
    def name(self) -> str:
        """The format in ElevenLabs' naming, e.g. ``pcm_16000``."""
        return f"{self.codec}_{self.rate}"

    @property
    def bytes_per_sample(self) -> int:
        """2 for 16-bit PCM, 1 for μ-law."""
        return 2 if self.codec == "pcm" else 1

    def frame_bytes(self, ms: int = FRAME_MS) -> int:
        """The size in bytes of ``ms`` milliseconds of audio (one frame by default)."""
        return self.rate * ms // 1000 * self.bytes_per_sample


# --- G.711 μ-law --------------------------------------------------------------------------

_BIAS = 0x84
_CLIP = 32635


def _build_decode_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.int16)
    for code in range(256):
        u = ~code & 0xFF
        sign = u & 0x80
        exponent = (u >> 4) & 0x07
        mantissa = u & 0x0F
        magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
        table[code] = -magnitude if sign else magnitude
    return table


def _build_encode_table() -> np.ndarray:
    samples = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(samples < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(samples), _CLIP) + _BIAS
    exponent = np.floor(np.log2(magnitude)).astype(np.int32) - 7
    exponent = np.clip(exponent, 0, 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    encoded: np.ndarray = (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)
    return encoded


_ULAW_DECODE = _build_decode_table()
_ULAW_ENCODE = _build_encode_table()


def ulaw_decode(data: bytes) -> bytes:
    """G.711 μ-law to s16le PCM, one sample per input byte."""
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def ulaw_encode(pcm: bytes) -> bytes:
    """16-bit PCM (s16le) to G.711 μ-law, one byte per sample."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
    return _ULAW_ENCODE[samples].tobytes()


# --- streaming conversion -----------------------------------------------------------------


LIVE_QUALITY = "LQ"
"""soxr recipe for live audio; see the module docstring."""


class Converter:
    """Streams audio from one format to another; returns its input when they are equal.

    A stray odd byte of 16-bit PCM is kept for the next chunk instead of failing on it (a
    WebSocket frame may split a sample).
    """

    def __init__(
        self, source: AudioFormat, target: AudioFormat, quality: str = LIVE_QUALITY
    ) -> None:
        self.source = source
        self.target = target
        self.identity = source == target
        self._carry = b""
        self._resampler = (
            soxr.ResampleStream(source.rate, target.rate, 1, dtype="int16", quality=quality)
            if source.rate != target.rate
            else None
        )

    def convert(self, data: bytes, last: bool = False) -> bytes:
        """The next chunk in the target format; ``last`` flushes the resampler's tail."""
        if self.source.codec == "pcm" and (self._carry or len(data) & 1):
            data = self._carry + data
            cut = len(data) & ~1
            data, self._carry = data[:cut], data[cut:]
        if self.identity:
            return data
        pcm = ulaw_decode(data) if self.source.codec == "ulaw" else data
        if self._resampler is not None:
            samples = np.frombuffer(pcm, dtype="<i2")
            pcm = self._resampler.resample_chunk(samples, last=last).astype("<i2").tobytes()
        return ulaw_encode(pcm) if self.target.codec == "ulaw" else pcm


# --- measuring ----------------------------------------------------------------------------


def rms_dbfs(pcm: bytes) -> float:
    """Loudness of s16le PCM in dB relative to full scale (-inf for digital silence)."""
    if not pcm:
        return -math.inf
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(samples * samples)))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


def silence(fmt: AudioFormat, ms: int = FRAME_MS) -> bytes:
    """``ms`` milliseconds of silence in ``fmt`` (zero samples, or μ-law's ``0xFF``)."""
    if fmt.codec == "ulaw":
        return b"\xff" * fmt.frame_bytes(ms)
    return bytes(fmt.frame_bytes(ms))

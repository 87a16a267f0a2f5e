"""Which conversions a call needs, decided once from the two legs' formats.

The phone leg's format comes from Infobip's ``content-type`` (``audio/l16;rate=16000``); the
agent's two formats come from ``conversation_initiation_metadata`` and cannot be changed per call.
A converter is built only where the formats differ, so the common case (the media-stream config
set to the agent's rate) costs nothing per frame.

Why not :class:`callflow.audio.Converter`: it resamples with soxr's "HQ" recipe, whose streaming
delay is about 96 ms for a 2:1 ratio (8 <-> 16 kHz), in each direction: a tenth of a second added
to every turn of a live conversation. soxr's "LQ" recipe (16-bit precision, plenty for a phone
line) delays 12-24 ms. :class:`StreamConverter` is the same streaming conversion with the recipe
as a parameter, and it keeps a stray odd byte for the next chunk instead of failing on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from callflow.audio import AudioFormat, UnsupportedFormat, ulaw_decode, ulaw_encode

#: soxr recipe for live audio; see the module docstring.
LIVE_QUALITY = "LQ"


class StreamConverter:
    """Streams audio from one format to another; returns its input when they are equal."""

    def __init__(self, source: AudioFormat, target: AudioFormat, quality: str = LIVE_QUALITY):
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


def phone_rate(content_type: str, default: int) -> int:
    """The sample rate named in Infobip's ``content-type``; ``default`` when it names none.

    Only 16-bit linear PCM (``audio/l16``) is spoken on this leg; anything else is refused.
    """
    if not content_type:
        return default
    media, *params = (part.strip() for part in content_type.split(";"))
    if media.lower() != "audio/l16":
        raise UnsupportedFormat(f"unsupported phone-leg content type {content_type!r}")
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "rate":
            if not value.strip().isdigit():
                raise UnsupportedFormat(f"bad rate in phone-leg content type {content_type!r}")
            return int(value.strip())
    return default


@dataclass
class CallFormats:
    """The negotiated formats of one call and the converters between them."""

    phone: AudioFormat
    agent_input: AudioFormat
    agent_output: AudioFormat
    to_agent: StreamConverter
    to_phone: StreamConverter

    @classmethod
    def negotiate(cls, phone_rate_hz: int, user_input: str, agent_output: str) -> CallFormats:
        """Raises :class:`UnsupportedFormat` (its message is the call's end reason)."""
        phone = AudioFormat.phone(phone_rate_hz)
        agent_in = AudioFormat.parse(user_input)
        agent_out = AudioFormat.parse(agent_output)
        return cls(
            phone,
            agent_in,
            agent_out,
            StreamConverter(phone, agent_in),
            StreamConverter(agent_out, phone),
        )

    @property
    def converting(self) -> bool:
        return not (self.to_agent.identity and self.to_phone.identity)

    def describe(self) -> dict[str, str | bool]:
        return {
            "phone": self.phone.name,
            "agent_input": self.agent_input.name,
            "agent_output": self.agent_output.name,
            "converting": self.converting,
        }

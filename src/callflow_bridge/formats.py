"""Which conversions a call needs, decided once from the two legs' formats.

The phone leg's format comes from Infobip's ``content-type`` (``audio/l16;rate=16000``); the
agent's two formats come from ``conversation_initiation_metadata`` and cannot be changed per call.
Where the formats are equal the converter hands frames through untouched, so the common case (the
media-stream config set to the agent's rate) costs nothing per frame; where they differ it uses
the live resampling recipe (:data:`callflow_bridge.audio.LIVE_QUALITY`).
"""

from __future__ import annotations

from dataclasses import dataclass

from callflow_bridge.audio import AudioFormat, Converter, UnsupportedFormat


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
    to_agent: Converter
    to_phone: Converter

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
            Converter(phone, agent_in),
            Converter(agent_out, phone),
        )

    @property
    def converting(self) -> bool:
        """Whether either direction converts, i.e. the two legs' formats differ."""
        return not (self.to_agent.identity and self.to_phone.identity)

    def describe(self) -> dict[str, str | bool]:
        """The formats by name and whether the call converts (for the session's bridge record)."""
        return {
            "phone": self.phone.name,
            "agent_input": self.agent_input.name,
            "agent_output": self.agent_output.name,
            "converting": self.converting,
        }

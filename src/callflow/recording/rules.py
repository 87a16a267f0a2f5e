"""Whether and how a call is recorded: one small frozen object built from the settings.

Like :class:`callflow.consent.rules.ContactRules`, it is built once and handed to the code that
needs it, so that a per-flow file can later supply the same values. What the bridge needs of it
travels on the session (:attr:`callflow.models.Session.record_audio`, ``recording_max_seconds``),
set at trigger time, so a flow chosen then decides for the whole call.
"""

from __future__ import annotations

from dataclasses import dataclass

from callflow.config import Settings


@dataclass(frozen=True)
class RecordingRules:
    """Recording rules (see the ``recording_*`` settings)."""

    enabled: bool = False
    bucket: str = ""
    prefix: str = "recordings/"
    max_seconds: int = 900
    upload_attempts: int = 3
    wait_seconds: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> RecordingRules:
        """The rules the deployment's settings give; recording without a bucket is off."""
        return cls(
            enabled=settings.recording_enabled and bool(settings.recording_bucket.strip()),
            bucket=settings.recording_bucket.strip(),
            prefix=settings.recording_prefix,
            max_seconds=settings.recording_max_seconds or settings.infobip_max_duration,
            upload_attempts=settings.recording_upload_attempts,
            wait_seconds=settings.recording_wait_seconds,
        )

    def key(self, session_id: str) -> str:
        """The recording's S3 key: the prefix and the session id, never the phone number."""
        return recording_key(self.prefix, session_id)


def recording_key(prefix: str, session_id: str) -> str:
    """``<prefix><session id>.wav``."""
    return f"{prefix}{session_id}.wav"

"""Which collected item asks for a callback and how far it may be scheduled: one small frozen
object built from the settings, as :class:`callflow.consent.rules.ContactRules` is, so that a
per-flow file can later supply the same values."""

from __future__ import annotations

from dataclasses import dataclass

from callflow.config import Settings


@dataclass(frozen=True)
class CallbackRules:
    """Callback rules (see the ``callback_*`` settings)."""

    item: str = "callback_at"
    max_days: int = 30
    max_wait_seconds: int = 0
    task: bool = False
    """Create a Zoho Task for the record's owner with each callback scheduled."""
    task_subject: str = "Call back: the person asked for a callback"
    task_owner_field: str = "Owner"
    task_attempts: int = 7

    @classmethod
    def from_settings(cls, settings: Settings) -> CallbackRules:
        """The rules the deployment's settings give."""
        return cls(
            item=settings.callback_item.strip(),
            max_days=settings.callback_max_days,
            max_wait_seconds=settings.callback_max_wait_seconds,
            task=settings.callback_task,
            task_subject=settings.callback_task_subject.strip() or cls.task_subject,
            task_owner_field=settings.callback_task_owner_field.strip(),
            task_attempts=settings.callback_task_attempts,
        )

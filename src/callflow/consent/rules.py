"""The contact rules one call follows: which record field and which collected item carry an
opt-out, and how many dials a record and a number may get in a rolling window.

One small frozen object, built once from :class:`callflow.config.Settings` and handed to the
code that needs it, so that a per-flow file can later supply the same values without any of
that code reading the settings itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callflow.config import Settings

_TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
"""How an opt-out reads when it comes as text (a data-collection item typed ``string``)."""


@dataclass(frozen=True)
class ContactRules:
    """Opt-out and frequency-cap rules (see the ``optout_*`` and ``cap_*`` settings)."""

    optout_field: str = ""
    optout_item: str = "opt_out"
    record_cap: int = 3
    number_cap: int = 3
    cap_window_seconds: int = 24 * 3600

    @classmethod
    def from_settings(cls, settings: Settings) -> ContactRules:
        """The rules the deployment's settings give."""
        return cls(
            optout_field=settings.optout_field.strip(),
            optout_item=settings.optout_item.strip(),
            record_cap=settings.cap_attempts_per_record,
            number_cap=settings.cap_attempts_per_number,
            cap_window_seconds=settings.cap_window_seconds,
        )

    def record_opted_out(self, record: dict[str, Any]) -> bool:
        """Whether the record's opt-out checkbox is ticked (a Zoho checkbox reads as a JSON
        boolean; anything else, or no field configured, is not an opt-out)."""
        return bool(self.optout_field) and record.get(self.optout_field) is True

    def collected_optout(self, collected: dict[str, Any]) -> bool:
        """Whether the agent's data collection carries an opt-out: the configured item is
        ``true`` (a boolean, the number 1, or yes/true as text)."""
        if not self.optout_item:
            return False
        return is_yes(collected.get(self.optout_item))


def is_yes(value: object) -> bool:
    """A data-collection value that means yes: ``True``, ``1``, or "true"/"yes"/"y"/"1"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_WORDS
    return False

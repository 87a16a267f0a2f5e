"""Number fallback: the record's phone fields tried in the flow's order (``phone_fields``).

The session keeps the record's numbers as read at trigger time (``phone_numbers``) and the one
in use (``phone_field``, ``phone_raw``). The next one is taken when the number in use does not
parse (at prepare), or when its retry rule is spent on an outcome that says the number does not
reach the person (:data:`UNREACHABLE`); each number's attempts count from ``phone_from_attempt``.
"""

from __future__ import annotations

from dataclasses import dataclass

from callflow.models import Outcome, Session
from callflow.phone import InvalidPhone, Phone, normalise

UNREACHABLE = frozenset({Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED})
"""Outcomes after which, once the number's attempts are spent, the next number is tried."""


@dataclass(frozen=True)
class NextNumber:
    """The next valid number, its field, and the numbers skipped on the way as invalid."""

    field: str
    raw: str
    phone: Phone
    skipped: tuple[str, ...]


def next_number(session: Session, default_region: str) -> NextNumber | None:
    """The first valid number after the one in use, or ``None`` when none is left."""
    fields = [entry.get("field", "") for entry in session.phone_numbers]
    start = fields.index(session.phone_field) + 1 if session.phone_field in fields else len(fields)
    skipped: list[str] = []
    for entry in session.phone_numbers[start:]:
        field, raw = entry.get("field", ""), entry.get("raw", "")
        try:
            phone = normalise(raw, default_region)
        except InvalidPhone as error:
            skipped.append(f"{field}: {error}")
            continue
        return NextNumber(field, raw, phone, tuple(skipped))
    return None


def tries_on_number(session: Session) -> int:
    """The attempts made so far on the number in use (the current one included)."""
    return session.attempt - max(1, session.phone_from_attempt) + 1

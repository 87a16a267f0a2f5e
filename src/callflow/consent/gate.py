"""The check before every dial: is the person suppressed, is a cap reached?

``prepare`` asks :func:`suppressed` once the phone is normalised (a suppressed person is not even
scheduled); the admission step asks :func:`before_dial` for every attempt, once it holds its slots
and just before the dial, so a retry hours later sees an opt-out collected meanwhile on another
record with the same number, and the caps count what is really dialled.
"""

from __future__ import annotations

from dataclasses import dataclass

from callflow.admission.pools import holder_id
from callflow.consent.caps import FrequencyCaps, number_counter, record_counter
from callflow.consent.rules import ContactRules
from callflow.consent.suppression import SuppressionList
from callflow.masking import mask
from callflow.models import Outcome, Session
from callflow.observability import logger


@dataclass(frozen=True)
class Refusal:
    """Why a dial does not happen: the outcome written back and its detail."""

    outcome: Outcome
    detail: str


def suppressed(
    rules: ContactRules, suppressions: SuppressionList, session: Session, number: str
) -> Refusal | None:
    """A refusal when the record's opt-out checkbox (as read at trigger time) is ticked or
    ``number`` (E.164) is on the suppression list; ``None`` otherwise."""
    if rules.record_opted_out(session.record):
        return Refusal(Outcome.SUPPRESSED, f"the record's {rules.optout_field} is ticked")
    entry = suppressions.get(number)
    if entry is not None:
        why = f": {entry.why}" if entry.why else ""
        return Refusal(
            Outcome.SUPPRESSED,
            f"the number is on the suppression list since {entry.when[:10]}{why}",
        )
    return None


def before_dial(
    rules: ContactRules,
    suppressions: SuppressionList,
    caps: FrequencyCaps,
    session: Session,
    attempt: int,
) -> Refusal | None:
    """Suppression, then the caps: ``attempt`` is counted against the record's and the number's
    caps (atomically, idempotently), and a refusal comes back when either is full."""
    refusal = suppressed(rules, suppressions, session, session.phone)
    if refusal is not None:
        return refusal
    counters = [
        record_counter(session.module, session.record_id, rules.record_cap),
        number_counter(session.phone, rules.number_cap),
    ]
    full = caps.count(counters, holder_id(session.session_id, attempt), rules.cap_window_seconds)
    if not full:
        return None
    hours = rules.cap_window_seconds / 3600
    reached = ", ".join(f"{c.label}: {c.limit} calls in {hours:g} h" for c in full)
    logger.info(
        "frequency cap reached; not dialling",
        extra={"caps": [c.label for c in full], "phone": mask(session.phone)},
    )
    return Refusal(Outcome.CAPPED, f"call limit reached ({reached})")

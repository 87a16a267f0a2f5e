"""An opt-out the agent collected, made lasting: the number goes on the suppression list.

Run by the writeback's fields step before anything is sent to Zoho, so a Zoho failure (retried
by the state machine, or replayed) suppresses nothing twice and loses no opt-out: the list entry
is idempotent, and the record's checkbox is written with the other fields.
"""

from __future__ import annotations

from typing import Any

from callflow.consent.rules import ContactRules
from callflow.consent.suppression import SuppressionList
from callflow.masking import mask
from callflow.models import Session
from callflow.observability import logger


def record_collected_optout(
    rules: ContactRules,
    suppressions: SuppressionList,
    session: Session,
    collected: dict[str, Any],
) -> dict[str, Any]:
    """When ``collected`` carries an opt-out: suppress the session's number and say so in the
    receipt (``optout``: the number masked and the field to tick);
    an empty dict when there is none."""
    if not rules.collected_optout(collected) or not session.phone.startswith("+"):
        return {}
    added = suppressions.add(
        session.phone,
        why=f"asked the agent not to be called again ({rules.optout_item})",
        source=f"agent, session {session.session_id}, {session.module}/{session.record_id}",
    )
    logger.info(
        "opt-out collected; number suppressed",
        extra={"phone": mask(session.phone), "newly_suppressed": added},
    )
    return {"optout": {"number": mask(session.phone), "field": rules.optout_field}}

"""The suppression list: phone numbers that are never dialled, one table item each.

An entry is ``suppress#<E.164>`` with ``when`` (ISO 8601, UTC), ``why`` and ``source`` (who put it
there: ``agent`` for an opt-out the agent collected, ``operator``...). It has no TTL: an opt-out
lasts until an operator removes it. Adding is idempotent: the first entry for a number is kept
(its ``when`` is the opt-out's date), and a repeat (a retried writeback, a second opt-out)
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callflow.aws import CONDITION_FAILED, error_code
from callflow.models import iso, utcnow

PREFIX = "suppress#"


def suppression_key(number: str) -> dict[str, str]:
    """The table key of ``number``'s entry (E.164, with its ``+``)."""
    if not number.startswith("+") or not number[1:].isdigit():
        raise ValueError("a suppressed number is given in E.164")
    return {"pk": f"{PREFIX}{number}"}


@dataclass(frozen=True)
class Suppression:
    """One suppressed number: since when, why, and who suppressed it."""

    number: str
    when: str
    why: str
    source: str


class SuppressionList:
    """Suppressed numbers on the session table (a boto3 ``Table`` resource)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, number: str) -> Suppression | None:
        """``number``'s entry, read consistently; ``None`` when it is not suppressed."""
        item = self.table.get_item(Key=suppression_key(number), ConsistentRead=True).get("Item")
        if not item:
            return None
        return Suppression(
            number=number,
            when=str(item.get("when") or ""),
            why=str(item.get("why") or ""),
            source=str(item.get("source") or ""),
        )

    def add(self, number: str, *, why: str, source: str) -> bool:
        """Suppress ``number``; ``True`` when this call added it, ``False`` when it already was
        (the first entry stays as it is)."""
        item = {
            **suppression_key(number),
            "number": number,
            "when": iso(utcnow()),
            "why": why[:500],
            "source": source[:200],
        }
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise
            return False
        return True

    def remove(self, number: str) -> bool:
        """Take ``number`` off the list (an operator's decision); whether it was on it."""
        answer = self.table.delete_item(Key=suppression_key(number), ReturnValues="ALL_OLD")
        return bool(answer.get("Attributes"))

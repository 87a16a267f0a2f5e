"""Frequency caps: at most N dials per record and per number in a rolling window.

A counter is one table item (``cap#record#<module>#<id>``, ``cap#number#<E.164>``) whose
``attempts`` map holds one entry per dial (the session's attempt, ``<session id>#<attempt>``)
with the Unix time it was counted. Counting a dial is one ``TransactWriteItems`` over every
counter the dial needs, each a conditional ``SET attempts.<holder>`` that holds only while the
map has fewer than N entries or already holds this holder. So the check and the count are one
atomic write: two concurrent triggers for the same number cannot both take its last place, a
dial is counted against the record and the number or against neither, and a retried count
(an answer lost, the admission step run again) counts nothing twice.

Entries older than the window are removed before the count, each removal conditional on the
entry being the one read; an entry not yet removed only makes the count stricter, never looser.
The item's TTL is refreshed on every count, so a counter nobody used for a window disappears.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from callflow.aws import CONDITION_FAILED, error_code

CANCELLED_BY_CONDITION = "ConditionalCheckFailed"
"""A transaction's cancellation reason for an item whose condition failed (not the
``ConditionalCheckFailedException`` of a single write)."""
CONFLICT_TRIES = 4
"""Tries of a count cancelled only by concurrent transactions on the same counters."""


class CapsBusy(RuntimeError):
    """Concurrent counts kept cancelling this one: nothing was counted, and the workflow's
    retry asks again."""


@dataclass(frozen=True)
class Counter:
    """A cap: its table key, what it counts (for the detail written back) and its limit."""

    pk: str
    label: str
    limit: int


def record_counter(module: str, record_id: str, limit: int) -> Counter:
    """The cap on one CRM record's dials."""
    return Counter(f"cap#record#{module}#{record_id}", f"record {module}/{record_id}", limit)


def number_counter(number: str, limit: int) -> Counter:
    """The cap on one phone number's dials (E.164); the label does not show the number."""
    return Counter(f"cap#number#{number}", "phone number", limit)


class FrequencyCaps:
    """Counts dials against caps kept on a DynamoDB table (boto3 ``Table`` resource)."""

    def __init__(self, table: Any, clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.client = table.meta.client
        self.clock = clock

    def count(
        self, counters: Sequence[Counter], holder: str, window_seconds: int
    ) -> tuple[Counter, ...]:
        """Count one dial (``holder``) against every counter, or against none; the counters
        that were full (empty: counted)."""
        counters = [c for c in counters if c.limit > 0]
        if not counters:
            return ()
        now = int(self.clock())
        expires = now + window_seconds + 86400
        for counter in counters:
            self._prepare(counter, now - window_seconds, expires)
        items = [
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": {"pk": counter.pk},
                    "UpdateExpression": (
                        "SET attempts.#holder = if_not_exists(attempts.#holder, :now), "
                        "expires_at = :expires"
                    ),
                    "ConditionExpression": (
                        "attribute_exists(attempts.#holder) OR size(attempts) < :limit"
                    ),
                    "ExpressionAttributeNames": {"#holder": holder},
                    "ExpressionAttributeValues": {
                        ":now": now,
                        ":limit": counter.limit,
                        ":expires": expires,
                    },
                }
            }
            for counter in counters
        ]
        for _ in range(CONFLICT_TRIES):
            try:
                self.client.transact_write_items(TransactItems=items)
            except Exception as error:
                if error_code(error) != "TransactionCanceledException":
                    raise
                reasons = getattr(error, "response", {}).get("CancellationReasons") or []
                codes = [str(reason.get("Code") or "") for reason in reasons]
                full = tuple(
                    c
                    for c, code in zip(counters, codes, strict=False)
                    if code == CANCELLED_BY_CONDITION
                )
                if full:
                    return full
                # Cancelled by a concurrent transaction on a counter, not by a full one:
                # nothing was counted, and a moment later the same write may well succeed.
                time.sleep(random.uniform(0.01, 0.05))
                continue
            return ()
        raise CapsBusy("concurrent dials kept the frequency count from going through")

    def attempts(self, counter: Counter) -> dict[str, int]:
        """The counter's entries (holder -> Unix time counted), read consistently."""
        item = self.table.get_item(Key={"pk": counter.pk}, ConsistentRead=True).get("Item")
        return {str(k): int(v) for k, v in ((item or {}).get("attempts") or {}).items()}

    def _prepare(self, counter: Counter, oldest: int, expires: int) -> None:
        """Create the counter's item with an empty map (a nested ``SET`` needs the map), or
        remove its entries counted before ``oldest``."""
        item = self.table.get_item(Key={"pk": counter.pk}, ConsistentRead=True).get("Item")
        if item is None:
            try:
                # TTL'd like a counted one: a counter whose first count never came goes too.
                self.table.put_item(
                    Item={"pk": counter.pk, "attempts": {}, "expires_at": expires},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except Exception as error:
                if error_code(error) != CONDITION_FAILED:
                    raise
            return
        stale = {str(h): int(t) for h, t in (item.get("attempts") or {}).items() if int(t) < oldest}
        if not stale:
            return
        names = {f"#h{i}": holder for i, holder in enumerate(stale)}
        values = {f":t{i}": counted for i, counted in enumerate(stale.values())}
        try:
            self.table.update_item(
                Key={"pk": counter.pk},
                UpdateExpression="REMOVE " + ", ".join(f"attempts.{name}" for name in names),
                ConditionExpression=" AND ".join(
                    f"attempts.#h{i} = :t{i}" for i in range(len(stale))
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise

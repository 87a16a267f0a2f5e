"""Counting semaphores on the session table: the slots a call needs before it is dialled.

A pool is one item, ``pool#<name>``, whose ``leases`` map holds one entry per holder (a session's
attempt, ``<session id>#<attempt>``) with the Unix time its lease expires. Taking a slot is a
conditional ``SET leases.<holder>`` that holds only while the map has fewer entries than the
pool's capacity, or already holds this holder (so a retried acquire whose answer was lost takes
nothing twice and only extends the lease). A call needs a slot in every pool (the agent plan's
concurrent conversations, the bridge's capacity), so the writes to all of them are one
``TransactWriteItems``: either every slot is taken or none is.

Releasing removes the holder's entry; removing an absent one changes nothing, so every end path
can release without knowing whether another did. A release that never happens (a Lambda that
died, an execution stopped from outside without its status event) cannot leak a slot for good:
a full pool's expired leases are removed before the next acquire is refused.

The capacity is checked at each acquire, not stored: lowering it lets the leases drain to the
new figure; raising it admits more at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from callflow.aws import CONDITION_FAILED, error_code, failed_conditions


@dataclass(frozen=True)
class Pool:
    """A named pool of ``capacity`` slots."""

    name: str
    capacity: int

    @property
    def key(self) -> dict[str, str]:
        """The pool item's table key."""
        return {"pk": f"pool#{self.name}"}


@dataclass(frozen=True)
class Refusal:
    """The pools that had no free slot, by name."""

    full: tuple[str, ...]


def holder_id(session_id: str, attempt: int) -> str:
    """The lease holder for one attempt of a session: a late release for an earlier attempt
    can then never free the slot a later attempt holds."""
    return f"{session_id}#{attempt}"


CONFLICT_TRIES = 3
"""Tries of an acquire cancelled only by concurrent transactions on the same pool items."""


class Pools:
    """Acquire and release slots in pools kept on a DynamoDB table (boto3 ``Table`` resource)."""

    def __init__(self, table: Any, clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.client = table.meta.client
        self.clock = clock
        self._created: set[str] = set()

    def acquire(self, pools: Sequence[Pool], holder: str, lease_seconds: int) -> Refusal | None:
        """Take a slot for ``holder`` in every pool, or in none; ``None`` when taken.

        A refusal first reclaims the full pools' expired leases and, if that freed anything,
        tries once more.
        """
        if not pools:
            return None
        for pool in pools:
            self._ensure(pool)
        refusal = self._transact(pools, holder, lease_seconds)
        if refusal is None:
            return None
        if any([self._reclaim(pool) for pool in pools if pool.name in refusal.full]):
            return self._transact(pools, holder, lease_seconds)
        return refusal

    def release(self, pools: Sequence[Pool], holder: str) -> None:
        """Give up ``holder``'s slot in each pool; idempotent (an absent lease is no error)."""
        for pool in pools:
            try:
                self.table.update_item(
                    Key=pool.key,
                    UpdateExpression="REMOVE leases.#holder",
                    ConditionExpression="attribute_exists(leases)",
                    ExpressionAttributeNames={"#holder": holder},
                )
            except Exception as error:
                if error_code(error) != CONDITION_FAILED:
                    raise

    def holders(self, pool: Pool) -> dict[str, int]:
        """The pool's leases (holder -> expiry, Unix time), read consistently."""
        item = self.table.get_item(Key=pool.key, ConsistentRead=True).get("Item") or {}
        return {str(k): int(v) for k, v in (item.get("leases") or {}).items()}

    def _transact(self, pools: Sequence[Pool], holder: str, lease_seconds: int) -> Refusal | None:
        expires = int(self.clock()) + lease_seconds
        items = [
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": pool.key,
                    "UpdateExpression": "SET leases.#holder = :expires",
                    "ConditionExpression": (
                        "attribute_exists(leases.#holder) OR size(leases) < :capacity"
                    ),
                    "ExpressionAttributeNames": {"#holder": holder},
                    "ExpressionAttributeValues": {":expires": expires, ":capacity": pool.capacity},
                }
            }
            for pool in pools
        ]
        for _ in range(CONFLICT_TRIES):
            try:
                self.client.transact_write_items(TransactItems=items)
            except Exception as error:
                failed = failed_conditions(error, pools)
                if failed is None:
                    raise
                full = tuple(pool.name for pool in failed)
                if full:
                    return Refusal(full)
                # Cancelled by a concurrent transaction on a pool item, not by a full pool:
                # nothing was taken, and a moment later the same write may well succeed.
                time.sleep(random.uniform(0.01, 0.05))
                continue
            return None
        return Refusal(tuple(pool.name for pool in pools))

    def _reclaim(self, pool: Pool) -> bool:
        """Remove the pool's expired leases; whether any went. Each removal is conditional on
        the lease being the one read, so a holder that renewed it meanwhile keeps it."""
        now = int(self.clock())
        expired = {h: e for h, e in self.holders(pool).items() if e <= now}
        if not expired:
            return False
        names = {f"#h{i}": holder for i, holder in enumerate(expired)}
        values = {f":e{i}": expiry for i, expiry in enumerate(expired.values())}
        removes = ", ".join(f"leases.#h{i}" for i in range(len(expired)))
        condition = " AND ".join(f"leases.#h{i} = :e{i}" for i in range(len(expired)))
        try:
            self.table.update_item(
                Key=pool.key,
                UpdateExpression=f"REMOVE {removes}",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise
            return False
        return True

    def _ensure(self, pool: Pool) -> None:
        """Create the pool's item with an empty lease map, once per process: a nested ``SET``
        needs the map to exist."""
        if pool.name in self._created:
            return
        try:
            self.table.put_item(
                Item={**pool.key, "leases": {}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise
        self._created.add(pool.name)

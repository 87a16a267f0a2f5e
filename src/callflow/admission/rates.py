"""Account-wide request rates shared by every Lambda: Infobip's call and dialog creations.

Each rate is a schedule on one item, ``rate#<name>``, holding the earliest time (``next_ms``,
Unix milliseconds) at which the next request may go: the generic cell rate algorithm, the
token bucket's equivalent with a burst of one. A caller reserves the next free time and sleeps
until it, so requests leave at least ``1 / per_second`` apart whichever Lambda sends them, and
any one-second window holds at most ``per_second`` of them.

A reservation is one conditional write and never a read: when the schedule is idle (its next
time has passed) it restarts at now; when busy, the next time moves on by one interval, unless
that would mean waiting longer than the caller can (then nothing is reserved and the caller
backs off through the state machine's Retry).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from callflow.aws import CONDITION_FAILED, error_code


class RateLimited(Exception):
    """The account-wide rate has no room within the wait the caller can afford; the workflow's
    Retry tries again later (the name is part of the ASL's contract)."""


class Rates:
    """Reservations on a shared schedule per named rate (boto3 ``Table`` resource)."""

    def __init__(
        self,
        table: Any,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table = table
        self.clock = clock
        self.sleep = sleep

    def reserve(self, name: str, per_second: float, max_wait_s: float) -> float | None:
        """Reserve the next send time of ``name``; the seconds to wait until it (0 for now), or
        ``None`` when it is more than ``max_wait_s`` away (nothing reserved)."""
        interval = math.ceil(1000 / per_second)
        now = int(self.clock() * 1000)
        key = {"pk": f"rate#{name}"}
        expires = now // 1000 + 3600
        try:
            self.table.update_item(
                Key=key,
                UpdateExpression="SET next_ms = :next, expires_at = :expires",
                ConditionExpression="attribute_not_exists(next_ms) OR next_ms <= :now",
                ExpressionAttributeValues={
                    ":next": now + interval,
                    ":now": now,
                    ":expires": expires,
                },
            )
            return 0.0
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise
        latest_start = now + int(max_wait_s * 1000)
        try:
            response = self.table.update_item(
                Key=key,
                UpdateExpression="ADD next_ms :interval SET expires_at = :expires",
                ConditionExpression="next_ms <= :latest",
                ExpressionAttributeValues={
                    ":interval": interval,
                    ":latest": latest_start,
                    ":expires": expires,
                },
                ReturnValues="UPDATED_NEW",
            )
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise
            return None
        start = int(response["Attributes"]["next_ms"]) - interval
        return max(0.0, (start - now) / 1000)

    def wait_turn(self, name: str, per_second: float, max_wait_s: float) -> float:
        """Reserve and sleep until the reserved time; the seconds slept. :class:`RateLimited`
        when the schedule is fuller than ``max_wait_s``."""
        wait = self.reserve(name, per_second, max_wait_s)
        if wait is None:
            raise RateLimited(f"{name}: no room at {per_second}/s within {max_wait_s:g} s")
        if wait > 0:
            self.sleep(wait)
        return wait

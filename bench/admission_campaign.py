"""A simulated campaign of 1,000 records through admission: throughput against the theoretical
maximum, slot waits, over-cap calls and the table's cost per record.

What is real: the Admit step (:func:`callflow.lifecycle.admission.admit`), the slot pools and
the call-creation rate on DynamoDB (moto, in this process), and the Retry policy that waits for a
slot, read from the workflow's own ASL file (interval, backoff, maximum delay, full jitter).
What is simulated, on a virtual clock so 1,000 records take seconds: Step Functions running
them (a Distributed Map of ``MAX_CONCURRENCY`` executions at a time, each starting the next record
when it ends), the phone network (a fast one: short rings and talks, some no answers and busy
lines), and the time after the call (analysis, writeback) during which an execution holds no slot
but still counts against the Map's concurrency.

The theoretical maximum is ``min(cap / mean slot-holding time, 6/s)`` calls per second: every
slot busy all the time, or Infobip's creation rate, whichever binds. Targets (issue 11): at least
0.9 of it, no call over the cap (so no refusal by the agent), no call creation over 6/s.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench._stats import percentile

RECORDS = 1000
CAP = 4
SEED = 11
START_OVERHEAD_S = 0.3
"""From an item's start to its first Admit: the execution starting, the session made, Prepare."""
AFTER_CALL_S = (3.0, 8.0)
"""An answered call's analysis and writeback (uniform range); unanswered ones write back only."""
UNANSWERED_AFTER_S = (1.0, 2.0)


@dataclass(frozen=True)
class Call:
    """How one record's call goes: seconds the slot is held (ringing plus talk)."""

    held_s: float
    answered: bool


def phone_network(rng: random.Random) -> Call:
    """A fast phone network: 60 % answer within 1-2 s and talk 4-8 s, 25 % ring out at 6 s,
    15 % are busy at once."""
    draw = rng.random()
    if draw < 0.60:
        return Call(rng.uniform(1, 2) + rng.uniform(4, 8), True)
    if draw < 0.85:
        return Call(6.0, False)
    return Call(0.5, False)


@dataclass(frozen=True)
class RetryPolicy:
    """The Admit state's Retry on NoSlotFree, as the ASL file has it."""

    interval_s: float
    backoff: float
    max_delay_s: float
    max_attempts: int
    full_jitter: bool

    @classmethod
    def from_asl(cls) -> RetryPolicy:
        from callflow_functions.definition import definition_text

        states = json.loads(definition_text())["States"]
        [policy] = [r for r in states["Admit"]["Retry"] if r["ErrorEquals"] == ["NoSlotFree"]]
        return cls(
            float(policy["IntervalSeconds"]),
            float(policy["BackoffRate"]),
            float(policy.get("MaxDelaySeconds", 1e9)),
            int(policy["MaxAttempts"]),
            policy.get("JitterStrategy") == "FULL",
        )

    def delay(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (1-based), as Step Functions computes it."""
        delay = min(self.interval_s * self.backoff ** (retry - 1), self.max_delay_s)
        return rng.uniform(0, delay) if self.full_jitter else delay


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@dataclass
class Run:
    """What one simulated campaign measured."""

    started_calls: list[float] = field(default_factory=list)
    slot_waits: list[float] = field(default_factory=list)
    held: list[float] = field(default_factory=list)
    live: int = 0
    max_live: int = 0
    over_cap: int = 0
    admits: int = 0
    requests: Counter[str] = field(default_factory=Counter)


def simulate(max_concurrency: int, seed: int = SEED) -> dict[str, Any]:
    """One campaign of :data:`RECORDS` records, :data:`CAP` agent slots, ``max_concurrency``
    executions at a time."""
    from moto import mock_aws

    with mock_aws():
        return _simulate(max_concurrency, seed)


def _simulate(max_concurrency: int, seed: int) -> dict[str, Any]:
    import callflow.lifecycle.admission as admission
    from callflow.admission import slots
    from callflow.admission.pools import Pools
    from callflow.admission.rates import Rates
    from callflow.config import Settings
    from callflow.lifecycle.calling import CALL_RATE
    from callflow.models import Session
    from callflow.services import Services
    from callflow_dev.local.aws import create_table

    rng = random.Random(seed)
    clock = Clock()
    create_table("bench-admission", "us-east-1")
    settings = Settings(
        table_name="bench-admission",
        aws_region="us-east-1",
        agent_concurrency=CAP,
        bridge_capacity=80,
        calling_hours_start="00:00",
        calling_hours_end="24:00",
        calling_days="0,1,2,3,4,5,6",
        default_timezone="UTC",
    )
    services = Services(settings)
    table = services.store.table
    services.__dict__["pools"] = Pools(table, clock=clock)
    rates = Rates(table, clock=clock)
    admission.utcnow = clock.datetime  # type: ignore[attr-defined]
    # No Lambda ends here to flush the metrics: they would pile up and print EMF among the JSON.
    for name in ("count", "seconds"):
        setattr(admission, name, lambda *_: None)
    run = Run()
    table.meta.client.meta.events.register(
        "before-call.dynamodb.*",
        lambda model, **_: run.requests.update([model.name]),
    )
    policy = RetryPolicy.from_asl()
    calls = [phone_network(rng) for _ in range(RECORDS)]
    events: list[tuple[float, int, str, int]] = []
    sequence = 0
    queued_at: dict[int, float] = {}
    retries: Counter[int] = Counter()

    def at(when: float, action: str, record: int) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (when, sequence, action, record))

    def start(record: int) -> None:
        services.store.create(
            Session(
                session_id=f"r{record}",
                module="Leads",
                record_id=str(record),
                # A number each, as in a real campaign: the frequency caps (per record and
                # per number) count every dial, and none of these reaches its cap.
                phone=f"+1415{5550000 + record}",
                timezone="UTC",
            )
        )
        queued_at[record] = clock.now + START_OVERHEAD_S
        at(clock.now + START_OVERHEAD_S, "admit", record)

    begin = clock.now
    next_record = 0
    for _ in range(min(max_concurrency, RECORDS)):
        start(next_record)
        next_record += 1
    while events:
        when, _, action, record = heapq.heappop(events)
        clock.now = when
        if action == "admit":
            run.admits += 1
            try:
                admission.admit(services, {"session_id": f"r{record}"})
            except admission.NoSlotFree:
                retries[record] += 1
                if retries[record] > policy.max_attempts:
                    raise RuntimeError("a record ran out of admission retries") from None
                at(clock.now + policy.delay(retries[record], rng), "admit", record)
                continue
            wait = rates.reserve(CALL_RATE, settings.infobip_calls_per_second, 10.0)
            if wait is None:
                raise RuntimeError("the call rate refused within its wait")
            run.slot_waits.append(clock.now - queued_at[record])
            run.started_calls.append(clock.now + wait)
            run.held.append(calls[record].held_s)
            run.live += 1
            run.max_live = max(run.max_live, run.live)
            run.over_cap += run.live > CAP
            at(clock.now + wait + calls[record].held_s, "hang_up", record)
        elif action == "hang_up":
            run.live -= 1
            slots.release(services, services.store.require(f"r{record}"))
            after = AFTER_CALL_S if calls[record].answered else UNANSWERED_AFTER_S
            at(clock.now + rng.uniform(*after), "done", record)
        elif action == "done":
            # moto copies every table for each transaction: a table of ended sessions would make
            # the run quadratic in records (DynamoDB does no such thing). The pools stay.
            table.delete_item(Key={"pk": f"session#r{record}"})
            if next_record < RECORDS:
                start(next_record)
                next_record += 1
    return _figures(run, clock.now - begin, max_concurrency, settings.infobip_calls_per_second)


def _figures(run: Run, duration_s: float, max_concurrency: int, rate: float) -> dict[str, Any]:
    mean_held = statistics.fmean(run.held)
    theoretical = min(CAP / mean_held, rate)
    first, last = min(run.started_calls), max(run.started_calls)
    # The steady state: calls started between the first and the last start, per second.
    achieved = (len(run.started_calls) - 1) / (last - first)
    starts = sorted(run.started_calls)
    per_second_max = max(
        sum(1 for t in starts[i:] if t < start + 1.0) for i, start in enumerate(starts)
    )
    writes = sum(
        run.requests[op] for op in ("UpdateItem", "PutItem", "DeleteItem", "TransactWriteItems")
    )
    return {
        "max_concurrency": max_concurrency,
        "achieved_calls_per_min": round(achieved * 60, 2),
        "theoretical_calls_per_min": round(theoretical * 60, 2),
        "ratio_to_theoretical": round(achieved / theoretical, 3),
        "slot_wait_p50_s": round(percentile(run.slot_waits, 0.5), 2),
        "slot_wait_p99_s": round(percentile(run.slot_waits, 0.99), 2),
        "max_live_calls": run.max_live,
        "over_cap_calls": run.over_cap,
        "max_call_creations_in_1s": per_second_max,
        "admit_invocations_per_record": round(run.admits / RECORDS, 2),
        "dynamodb_writes_per_record": round((writes - run.requests["DeleteItem"]) / RECORDS, 2),
        "dynamodb_requests_per_record": round(sum(run.requests.values()) / RECORDS, 2),
        "campaign_duration_s": round(duration_s, 1),
    }


def main() -> None:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # On a virtual clock the figures do not move with the machine's load: one run per setting.
    for max_concurrency in (2 * CAP, 3 * CAP):
        print(
            json.dumps(
                {
                    "benchmark": "admission_campaign",
                    "records": RECORDS,
                    "cap": CAP,
                    **simulate(max_concurrency),
                    "target_ratio": 0.9,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

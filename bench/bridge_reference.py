"""Bridge CPU as a ratio to a reference relay, measured in the same run under the same load.

The absolute figure (ms of CPU per call-second) moves with the machine and whatever else runs on
it; the ratio to the leanest possible relay doing the same job does not, so it is the figure a
change to the bridge is judged by (issue 13's target: ratio <= 0.5). The reference is
``bench/reference/relay.js``: Node with the ``ws`` package, permessage-deflate off on both
sockets, no pacing and no checks.

Both relays run in processes of their own against the same echo agent and the same legs (the
harness of ``bench.bridge_load``: 20 ms PCM frames at real time, legs joining 20 a second). The
relays alternate, ours then the reference, for ``ROUNDS`` rounds, since the machine is shared and
noisy; in each phase 100 legs connect and are measured, then 100 more join and 200 are measured.
CPU is each process's ``/proc/<pid>/stat`` utime+stime over the steady-state window, divided by
the call-seconds streamed in it. One JSON line per leg count: the medians, the median of the
per-round ratios, and every round's figures (the spread).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.bridge_load import (
    EchoAgentProtocol,
    Harness,
    Run,
    RunningRelay,
    Window,
    bridge_running,
    relay_running,
)

REFERENCE = Path(__file__).resolve().parent / "reference"
ROUNDS = 3
LEG_COUNTS = (100, 200)
WINDOW_S = 4.0
TARGET_RATIO = 0.5


async def phase(
    bench: Harness,
    relay: RunningRelay,
    leg_counts: tuple[int, ...] = LEG_COUNTS,
    window_s: float = WINDOW_S,
) -> dict[int, tuple[Window, int]]:
    """Load one relay: 100 legs, measure, 100 more, measure (``leg_counts``); then close them.

    Each window comes with the number of legs that reached the agent: on a loaded machine a
    relay may not admit them all in time, which the line reports rather than failing the run.
    """
    bench.relay_port = relay.port
    bench.run = Run()
    stop = asyncio.Event()
    ticker = asyncio.create_task(bench.ticker(stop))
    windows: dict[int, tuple[Window, int]] = {}
    try:
        for legs in leg_counts:
            await bench.connect(legs - len(bench.run.legs))
            connected = len(bench.run.init_at)
            windows[legs] = (await bench.measure(window_s, relay.pid), connected)
    finally:
        stop.set()
        await ticker
        await bench.close_legs()
    return windows


def summary(
    legs: int, rounds: list[dict[str, tuple[Window, int]]], load: list[float]
) -> dict[str, Any]:
    ours = [r["bridge"][0].cpu_ms_per_call_second for r in rounds]
    ref = [r["reference"][0].cpu_ms_per_call_second for r in rounds]
    ratios = [round(o / r, 3) for o, r in zip(ours, ref, strict=True)]
    ratio = round(statistics.median(ratios), 3)
    return {
        "benchmark": "bridge_reference",
        "legs": legs,
        "bridge_cpu_ms_per_call_second": round(statistics.median(ours), 2),
        "reference_cpu_ms_per_call_second": round(statistics.median(ref), 2),
        "bridge_cpu_ratio_to_reference": ratio,
        "target_ratio": TARGET_RATIO,
        "under_target": ratio <= TARGET_RATIO,
        "rounds": [
            {
                "bridge_cpu_ms_per_call_second": o,
                "reference_cpu_ms_per_call_second": f,
                "ratio": q,
                "bridge_connected": r["bridge"][1],
                "reference_connected": r["reference"][1],
                "bridge_rtt_p99_ms": r["bridge"][0].rtt_p99_ms,
                "reference_rtt_p99_ms": r["reference"][0].rtt_p99_ms,
                "bridge_rss_kb": r["bridge"][0].rss_kb,
                "reference_rss_kb": r["reference"][0].rss_kb,
                "harness_cpu_pct": [
                    r["bridge"][0].harness_cpu_pct,
                    r["reference"][0].harness_cpu_pct,
                ],
            }
            for o, f, q, r in zip(ours, ref, ratios, rounds, strict=True)
        ],
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        # The machine is shared: the load average before and after says how noisy the run was.
        "load_average_1m": load,
    }


async def compare(
    rounds: int = ROUNDS, leg_counts: tuple[int, ...] = LEG_COUNTS, window_s: float = WINDOW_S
) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (REFERENCE / "node_modules" / "ws").is_dir():
        raise RuntimeError("needs node and `npm ci --prefix bench/reference` (make bench does it)")
    bench = Harness()
    load = [round(os.getloadavg()[0], 2)]
    loop = asyncio.get_running_loop()
    agent = await loop.create_server(lambda: EchoAgentProtocol(bench), "127.0.0.1", 0)
    agent_port = agent.sockets[0].getsockname()[1]
    agent_url = f"ws://127.0.0.1:{agent_port}/v1/convai/conversation?agent_id=bench"
    reference_command = [node, str(REFERENCE / "relay.js"), agent_url]
    per_legs: dict[int, list[dict[str, tuple[Window, int]]]] = {legs: [] for legs in leg_counts}
    async with (
        agent,
        bridge_running(agent_port, rounds * max(leg_counts)) as bridge,
        relay_running(reference_command, "reference relay") as reference,
    ):
        for _ in range(rounds):
            ours = await phase(bench, bridge, leg_counts, window_s)
            # The reference ignores tokens: its legs reuse the numbers the bridge's did not need.
            used, bench.sessions_used = bench.sessions_used, 10**6
            ref = await phase(bench, reference, leg_counts, window_s)
            bench.sessions_used = used
            for legs in leg_counts:
                per_legs[legs].append({"bridge": ours[legs], "reference": ref[legs]})
    load.append(round(os.getloadavg()[0], 2))
    lines = [summary(legs, rounds, load) for legs, rounds in per_legs.items()]
    if len(leg_counts) > 1:
        memory = memory_per_leg(per_legs, leg_counts[0], leg_counts[-1])
        for line in lines:
            line.update(memory)
    return lines


def memory_per_leg(
    per_legs: dict[int, list[dict[str, tuple[Window, int]]]], low: int, high: int
) -> dict[str, Any]:
    """Each relay's resident memory per leg: its growth from ``low`` legs to ``high`` legs in the
    same phase, over the legs added (what the process holds before any leg cancels out)."""
    result: dict[str, Any] = {}
    for relay in ("bridge", "reference"):
        growth = [
            (up[relay][0].rss_kb - down[relay][0].rss_kb) / (high - low)
            for down, up in zip(per_legs[low], per_legs[high], strict=True)
        ]
        result[f"{relay}_kb_per_leg"] = round(statistics.median(growth), 1)
        result[f"{relay}_kb_per_leg_rounds"] = [round(g, 1) for g in growth]
    return result


def main(argv: list[str] | None = None) -> None:
    """``make bench`` runs this with no arguments; the options are for trying a change out."""
    parser = argparse.ArgumentParser(prog="python -m bench.bridge_reference")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds")
    parser.add_argument(
        "--legs",
        type=int,
        nargs="+",
        default=list(LEG_COUNTS),
        help="leg counts measured in each phase, ascending (legs join, never leave)",
    )
    parser.add_argument("--window", type=float, default=WINDOW_S, help="seconds per window")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    leg_counts = tuple(sorted(set(args.legs)))
    if args.rounds < 1 or leg_counts[0] < 1 or args.window <= 0:
        parser.error("rounds, legs and window must be positive")
    import uvloop

    started = time.perf_counter()
    lines = uvloop.run(compare(args.rounds, leg_counts, args.window))
    for line in lines:
        line["duration_s"] = round(time.perf_counter() - started, 1)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

"""The API's cold start: fresh processes import the Lambda entry point and serve a first request.

Each of several fresh Python processes imports ``callflow_functions.api`` and serves its first
request through the Mangum handler, as a Lambda cold start does (the interpreter's own start-up,
which Lambda's runtime has already done, is not counted). Two first requests: ``GET /health`` and an
Infobip event, which also builds the DynamoDB client and reads the table (a moto server in a
process of its own, ``bench/_moto.py``). Median over the processes. Target: <= 300 ms.

The project's own modules are compiled to bytecode first, as the Lambda bundle ships them (see
``infra/cdk/callflow_infra/bundle.py``); the installed dependencies already are.

Run with ``python -m bench api_cold_start``.
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench._lambda import INFOBIP_PATH, SECRETS, http_event, infobip_basic_auth, ringing

ROOT = Path(__file__).resolve().parents[1]
RUNS = 7

FIRST_REQUEST = r"""
import json, sys, time
t0 = time.perf_counter()
from callflow_functions.api import handler
t1 = time.perf_counter()
from bench._lambda import LambdaContext
response = handler(json.loads(sys.argv[1]), LambdaContext())
t2 = time.perf_counter()
assert response["statusCode"] < 500, response
print(json.dumps({"import_ms": (t1 - t0) * 1000, "total_ms": (t2 - t0) * 1000}))
"""


def first_request_ms(event: dict[str, Any]) -> float:
    result = subprocess.run(
        [sys.executable, "-c", FIRST_REQUEST, json.dumps(event)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return float(json.loads(result.stdout.strip().splitlines()[-1])["total_ms"])


def main() -> None:
    from bench._moto import moto_process
    from callflow_dev.local.aws import create_table

    for directory in ("src/callflow", "src/callflow_functions", "bench"):
        compileall.compile_dir(ROOT / directory, quiet=1)
    os.environ.update(SECRETS)
    health = http_event("GET", "/health")
    event = http_event(
        "POST", INFOBIP_PATH, ringing("unknown"), {"authorization": infobip_basic_auth()}
    )
    with moto_process():
        create_table(SECRETS["CALLFLOW_TABLE_NAME"], "us-east-1")
        timings: dict[str, list[float]] = {"health": [], "infobip_event": []}
        for _ in range(RUNS):
            timings["health"].append(first_request_ms(health))
            timings["infobip_event"].append(first_request_ms(event))
    print(
        json.dumps(
            {
                "benchmark": "api_cold_start",
                "runs": RUNS,
                "health_median_ms": round(statistics.median(timings["health"]), 1),
                "infobip_event_median_ms": round(statistics.median(timings["infobip_event"]), 1),
                "target_ms": 300,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

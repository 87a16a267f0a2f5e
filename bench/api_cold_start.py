"""The API's cold start, as a ratio to a bare Powertools event handler answering the same request.

Each sample is a fresh Python process that imports a Lambda entry point and serves its first
request through it, as a Lambda cold start does (the interpreter's own start-up, which Lambda's
runtime has already done, is not counted). Two entry points: ours (``callflow_functions.api``,
FastAPI under Mangum) and the bare one (``bench/_bare_api.py``: Powertools'
``APIGatewayHttpResolver`` doing only what the request needs). Two first requests: ``GET /health``
and an Infobip ``CALL_RINGING``, which also builds the DynamoDB client and makes three requests
(a moto server in a process of its own, ``bench/_moto.py``).

The machine is shared and its load moves within seconds, so the two are measured in the same run,
alternating (ours then bare, then bare then ours), ``RUNS`` pairs per request; each pair gives a
ratio, and ``cold_start_ratio_to_bare`` is the median of a request's ratios, with their spread
(min, max) beside it. Target (issue 13): at most 1.3 for both requests.

The project's own modules are compiled to bytecode first, as the Lambda bundle ships them (see
``infra/cdk/callflow_infra/bundle.py``); the installed dependencies already are. Packages this
environment has and the bundle does not are hidden from both (:func:`not_in_the_bundle`).

Run with ``python -m bench api_cold_start``.
"""

from __future__ import annotations

import compileall
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench._lambda import INFOBIP_PATH, SECRETS, http_event, infobip_basic_auth, ringing

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_COLD_START_RUNS", "9"))
TARGET_RATIO = 1.3
ENTRY_POINTS = {"api": "callflow_functions.api", "bare": "bench._bare_api"}

FIRST_REQUEST = r"""
import importlib, importlib.abc, json, sys, time

class NotInTheBundle(importlib.abc.MetaPathFinder):
    blocked = frozenset(json.loads(sys.argv[3]))

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the Lambda bundle)")
        return None

sys.meta_path.insert(0, NotInTheBundle())
t0 = time.perf_counter()
handler = importlib.import_module(sys.argv[1]).handler
t1 = time.perf_counter()
from bench._lambda import LambdaContext
response = handler(json.loads(sys.argv[2]), LambdaContext())
t2 = time.perf_counter()
assert response["statusCode"] < 500, response
print(json.dumps({"import_ms": (t1 - t0) * 1000, "total_ms": (t2 - t0) * 1000,
                  "status": response["statusCode"], "body": response["body"]}))
"""


def not_in_the_bundle() -> list[str]:
    """Top-level modules installed here that the Lambda bundle does not have.

    The bundle holds exactly ``requirements/lambda.txt`` (``tests/infra/test_packaging.py``);
    this environment also has the tools' and tests' packages, and some libraries import an
    optional one when it is present (``httpx`` loads ``rich`` and ``click`` for its command
    line), which Lambda would not pay for. Both entry points are run without them."""
    from importlib.metadata import packages_distributions

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    lines = (ROOT / "requirements" / "lambda.txt").read_text(encoding="utf-8").splitlines()
    bundled = {
        normal(m.group(1)) for line in lines if (m := re.match(r"([A-Za-z0-9._-]+)==", line))
    }
    return sorted(
        top
        for top, distributions in packages_distributions().items()
        if top not in ("bench", "callflow", "callflow_functions")
        and not any(normal(d) in bundled for d in distributions)
    )


def first_request(module: str, event: dict[str, Any], blocked: list[str]) -> dict[str, Any]:
    """Import ``module`` in a fresh process and serve ``event``: what it took and answered."""
    result = subprocess.run(
        [sys.executable, "-c", FIRST_REQUEST, module, json.dumps(event), json.dumps(blocked)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def main() -> None:
    from bench._moto import moto_process
    from callflow_dev.local.aws import create_table

    for directory in ("src/callflow", "src/callflow_functions", "bench"):
        compileall.compile_dir(ROOT / directory, quiet=1)
    os.environ.update(SECRETS)
    blocked = not_in_the_bundle()
    events = {
        "health": http_event("GET", "/health"),
        "infobip_event": http_event(
            "POST", INFOBIP_PATH, ringing("unknown"), {"authorization": infobip_basic_auth()}
        ),
    }
    samples: dict[str, dict[str, list[float]]] = {
        request: {"api": [], "bare": []} for request in events
    }
    ratios: dict[str, list[float]] = {request: [] for request in events}
    answers: dict[str, dict[str, str]] = {request: {} for request in events}
    with moto_process():
        create_table(SECRETS["CALLFLOW_TABLE_NAME"], "us-east-1")
        for run in range(RUNS):
            for request, event in events.items():
                order = ("api", "bare") if run % 2 == 0 else ("bare", "api")
                pair: dict[str, float] = {}
                for kind in order:
                    answer = first_request(ENTRY_POINTS[kind], event, blocked)
                    pair[kind] = float(answer["total_ms"])
                    samples[request][kind].append(pair[kind])
                    answers[request][kind] = f"{answer['status']} {answer['body']}"
                ratios[request].append(pair["api"] / pair["bare"])
    for request, by_kind in answers.items():  # the same request, answered the same way
        assert by_kind["api"] == by_kind["bare"], (request, by_kind)
    figures: dict[str, Any] = {}
    for request in events:
        figures[request] = {
            "api_median_ms": round(statistics.median(samples[request]["api"]), 1),
            "bare_median_ms": round(statistics.median(samples[request]["bare"]), 1),
            "ratio_spread": [round(min(ratios[request]), 2), round(max(ratios[request]), 2)],
        }
    print(
        json.dumps(
            {
                "benchmark": "api_cold_start",
                "runs": RUNS,
                "cold_start_ratio_to_bare": {
                    request: round(statistics.median(ratios[request]), 2) for request in events
                },
                "target_ratio": TARGET_RATIO,
                **figures,
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

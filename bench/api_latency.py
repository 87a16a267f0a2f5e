"""API benchmarks: cold start, and warm webhook handling time.

- ``api_cold_start``: fresh Python processes each import the Lambda entry point (``functions.api``)
  and serve their first request through the Mangum handler, as a Lambda cold start does. Two first
  requests: ``GET /health`` and an Infobip event (which builds the DynamoDB client and reads the
  table). Median of several processes. Target: <= 300 ms.
- ``api_webhook_warm``: the Infobip event webhook (the one every call hits several times: ringing,
  answered, finished) handled through the Mangum handler in one warm process, p50/p99 over many
  requests. No provider is called on that path; the session's conditional write goes to DynamoDB.
  ``own_*`` is the handler's time less the time spent waiting for DynamoDB's answers (from
  sending the request to receiving the response), which here is moto on loopback.

DynamoDB is a moto server in a process of its own (``bench/_moto.py``), as the real service is
remote: its work is not billed to the measured process. Target: p99 <= 20 ms.

Run with ``python -m bench`` (all benchmarks) or ``python -m bench.api_latency``.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COLD_RUNS = 7
WARM_REQUESTS = 300

COLD_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from functions.api import handler
t1 = time.perf_counter()
event = json.loads(sys.argv[1])
class Ctx:
    function_name = "api"; memory_limit_in_mb = 512; aws_request_id = "x"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"
    def get_remaining_time_in_millis(self): return 30000
response = handler(event, Ctx())
t2 = time.perf_counter()
assert response["statusCode"] < 500, response
print(json.dumps({"import_ms": (t1 - t0) * 1000, "total_ms": (t2 - t0) * 1000}))
"""

SECRETS = {
    "CALLFLOW_ZOHO_TRIGGER_SECRET": "bench-trigger",
    "CALLFLOW_INFOBIP_WEBHOOK_PASSWORD": "bench-password",
    "CALLFLOW_INFOBIP_WEBHOOK_PATH_SECRET": "benchpath",
    "CALLFLOW_ELEVENLABS_WEBHOOK_SECRET": "bench-el",
    "CALLFLOW_STATUS_API_TOKEN": "bench-status",
    "CALLFLOW_TABLE_NAME": "bench-api",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def http_event(
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) event, what Mangum receives on Lambda."""
    raw = json.dumps(body).encode() if body is not None else b""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", **(headers or {})},
        "requestContext": {
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "bench",
            },
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench",
            "domainPrefix": "bench",
            "time": "21/Nov/2026:00:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
    }


def basic() -> str:
    return "Basic " + base64.b64encode(b"infobip:bench-password").decode()


def ringing(session_id: str, attempt: int = 1) -> dict[str, Any]:
    return {
        "type": "CALL_RINGING",
        "callId": f"call-{session_id}",
        "timestamp": "2026-11-21T10:00:00.000+0000",
        "properties": {
            "call": {
                "id": f"call-{session_id}",
                "state": "RINGING",
                "customData": {"session_id": session_id, "attempt": str(attempt)},
            }
        },
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(q * (len(ordered) - 1)))
    return ordered[index]


def cold_start(env: dict[str, str]) -> dict[str, Any]:
    health = http_event("GET", "/health")
    event = http_event(
        "POST", "/webhooks/infobip/benchpath", ringing("unknown"), {"authorization": basic()}
    )
    results: dict[str, list[float]] = {"health": [], "infobip_event": []}
    for _ in range(COLD_RUNS):
        for name, payload in (("health", health), ("infobip_event", event)):
            output = (
                subprocess.run(
                    [sys.executable, "-c", COLD_SCRIPT, json.dumps(payload)],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=ROOT,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            results[name].append(json.loads(output)["total_ms"])
    return {
        "benchmark": "api_cold_start",
        "runs": COLD_RUNS,
        "health_median_ms": round(statistics.median(results["health"]), 1),
        "infobip_event_median_ms": round(statistics.median(results["infobip_event"]), 1),
        "target_ms": 300,
    }


def main() -> None:
    from bench._moto import moto_process
    from callflow.store import create_table

    os.environ.update(SECRETS)
    with moto_process():
        create_table("bench-api", "us-east-1")
        print(json.dumps(cold_start(dict(os.environ))), flush=True)
        print(json.dumps(warm_webhooks()), flush=True)


class DynamoWaits:
    """Time from each DynamoDB request sent to its response received (botocore's events)."""

    def __init__(self, client: Any) -> None:
        self.total = 0.0
        self._sent = 0.0
        client.meta.events.register("before-send.dynamodb.*", self._before_send)
        client.meta.events.register("needs-retry.dynamodb.*", self._answered)

    def _before_send(self, **_: Any) -> None:
        self._sent = time.perf_counter()

    def _answered(self, **_: Any) -> None:
        self.total += time.perf_counter() - self._sent


def warm_webhooks() -> dict[str, Any]:
    from callflow.config import reset_settings
    from callflow.models import Session
    from callflow.services import get_services, reset_services

    reset_settings()
    reset_services()
    from functions.api import handler

    class Ctx:
        function_name = "api"
        memory_limit_in_mb = 512
        aws_request_id = "x"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"

        def get_remaining_time_in_millis(self) -> int:
            return 30000

    store = get_services().store
    ids = [f"bench{i:05d}" for i in range(WARM_REQUESTS)]
    for session_id in ids:
        store.create(Session(session_id=session_id, module="Leads", record_id="1"))
    from callflow.models import SessionStatus

    for session_id in ids:
        store.advance(session_id, SessionStatus.DIALING, attempt=1)
    handler(http_event("GET", "/health"), Ctx())  # warm

    waits = DynamoWaits(store.table.meta.client)
    timings: list[float] = []
    own: list[float] = []
    for session_id in ids:
        event = http_event(
            "POST", "/webhooks/infobip/benchpath", ringing(session_id), {"authorization": basic()}
        )
        waited = waits.total
        start = time.perf_counter()
        response = handler(event, Ctx())
        elapsed = time.perf_counter() - start
        timings.append(elapsed * 1000)
        own.append((elapsed - (waits.total - waited)) * 1000)
        assert response["statusCode"] == 200, response
        assert json.loads(response["body"])["result"] == "ringing", response
    return {
        "benchmark": "api_webhook_warm",
        "webhook": "infobip CALL_RINGING (one conditional update)",
        "requests": len(timings),
        "p50_ms": round(percentile(timings, 0.5), 2),
        "p99_ms": round(percentile(timings, 0.99), 2),
        "own_p50_ms": round(percentile(own, 0.5), 2),
        "own_p99_ms": round(percentile(own, 0.99), 2),
        "target_p99_ms": 20,
    }


if __name__ == "__main__":
    main()

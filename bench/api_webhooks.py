"""The three webhooks' handling time, warm: the Zoho trigger, an Infobip event, the post-call hook.

One warm process serves each webhook many times through the Lambda handler (Mangum), as a warm
Lambda does, and reports two figures per webhook:

- ``p50_ms`` / ``p99_ms``: the handling time excluding provider calls (the target's measure).
  Only the trigger calls a provider (it re-reads the record from Zoho, here the Zoho stand-in
  on loopback); the time inside those HTTP requests is measured and subtracted.
- ``own_p50_ms`` / ``own_p99_ms``: also excluding the wait for AWS (DynamoDB, Step Functions):
  the time from each request sent to its answer received, measured through botocore's events.
  AWS here is a moto server in a process of its own (``bench/_moto.py``), slower than the real
  services, so this is the share the project's own code is responsible for.

The trigger refreshes the Zoho token once (the first request) and starts a workflow execution
each time (moto records it without running it). The post-call webhook records its delivery in the
replay cache (one conditional write), finds the session by its conversation and stores the
results; the workflow is not waiting yet (the webhook often comes first), so nothing is resumed.
Target: p99 <= 20 ms.

Run with ``python -m bench api_webhooks``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from bench._lambda import (
    INFOBIP_PATH,
    SECRETS,
    http_event,
    infobip_basic_auth,
    lambda_context,
    ringing,
)
from bench._stats import percentile

REQUESTS = 200
REGION = "us-east-1"
ZOHO = {"client_id": "1000.BENCH", "client_secret": "bench-zoho", "refresh_token": "1000.r"}


class Waits:
    """Seconds spent waiting on outside services, by kind, accumulated over the run."""

    def __init__(self) -> None:
        self.aws = 0.0
        self.provider = 0.0
        self._sent = 0.0

    def watch_botocore(self, client: Any) -> None:
        """From each request sent to its response received (``needs-retry`` follows it)."""
        client.meta.events.register("before-send", self._before_send)
        client.meta.events.register("needs-retry", self._answered)

    def _before_send(self, **_: Any) -> None:
        self._sent = time.perf_counter()

    def _answered(self, **_: Any) -> None:
        self.aws += time.perf_counter() - self._sent

    def watch_httpx(self) -> None:
        """Every provider request goes through ``httpx.Client.send``."""
        import httpx

        send = httpx.Client.send
        waits = self

        def timed(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            start = time.perf_counter()
            try:
                return send(client, request, **kwargs)
            finally:
                waits.provider += time.perf_counter() - start

        httpx.Client.send = timed  # type: ignore[method-assign,assignment]


def measure(
    name: str,
    events: list[dict[str, Any]],
    expected_status: int,
    waits: Waits,
    check: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> dict[str, Any]:
    from callflow_functions.api import handler

    handled: list[float] = []
    own: list[float] = []
    for event in events:
        aws, provider = waits.aws, waits.provider
        start = time.perf_counter()
        response = handler(event, lambda_context())
        elapsed = time.perf_counter() - start
        assert response["statusCode"] == expected_status, response
        assert check(json.loads(response["body"])), response
        without_providers = elapsed - (waits.provider - provider)
        handled.append(without_providers * 1000)
        own.append((without_providers - (waits.aws - aws)) * 1000)
    return {
        "benchmark": "api_webhook_warm",
        "webhook": name,
        "requests": len(events),
        "p50_ms": round(percentile(handled, 0.5), 2),
        "p99_ms": round(percentile(handled, 0.99), 2),
        "own_p50_ms": round(percentile(own, 0.5), 2),
        "own_p99_ms": round(percentile(own, 0.99), 2),
        "target_p99_ms": 20,
    }


def zoho_trigger_events(record_ids: list[str]) -> list[dict[str, Any]]:
    secret = {"x-callflow-secret": SECRETS["CALLFLOW_ZOHO_TRIGGER_SECRET"]}
    return [
        http_event("POST", "/webhooks/zoho", {"module": "Leads", "record_id": rid}, secret)
        for rid in record_ids
    ]


def infobip_events(session_ids: list[str]) -> list[dict[str, Any]]:
    auth = {"authorization": infobip_basic_auth()}
    return [http_event("POST", INFOBIP_PATH, ringing(sid), auth) for sid in session_ids]


def post_call_events(conversation_ids: list[str]) -> list[dict[str, Any]]:
    from callflow.providers.elevenlabs.client import SIGNATURE_HEADER, sign_webhook
    from callflow_dev.sandbox.elevenlabs import (
        DEFAULT_DATA_COLLECTION,
        ConversationState,
        conversation_body,
    )

    now = time.time()
    events = []
    for conversation_id in conversation_ids:
        state = ConversationState(
            conversation_id=conversation_id,
            agent_id="agent_bench",
            started_at=now - 60,
            status="done",
            ended_at=now - 5,
            collected={"interested": True, "monthly_bill": 150},
            termination_reason="end_call tool was called",
        )
        body = {
            "type": "post_call_transcription",
            "event_timestamp": int(now),
            "data": conversation_body(state, DEFAULT_DATA_COLLECTION, now),
        }
        raw = json.dumps(body).encode()
        signature = sign_webhook(raw, SECRETS["CALLFLOW_ELEVENLABS_WEBHOOK_SECRET"], int(now))
        events.append(
            http_event("POST", "/webhooks/elevenlabs", raw, {SIGNATURE_HEADER: signature})
        )
    return events


def state_machine() -> str:
    """A state machine for the trigger to start executions of (moto records, does not run)."""
    import boto3

    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    return str(
        boto3.client("stepfunctions", region_name=REGION).create_state_machine(
            name="bench-calls",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/bench-calls",
        )["stateMachineArn"]
    )


def main() -> None:
    from bench._moto import moto_process
    from callflow.config import reset_settings
    from callflow.models import Session, SessionStatus
    from callflow.services import get_services, reset_services
    from callflow_dev.local.aws import create_table
    from callflow_dev.local.demo import PERSON
    from callflow_dev.local.servers import AsgiServer
    from callflow_dev.sandbox.zoho import ZohoSandbox

    os.environ.update(SECRETS)
    zoho = ZohoSandbox(ZOHO["client_id"], ZOHO["client_secret"], ZOHO["refresh_token"])
    record_ids = [zoho.seed_record("Leads", dict(PERSON)) for _ in range(REQUESTS)]
    with moto_process(), AsgiServer(zoho.app, name="zoho") as zoho_server:
        create_table(SECRETS["CALLFLOW_TABLE_NAME"], REGION)
        os.environ.update(
            {
                "CALLFLOW_STATE_MACHINE_ARN": state_machine(),
                "CALLFLOW_ZOHO_ACCOUNTS_URL": zoho_server.url,
                "CALLFLOW_ZOHO_CLIENT_ID": ZOHO["client_id"],
                "CALLFLOW_ZOHO_CLIENT_SECRET": ZOHO["client_secret"],
                "CALLFLOW_ZOHO_REFRESH_TOKEN": ZOHO["refresh_token"],
            }
        )
        reset_settings()
        reset_services()
        services = get_services()
        waits = Waits()
        waits.watch_botocore(services.store.table.meta.client)
        waits.watch_botocore(services.sfn)
        waits.watch_httpx()

        # Sessions for the other two webhooks: dialling (Infobip), with a conversation (post-call).
        ringing_ids = [f"ring{i:05d}" for i in range(REQUESTS)]
        talked_ids = [f"talk{i:05d}" for i in range(REQUESTS)]
        for session_id in ringing_ids + talked_ids:
            services.store.create(Session(session_id=session_id, module="Leads", record_id="1"))
            services.store.advance(session_id, SessionStatus.DIALING, attempt=1)
        for session_id in talked_ids:
            # As the bridge leaves a session: its conversation stored, and indexed for the hook.
            services.store.set_conversation(session_id, f"conv_{session_id}")
            services.store.index_conversation(f"conv_{session_id}", session_id)

        from callflow_functions.api import handler

        handler(http_event("GET", "/health"), lambda_context())  # the container is warm
        results = [
            measure("zoho trigger", zoho_trigger_events(record_ids), 202, waits),
            measure(
                "infobip CALL_RINGING",
                infobip_events(ringing_ids),
                200,
                waits,
                lambda body: body["result"] == "ringing",
            ),
            measure(
                "elevenlabs post_call_transcription",
                post_call_events([f"conv_{sid}" for sid in talked_ids]),
                200,
                waits,
                lambda body: body["result"] == "stored",
            ),
        ]
    for result in results:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""What the API's Lambda handler is given: API Gateway HTTP API events and a Lambda context."""

from __future__ import annotations

import base64
import json
from typing import Any

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
"""The API's settings for the benchmarks (none of them is a real secret)."""

INFOBIP_PATH = "/webhooks/infobip/benchpath"


class LambdaContext:
    """What Mangum and Powertools read from the context Lambda passes."""

    function_name = "api"
    memory_limit_in_mb = 512
    aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"

    def get_remaining_time_in_millis(self) -> int:
        return 30000


def lambda_context() -> Any:
    """A :class:`LambdaContext` typed as the handler's own (Mangum's protocol)."""
    return LambdaContext()


def http_event(
    method: str,
    path: str,
    body: dict[str, Any] | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload v2) event, what Mangum receives on Lambda."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
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


def infobip_basic_auth() -> str:
    return "Basic " + base64.b64encode(b"infobip:bench-password").decode()


def ringing(session_id: str, attempt: int = 1) -> dict[str, Any]:
    """A ``CALL_RINGING`` event of a callflow call, as Infobip posts it."""
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

"""Schemathesis over the API's own OpenAPI document, with valid credentials, on the local stack.

Every request carries what its route authenticates (the Zoho shared secret, Infobip's Basic auth
and path secret, a fresh ElevenLabs signature over the exact body sent, the status bearer token),
so the generated input reaches the handlers behind the checks; the promise kept is that nothing
a client can send answers a 5xx. The routes read their bodies raw (form or JSON), so the
document has no request bodies: the ones fuzzed here are added to it, shaped like what each
caller sends so that generation reaches past the first field check.

``make test`` runs a few examples per route (``CALLFLOW_FUZZ_EXAMPLES``, 15 by default);
``make fuzz`` runs many more.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from callflow.config import get_settings
from callflow.providers.elevenlabs.client import sign_webhook
from callflow_dev.local.stack import LocalStack, StackOptions
from callflow_functions.api import app

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("CALLFLOW_FUZZ_EXAMPLES", "15"))

_ANY: dict[str, Any] = {}  # any JSON value
_BODIES: dict[str, dict[str, Any]] = {
    "/webhooks/zoho": {
        "type": "object",
        "properties": {"module": {"type": "string"}, "record_id": _ANY, "id": _ANY},
    },
    "/webhooks/infobip/{secret}": {
        "type": "object",
        "properties": {
            "type": {
                "enum": [
                    "CALL_RINGING",
                    "CALL_ESTABLISHED",
                    "CALL_FINISHED",
                    "CALL_FAILED",
                    "MACHINE_DETECTION_FINISHED",
                ]
            },
            "callId": _ANY,
            "timestamp": _ANY,
            "properties": {
                "type": "object",
                "properties": {"customData": {"type": "object"}, "duration": _ANY},
            },
        },
    },
    "/webhooks/elevenlabs": {
        "type": "object",
        "properties": {
            "type": {"enum": ["post_call_transcription", "post_call_audio"]},
            "event_timestamp": _ANY,
            "data": {"type": "object", "properties": {"conversation_id": _ANY}},
        },
    },
}


def _document() -> dict[str, Any]:
    """The API's OpenAPI document, with the request bodies its raw-reading routes accept."""
    document = app.openapi()
    for path, body in _BODIES.items():
        document["paths"][path]["post"]["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    copied: dict[str, Any] = json.loads(json.dumps(document))
    return copied


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackOptions()) as running:
        yield running


def _send(stack: LocalStack, case: Any) -> httpx.Response:
    """Send ``case`` to the stack's API with the credentials its route checks."""
    secrets = stack.secrets
    path = case.operation.path
    params = dict(case.path_parameters or {})
    headers = {k: str(v) for k, v in dict(case.headers or {}).items()}
    raw = _raw(case.body)
    headers["Content-Type"] = "application/json"
    if path == "/webhooks/zoho":
        headers["X-Callflow-Secret"] = secrets["zoho_trigger_secret"]
    elif path == "/webhooks/infobip/{secret}":
        params["secret"] = secrets["infobip_webhook_path_secret"]
        basic = f"{get_settings().infobip_webhook_username}:"
        basic += secrets["infobip_webhook_password"]
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    elif path == "/webhooks/elevenlabs":
        secret = secrets["elevenlabs_webhook_secret"]
        headers["ElevenLabs-Signature"] = sign_webhook(raw, secret, int(time.time()))
    elif path == "/sessions/{session_id}" or path.startswith("/campaigns"):
        headers["Authorization"] = f"Bearer {secrets['status_api_token']}"
    url = stack.api_url + path.format(**{k: quote(str(v), safe="") for k, v in params.items()})
    return httpx.request(
        case.method, url, headers=headers, params=case.query or None, content=raw, timeout=30
    )


def _raw(body: object) -> bytes:
    """The bytes sent (and signed) for a generated body: none, bytes as they are, else JSON."""
    if body is None or type(body).__name__ == "NotSet":
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body).encode()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_generated_request_with_valid_credentials_gets_a_5xx(
    case: Any, stack: LocalStack
) -> None:
    response = _send(stack, case)
    assert response.status_code < 500, (case.method, case.operation.path, response.text[:300])
    assert response.status_code not in (401, 403), response.text[:300]  # the credentials worked

"""AWS failures for tests, on real boto3 clients: injected errors and an endpoint nobody answers.

:func:`fail_calls` answers an operation with an AWS error before any request is sent, through
botocore's ``before-call`` event: botocore then raises the same ``ClientError`` subclass, parsed
the same way, as when AWS itself answers that error. :func:`closed_port` gives an address that
refuses connections, for "AWS is unreachable".
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse

BodyTest = Callable[[dict[str, Any]], bool]
"""Decides from a request's JSON body whether this call is the one to fail."""


def fail_calls(
    client: Any,
    operation: str,
    code: str,
    *,
    times: int | None = None,
    when: BodyTest | None = None,
    status: int = 400,
) -> list[str]:
    """Make ``client`` answer ``operation`` with the AWS error ``code``: the next ``times`` calls
    (all when ``None``) for which ``when`` holds. Returns the list of failures injected so far."""
    service = client.meta.service_model.service_id.hyphenize()
    injected: list[str] = []

    def answer(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if times is not None and len(injected) >= times:
            return None
        if when is not None and not when(_json_body(params)):
            return None
        injected.append(code)
        parsed = {
            "Error": {"Code": code, "Message": "injected by the test"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return AWSResponse(params.get("url", ""), status, {}, None), parsed

    # First in line: an injected failure wins over any other answer a test registered.
    client.meta.events.register_first(f"before-call.{service}.{operation}", answer)
    return injected


def item_key_starts(prefix: str) -> BodyTest:
    """A :data:`BodyTest` for DynamoDB writes whose item or key ``pk`` starts with ``prefix``."""

    def test(body: dict[str, Any]) -> bool:
        item = body.get("Item") or body.get("Key") or {}
        return str(item.get("pk", {}).get("S", "")).startswith(prefix)

    return test


def _json_body(params: dict[str, Any]) -> dict[str, Any]:
    raw = params.get("body") or b"{}"
    body = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    return body if isinstance(body, dict) else {}


@contextmanager
def closed_port() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` on a port that is bound but not listening: connecting is
    refused at once, and nothing else can take the port while the block runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"

"""The one HTTP transport: every provider's failures become the same typed errors."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from callflow.providers.errors import ProviderAuthError, ProviderRejected, RetryableProviderError
from callflow.providers.http import AsyncHttpTransport, HttpTransport, Retry

TIMEOUT = httpx.Timeout(1.0)


def transport(
    handler: httpx.MockTransport, sleep: Callable[[float], None] = lambda _: None
) -> HttpTransport:
    return HttpTransport(
        "acme",
        timeout=TIMEOUT,
        http=httpx.Client(transport=handler),
        read_error=lambda r: (r.json().get("error", ""), r.json().get("code", "")),
        sleep=sleep,
    )


def answering(status: int, body: dict[str, str] | None = None) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body or {}))


def raising(error: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return httpx.MockTransport(handler)


def test_a_timeout_is_retryable_and_names_the_request() -> None:
    http = transport(raising(httpx.ReadTimeout("slow")))
    with pytest.raises(RetryableProviderError, match="get thing timed out"):
        http.request("GET", "https://acme.test/thing", what="get thing")


def test_a_dropped_connection_is_retryable() -> None:
    http = transport(raising(httpx.ConnectError("refused")))
    with pytest.raises(RetryableProviderError, match="failed: ConnectError"):
        http.request("GET", "https://acme.test/thing")


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, RetryableProviderError), (503, RetryableProviderError), (401, ProviderAuthError)],
)
def test_a_refused_status_is_the_typed_error_it_deserves(
    status: int, error: type[Exception]
) -> None:
    http = transport(answering(status, {"error": "nope", "code": "E1"}))
    with pytest.raises(error) as caught:
        http.request("POST", "https://acme.test/thing", what="make thing")
    assert str(caught.value) == "acme: make thing: nope"
    assert getattr(caught.value, "code", "") == "E1"


def test_a_body_that_says_nothing_falls_back_to_the_status() -> None:
    http = transport(answering(404))
    with pytest.raises(ProviderRejected, match="get thing answered HTTP 404"):
        http.request("GET", "https://acme.test/thing", what="get thing")


def test_accept_lets_the_caller_read_every_status() -> None:
    http = transport(answering(400, {"error": "per record"}))
    response = http.request("PUT", "https://acme.test/thing", accept=lambda _: True)
    assert response.status_code == 400


def test_nothing_is_retried_unless_the_caller_asks() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={})

    http = transport(httpx.MockTransport(handler))
    with pytest.raises(RetryableProviderError):
        http.request("GET", "https://acme.test/thing")
    assert len(calls) == 1 and http.requests_sent == 1


def test_an_asked_retry_backs_off_on_retryable_errors_only() -> None:
    statuses = iter([503, 429, 200])
    waits: list[float] = []
    http = transport(
        httpx.MockTransport(lambda request: httpx.Response(next(statuses), json={})),
        sleep=waits.append,
    )
    response = http.request("GET", "https://acme.test/thing", retry=Retry(3, 0.5))
    assert response.status_code == 200
    assert waits == [0.5, 1.0]
    refused = transport(answering(400), sleep=waits.append)
    with pytest.raises(ProviderRejected):
        refused.request("GET", "https://acme.test/thing", retry=Retry(3, 0.5))
    assert refused.requests_sent == 1


async def test_the_async_transport_types_errors_the_same_way() -> None:
    http = AsyncHttpTransport(
        "acme",
        timeout=TIMEOUT,
        http=httpx.AsyncClient(transport=raising(httpx.ConnectTimeout("slow"))),
    )
    with pytest.raises(RetryableProviderError, match="signed url timed out"):
        await http.request("GET", "https://acme.test/u", what="signed url")
    refused = AsyncHttpTransport(
        "acme", timeout=TIMEOUT, http=httpx.AsyncClient(transport=answering(403))
    )
    with pytest.raises(ProviderAuthError, match="answered HTTP 403"):
        await refused.request("GET", "https://acme.test/u")

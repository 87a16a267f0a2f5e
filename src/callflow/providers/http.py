"""One HTTP transport for every provider client: timeouts, typed errors, retries where asked.

Every client (Infobip's Calls and Subscriptions APIs, Zoho's CRM API and token endpoint,
ElevenLabs) sends its requests through :class:`HttpTransport` (or :class:`AsyncHttpTransport`, for
the bridge's event loop), so a provider that hangs, drops the connection or answers an error
becomes the same typed error everywhere (:mod:`callflow.providers.errors`):

- a timeout or a connection failure is :class:`RetryableProviderError`;
- a status the caller does not accept is the error :func:`error_for_status` gives it, with the
  request named and the message and code the provider's own error body carries (each provider
  reads its body with its own :data:`ErrorReader`).

Nothing retries unless the caller asks (``retry=Retry(...)``): the workflow's tasks leave retries
to the state machine, whose Retry rules match these error classes; a retry loop here as well
would multiply with them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from callflow.providers.errors import ProviderError, RetryableProviderError, error_for_status

ErrorReader = Callable[[httpx.Response], tuple[str, str]]
"""Reads a provider's error body: ``(message, code)``, empty strings where it says nothing."""


def no_error_body(response: httpx.Response) -> tuple[str, str]:
    """An :data:`ErrorReader` for bodies that say nothing useful."""
    return "", ""


def success(status: int) -> bool:
    """The default acceptance: any 2xx."""
    return 200 <= status < 300


@dataclass(frozen=True)
class Retry:
    """Retries of :class:`RetryableProviderError`, for callers that want them (setup, tools)."""

    attempts: int = 3
    """Tries in all, the first included."""
    backoff_seconds: float = 0.5
    """Wait before the second try; doubled before each later one."""


class _Shared:
    def __init__(self, provider: str, timeout: httpx.Timeout, read_error: ErrorReader) -> None:
        self.provider = provider
        self.timeout = timeout
        self.read_error = read_error

    def failure(self, what: str, error: httpx.TransportError) -> RetryableProviderError:
        if isinstance(error, httpx.TimeoutException):
            return RetryableProviderError(self.provider, f"{what} timed out")
        return RetryableProviderError(self.provider, f"{what} failed: {type(error).__name__}")

    def refusal(self, what: str, response: httpx.Response) -> ProviderError:
        message, code = self.read_error(response)
        status = response.status_code
        text = f"{what}: {message}" if message else f"{what} answered HTTP {status}"
        return error_for_status(self.provider, status, text, code)


class HttpTransport:
    """A blocking transport for one provider, over a shared or owned ``httpx.Client``."""

    def __init__(
        self,
        provider: str,
        *,
        timeout: httpx.Timeout,
        http: httpx.Client | None = None,
        read_error: ErrorReader = no_error_body,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._shared = _Shared(provider, timeout, read_error)
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        self._owns_http = http is None
        self._sleep = sleep
        self.requests_sent = 0
        """Every request that left this process (Zoho bills each one)."""

    @property
    def provider(self) -> str:
        """The provider's name, as its errors carry it."""
        return self._shared.provider

    def close(self) -> None:
        """Close the ``httpx.Client`` if this transport created it; a shared one stays open."""
        if self._owns_http:
            self._http.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str = "",
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Callable[[int], bool] = success,
        retry: Retry | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> httpx.Response:
        """The response, when ``accept`` takes its status; otherwise the typed error.
        ``files`` (field -> file name, content, content type) sends a multipart form."""
        what = what or method
        attempts = retry.attempts if retry else 1
        for attempt in range(attempts):
            self.requests_sent += 1
            try:
                response = self._http.request(
                    method,
                    url,
                    json=json,
                    data=data,
                    params=params,
                    headers=headers,
                    files=files,
                    timeout=self._shared.timeout,
                )
            except httpx.TransportError as error:
                failure: ProviderError = self._shared.failure(what, error)
            else:
                if accept(response.status_code):
                    return response
                failure = self._shared.refusal(what, response)
            if not failure.retryable or attempt + 1 >= attempts or retry is None:
                raise failure
            self._sleep(retry.backoff_seconds * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover


class AsyncHttpTransport:
    """The same transport over ``httpx.AsyncClient``, for code on an event loop (the bridge)."""

    def __init__(
        self,
        provider: str,
        *,
        timeout: httpx.Timeout,
        http: httpx.AsyncClient | None = None,
        read_error: ErrorReader = no_error_body,
    ) -> None:
        self._shared = _Shared(provider, timeout, read_error)
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None

    async def aclose(self) -> None:
        """Close the ``httpx.AsyncClient`` if this transport created it; a shared one stays open."""
        if self._owns_http:
            await self._http.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        what: str = "",
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: Callable[[int], bool] = success,
        retry: Retry | None = None,
    ) -> httpx.Response:
        """As :meth:`HttpTransport.request`, without blocking the loop."""
        what = what or method
        attempts = retry.attempts if retry else 1
        for attempt in range(attempts):
            try:
                response = await self._http.request(
                    method, url, params=params, headers=headers, timeout=self._shared.timeout
                )
            except httpx.TransportError as error:
                failure: ProviderError = self._shared.failure(what, error)
            else:
                if accept(response.status_code):
                    return response
                failure = self._shared.refusal(what, response)
            if not failure.retryable or attempt + 1 >= attempts or retry is None:
                raise failure
            await asyncio.sleep(retry.backoff_seconds * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

"""HTTP plumbing shared by the Infobip clients (Calls API and Subscriptions API).

Both APIs live on the account's base URL, take the same ``App`` key and answer errors with the
same ``requestError.serviceException`` body, so one place builds the requests and turns failures
into the typed errors of :mod:`callflow.providers.errors` (through the shared
:class:`callflow.providers.http.HttpTransport`, with :func:`read_error` for Infobip's body).
Nothing here retries: the workflow owns retries for the Calls API, and setup (the Subscriptions
API) is rerun by hand.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import httpx

from callflow.config import Settings
from callflow.providers.errors import ProviderRejected
from callflow.providers.http import HttpTransport

PROVIDER = "infobip"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_PAGE_SIZE = 100


class InvalidInfobipRequest(ValueError):
    """The request cannot be sent as asked (bad number, missing configuration, bad custom data);
    raised before anything reaches Infobip."""


class InfobipHttp:
    """A blocking httpx client bound to the account's base URL and API key.

    Pass ``http`` to share a client (and its connection pool); otherwise one is made here and
    closed by :meth:`close` or on leaving the ``with`` block.
    """

    #: Raised when the request cannot be sent (the API key is not set); each client names its own.
    invalid_request: ClassVar[type[ValueError]] = InvalidInfobipRequest

    def __init__(self, settings: Settings, http: httpx.Client | None = None) -> None:
        self._settings = settings
        self._transport = HttpTransport(
            PROVIDER, timeout=DEFAULT_TIMEOUT, http=http, read_error=read_error
        )

    def close(self) -> None:
        """Close the HTTP client if this one created it; a shared ``http`` stays open."""
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """The response to a 2xx; any other outcome raises the typed error it deserves
        (timeouts and connection failures are retryable)."""
        api_key = self._settings.infobip_api_key.get_secret_value()
        if not api_key:
            raise self.invalid_request("CALLFLOW_INFOBIP_API_KEY is not set")
        url = self._settings.infobip_base_url.rstrip("/") + path
        headers = {"Authorization": f"App {api_key}", "Accept": "application/json"}
        return self._transport.request(
            method, url, what=f"{method} {path}", json=body, params=params, headers=headers
        )

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        """The body as a JSON object; anything else is a broken answer, not worth a retry."""
        try:
            data = response.json()
        except ValueError as error:
            raise ProviderRejected(
                PROVIDER, "the response is not JSON", status=response.status_code
            ) from error
        if not isinstance(data, dict):
            raise ProviderRejected(
                PROVIDER, "the response is not a JSON object", status=response.status_code
            )
        return data

    def _all_pages(self, path: str, what: str) -> list[dict[str, Any]]:
        """Every item of a paged listing (``results`` plus ``paging.totalPages``), page by page;
        ``what`` names the listing in the error for a page without results."""
        found: list[dict[str, Any]] = []
        page = 0
        while True:
            data = self._json(self._request("GET", path, params={"page": page, "size": _PAGE_SIZE}))
            results = data.get("results", [])
            if not isinstance(results, list):
                raise ProviderRejected(PROVIDER, f"{what} page without results")
            found.extend(r for r in results if isinstance(r, dict))
            paging = data.get("paging")
            total_pages = paging.get("totalPages", 1) if isinstance(paging, dict) else 1
            page += 1
            if not results or not isinstance(total_pages, int) or page >= total_pages:
                return found


def read_error(response: httpx.Response) -> tuple[str, str]:
    """Infobip's ``requestError.serviceException``: ``messageId`` as the code, the text (plus
    field errors) as the message."""
    try:
        data = response.json()
    except ValueError:
        return "", ""
    request_error = data.get("requestError") if isinstance(data, dict) else None
    exception = request_error.get("serviceException") if isinstance(request_error, dict) else None
    if not isinstance(exception, dict):
        return "", ""
    code = str(exception.get("messageId", ""))
    text = str(exception.get("text", ""))
    fields = exception.get("validationErrors")
    if isinstance(fields, dict) and fields:
        details = "; ".join(f"{name}: {', '.join(map(str, v))}" for name, v in fields.items())
        text = f"{text} ({details})"
    return text, code

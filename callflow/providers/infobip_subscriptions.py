"""Infobip Subscriptions API: where Infobip sends the Calls API's events, and how it signs in.

Only the calls the setup command needs (``callflow setup infobip``): read the ``VOICE_VIDEO``
subscriptions and a notification profile, create a subscription with its profile and Basic-auth
security settings in one request, and point an existing profile at a new URL. Shapes follow
``specs/infobip/subscriptions-openapi.json`` (``VoiceVideoSubscriptionRequest``,
``ProfileRequest``, ``SecurityRequest``, ``SubscriptionPage``, ``NoIdProfileRequest``).

Setup runs by hand, so nothing here retries: a failure is reported with Infobip's own reason and
the operator runs the (idempotent) command again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from callflow.config import Settings
from callflow.providers.errors import ProviderError, ProviderRejected, error_for_status

PROVIDER = "infobip"
CHANNEL = "VOICE_VIDEO"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_PAGE_SIZE = 100
#: The Calls API events the workflow acts on (see ``callflow/call_events.py``).
CALL_EVENTS = (
    "CALL_RINGING",
    "CALL_PRE_ESTABLISHED",
    "CALL_ESTABLISHED",
    "CALL_FINISHED",
    "CALL_FAILED",
    "MACHINE_DETECTION_FINISHED",
    "MACHINE_DETECTION_FAILED",
)


class InvalidSubscriptionRequest(ValueError):
    """The request cannot be sent as asked (an id with characters Infobip refuses in a path)."""


@dataclass(frozen=True)
class BasicAuth:
    """The credentials Infobip presents to our events webhook."""

    auth_id: str
    username: str
    password: str


@dataclass(frozen=True)
class SubscriptionPlan:
    """One VOICE_VIDEO subscription with its own notification profile and security settings."""

    subscription_id: str
    name: str
    profile_id: str
    notify_url: str
    auth: BasicAuth
    calls_configuration_id: str
    events: tuple[str, ...] = CALL_EVENTS

    def request_body(self) -> dict[str, Any]:
        """``VoiceVideoSubscriptionRequest`` creating profile and security inline."""
        body: dict[str, Any] = {
            "subscriptionId": _path_id(self.subscription_id),
            "name": self.name,
            "events": list(self.events),
            "profile": {
                "profileId": _path_id(self.profile_id),
                "webhook": {"notifyUrl": self.notify_url, "contentType": "application/json"},
                "security": {
                    "authId": _path_id(self.auth.auth_id),
                    "type": "BASIC",
                    "credentials": {
                        "username": self.auth.username,
                        "password": self.auth.password,
                    },
                },
            },
        }
        if self.calls_configuration_id:
            body["criteria"] = [{"callsConfigurationId": self.calls_configuration_id}]
        return body

    def profile_update_body(self) -> dict[str, Any]:
        """``NoIdProfileRequest``: the profile's new URL, keeping its security settings."""
        return {
            "webhook": {"notifyUrl": self.notify_url, "contentType": "application/json"},
            "security": {"authId": _path_id(self.auth.auth_id)},
        }


class InfobipSubscriptionsClient:
    """Blocking client over the Subscriptions API, with the account's ``App`` key."""

    def __init__(self, settings: Settings, http: httpx.Client | None = None) -> None:
        self._settings = settings
        self._http = http if http is not None else httpx.Client(timeout=DEFAULT_TIMEOUT)
        self._owns_http = http is None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> InfobipSubscriptionsClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def list_subscriptions(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        """Every subscription of the channel, across pages (``SubscriptionPage``)."""
        found: list[dict[str, Any]] = []
        page = 0
        while True:
            data = self._request(
                "GET",
                f"/subscriptions/1/subscription/{_path_id(channel)}",
                params={"page": page, "size": _PAGE_SIZE},
            )
            results = data.get("results", [])
            if not isinstance(results, list):
                raise ProviderRejected(PROVIDER, "subscription page without results")
            found.extend(r for r in results if isinstance(r, dict))
            paging = data.get("paging")
            total = paging.get("totalPages", 1) if isinstance(paging, dict) else 1
            page += 1
            if not results or not isinstance(total, int) or page >= total:
                return found

    def get_profile(self, profile_id: str) -> dict[str, Any] | None:
        """The notification profile (``ProfileResponse``), or None when there is none."""
        try:
            return self._request("GET", f"/subscriptions/1/profiles/{_path_id(profile_id)}")
        except ProviderRejected as error:
            if error.status == 404:
                return None
            raise

    def create_subscription(self, plan: SubscriptionPlan, channel: str = CHANNEL) -> str:
        """Create subscription, profile and security settings; returns the subscription id."""
        data = self._request(
            "POST", f"/subscriptions/1/subscription/{_path_id(channel)}", plan.request_body()
        )
        subscription_id = data.get("subscriptionId")
        if not isinstance(subscription_id, str) or not subscription_id:
            raise ProviderRejected(PROVIDER, "the response has no 'subscriptionId'")
        return subscription_id

    def update_profile(self, plan: SubscriptionPlan) -> None:
        """Point the plan's profile at the plan's URL."""
        self._request(
            "PUT",
            f"/subscriptions/1/profiles/{_path_id(plan.profile_id)}",
            plan.profile_update_body(),
        )

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        api_key = self._settings.infobip_api_key.get_secret_value()
        if not api_key:
            raise InvalidSubscriptionRequest("infobip_api_key is not set")
        url = self._settings.infobip_base_url.rstrip("/") + path
        headers = {"Authorization": f"App {api_key}", "Accept": "application/json"}
        try:
            response = self._http.request(
                method, url, json=body, params=params, headers=headers, timeout=DEFAULT_TIMEOUT
            )
        except httpx.TransportError as error:
            raise error_for_status(
                PROVIDER, 503, f"{method} {path} failed: {type(error).__name__}"
            ) from error
        if response.status_code >= 400:
            raise _error_from(response, f"{method} {path}")
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError as error:
            raise ProviderRejected(
                PROVIDER, "the response is not JSON", status=response.status_code
            ) from error
        if not isinstance(data, dict):
            raise ProviderRejected(PROVIDER, "the response is not a JSON object")
        return data


def _error_from(response: httpx.Response, what: str) -> ProviderError:
    """Infobip's ``requestError.serviceException`` (text plus field errors) as a typed error."""
    code, text = "", ""
    try:
        data = response.json()
    except ValueError:
        data = None
    request_error = data.get("requestError") if isinstance(data, dict) else None
    exception = request_error.get("serviceException") if isinstance(request_error, dict) else None
    if isinstance(exception, dict):
        code = str(exception.get("messageId", ""))
        text = str(exception.get("text", ""))
        fields = exception.get("validationErrors")
        if isinstance(fields, dict) and fields:
            details = "; ".join(f"{name}: {', '.join(map(str, v))}" for name, v in fields.items())
            text = f"{text} ({details})"
    return error_for_status(
        PROVIDER, response.status_code, text or f"{what} answered HTTP {response.status_code}", code
    )


def _path_id(value: str) -> str:
    """Ids travel in URL paths; Infobip forbids characters that would need encoding."""
    if not value or not all(c.isalnum() or c in "-_." for c in value):
        raise InvalidSubscriptionRequest(f"{value!r} is not usable as an Infobip id")
    return value

"""Infobip Subscriptions API: where Infobip sends the Calls API's events, and how it signs in.

Only the calls the setup command needs (``callflow setup infobip``): read the ``VOICE_VIDEO``
subscriptions and a notification profile, create a subscription with its profile and Basic-auth
security settings in one request, and point an existing profile at a new URL. Shapes follow
``callflow_dev/schemas/infobip/subscriptions.json`` (``VoiceVideoSubscriptionRequest``,
``ProfileRequest``, ``SecurityRequest``, ``SubscriptionPage``, ``NoIdProfileRequest``).

Setup runs by hand, so nothing here retries: a failure is reported with Infobip's own reason and
the operator runs the (idempotent) command again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callflow.providers.errors import ProviderRejected
from callflow.providers.infobip.http import PROVIDER, InfobipHttp

CHANNEL = "VOICE_VIDEO"
#: The Calls API events the workflow acts on (see ``callflow/call_events.py``).
CALL_EVENTS = (
    "CALL_RINGING",
    "CALL_PRE_ESTABLISHED",
    "CALL_ESTABLISHED",
    "CALL_FINISHED",
    "CALL_FAILED",
    "MACHINE_DETECTION_FINISHED",
    "MACHINE_DETECTION_FAILED",
    # The dialog to the bridge failed: hang up and say so, instead of leaving the person in
    # silence until the call's max duration.
    "DIALOG_FAILED",
    "ERROR",
    "MEDIA_STREAM_FAILED",
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

    def update_body(self) -> dict[str, Any]:
        """``VoiceVideoNoIdSubscriptionRequest``: the plan's events on the existing subscription,
        keeping its profile (by id) and criteria."""
        body: dict[str, Any] = {
            "name": self.name,
            "profile": {"profileId": _path_id(self.profile_id)},
            "events": list(self.events),
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


class InfobipSubscriptionsClient(InfobipHttp):
    """Blocking client over the Subscriptions API, with the account's ``App`` key."""

    invalid_request = InvalidSubscriptionRequest

    def list_subscriptions(self, channel: str = CHANNEL) -> list[dict[str, Any]]:
        """Every subscription of the channel, across pages (``SubscriptionPage``)."""
        return self._all_pages(f"/subscriptions/1/subscription/{_path_id(channel)}", "subscription")

    def get_profile(self, profile_id: str) -> dict[str, Any] | None:
        """The notification profile (``ProfileResponse``), or None when there is none."""
        try:
            return self._object("GET", f"/subscriptions/1/profiles/{_path_id(profile_id)}")
        except ProviderRejected as error:
            if error.status == 404:
                return None
            raise

    def create_subscription(self, plan: SubscriptionPlan, channel: str = CHANNEL) -> str:
        """Create subscription, profile and security settings; returns the subscription id."""
        data = self._object(
            "POST", f"/subscriptions/1/subscription/{_path_id(channel)}", plan.request_body()
        )
        subscription_id = data.get("subscriptionId")
        if not isinstance(subscription_id, str) or not subscription_id:
            raise ProviderRejected(PROVIDER, "the response has no 'subscriptionId'")
        return subscription_id

    def update_subscription(self, plan: SubscriptionPlan, channel: str = CHANNEL) -> None:
        """Replace the existing subscription's events (and criteria) with the plan's: a
        subscription made by an older setup must also send the events added since."""
        self._request(
            "PUT",
            f"/subscriptions/1/subscription/{_path_id(channel)}/{_path_id(plan.subscription_id)}",
            plan.update_body(),
        )

    def update_profile(self, plan: SubscriptionPlan) -> None:
        """Point the plan's profile at the plan's URL."""
        self._request(
            "PUT",
            f"/subscriptions/1/profiles/{_path_id(plan.profile_id)}",
            plan.profile_update_body(),
        )

    def _object(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The answer's JSON object; an empty body reads as ``{}``."""
        response = self._request(method, path, body)
        return self._json(response) if response.content else {}


def _path_id(value: str) -> str:
    """Ids travel in URL paths; Infobip forbids characters that would need encoding."""
    if not value or not all(c.isalnum() or c in "-_." for c in value):
        raise InvalidSubscriptionRequest(f"{value!r} is not usable as an Infobip id")
    return value

"""The doctor's read-only checks: this deployment's own endpoints, Zoho, Infobip, ElevenLabs.

Nothing here writes to a provider. The Infobip part is ``callflow setup infobip --dry-run`` with
every change it would make counted as a problem; the ElevenLabs part is ``callflow setup
elevenlabs`` (read-only already). The endpoint probes send requests that each route must refuse
(no credentials) or reject before doing any work (credentials, but a body that names nothing), so
they show that the route exists, that it authenticates, and that it takes our credentials.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit, urlunsplit

import httpx

from callflow.config import Settings
from callflow.providers.errors import ProviderAuthError, ProviderError
from callflow_dev.provisioning import (
    InfobipOptions,
    Report,
    SetupError,
    api_base_url,
    bridge_websocket_url,
)

PROBE_TIMEOUT_S = 10.0


class DoctorReport(Report):
    """A setup report in which anything setup would still change is a problem to fix."""

    def would(self, text: str) -> None:
        """A change a dry run would make: here, something not set up yet."""
        self.problem(f"not set up: {text} (`callflow setup` does it)")


@dataclass(frozen=True)
class DoctorOptions:
    """What the checks are about: the deployment's URLs and the modules it calls from."""

    api_url: str
    bridge_url: str = ""
    modules: tuple[str, ...] = ("Leads",)
    subscription_id: str = InfobipOptions.subscription_id
    profile_id: str = InfobipOptions.profile_id
    auth_id: str = InfobipOptions.auth_id


# --- this deployment's endpoints -----------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """One request to one of our routes and the statuses that mean it is right."""

    what: str
    method: str
    path: str
    expect: frozenset[int]
    meaning: str
    """What an expected answer shows (printed when it holds)."""
    headers: dict[str, str] | None = None
    json: Any = None
    auth: tuple[str, str] | None = None


def endpoint_probes(settings: Settings) -> list[Probe]:
    """The requests that show each route is there, authenticates, and takes our credentials."""
    path_secret = settings.infobip_webhook_path_secret.get_secret_value()
    trigger_secret = settings.zoho_trigger_secret.get_secret_value()
    token = settings.status_api_token.get_secret_value()
    unknown_session = "doctor-" + secrets.token_hex(8)
    refused = frozenset({401, 403})
    return [
        Probe("health", "GET", "/health", frozenset({200}), "the API answers"),
        Probe(
            "Zoho trigger without the secret",
            "POST",
            "/webhooks/zoho",
            refused,
            "the trigger refuses a request without X-Callflow-Secret",
            json={"module": "Leads", "record_id": "1"},
        ),
        Probe(
            "Zoho trigger with the secret",
            "POST",
            "/webhooks/zoho",
            frozenset({400, 415, 422}),
            "the trigger takes zoho_trigger_secret (and refused the empty body before any work)",
            headers={"X-Callflow-Secret": trigger_secret},
            json={},
        ),
        Probe(
            "Infobip events without Basic auth",
            "POST",
            f"/webhooks/infobip/{path_secret}",
            refused,
            "the events route refuses a request without Basic auth",
            json={},
        ),
        Probe(
            "Infobip events with Basic auth",
            "POST",
            f"/webhooks/infobip/{path_secret}",
            frozenset({400, 422}),
            "the events route takes the subscription's credentials and path secret",
            json={},
            auth=(
                settings.infobip_webhook_username,
                settings.infobip_webhook_password.get_secret_value(),
            ),
        ),
        Probe(
            "ElevenLabs post-call webhook without a signature",
            "POST",
            "/webhooks/elevenlabs",
            refused,
            "the post-call route refuses an unsigned delivery",
            json={},
        ),
        Probe(
            "session status with the token",
            "GET",
            f"/sessions/{unknown_session}",
            frozenset({404}),
            "the status route takes status_api_token",
            headers={"Authorization": f"Bearer {token}"},
        ),
    ]


def check_endpoints(
    settings: Settings, options: DoctorOptions, http: httpx.Client, report: Report
) -> None:
    """Each probe against the API, then the bridge's health route."""
    base = api_base_url(options.api_url)
    for probe in endpoint_probes(settings):
        try:
            response = http.request(
                probe.method,
                base + probe.path,
                headers=probe.headers,
                json=probe.json,
                auth=probe.auth,
                timeout=PROBE_TIMEOUT_S,
            )
        except httpx.HTTPError as error:
            report.problem(f"{probe.what}: the API at {base} cannot be reached ({error})")
            if probe.path == "/health":
                return  # every other probe would say the same
            continue
        if response.status_code in probe.expect:
            report.done(probe.meaning)
        else:
            report.problem(_unexpected(probe, response.status_code))
    check_bridge_health(settings, options, http, report)


def _unexpected(probe: Probe, status: int) -> str:
    expected = " or ".join(str(code) for code in sorted(probe.expect))
    if 200 <= status < 300 and 200 not in probe.expect:
        why = "the route accepted a request it must refuse: check the deployment's secrets"
    elif status >= 500:
        why = "the deployment failed on the request: see its logs"
    elif status in (401, 403):
        why = "our credentials are refused: the deployment has other secrets than these"
    elif status == 404:
        why = "the route is not there: is this the deployment's ApiUrl?"
    else:
        why = ""
    return f"{probe.what}: answered {status}, expected {expected}" + (f"; {why}" if why else "")


def bridge_health_url(websocket_url: str) -> str:
    """``wss://host/secret`` -> ``https://host/health`` (the bridge's health route)."""
    parts = urlsplit(websocket_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, "/health", "", ""))


def check_bridge_health(
    settings: Settings, options: DoctorOptions, http: httpx.Client, report: Report
) -> None:
    """The bridge answers its health route (what the load balancer and Infobip reach)."""
    try:
        url = bridge_health_url(bridge_websocket_url(settings, options.bridge_url))
    except SetupError as error:
        report.problem(f"bridge: {error}")
        return
    try:
        response = http.get(url, timeout=PROBE_TIMEOUT_S)
    except httpx.HTTPError as error:
        report.problem(f"the bridge at {url} cannot be reached ({error})")
        return
    if response.status_code == 200:
        report.done(f"the bridge answers at {url}")
    elif response.status_code == 503:
        report.problem(f"the bridge at {url} is draining (503): a deployment is under way?")
    else:
        report.problem(f"the bridge's health route {url} answered {response.status_code}")


# --- Zoho ----------------------------------------------------------------------------------


def required_zoho_scopes(modules: Iterable[str], *, tasks: bool = False) -> list[str]:
    """The scopes the workflow uses, as ``ZohoCRM.<path>.<OPERATION>``: each module's records
    read and updated, notes, calls and attachments (a transcript past the note's size) created
    and read (the writeback looks for its own before creating again), tasks likewise when a
    callback creates one (``tasks``), and the modules' field metadata read."""
    needed = []
    for module in modules:
        needed += [
            f"ZohoCRM.modules.{module.lower()}.READ",
            f"ZohoCRM.modules.{module.lower()}.UPDATE",
        ]
    needed += [
        "ZohoCRM.modules.notes.CREATE",
        "ZohoCRM.modules.notes.READ",
        "ZohoCRM.modules.calls.CREATE",
        "ZohoCRM.modules.calls.READ",
        "ZohoCRM.modules.attachments.CREATE",
        "ZohoCRM.modules.attachments.READ",
        "ZohoCRM.settings.fields.READ",
    ]
    if tasks:
        needed += ["ZohoCRM.modules.tasks.CREATE", "ZohoCRM.modules.tasks.READ"]
    return needed


def missing_zoho_scopes(granted: str, needed: Sequence[str]) -> list[str]:
    """The ``needed`` scopes no granted scope covers. A granted ``ZohoCRM.modules.ALL`` covers
    every module's every operation; ``ZohoCRM.modules.leads.ALL`` every operation on Leads."""
    grants = []
    for scope in granted.replace(",", " ").split():
        parts = scope.split(".")
        if len(parts) >= 3 and parts[0].lower() == "zohocrm":
            grants.append(([p.lower() for p in parts[1:-1]], parts[-1].upper()))
    missing = []
    for scope in needed:
        parts = scope.split(".")
        path, operation = [p.lower() for p in parts[1:-1]], parts[-1].upper()
        if not any(
            path[: len(grant_path)] == grant_path and grant_op in ("ALL", operation)
            for grant_path, grant_op in grants
        ):
            missing.append(scope)
    return missing


def check_zoho(
    settings: Settings,
    options: DoctorOptions,
    access_token: Callable[[], Any],
    report: Report,
    fields_check: Callable[[Report], None] | None = None,
) -> None:
    """The refresh token gives an access token with the scopes the workflow uses; then
    ``fields_check`` (every mapped field on its module), when given."""
    try:
        token = access_token()
    except ProviderAuthError as error:
        report.problem(
            f"Zoho refused the refresh token ({error.message}): generate a new one "
            "(docs/deploy.md) and put it into zoho_refresh_token"
        )
        return
    except ProviderError as error:
        report.problem(f"Zoho's token endpoint is unavailable ({error}); run the doctor again")
        return
    report.done(f"Zoho access token for {token.api_domain}")
    if not token.scope:
        report.info(
            "the cached access token does not list its scopes (issued before this version); "
            "they are checked once it is next refreshed"
        )
    else:
        missing = missing_zoho_scopes(
            token.scope, required_zoho_scopes(options.modules, tasks=settings.callback_task)
        )
        if missing:
            report.problem(
                f"the refresh token lacks scope{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}: generate a new one with them (or ZohoCRM.modules.ALL and "
                "ZohoCRM.settings.fields.READ)"
            )
        else:
            report.done("the token's scopes cover records, notes, calls and field metadata")
    if fields_check is not None:
        fields_check(report)


# --- Infobip --------------------------------------------------------------------------------


class CallsConfigurations(Protocol):
    """What the check needs from :class:`callflow.providers.infobip.calls.InfobipClient`."""

    def get_calls_configuration(self, configuration_id: str) -> dict[str, Any] | None:
        """The configuration, or ``None`` when the account has none by that id."""


def check_calls_configuration(
    settings: Settings, calls: CallsConfigurations, report: Report
) -> None:
    """The calls configuration every call is placed under exists on the account (the API key
    works if this answers at all)."""
    print("Infobip account", file=report.out)
    configuration_id = settings.infobip_calls_configuration_id
    if not configuration_id:
        report.problem(
            "infobip_calls_configuration_id is not set: calls are placed under a calls "
            "configuration; create one in the Infobip portal (Channels > Voice > Calls API) and "
            "set its id"
        )
        return
    found = calls.get_calls_configuration(configuration_id)
    if found is None:
        report.problem(
            f"the account has no calls configuration {configuration_id!r}: check "
            "infobip_calls_configuration_id (and that the API key is this account's)"
        )
    else:
        report.done(f"calls configuration {configuration_id!r} ({found.get('name', '')}) exists")
    if not settings.infobip_from_number:
        report.problem("infobip_from_number is not set: calls need a caller id")


def section(title: str, out: TextIO) -> None:
    """A heading line between the checks' groups."""
    print(title, file=out)

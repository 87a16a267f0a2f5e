"""Connecting a deployment to the three providers: ``callflow setup infobip|elevenlabs|zoho``.

Every command is safe to run again. ``infobip`` looks before it creates (the media-stream config
with the bridge's URL and sample rate, the ``VOICE_VIDEO`` subscription by its id) and changes
only what differs; ``--dry-run`` reads but writes nothing and says what it would do.
``elevenlabs`` changes nothing: it compares the agent with what the bridge and the workflow need
and says, in words an operator can act on, what to fix in the ElevenLabs dashboard. ``zoho`` prints
the workflow rule's webhook settings (Zoho has no API for workflow rules) and the list-view
button that starts a campaign over the selected records (:mod:`callflow_dev.zoho_campaign_button`).

Settings come from the environment and the Secrets Manager secret like everywhere else
(:func:`callflow.config.get_settings`): run it with the deployed stage's ``CALLFLOW_*`` variables
and ``CALLFLOW_SECRETS_ID``, or with a local ``.env``-style environment.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

import httpx

from callflow.config import Settings, get_settings
from callflow.lifecycle import media_configs
from callflow.mapping import FieldMapping
from callflow.providers.elevenlabs.client import AgentSummary, ElevenLabsClient, override_paths
from callflow.providers.errors import (
    ProviderAuthError,
    ProviderError,
)
from callflow.providers.infobip.subscriptions import (
    BasicAuth,
    InfobipSubscriptionsClient,
    SubscriptionPlan,
)
from callflow.providers.zoho.client import ZohoField
from callflow_bridge.audio import AudioFormat, UnsupportedFormat
from callflow_dev.zoho_campaign_button import install_steps

MASK = "********"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_NAME = "callflow"

#: Zoho's merge field for each module's record id ("Insert merge field" in the webhook editor);
#: Deals keep their historical name, Potentials.
ZOHO_ID_MERGE_FIELDS = {
    "Leads": "${Leads.Lead Id}",
    "Contacts": "${Contacts.Contact Id}",
    "Deals": "${Potentials.Potential Id}",
}


CREDENTIAL_SETTING = {
    # The secret setting that holds each provider's credential (named when a provider refuses it).
    "infobip": "infobip_api_key",
    "elevenlabs": "elevenlabs_api_key",
    "zoho": "zoho_refresh_token",
}


class SetupError(ValueError):
    """Setup cannot start: a setting or an argument is missing or malformed (the message says
    which, and where to set it)."""


@dataclass
class Report:
    """What a setup command did or found, line by line; ``problems`` decide the exit status."""

    out: TextIO
    problems: list[str] = field(default_factory=list)

    def info(self, text: str) -> None:
        """A line that is neither a change nor a problem: context or advice."""
        print(f"  {text}", file=self.out)

    def done(self, text: str) -> None:
        """Something already right, or just made right."""
        print(f"  ok: {text}", file=self.out)

    def would(self, text: str) -> None:
        """What a dry run would change."""
        print(f"  would: {text}", file=self.out)

    def problem(self, text: str) -> None:
        """Something the operator must fix; recorded, so the command exits with 1."""
        self.problems.append(text)
        print(f"  PROBLEM: {text}", file=self.out)

    @property
    def exit_code(self) -> int:
        """1 if any problem was reported, else 0."""
        return 1 if self.problems else 0


# --- shared checks -------------------------------------------------------------------------------


def api_base_url(value: str) -> str:
    """The deployed API's base URL (stack output ``ApiUrl``), without a trailing slash."""
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        if parts.query or parts.fragment:
            raise SetupError(f"--api-url must be a base URL without query or fragment: {value!r}")
        return url
    raise SetupError(
        f"--api-url must be the API's https:// URL (stack output ApiUrl), got {value!r}"
    )


def _required_secret(settings: Settings, name: str) -> str:
    value = getattr(settings, name).get_secret_value()
    if not value:
        raise SetupError(
            f"{name} is empty: set it in the Secrets Manager secret (CALLFLOW_SECRETS_ID) or as "
            f"CALLFLOW_{name.upper()}"
        )
    return str(value)


def _shown(secret: str, show_secrets: bool) -> str:
    return secret if show_secrets else MASK


# --- Infobip ------------------------------------------------------------------------------------


def bridge_websocket_url(settings: Settings, override: str = "") -> str:
    """The media-stream URL: ``wss://<bridge domain>/<bridge_path_secret>``."""
    url = (override or settings.bridge_public_url).strip()
    if not url:
        raise SetupError(
            "the bridge URL is not set: pass --bridge-url or set CALLFLOW_BRIDGE_PUBLIC_URL to the "
            "stack output BridgeWebSocketUrl with {bridge_path_secret} replaced by the secret"
        )
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    local = parts.scheme == "ws" and parts.hostname in LOOPBACK_HOSTS
    if not (secure or local):
        raise SetupError(f"the bridge URL must start with wss:// (Infobip needs TLS), got {url!r}")
    if parts.path.strip("/") == "" or "{" in parts.path:
        raise SetupError(
            "the bridge URL must end with the bridge_path_secret path (the bridge refuses "
            "connections on any other path)"
        )
    return url


@dataclass(frozen=True)
class InfobipOptions:
    """The ``setup infobip`` arguments: URLs, the names and ids to find or create, the modes."""

    api_url: str
    bridge_url: str = ""
    name: str = DEFAULT_NAME
    subscription_id: str = "callflow-voice-video"
    profile_id: str = "callflow-events"
    auth_id: str = "callflow-basic"
    dry_run: bool = False
    show_secrets: bool = False


class MediaStreamConfigApi(Protocol):
    """What setup needs from :class:`callflow.providers.infobip.InfobipClient`."""

    def list_media_stream_configs(self) -> list[dict[str, Any]]:
        """Every media-stream config of the account, across pages."""

    def create_media_stream_config(self, name: str, url: str, sample_rate: int) -> str:
        """Create a WEBSOCKET_ENDPOINT config streaming to ``url``; returns its id."""


class AgentApi(Protocol):
    """What the check needs from :class:`callflow.providers.elevenlabs.ElevenLabsClient`."""

    def get_agent(self, agent_id: str | None = None) -> dict[str, Any]:
        """The agent's configuration (``GET /v1/convai/agents/{agent_id}``)."""


def ensure_media_stream_config(
    configs: MediaStreamConfigApi,
    *,
    name: str,
    url: str,
    sample_rate: int,
    dry_run: bool,
    report: Report,
    shown_url: str,
) -> str | None:
    """The id of a WEBSOCKET_ENDPOINT config for ``url`` at ``sample_rate``, created if none.

    A config with the same URL but another rate is not reused: Infobip would stream audio at the
    wrong rate and the bridge would hear noise.
    """
    wanted_rate = str(sample_rate)
    other_rates = []
    for config in configs.list_media_stream_configs():
        if config.get("type") != "WEBSOCKET_ENDPOINT" or config.get("url") != url:
            continue
        if str(config.get("sampleRate")) == wanted_rate:
            config_id = str(config.get("id", ""))
            report.done(f"media-stream config {config_id} already points at {shown_url}")
            return config_id
        other_rates.append(str(config.get("sampleRate")))
    if other_rates:
        report.info(
            f"configs for this URL exist at sample rate {', '.join(other_rates)}, "
            f"not {wanted_rate}: a new one is needed"
        )
    if dry_run:
        report.would(
            f"create media-stream config {name!r} -> {shown_url} (sampleRate {wanted_rate!r})"
        )
        return None
    config_id = configs.create_media_stream_config(name, url, sample_rate)
    report.done(f"created media-stream config {config_id} -> {shown_url}")
    return config_id


def ensure_voice_subscription(
    client: InfobipSubscriptionsClient,
    plan: SubscriptionPlan,
    *,
    dry_run: bool,
    report: Report,
    shown_url: str,
) -> None:
    """The VOICE_VIDEO subscription with its profile (our events URL) and Basic auth."""
    existing = next(
        (s for s in client.list_subscriptions() if s.get("subscriptionId") == plan.subscription_id),
        None,
    )
    if existing is None:
        if dry_run:
            report.would(
                f"create VOICE_VIDEO subscription {plan.subscription_id!r} with profile "
                f"{plan.profile_id!r} -> {shown_url} (Basic auth as {plan.auth.username!r}, "
                f"events {', '.join(plan.events)})"
            )
            return
        client.create_subscription(plan)
        report.done(
            f"created VOICE_VIDEO subscription {plan.subscription_id!r} -> {shown_url} (Basic auth)"
        )
        return
    subscribed = existing.get("events")
    missing = [e for e in plan.events if not isinstance(subscribed, list) or e not in subscribed]
    if missing and dry_run:
        report.would(f"add events {', '.join(missing)} to subscription {plan.subscription_id!r}")
    elif missing:
        client.update_subscription(plan)
        report.done(f"subscription {plan.subscription_id!r} now also sends {', '.join(missing)}")
    profile_ref = existing.get("profile")
    profile_id = (
        str(profile_ref.get("profileId", "")) if isinstance(profile_ref, Mapping) else ""
    ) or plan.profile_id
    profile = client.get_profile(profile_id)
    webhook = profile.get("webhook") if profile else None
    current = webhook.get("notifyUrl") if isinstance(webhook, Mapping) else None
    if current == plan.notify_url:
        report.done(f"subscription {plan.subscription_id!r} already sends events to {shown_url}")
        return
    if profile_id != plan.profile_id:
        report.problem(
            f"subscription {plan.subscription_id!r} uses notification profile {profile_id!r}, "
            f"not {plan.profile_id!r}; delete the subscription in the Infobip portal (or pass "
            "another --subscription-id) and run setup again"
        )
        return
    if dry_run:
        report.would(f"point notification profile {plan.profile_id!r} at {shown_url}")
        return
    client.update_profile(plan)
    report.done(f"notification profile {plan.profile_id!r} now points at {shown_url}")


MEDIA_IDS_ADVICE = (
    "each dialog sends the session id and its one-time token twice: in the child call's "
    "customData and as the WEBSOCKET endpoint's identifier (<session id>.<token>);",
    "where Infobip shows them on the socket is undocumented, so the bridge looks in the first "
    "frame (top level, nested customData, identifier) and in the URL's path, query and headers;",
    "after a first real call, the session's media_ids_found_in says which place worked; a stream "
    "that named nothing is closed 1008 and its shape (values redacted) is logged and kept in "
    "the table under pk 'bridge#unmatched-media'.",
)
"""What ``setup infobip`` tells about how the bridge finds the session of a media stream."""

MEDIA_ROUTING_ADVICE = (
    "two media routings (CALLFLOW_INFOBIP_MEDIA_ROUTING): 'shared', the default, sends every "
    "dialog to one config (CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID, made here) and relies on "
    "Infobip showing the session's ids on the socket;",
    "'per-session' makes a config per call attempt whose URL path carries them "
    "(<bridge URL>/<session id>/<token>), so nothing depends on what Infobip sends; it needs "
    "no shared config, but the bridge's public URL in the deployment's settings "
    "(bridge_public_url) and the scheduled sweep_media_configs function the stack deploys.",
)
"""What ``setup infobip`` tells about the two ways a media stream finds its session."""


def setup_infobip(
    settings: Settings,
    options: InfobipOptions,
    *,
    calls_client: MediaStreamConfigApi,
    subscriptions: InfobipSubscriptionsClient,
    out: TextIO,
    report: Report | None = None,
) -> Report:
    """Media-stream config and events subscription for this deployment (``report``: where the
    findings go; ``callflow doctor`` passes one that counts a needed change as a problem)."""
    report = report if report is not None else Report(out)
    base = api_base_url(options.api_url)
    # Every secret checked before anything is read or written at Infobip.
    _required_secret(settings, "infobip_webhook_path_secret")
    _required_secret(settings, "infobip_webhook_password")
    _required_secret(settings, "infobip_api_key")
    bridge_url = bridge_websocket_url(settings, options.bridge_url)
    bridge_path = urlsplit(bridge_url).path
    shown_bridge = (
        bridge_url
        if options.show_secrets
        else bridge_url[: len(bridge_url) - len(bridge_path)] + "/" + MASK
    )
    try:
        AudioFormat.phone(settings.infobip_sample_rate)
    except UnsupportedFormat as error:
        raise SetupError(f"CALLFLOW_INFOBIP_SAMPLE_RATE: {error}") from None

    print("Infobip media stream (the answered call's audio to the bridge)", file=out)
    for line in MEDIA_ROUTING_ADVICE:
        report.info(line)
    report.info(f"this deployment: CALLFLOW_INFOBIP_MEDIA_ROUTING={settings.infobip_media_routing}")
    if media_configs.per_session(settings):
        check_per_session_routing(settings, bridge_url, report)
        if not settings.infobip_media_stream_config_id:
            report.info(
                "no shared config is set, and none is made: when the minute's config creations "
                "are used up an attempt fails and the workflow retries it; run setup once with "
                "CALLFLOW_INFOBIP_MEDIA_ROUTING=shared to make one to fall back on"
            )
            print("Infobip call events (webhook subscription)", file=out)
            return _ensure_subscription(settings, options, subscriptions, report, base)
    config_id = ensure_media_stream_config(
        calls_client,
        name=options.name,
        url=bridge_url,
        sample_rate=settings.infobip_sample_rate,
        dry_run=options.dry_run,
        report=report,
        shown_url=shown_bridge,
    )
    if config_id:
        if settings.infobip_media_stream_config_id == config_id:
            report.done("CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID already has this id")
        else:
            report.info(
                f"set infobip_media_stream_config_id = {config_id} in the stage's settings "
                "(infra/cdk/cdk.json) and deploy, or CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID "
                "locally"
            )

    if not media_configs.per_session(settings):
        for line in MEDIA_IDS_ADVICE:
            report.info(line)

    print("Infobip call events (webhook subscription)", file=out)
    return _ensure_subscription(settings, options, subscriptions, report, base)


def check_per_session_routing(settings: Settings, bridge_url: str, report: Report) -> None:
    """What per-session routing needs of the deployment, in words: the bridge's public URL in
    its own settings (the call-placing Lambda makes every config's URL from it, not from this
    command's ``--bridge-url``), a creation budget below Infobip's 100 a minute, the sweeper."""
    own = settings.bridge_public_url.strip()
    if not own:
        report.problem(
            "per-session routing needs bridge_public_url in the deployment's settings (the "
            "secret, or CALLFLOW_BRIDGE_PUBLIC_URL): every attempt's config URL is made from it"
        )
    elif own.rstrip("/") != bridge_url.rstrip("/"):
        report.problem(
            "bridge_public_url in the settings is not the bridge URL given here: the attempts' "
            "configs would point elsewhere"
        )
    budget = settings.infobip_config_creations_per_minute
    if not 1 <= budget < 100:
        report.problem(
            f"CALLFLOW_INFOBIP_CONFIG_CREATIONS_PER_MINUTE={budget}: it must be 1..99, below "
            "Infobip's 100 config creations a minute per account"
        )
    else:
        report.info(
            f"at most {budget} configs are made a minute across every Lambda (Infobip allows "
            "100); past that an attempt uses the shared config, if one is set"
        )
    report.info(
        f"sweep_media_configs (every 15 minutes) deletes '{media_configs.NAME_PREFIX}*' configs "
        f"older than {media_configs.max_age_seconds(settings)} s that an attempt's end left behind"
    )


def _ensure_subscription(
    settings: Settings,
    options: InfobipOptions,
    subscriptions: InfobipSubscriptionsClient,
    report: Report,
    base: str,
) -> Report:
    """The events subscription and its notification profile, pointing at this deployment."""
    path_secret = _required_secret(settings, "infobip_webhook_path_secret")
    password = _required_secret(settings, "infobip_webhook_password")
    notify_url = f"{base}/webhooks/infobip/{path_secret}"
    shown_notify = f"{base}/webhooks/infobip/{_shown(path_secret, options.show_secrets)}"
    if not settings.infobip_calls_configuration_id:
        report.info(
            "no infobip_calls_configuration_id is set: the subscription matches every calls "
            "configuration of the account"
        )
    plan = SubscriptionPlan(
        subscription_id=options.subscription_id,
        name=f"{options.name} call events",
        profile_id=options.profile_id,
        notify_url=notify_url,
        auth=BasicAuth(options.auth_id, settings.infobip_webhook_username, password),
        calls_configuration_id=settings.infobip_calls_configuration_id,
    )
    ensure_voice_subscription(
        subscriptions, plan, dry_run=options.dry_run, report=report, shown_url=shown_notify
    )
    return report


# --- ElevenLabs ---------------------------------------------------------------------------------


class ElevenLabsWorkspace:
    """The two workspace reads the webhook check needs, besides the agent itself
    (``GET /v1/convai/settings``, ``GET /v1/workspace/webhooks``)."""

    def __init__(self, settings: Settings, http: httpx.Client | None = None) -> None:
        self._client = ElevenLabsClient(settings, http)

    def close(self) -> None:
        """Close the HTTP client, unless it was handed in: then its owner closes it."""
        self._client.close()

    def post_call_webhook_id(self) -> str | None:
        """The workspace-wide post-call webhook's id (``/v1/convai/settings``), if one is set."""
        value = self._convai_webhooks().get("post_call_webhook_id")
        return str(value) if value else None

    def sends_audio(self) -> bool:
        """Whether the workspace's post-call webhooks also send ``post_call_audio``
        (``ConvAIWebhooks.send_audio``, off by default)."""
        return self._convai_webhooks().get("send_audio") is True

    def _convai_webhooks(self) -> Mapping[str, Any]:
        webhooks = self._get("/v1/convai/settings").get("webhooks")
        return webhooks if isinstance(webhooks, Mapping) else {}

    def webhooks(self) -> list[dict[str, Any]]:
        """The workspace's webhooks (``/v1/workspace/webhooks``); none if the answer has no list."""
        data = self._get("/v1/workspace/webhooks")
        items = data.get("webhooks")
        return [w for w in items if isinstance(w, dict)] if isinstance(items, list) else []

    def _get(self, path: str) -> dict[str, Any]:
        return self._client.get_json(path, f"GET {path}")


def check_audio_formats(summary: AgentSummary, phone_rate: int, report: Report) -> None:
    """Formats match the phone leg, or the bridge converts them; anything else is a problem."""
    phone = AudioFormat.phone(phone_rate)
    for label, name, where in (
        ("input (caller -> agent)", summary.input_format, "ASR > user input audio format"),
        ("output (agent -> caller)", summary.output_format, "TTS > output format"),
    ):
        try:
            agent_format = AudioFormat.parse(name)
        except UnsupportedFormat:
            report.problem(
                f"the agent's {label} audio format is {name!r}, which the bridge cannot convert; "
                f"in the agent's settings ({where}) choose {phone.name} (the phone leg's format)"
            )
            continue
        if agent_format == phone:
            report.done(f"{label} audio format {name} matches the phone leg")
        else:
            report.info(
                f"{label} audio format is {name}, the phone leg is {phone.name}: the bridge "
                f"converts every frame; choose {phone.name} on the agent to save that work"
            )


def check_agent(
    settings: Settings,
    agent: Mapping[str, Any],
    *,
    mapped_items: Sequence[str],
    report: Report,
) -> None:
    """The agent against what the bridge and the writeback rely on."""
    summary = AgentSummary.from_agent(agent)
    check_audio_formats(summary, settings.infobip_sample_rate, report)
    if "interruption" in summary.client_events:
        report.done("'interruption' is among the agent's client events (barge-in works)")
    else:
        report.problem(
            "'interruption' is not among the agent's client events, so the caller cannot "
            "interrupt the agent; enable it under the agent's Advanced > Client events"
        )
    missing = [item for item in mapped_items if item not in summary.data_collection]
    if missing:
        for item in missing:
            report.problem(
                f"the field mapping uses data-collection item {item!r}, which the agent does not "
                "define; add it under the agent's Analysis > Data collection (same identifier), "
                "or remove it from the mapping file"
            )
    else:
        report.done(f"every mapped data-collection item exists ({len(mapped_items)})")
    for path in override_paths(settings.overrides):
        if summary.overrides.get(path) is True:
            report.done(f"override {path} is enabled on the agent")
        else:
            report.problem(
                f"CALLFLOW_ELEVENLABS_OVERRIDES sets {path}, but the agent does not allow that "
                "override; enable it under the agent's Security > Overrides or remove it, "
                "otherwise ElevenLabs closes every conversation (1008)"
            )


def check_post_call_webhook(
    settings: Settings,
    agent: Mapping[str, Any],
    workspace: ElevenLabsWorkspace,
    *,
    expected_url: str,
    report: Report,
) -> None:
    """A post-call webhook pointing at our API, enabled, with its HMAC secret in our settings."""
    platform = agent.get("platform_settings")
    overrides = platform.get("workspace_overrides") if isinstance(platform, Mapping) else None
    hooks = overrides.get("webhooks") if isinstance(overrides, Mapping) else None
    webhook_id = hooks.get("post_call_webhook_id") if isinstance(hooks, Mapping) else None
    if not webhook_id:
        webhook_id = workspace.post_call_webhook_id()
    if not webhook_id:
        report.problem(
            f"no post-call webhook is configured; in ElevenLabs > Agents > Settings > Post-call "
            f"webhook, create one (HMAC) for {expected_url} and put its secret into "
            "elevenlabs_webhook_secret (without it the workflow falls back to polling)"
        )
        return
    webhook = next((w for w in workspace.webhooks() if w.get("webhook_id") == webhook_id), None)
    if webhook is None:
        report.problem(f"the post-call webhook {webhook_id!r} does not exist in the workspace")
        return
    url = str(webhook.get("webhook_url", ""))
    if url.rstrip("/") != expected_url:
        report.problem(
            f"the post-call webhook sends to {url!r}, not to this deployment ({expected_url}); "
            "change its URL in ElevenLabs > Settings > Webhooks"
        )
    elif webhook.get("is_disabled") or webhook.get("is_auto_disabled"):
        report.problem(
            "the post-call webhook is disabled (by hand or after repeated failures); re-enable "
            "it in ElevenLabs > Settings > Webhooks once the API answers"
        )
    else:
        report.done(f"post-call webhook {webhook_id} sends to {expected_url}")
    if not settings.elevenlabs_webhook_secret.get_secret_value():
        report.problem(
            "elevenlabs_webhook_secret is empty: copy the webhook's HMAC secret into the "
            "Secrets Manager secret, or every post-call webhook is refused"
        )
    check_audio_webhooks(hooks if isinstance(hooks, Mapping) else {}, workspace, report)


def check_audio_webhooks(
    agent_hooks: Mapping[str, Any], workspace: ElevenLabsWorkspace, report: Report
) -> None:
    """Audio webhooks are off: a ``post_call_audio`` body is the whole call's audio, past what
    Lambda accepts (6 MB), so each delivery fails, and ElevenLabs disables a webhook after
    repeated failures (10+ in a row with no success for 7 days), transcriptions included. The
    agent's own setting wins over the workspace's."""
    agent_setting = agent_hooks.get("send_audio")
    sends = agent_setting if isinstance(agent_setting, bool) else workspace.sends_audio()
    if sends:
        where = "the agent's" if isinstance(agent_setting, bool) else "the workspace's"
        report.problem(
            f"{where} post-call webhook also sends audio (post_call_audio): those bodies are "
            "larger than the API accepts, every one fails, and ElevenLabs disables a webhook "
            "after repeated failures; turn off 'Send audio' in the post-call webhook settings"
        )
    else:
        report.done("post-call audio is off (only transcriptions are sent)")
    report.info(
        "ElevenLabs disables a webhook after 10+ consecutive failed deliveries once its last "
        "success is over 7 days old; `callflow setup elevenlabs` reports it, and the workflow "
        "polls each conversation meanwhile"
    )


def setup_elevenlabs(
    settings: Settings,
    *,
    api_url: str,
    agent_client: AgentApi,
    workspace: ElevenLabsWorkspace,
    mapped_items: Sequence[str],
    out: TextIO,
    report: Report | None = None,
) -> Report:
    """Read-only check of the agent and the workspace's post-call webhook."""
    report = report if report is not None else Report(out)
    _required_secret(settings, "elevenlabs_api_key")
    if not settings.elevenlabs_agent_id:
        raise SetupError("elevenlabs_agent_id is not set (CALLFLOW_ELEVENLABS_AGENT_ID)")
    expected_url = f"{api_base_url(api_url)}/webhooks/elevenlabs"
    agent = dict(agent_client.get_agent(settings.elevenlabs_agent_id))
    print(f"ElevenLabs agent {settings.elevenlabs_agent_id}", file=out)
    check_agent(settings, agent, mapped_items=mapped_items, report=report)
    print("ElevenLabs post-call webhook", file=out)
    check_post_call_webhook(settings, agent, workspace, expected_url=expected_url, report=report)
    return report


# --- Zoho ---------------------------------------------------------------------------------------


def zoho_webhook_settings(
    settings: Settings, *, api_url: str, module: str = "Leads", show_secrets: bool = False
) -> str:
    """The workflow rule's webhook, field by field, as the Zoho webhook editor asks for it."""
    secret = _required_secret(settings, "zoho_trigger_secret")
    merge_field = ZOHO_ID_MERGE_FIELDS.get(module, f"${{{module}.<record id field>}}")
    body = f'{{"module": "{module}", "record_id": "{merge_field}"}}'
    lines = [
        f"Zoho CRM > Setup > Automation > Actions > Webhooks > Configure Webhook ({module})",
        f"  Name:            callflow call ({module})",
        f"  URL to notify:   {api_base_url(api_url)}/webhooks/zoho",
        "  Method:          POST",
        f"  Module:          {module}",
        "  Authorization:   General",
        f"  Header:          X-Callflow-Secret: {_shown(secret, show_secrets)}",
        "  Body:            Raw, type JSON:",
        f"                   {body}",
        f"  (insert the record id with 'Insert merge field'; it reads {merge_field})",
        "Then: Setup > Automation > Workflow Rules > a rule on "
        f"{module} > Instant Actions > Webhook > this webhook.",
    ]
    if not show_secrets:
        lines.append("  (the header value is the secret's zoho_trigger_secret; --show-secrets)")
    return "\n".join(lines)


COMPATIBLE_ZOHO_TYPES: Mapping[str, frozenset[str]] = {
    "text": frozenset({"text", "textarea", "email", "phone", "website"}),
    "textarea": frozenset({"textarea", "text"}),
    "number": frozenset({"integer", "bigint", "double", "currency"}),
    "decimal": frozenset({"double", "currency"}),
    "currency": frozenset({"currency", "double"}),
    "boolean": frozenset({"boolean"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime"}),
    "picklist": frozenset({"picklist"}),
    "multiselect": frozenset({"multiselectpicklist"}),
}
"""The Zoho ``data_type``s a mapping type's values are accepted by (what :mod:`callflow.mapping`
produces for the type fits these)."""

_SETTING_TYPES: Mapping[str, frozenset[str]] = {
    "zoho_phone_field": frozenset({"phone", "text"}),
    "zoho_timezone_field": frozenset({"text", "picklist"}),
    "zoho_call_status_field": frozenset({"text", "picklist", "textarea"}),
    "optout_field": frozenset({"boolean"}),
}
"""Types a field named by a setting must have: it holds a phone number, an IANA zone name, the
outcome's label, or the opt-out (a checkbox)."""


def check_zoho_fields(
    settings: Settings,
    mapping: FieldMapping,
    modules: Sequence[str],
    fields_of: Callable[[str], Mapping[str, ZohoField]],
) -> list[str]:
    """The configured fields each module lacks or has with an incompatible type, in words.

    ``fields_of`` is the module's field metadata (:meth:`ZohoClient.module_fields`). A missing
    field is not fatal at call time (the trigger skips it, the writeback reports it), but it
    means the agent or the CRM gets less than configured, so setup names each one. Used by
    ``callflow setup zoho --check-fields``; returns rather than prints, so a future
    ``callflow doctor`` can reuse it.
    """
    problems: list[str] = []
    for module in modules:
        known = fields_of(module)

        def lacks(name: str, why: str, module: str = module) -> None:
            problems.append(f"{module} has no field {name} ({why}); check its API name")

        for setting, types in _SETTING_TYPES.items():
            name = str(getattr(settings, setting))
            if not name:
                continue
            found = known.get(name)
            if found is None:
                lacks(name, f"set by {setting}")
            elif found.data_type not in types:
                problems.append(
                    f"{module}.{name} is a {found.data_type} field; {setting} needs one of "
                    f"{', '.join(sorted(types))}"
                )
        for name in settings.variable_fields:
            if name not in known:
                lacks(name, "in zoho_variable_fields; the agent gets it empty")
        for rule in mapping.rules:
            if not rule.applies_to(module):
                continue
            found = known.get(rule.field)
            if found is None:
                lacks(rule.field, f"mapped from {rule.item!r}; add modules: to the entry")
                continue
            if found.data_type not in COMPATIBLE_ZOHO_TYPES[rule.type]:
                problems.append(
                    f"{module}.{rule.field} is a {found.data_type} field, but the mapping "
                    f"writes it as {rule.type}; change the entry's type"
                )
                continue
            absent = [c for c in rule.choices if found.choices and c not in found.choices]
            if absent:
                problems.append(
                    f"{module}.{rule.field} has no choice {', '.join(map(repr, absent))} "
                    f"(mapped from {rule.item!r}); Zoho lists {', '.join(found.choices)}"
                )
    return problems


# --- command line -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``callflow setup`` parser: a subcommand per provider, each taking ``--api-url``."""
    parser = argparse.ArgumentParser(
        prog="callflow setup",
        description="Connect a deployment to Infobip, ElevenLabs and Zoho CRM (idempotent).",
    )
    commands = parser.add_subparsers(dest="provider", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api-url",
        required=True,
        help="the deployed API's base URL (stack output ApiUrl)",
    )
    common.add_argument(
        "--show-secrets", action="store_true", help="print secret values instead of masking them"
    )
    infobip = commands.add_parser(
        "infobip", parents=[common], help="media-stream config and events subscription"
    )
    infobip.add_argument("--dry-run", action="store_true", help="read only; say what would change")
    infobip.add_argument("--bridge-url", default="", help="wss://<bridge>/<bridge_path_secret>")
    infobip.add_argument("--name", default=DEFAULT_NAME, help="name of the media-stream config")
    infobip.add_argument("--subscription-id", default=InfobipOptions.subscription_id)
    infobip.add_argument("--profile-id", default=InfobipOptions.profile_id)
    infobip.add_argument("--auth-id", default=InfobipOptions.auth_id)
    elevenlabs = commands.add_parser(
        "elevenlabs", parents=[common], help="check the agent and its post-call webhook"
    )
    elevenlabs.add_argument(
        "--dry-run", action="store_true", help="accepted; the check is read-only"
    )
    zoho = commands.add_parser(
        "zoho", parents=[common], help="print the workflow webhook and the campaign button"
    )
    zoho.add_argument("--module", default="Leads", help="Zoho module API name (Leads, Contacts...)")
    zoho.add_argument("--dry-run", action="store_true", help="accepted; this only prints")
    zoho.add_argument(
        "--token-from",
        choices=["connection", "org-variable"],
        default="connection",
        help="where the campaign button's function finds the API token",
    )
    zoho.add_argument(
        "--check-fields",
        action="store_true",
        help="read the module's field metadata and check the configured fields against it",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    out: TextIO | None = None,
    http: httpx.Client | None = None,
) -> int:
    """Run one setup command; 0 when all is well, 1 when something needs fixing, 2 on bad input.

    ``settings``, ``out`` and ``http`` default to the process's settings, stdout and fresh
    clients; tests pass their own to reach the provider stand-ins.
    """
    args = build_parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        current = settings if settings is not None else get_settings()
        return _run(args, current, stream, http)
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ProviderAuthError as error:
        setting = CREDENTIAL_SETTING.get(error.provider, "the API key")
        print(
            f"error: {error.provider} refused the credentials ({error.message}); check "
            f"{setting} in the secret",
            file=sys.stderr,
        )
        return 1
    except ProviderError as error:
        hint = " (check the id in the settings)" if error.status == 404 else ""
        print(f"error: {error}{hint}; nothing after this step was changed", file=sys.stderr)
        return 1


def _run(
    args: argparse.Namespace, settings: Settings, out: TextIO, http: httpx.Client | None
) -> int:
    runners: dict[str, Callable[[], int]] = {
        "infobip": lambda: _run_infobip(args, settings, out, http),
        "elevenlabs": lambda: _run_elevenlabs(args, settings, out, http),
        "zoho": lambda: _run_zoho(args, settings, out),
    }
    return runners[args.provider]()


def _run_infobip(
    args: argparse.Namespace, settings: Settings, out: TextIO, http: httpx.Client | None
) -> int:
    from callflow.providers.infobip.calls import InfobipClient

    options = InfobipOptions(
        api_url=args.api_url,
        bridge_url=args.bridge_url,
        name=args.name,
        subscription_id=args.subscription_id,
        profile_id=args.profile_id,
        auth_id=args.auth_id,
        dry_run=args.dry_run,
        show_secrets=args.show_secrets,
    )
    with (
        InfobipClient(settings, http) as calls,
        InfobipSubscriptionsClient(settings, http) as subscriptions,
    ):
        report = setup_infobip(
            settings, options, calls_client=calls, subscriptions=subscriptions, out=out
        )
    return report.exit_code


def _run_elevenlabs(
    args: argparse.Namespace, settings: Settings, out: TextIO, http: httpx.Client | None
) -> int:
    mapped = FieldMapping.load(settings.field_mapping_path).items()
    agent_client = ElevenLabsClient(settings, http)
    workspace = ElevenLabsWorkspace(settings, http)
    try:
        report = setup_elevenlabs(
            settings,
            api_url=args.api_url,
            agent_client=agent_client,
            workspace=workspace,
            mapped_items=mapped,
            out=out,
        )
        if settings.flows_dir:
            from callflow_dev.doctor.flows import check_flow_agents, file_flows

            print(f"Flows ({settings.flows_dir})", file=out)
            flows = file_flows(settings, report)
            check_flow_agents(settings, flows, agent_client.get_agent, report)
    finally:
        agent_client.close()  # a client handed in stays open: its owner closes it
        workspace.close()
    return report.exit_code


def _run_zoho(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    from callflow.lifecycle.trigger import MODULE_PATTERN

    if not MODULE_PATTERN.match(args.module):
        raise SetupError(
            f"--module must be a Zoho module API name such as Leads, not {args.module!r}"
        )
    print(
        zoho_webhook_settings(
            settings, api_url=args.api_url, module=args.module, show_secrets=args.show_secrets
        ),
        file=out,
    )
    print("", file=out)
    print(install_steps(api_base_url(args.api_url), args.module, args.token_from), file=out)
    if not args.check_fields:
        return 0
    from callflow.services import Services

    report = Report(out)
    print(f"Zoho fields of {args.module}", file=out)
    mapping = FieldMapping.load(settings.field_mapping_path)
    problems = check_zoho_fields(
        settings, mapping, [args.module], Services(settings).zoho.module_fields
    )
    if settings.flows_dir:
        from callflow_dev.doctor.flows import check_flow_fields, file_flows

        flows = file_flows(settings, report)
        problems += check_flow_fields(
            settings, flows, [args.module], Services(settings).zoho.module_fields
        )
    for problem in problems:
        report.problem(problem)
    if not problems:
        report.done(f"every configured field exists on {args.module} with a fitting type")
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())

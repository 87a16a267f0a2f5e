"""One typed settings object, read from the environment (prefix ``CALLFLOW_``).

On AWS the secret values are not in the environment: ``CALLFLOW_SECRETS_ID`` names a Secrets
Manager secret holding a JSON object whose keys are field names of :class:`Settings` (for example
``{"zoho_client_secret": "...", "infobip_api_key": "..."}``). It is read once per container through
Powertools parameters (cached), so a cold start costs one Secrets Manager call and a warm one none.

Every secret is a :class:`pydantic.SecretStr`: its ``repr`` and ``str`` print ``**********``, so a
settings object that ends up in a log line leaks nothing.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callflow.aws import SecretsUnavailable, failure_reason

__all__ = ["SecretsUnavailable", "Settings", "get_settings", "reset_settings"]

MachinePolicy = Literal["hangup", "continue"]
DetectionFailedPolicy = Literal["connect", "hangup"]
OutsideHoursPolicy = Literal["wait", "skip"]
DtmfMode = Literal["contextual_update", "user_message", "ignore"]
MediaRouting = Literal["shared", "per-session"]


class Settings(BaseSettings):
    """Everything the API, the workflow tasks and the bridge need to know."""

    model_config = SettingsConfigDict(env_prefix="CALLFLOW_", extra="ignore", frozen=True)

    # --- AWS ------------------------------------------------------------------------------
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    table_name: str = "callflow"
    state_machine_arn: str = ""
    secrets_id: str = ""
    """Secrets Manager secret (name or ARN) with the secret fields as a JSON object."""
    session_ttl_days: int = 30
    campaign_state_machine_arn: str = ""
    """The campaign state machine (``callflow_functions/campaign.asl.json``)."""
    campaign_bucket: str = ""
    """S3 bucket holding each campaign's enumerated records (its Distributed Map's items)."""

    # --- Zoho CRM -------------------------------------------------------------------------
    zoho_accounts_url: str = "https://accounts.zoho.com"
    """Accounts server of the data centre: .com, .eu, .in, .com.au, .jp, .ca, .sa, .com.cn."""
    zoho_api_domain: str = ""
    """Override of the ``api_domain`` the token endpoint returns (stand-ins, proxies)."""
    zoho_client_id: str = ""
    zoho_client_secret: SecretStr = SecretStr("")
    zoho_refresh_token: SecretStr = SecretStr("")
    zoho_trigger_secret: SecretStr = SecretStr("")
    """Shared secret the Zoho workflow webhook sends in the ``X-Callflow-Secret`` header."""
    zoho_phone_field: str = "Phone"
    zoho_timezone_field: str = ""
    """Record field holding an IANA time zone for the person, if the org keeps one."""
    zoho_variable_fields: str = "First_Name,Last_Name,Company"
    """Comma-separated record fields passed to the agent as dynamic variables."""
    zoho_call_status_field: str = ""
    """Optional record field that receives the call outcome (picklist or text)."""
    zoho_log_calls: bool = True
    zoho_add_notes: bool = True

    # --- Infobip --------------------------------------------------------------------------
    infobip_base_url: str = "https://api.infobip.com"
    infobip_api_key: SecretStr = SecretStr("")
    infobip_calls_configuration_id: str = ""
    infobip_from_number: str = ""
    infobip_media_stream_config_id: str = ""
    infobip_media_routing: MediaRouting = "shared"
    """How a dialog's WebSocket leg finds its session: ``shared`` sends every dialog to the one
    config above and relies on Infobip showing the ids on the socket; ``per-session`` creates a
    config per call attempt whose URL path carries them (``callflow.lifecycle.media_configs``)."""
    infobip_config_creations_per_minute: int = 80
    """Per-session configs created per minute, account-wide, across every Lambda: below
    Infobip's 100, leaving room for setup and other users of the account."""
    infobip_config_sweep_margin_seconds: int = 600
    """A per-session config older than the call's longest life plus this is swept."""
    infobip_sample_rate: int = 16000
    infobip_connect_timeout: int = 40
    infobip_max_duration: int = 900
    infobip_machine_detection: bool = False
    infobip_recording: bool = False
    infobip_webhook_username: str = "infobip"
    infobip_webhook_password: SecretStr = SecretStr("")
    infobip_webhook_path_secret: SecretStr = SecretStr("")
    machine_policy: MachinePolicy = "hangup"
    machine_detection_failed: DetectionFailedPolicy = "connect"
    """What to do when Infobip cannot tell a person from a machine (MACHINE_DETECTION_FAILED):
    ``connect`` treats the call as a person's (they would otherwise hear silence), ``hangup``
    ends it as failed."""

    # --- ElevenLabs -----------------------------------------------------------------------
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    elevenlabs_api_key: SecretStr = SecretStr("")
    elevenlabs_agent_id: str = ""
    elevenlabs_webhook_secret: SecretStr = SecretStr("")
    elevenlabs_webhook_max_age_seconds: int = 1800
    elevenlabs_overrides: str = ""
    """JSON ``conversation_config_override`` sent at initiation; empty sends none."""

    # --- Bridge ---------------------------------------------------------------------------
    bridge_public_url: str = ""
    """wss:// URL Infobip's media-stream config points at (including the secret path)."""
    bridge_path_secret: SecretStr = SecretStr("")
    bridge_host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    bridge_port: int = 8080
    bridge_drain_seconds: float = 600.0
    bridge_max_early_audio_ms: int = 5000
    bridge_transcript_limit: int = 200
    bridge_dtmf_mode: DtmfMode = "contextual_update"
    bridge_agent_connect_timeout: float = 10.0
    bridge_signed_url_max_age_seconds: int = 600
    """The oldest prefetched signed URL the bridge still uses (the session's
    ``agent_signed_url``); an older one, or none, is replaced by a fresh one from ElevenLabs.
    ElevenLabs accepts one for 15 minutes; the margin covers clocks that differ between the task
    that fetched it and the bridge."""

    # --- Admission ------------------------------------------------------------------------
    agent_pool_name: str = "elevenlabs"
    """The pool of the agent plan's concurrent conversations. ElevenLabs counts them per
    workspace, so every agent of one workspace shares one pool name."""
    agent_concurrency: int = 4
    """Concurrent conversations the ElevenLabs plan allows (Free 4, Starter 6, Creator 10,
    Pro 20, Scale and Business 30): a call is dialled only with one of them free. 0 leaves the
    pool out."""
    bridge_capacity: int = 80
    """Calls the bridge service carries at once (its maximum tasks times calls per task; the
    CDK stack sets it from the stage). 0 leaves the pool out."""
    admission_lease_margin_seconds: int = 300
    """A slot's lease outlives the longest call (connect timeout plus max duration) by this
    much; past it a slot whose release was lost is reclaimed."""
    admission_deadline_seconds: int = 4 * 3600
    """How long a call may wait for a slot (within calling hours) before it ends ``cancelled``."""
    infobip_calls_per_second: float = 6.0
    """Call creations per second, account-wide across every Lambda (Infobip's limit is 6)."""
    infobip_dialogs_per_second: float = 20.0
    """Dialog creations per second, account-wide (Infobip's limit is 20)."""
    rate_max_wait_seconds: float = 10.0
    """How long a Lambda waits for its turn at a rate before the workflow's Retry takes over."""

    # --- Opt-outs and frequency caps -----------------------------------------------------
    # The default flow's opt-out and caps (callflow.flows.loading.settings_document); a flow
    # file supplies its own under optout: and caps:. Nothing else reads these fields.
    optout_field: str = ""
    """The record's checkbox (API name, e.g. a custom ``Do_Not_Call``) that says "never call":
    read with the record at trigger time, checked before every dial, and set when the agent
    collects an opt-out. Empty: no field is read or set (the suppression list still applies)."""
    optout_item: str = "opt_out"
    """The agent's data-collection item that carries an opt-out (true when the person asked
    not to be called again). Empty: collected opt-outs are not looked for."""
    cap_attempts_per_record: int = 3
    """At most this many dials per CRM record in ``cap_window_seconds``, across every trigger
    and campaign; 0 leaves the record cap out."""
    cap_attempts_per_number: int = 3
    """At most this many dials per phone number (E.164) in ``cap_window_seconds``; 0 leaves
    the number cap out."""
    cap_window_seconds: int = 24 * 3600
    """The caps' rolling window."""

    # --- Recording ------------------------------------------------------------------------
    # Read together into one callflow.recording.rules.RecordingRules (a per-flow file can supply
    # the same values later); nothing else reads these fields.
    recording_enabled: bool = False
    """Record both sides of every call (off by default). Consent is the operator's legal duty:
    in all-party-consent jurisdictions everyone on the call must agree, so the agent's first
    words must say the call is recorded (see README)."""
    recording_bucket: str = ""
    """The S3 bucket recordings go to (the CDK stack's recordings bucket); empty stores none."""
    recording_prefix: str = "recordings/"
    """The key prefix under which the bridge may write (``<prefix><session id>.wav``)."""
    recording_max_seconds: int = 0
    """The longest recording kept (the rest of a longer call is not recorded); 0 takes
    ``infobip_max_duration``, the longest call Infobip lets run."""
    recording_upload_attempts: int = 3
    """S3 attempts (with the SDK's backoff) before the bridge gives a recording up."""
    recording_wait_seconds: int = 30
    """How long after the call ended the writeback waits for a recording still being stored
    before the note says it is unavailable."""
    recording_retention_days: int = 90
    """Days after which the bucket's lifecycle rule expires a recording (the CDK stack's)."""

    # --- Callbacks ------------------------------------------------------------------------
    # Read together into one callflow.callbacks.rules.CallbackRules (a per-flow file can supply
    # the same values later); nothing else reads these fields.
    callback_item: str = "callback_at"
    """The agent's data-collection item carrying the time the person asked to be called back
    (ISO 8601; without an offset it is the person's local time). Empty: no callbacks."""
    callback_max_days: int = 30
    """A callback further ahead than this is refused (the note says so); nothing is scheduled."""
    callback_max_wait_seconds: int = 0
    """0 waits until the collected time (clamped into calling hours); a positive value waits at
    most this long (the local demo's shortened wait)."""
    callback_task: bool = False
    """Also create a Zoho Task for the record's owner, due on the callback's local date."""
    callback_task_subject: str = "Call back: the person asked for a callback"
    """The Task's ``Subject`` (Zoho's mandatory field)."""
    callback_task_owner_field: str = "Owner"
    """The record field naming its owner (read at trigger time only when Tasks are on)."""
    callback_task_attempts: int = 7
    """Tries (one per fields-step run) before an unavailable Zoho is given up on for the Task
    and the note says so; 7 is the first try plus the workflow's 6 retries of that step."""

    # --- Campaigns ------------------------------------------------------------------------
    campaign_credit_budget: int = 1000
    """Zoho API credits one campaign's enumeration may spend per day (Zoho counts credits over
    a rolling 24 hours); past it the enumeration waits a day and resumes where it stopped."""
    campaign_max_concurrency: int = 100
    """The largest ``max_concurrency`` a campaign may ask for (its Distributed Map's
    MaxConcurrency: records in progress at once; admission still caps the live calls)."""
    campaign_max_records: int = 100_000
    """The most records one campaign enumerates."""
    campaign_pause_recheck_seconds: int = 300
    """How long a paused campaign's waiting call sleeps (the workflow's Wait state, no slot
    held) before admission asks the campaign again."""

    # --- API ------------------------------------------------------------------------------
    status_api_token: SecretStr = SecretStr("")
    """Bearer token for the session status route."""
    max_body_bytes: int = 256 * 1024
    elevenlabs_max_body_bytes: int = 5 * 1024 * 1024
    """The post-call webhook's own body limit: a long transcription is larger than
    ``max_body_bytes``, and its signature can only be checked on the whole body. 5 MiB stays
    inside Lambda's 6 MB synchronous payload (the API Gateway event around the body counts too)
    and API Gateway's 10 MB."""

    # --- Calling policy -------------------------------------------------------------------
    default_phone_region: str = "US"
    default_timezone: str = "America/New_York"
    calling_hours_start: str = "09:00"
    calling_hours_end: str = "20:00"
    calling_days: str = "0,1,2,3,4,5"
    """Weekdays on which calls are placed, Monday = 0."""
    outside_hours_policy: OutsideHoursPolicy = "wait"
    max_attempts: int = 3
    retry_delay_seconds: int = 1800
    trigger_window_seconds: int = 3600
    """A second trigger for the same record inside this window (or while a session is active)
    is refused."""
    call_outcome_timeout_seconds: int = 0
    """How long the workflow waits for the call's outcome; 0 derives it from the Infobip
    connect timeout and max duration."""
    call_check_margin_seconds: int = 15
    """Past the Infobip connect timeout, how long the workflow waits for a call's events before
    asking Infobip about the call itself (a lost CALL_ESTABLISHED is found then, not after the
    whole outcome timeout)."""
    analysis_wait_seconds: int = 120
    """How long the workflow waits for the post-call webhook before polling the conversation."""
    flows_dir: str = ""
    """A directory of flow files (``config/flows/<name>.yaml``, one call purpose each; see
    ``docs/flows.md``); empty runs the one flow built from these settings, named ``default``."""
    default_flow: str = "default"
    """The flow of a trigger that names none."""
    zoho_note_max_chars: int = 65535
    """Past this many characters a note keeps the summary and the transcript's first lines, and
    the whole transcript goes on the record as a text attachment. Zoho's own limit is 65535
    (``Note_Content`` maxLength in Zoho's v8 OpenAPI description, ``zoho/crm-oas``
    ``v8.0/notes``); a lower value is allowed, a higher one refused."""
    field_mapping_path: str = ""
    """A mapping file of your own; empty uses the default shipped in the package
    (``callflow/defaults/mapping.yaml``)."""

    @field_validator("calling_hours_start", "calling_hours_end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        hours, _, minutes = value.partition(":")
        if not (hours.isdigit() and minutes.isdigit() and 0 <= int(hours) <= 24):
            raise ValueError(f"expected HH:MM, got {value!r}")
        return value

    @field_validator("zoho_note_max_chars")
    @classmethod
    def _note_size(cls, value: int) -> int:
        if not 1000 <= value <= 65535:
            raise ValueError(f"a Zoho note holds 1000 to 65535 characters here, got {value}")
        return value

    @field_validator(
        "cap_attempts_per_record",
        "cap_attempts_per_number",
        "cap_window_seconds",
        "recording_max_seconds",
        "recording_wait_seconds",
        "callback_max_wait_seconds",
    )
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return value

    @field_validator(
        "recording_upload_attempts",
        "recording_retention_days",
        "callback_max_days",
        "callback_task_attempts",
    )
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @property
    def variable_fields(self) -> list[str]:
        """The record fields passed to the agent as dynamic variables, blanks dropped."""
        return [f.strip() for f in self.zoho_variable_fields.split(",") if f.strip()]

    @property
    def weekday_set(self) -> frozenset[int]:
        """The weekdays on which calls are placed (Monday = 0), from ``calling_days``."""
        return frozenset(int(d) for d in self.calling_days.split(",") if d.strip())

    @property
    def outcome_timeout_seconds(self) -> int:
        """How long to wait for a call's outcome: the configured value, or the Infobip connect
        timeout plus the max duration plus two minutes when it is 0."""
        if self.call_outcome_timeout_seconds:
            return self.call_outcome_timeout_seconds
        return self.infobip_connect_timeout + self.infobip_max_duration + 120

    @property
    def lease_seconds(self) -> int:
        """How long an admission slot is held at most: the longest call plus the margin."""
        return (
            self.infobip_connect_timeout
            + self.infobip_max_duration
            + self.admission_lease_margin_seconds
        )

    @property
    def overrides(self) -> dict[str, Any]:
        """The parsed ``conversation_config_override``; empty when none is configured."""
        return dict(json.loads(self.elevenlabs_overrides)) if self.elevenlabs_overrides else {}


def _secret_values(secrets_id: str) -> dict[str, Any]:
    """The JSON secret, through Powertools' cached parameter provider."""
    from aws_lambda_powertools.utilities import parameters

    try:
        raw = parameters.get_secret(secrets_id, max_age=300)
    except parameters.GetParameterError as error:
        # Powertools re-raises the SDK's error as this one (chained as its context); the message
        # it copies would name the endpoint.
        raise SecretsUnavailable(failure_reason(error.__context__ or error)) from error
    value = json.loads(raw) if isinstance(raw, str) else json.loads(bytes(raw).decode())
    if not isinstance(value, dict):
        raise ValueError("the Secrets Manager secret must hold a JSON object")
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; secrets come from Secrets Manager when configured."""
    settings = Settings()
    if settings.secrets_id:
        secret = _secret_values(settings.secrets_id)
        known = {k: v for k, v in secret.items() if k in Settings.model_fields}
        settings = settings.model_copy(update={k: _coerce(k, v) for k, v in known.items()})
    return settings


def _coerce(name: str, value: Any) -> Any:
    annotation = Settings.model_fields[name].annotation
    return SecretStr(str(value)) if annotation is SecretStr else value


def reset_settings() -> None:
    """Forget the cached settings (tests and the local stack change the environment)."""
    get_settings.cache_clear()

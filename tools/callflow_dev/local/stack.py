"""The whole system on one machine: moto as AWS, the API, the bridge, and provider stand-ins.

Every part listens on its own free loopback port and talks to the others over real sockets, as
deployed: the Infobip stand-in posts events to the API's webhook with Basic auth and connects the
answered call to the bridge's WebSocket; the bridge opens the agent's WebSocket on the ElevenLabs
stand-in with a signed URL; the ElevenLabs stand-in signs its post-call webhook; the workflow runs
the project's ASL in moto with the real task handlers. Settings reach every part through the
environment and Secrets Manager, exactly as on AWS.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import httpx

from callflow.config import get_settings, reset_settings
from callflow.models import Session
from callflow.services import get_services, reset_services
from callflow_dev.local.aws import EmbeddedAws
from callflow_dev.local.servers import AsgiServer, LoopThread

SECRET_NAME = "callflow/local"  # noqa: S105 - the name of a Secrets Manager secret
ZOHO_CLIENT_ID = "1000.LOCALCLIENT"
AGENT_ID = "agent_local_demo"


@dataclass
class StackOptions:
    """Knobs of the embedded default (the demo's and the end-to-end tests')."""

    max_attempts: int = 3
    retry_delay_seconds: int = 2
    analysis_wait_seconds: int = 20
    processing_seconds: float = 1.0
    machine_detection: bool = False
    duplicate_events: bool = False
    reorder_events: bool = False
    drop_post_call_webhooks: bool = False
    phone_sample_rate: int = 16000
    agent_input_format: str = "pcm_16000"
    agent_output_format: str = "pcm_16000"
    calling_hours: tuple[str, str] = ("00:00", "24:00")
    calling_days: str = "0,1,2,3,4,5,6"
    outside_hours_policy: str = "wait"
    agent_overrides: dict[str, Any] = field(default_factory=dict)
    agent_concurrency: int = 4
    """The agent plan's concurrent conversations: the ElevenLabs stand-in refuses past it, and
    admission is configured with the same figure (as an operator sets it to their plan's)."""
    fast_retries: bool = False
    """Tests only: the workflow's Retry policies wait one second between attempts."""
    brief_clips_ms: int | None = None
    """Say only the first N ms of every clip, with quicker turn-taking (fast end-to-end tests);
    ``None`` plays the whole dialogue (the demo)."""
    recording: bool = False
    """Record calls (``CALLFLOW_RECORDING_ENABLED``): the bridge stores each call's WAV in the
    embedded S3's recordings bucket and the writeback attaches it to the stand-in record."""
    extra_env: dict[str, str] = field(default_factory=dict)
    agent_steps: tuple[Any, ...] | None = None
    """The scripted agent's dialogue (``callflow_dev.sandbox.agent.DialogueStep``s); ``None``
    is the demo's qualification call."""
    agent_data_collection: dict[str, Any] | None = None
    """The agent's data-collection items (``callflow_dev.sandbox.elevenlabs.DataItem`` by id);
    ``None`` is the qualification call's."""
    other_agents: tuple[Any, ...] = ()
    """Further scripted agents of the ElevenLabs stand-in (``AgentConfig``s, e.g. a second
    flow's), with the first agent's formats."""


class LocalStack:
    """The embedded default: moto, the three stand-ins, the API and the bridge, wired as deployed.

    Use it as a context manager. While it runs it sets the ``CALLFLOW_*`` and AWS variables in
    ``os.environ`` (restored on :meth:`stop`); the secrets it generated are in :attr:`secrets`.
    Each stack gets its own table, secret and state machine in the process's shared moto.
    """

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.secrets = {
            "zoho_client_secret": secrets.token_hex(16),
            "zoho_refresh_token": "1000." + secrets.token_hex(24),
            "zoho_trigger_secret": secrets.token_urlsafe(18),
            "infobip_api_key": secrets.token_hex(16),
            "infobip_webhook_password": secrets.token_urlsafe(18),
            "infobip_webhook_path_secret": secrets.token_hex(12),
            "elevenlabs_api_key": "sk_" + secrets.token_hex(16),
            "elevenlabs_webhook_secret": "wsec_" + secrets.token_hex(16),
            "status_api_token": secrets.token_urlsafe(18),
            "bridge_path_secret": secrets.token_hex(12),
        }
        self._saved_env: dict[str, str | None] = {}
        self._servers: list[AsgiServer] = []
        self._loop: LoopThread | None = None
        self.bridge: Any = None
        self._log_level: int | None = None
        self.aws: EmbeddedAws | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Start every part, point the stand-ins' webhooks at the API, deploy the workflow."""
        from callflow_dev.sandbox.agent import AgentConfig
        from callflow_dev.sandbox.elevenlabs import DEFAULT_DATA_COLLECTION, ElevenLabsSandbox
        from callflow_dev.sandbox.infobip import InfobipSandbox
        from callflow_dev.sandbox.zoho import ZohoSandbox

        options = self.options
        # A task that emits no metric makes Powertools warn on every invocation; locally, noise.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        self._remember_env()
        self.aws = EmbeddedAws.shared()
        # A table per stack: stacks sharing the process's embedded AWS share no state (token
        # cache, record claims).
        self.table = f"callflow-local-{secrets.token_hex(3)}"
        self.aws.create_table(self.table)
        # The recordings bucket, as the CDK stack makes it (the bridge reads its name at start).
        self.recording_bucket = f"{self.table}-recordings"
        self.aws.client("s3").create_bucket(Bucket=self.recording_bucket)

        self.zoho = ZohoSandbox(
            ZOHO_CLIENT_ID, self.secrets["zoho_client_secret"], self.secrets["zoho_refresh_token"]
        )
        agent = AgentConfig(
            agent_id=AGENT_ID,
            user_input_audio_format=options.agent_input_format,
            agent_output_audio_format=options.agent_output_format,
            clip_max_ms=options.brief_clips_ms,
            end_of_turn_silence_ms=400 if options.brief_clips_ms else 600,
            response_delay_ms=100 if options.brief_clips_ms else 250,
        )
        if options.agent_steps is not None:
            agent = dataclasses.replace(agent, steps=options.agent_steps)
        self.elevenlabs = ElevenLabsSandbox(
            self.secrets["elevenlabs_api_key"],
            agent,
            webhook_secret=self.secrets["elevenlabs_webhook_secret"],
            data_collection=(
                DEFAULT_DATA_COLLECTION
                if options.agent_data_collection is None
                else options.agent_data_collection
            ),
            processing_seconds=options.processing_seconds,
            drop_webhooks=options.drop_post_call_webhooks,
            max_concurrent_conversations=options.agent_concurrency,
            other_agents=[
                dataclasses.replace(
                    other,
                    user_input_audio_format=agent.user_input_audio_format,
                    agent_output_audio_format=agent.agent_output_audio_format,
                    clip_max_ms=agent.clip_max_ms,
                    end_of_turn_silence_ms=agent.end_of_turn_silence_ms,
                    response_delay_ms=agent.response_delay_ms,
                )
                for other in options.other_agents
            ],
        )
        self.infobip = InfobipSandbox(
            self.secrets["infobip_api_key"],
            duplicate_events=options.duplicate_events,
            reorder_events=options.reorder_events,
        )
        zoho_server = self._serve(self.zoho.app, "zoho")
        elevenlabs_server = self._serve(self.elevenlabs.app, "elevenlabs")
        infobip_server = self._serve(self.infobip.app, "infobip")
        self.infobip.public_base_url = infobip_server.url
        # Made in the Infobip portal (or its API) once per account.
        self.infobip.calls_configurations["callflow-local"] = {
            "id": "callflow-local",
            "name": "callflow local",
        }

        from callflow_functions.api import app

        api_server = self._serve(app, "api")
        self.api_url = api_server.url

        secret_arn = self.aws.put_secret(f"{SECRET_NAME}/{secrets.token_hex(4)}", self.secrets)
        self._set_env(
            {
                "CALLFLOW_TABLE_NAME": self.table,
                "CALLFLOW_SECRETS_ID": secret_arn,
                "CALLFLOW_ZOHO_ACCOUNTS_URL": zoho_server.url,
                "CALLFLOW_ZOHO_CLIENT_ID": ZOHO_CLIENT_ID,
                "CALLFLOW_INFOBIP_BASE_URL": infobip_server.url,
                "CALLFLOW_INFOBIP_CALLS_CONFIGURATION_ID": "callflow-local",
                "CALLFLOW_INFOBIP_FROM_NUMBER": "41793026727",
                "CALLFLOW_INFOBIP_SAMPLE_RATE": str(options.phone_sample_rate),
                "CALLFLOW_INFOBIP_MACHINE_DETECTION": str(options.machine_detection).lower(),
                "CALLFLOW_INFOBIP_CONNECT_TIMEOUT": "30",
                "CALLFLOW_INFOBIP_MAX_DURATION": "300",
                "CALLFLOW_ELEVENLABS_BASE_URL": elevenlabs_server.url,
                "CALLFLOW_ELEVENLABS_AGENT_ID": AGENT_ID,
                "CALLFLOW_ELEVENLABS_OVERRIDES": (
                    __import__("json").dumps(options.agent_overrides)
                    if options.agent_overrides
                    else ""
                ),
                "CALLFLOW_BRIDGE_HOST": "127.0.0.1",
                "CALLFLOW_BRIDGE_PORT": "0",
                "CALLFLOW_MAX_ATTEMPTS": str(options.max_attempts),
                "CALLFLOW_AGENT_CONCURRENCY": str(options.agent_concurrency),
                "CALLFLOW_RETRY_DELAY_SECONDS": str(options.retry_delay_seconds),
                "CALLFLOW_ANALYSIS_WAIT_SECONDS": str(options.analysis_wait_seconds),
                "CALLFLOW_CALLING_HOURS_START": options.calling_hours[0],
                "CALLFLOW_CALLING_HOURS_END": options.calling_hours[1],
                "CALLFLOW_CALLING_DAYS": options.calling_days,
                "CALLFLOW_OUTSIDE_HOURS_POLICY": options.outside_hours_policy,
                "CALLFLOW_DEFAULT_PHONE_REGION": "US",
                "CALLFLOW_RECORDING_BUCKET": self.recording_bucket,
                "CALLFLOW_RECORDING_ENABLED": str(options.recording).lower(),
                "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "WARNING"),
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
                **options.extra_env,
            }
        )
        self._refresh()
        settings = get_settings()
        from callflow.observability import logger

        self._log_level = logger.log_level
        logger.setLevel(os.environ["POWERTOOLS_LOG_LEVEL"])

        from callflow_bridge.deps import BridgeDeps
        from callflow_bridge.metrics import BridgeMetrics
        from callflow_bridge.server import BridgeServer

        self.bridge_metrics: list[str] = []
        self._loop = LoopThread("bridge")
        self.bridge = BridgeServer(
            settings,
            get_services().store,
            BridgeDeps.from_settings(settings),
            port=0,
            metrics=BridgeMetrics(emit=self.bridge_metrics.append),
        )
        self._loop.run(self.bridge.start())
        self.bridge_url = f"ws://127.0.0.1:{self.bridge.port}/{self.secrets['bridge_path_secret']}"

        # What `callflow setup infobip` does against a real account.
        config_id = get_services().infobip.create_media_stream_config(
            "callflow-local", self.bridge_url, options.phone_sample_rate
        )
        self.infobip.add_webhook(
            f"{self.api_url}/webhooks/infobip/{self.secrets['infobip_webhook_path_secret']}",
            settings.infobip_webhook_username,
            self.secrets["infobip_webhook_password"],
        )
        self.elevenlabs.webhook_url = f"{self.api_url}/webhooks/elevenlabs"
        # The bridge's public URL too: per-session media routing makes each attempt's config
        # from it.
        self._set_env(
            {
                "CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID": config_id,
                "CALLFLOW_BRIDGE_PUBLIC_URL": self.bridge_url,
            }
        )
        self._refresh()

        state_machine = self.aws.deploy_workflow(fast_retries=options.fast_retries)
        campaigns, bucket = self.aws.deploy_campaigns(
            state_machine, fast_retries=options.fast_retries
        )
        self._set_env(
            {
                "CALLFLOW_STATE_MACHINE_ARN": state_machine,
                "CALLFLOW_CAMPAIGN_STATE_MACHINE_ARN": campaigns,
                "CALLFLOW_CAMPAIGN_BUCKET": bucket,
            }
        )
        self._refresh()
        return self

    def stop(self) -> None:
        """Drain the bridge (1 s), stop the servers, restore the log level and the environment."""
        if self.bridge is not None and self._loop is not None:
            try:
                self._loop.run(self.bridge.shutdown(1.0), timeout=10)
            finally:
                self._loop.stop()
        for server in reversed(self._servers):
            server.stop()
        if self._log_level is not None:
            from callflow.observability import logger

            logger.setLevel(self._log_level)
        self._restore_env()
        self._refresh()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- using it -------------------------------------------------------------------------

    def trigger(self, module: str, record_id: str, flow: str = "") -> httpx.Response:
        """What a Zoho workflow rule does: POST the record (and the ``flow`` its webhook names,
        if any) to the trigger webhook, encoded as the Zoho stand-in's ``webhook_format`` says."""
        request = self.zoho.webhook_request(
            module, record_id, self.secrets["zoho_trigger_secret"], flow
        )
        return httpx.post(f"{self.api_url}/webhooks/zoho", timeout=30, **request)

    def session(self, session_id: str) -> Session:
        """The session as stored; :class:`~callflow.store.SessionNotFound` when there is none."""
        return get_services().store.require(session_id)

    def wait_for_execution(self, session_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Until the session's workflow execution has ended; its description."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.aws is not None, "the stack is not started"
            try:
                execution = self.aws.execution(session_id)
            except Exception:
                execution = {"status": "PENDING"}
            if execution["status"] not in ("RUNNING", "PENDING"):
                return execution
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {session_id} still {execution['status']}")
            time.sleep(0.1)

    def refresh_settings(self) -> None:
        """Re-read the settings and rebuild the services after ``CALLFLOW_*`` variables changed
        (the API and the workflow tasks see the new values; the running bridge keeps its own)."""
        self._refresh()

    # --- internals ------------------------------------------------------------------------

    def _serve(self, app: Any, name: str) -> AsgiServer:
        server = AsgiServer(app, name=name).start()
        self._servers.append(server)
        return server

    def _remember_env(self) -> None:
        self._saved_env = {
            key: os.environ.get(key)
            for key in (
                "AWS_ENDPOINT_URL",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
                "MOTO_PORT",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
            )
        }

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    @staticmethod
    def _refresh() -> None:
        reset_settings()
        reset_services()
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()  # type: ignore[no-untyped-call]

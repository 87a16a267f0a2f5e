"""ElevenLabs Agents (ConvAI) client: signed URLs, conversation results, agent settings, and the
post-call webhook's signature.

Field names follow ElevenLabs' OpenAPI description (extracted in
``callflow_dev/schemas/elevenlabs/openapi.json``: ``GetConversationResponseModel``,
``ConversationSignedUrlResponseModel``, ``GetAgentResponseModel``). The models are lenient on
purpose: they ignore fields they do not know and default the ones a given response may leave out,
because ElevenLabs adds fields often and the workflow must not fail on a harmless addition. What
they do check is what the workflow relies on (status, analysis, transcript shape).

Two client classes share one request/response mapping:

- :class:`ElevenLabsClient` (sync, ``httpx.Client``) for the Lambda tasks: conversation polling,
  the setup check, signed URLs.
- :class:`AsyncElevenLabsClient` (``httpx.AsyncClient``) for the bridge, which needs a signed URL
  per call without blocking its event loop.

Errors are the shared provider errors: 429/5xx, timeouts and connection failures are
:class:`RetryableProviderError` (the state machine retries them), 401/403 are
:class:`ProviderAuthError`, any other 4xx (404 included) is :class:`ProviderRejected`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from callflow.config import Settings
from callflow.providers.errors import ProviderRejected, RetryableProviderError
from callflow.providers.http import AsyncHttpTransport, HttpTransport

PROVIDER: Final = "elevenlabs"
SIGNED_URL_PATH: Final = "/v1/convai/conversation/get-signed-url"
CONVERSATION_PATH: Final = "/v1/convai/conversations/{conversation_id}"
AGENT_PATH: Final = "/v1/convai/agents/{agent_id}"
SIGNATURE_HEADER: Final = "ElevenLabs-Signature"

FINAL_STATUSES: Final = frozenset({"done", "failed"})
KNOWN_STATUSES: Final = frozenset({"initiated", "in-progress", "processing", "done", "failed"})

DEFAULT_TIMEOUT: Final = httpx.Timeout(15.0, connect=5.0)
TRANSCRIPT_TURNS_KEPT: Final = 60
"""How many transcript turns :meth:`Conversation.results` keeps (the last ones): the session item
lives in DynamoDB, whose items are capped at 400 KB."""
TRANSCRIPT_MESSAGE_CHARS: Final = 500
FUTURE_SKEW_S: Final = 300
"""How far in the future a webhook timestamp may be (clock skew) before it is refused."""
MAX_CONVERSATION_ID_CHARS: Final = 256
"""Room to spare for ElevenLabs' conversation ids, and well inside DynamoDB's 2048-byte key, which
the id becomes part of (``conversation#<id>``)."""

DynamicValue = str | int | float | bool | None

# The official SDK types these enum-like fields as "one of the known literals, or any string":
# ElevenLabs adds values without notice. The known ones stay typed (a type checker sees them);
# an unknown one is kept as the string it is rather than failing the webhook or the poll.
Role = Literal["user", "agent"] | str
"""A transcript turn's speaker."""
Verdict = Literal["success", "failure", "unknown"] | str
"""``call_successful`` and an evaluation criterion's ``result``."""


class ElevenLabsConfigError(ValueError):
    """The client was asked to do something the configuration cannot support (no agent id)."""


# --- conversation model (GET /v1/convai/conversations/{id}) ---------------------------------


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TranscriptTurn(_Lenient):
    """``ConversationHistoryTranscriptCommonModel``: one turn; ``message`` is null for turns that
    are only tool calls."""

    role: Role
    message: str | None = None
    time_in_call_secs: int | float = 0
    interrupted: bool = False


class ConversationError(_Lenient):
    """``ConversationHistoryErrorCommonModel``: the error code and reason in a conversation's
    metadata."""

    code: int
    reason: str | None = None


class ConversationMetadata(_Lenient):
    """``ConversationHistoryMetadataCommonModel`` (the fields the workflow reads)."""

    start_time_unix_secs: int | None = None
    accepted_time_unix_secs: int | None = None
    call_duration_secs: int | float = 0
    cost: int | None = None
    termination_reason: str = ""
    main_language: str | None = None
    error: ConversationError | None = None


class DataCollectionResult(_Lenient):
    """``DataCollectionResultCommonModel``: ``value`` is a string, boolean, integer or number, or
    null when the agent did not find it."""

    data_collection_id: str
    value: Any = None
    rationale: str = ""
    json_schema: dict[str, Any] | None = None


class EvaluationCriteriaResult(_Lenient):
    """``ConversationHistoryEvaluationCriteriaResultCommonModel``: one evaluation criterion's
    verdict and why."""

    criteria_id: str
    result: Verdict = "unknown"
    rationale: str = ""


class ConversationAnalysis(_Lenient):
    """``ConversationHistoryAnalysisCommonModel``: complete once the conversation is ``done``."""

    call_successful: Verdict = "unknown"
    transcript_summary: str = ""
    call_summary_title: str | None = None
    data_collection_results: dict[str, DataCollectionResult] = Field(default_factory=dict)
    evaluation_criteria_results: dict[str, EvaluationCriteriaResult] = Field(default_factory=dict)


class ClientData(_Lenient):
    """``ConversationInitiationClientDataRequest``: what the bridge sent at initiation."""

    dynamic_variables: dict[str, DynamicValue] = Field(default_factory=dict)
    user_id: str | None = None


class Conversation(_Lenient):
    """One conversation, as ``GET /v1/convai/conversations/{id}`` and the post-call webhook's
    ``data`` describe it."""

    conversation_id: str = Field(max_length=MAX_CONVERSATION_ID_CHARS)
    agent_id: str = ""
    status: str
    """initiated | in-progress | processing | done | failed. Kept a string so a status ElevenLabs
    adds later reads as "not final yet" rather than failing the poll."""
    user_id: str | None = None
    transcript: list[TranscriptTurn] = Field(default_factory=list)
    metadata: ConversationMetadata = Field(default_factory=ConversationMetadata)
    analysis: ConversationAnalysis | None = None
    conversation_initiation_client_data: ClientData | None = None
    has_audio: bool = False

    @property
    def is_final(self) -> bool:
        """The analysis will not change any more (``done``) or will never come (``failed``)."""
        return self.status in FINAL_STATUSES

    @property
    def dynamic_variables(self) -> dict[str, DynamicValue]:
        """The dynamic variables the conversation was started with; empty when none were sent."""
        data = self.conversation_initiation_client_data
        return dict(data.dynamic_variables) if data else {}

    def results(self, *, transcript_turns: int = TRANSCRIPT_TURNS_KEPT) -> dict[str, Any]:
        """What the workflow keeps on the session and writes back: the analysis flattened to
        plain values, and the last ``transcript_turns`` turns (each message cut to
        ``TRANSCRIPT_MESSAGE_CHARS``) so the item stays well under DynamoDB's size limit."""
        analysis = self.analysis or ConversationAnalysis()
        kept = self.transcript[-transcript_turns:] if transcript_turns > 0 else []
        return {
            "conversation_id": self.conversation_id,
            "status": self.status,
            "summary": analysis.transcript_summary,
            "summary_title": analysis.call_summary_title or "",
            "call_successful": analysis.call_successful,
            "data_collection": {
                key: item.value for key, item in analysis.data_collection_results.items()
            },
            "evaluation": {
                key: item.result for key, item in analysis.evaluation_criteria_results.items()
            },
            "termination_reason": self.metadata.termination_reason,
            "duration_secs": self.metadata.call_duration_secs,
            "transcript": [
                {
                    "role": turn.role,
                    "message": (turn.message or "")[:TRANSCRIPT_MESSAGE_CHARS],
                    "time_in_call_secs": turn.time_in_call_secs,
                }
                for turn in kept
            ],
            "transcript_truncated": len(kept) < len(self.transcript),
        }


# --- agent settings (GET /v1/convai/agents/{agent_id}) --------------------------------------


class AgentSummary(_Lenient):
    """The parts of an agent's configuration the setup check compares with the phone leg."""

    agent_id: str
    name: str = ""
    input_format: str = "pcm_16000"
    output_format: str = "pcm_16000"
    client_events: tuple[str, ...] = ()
    data_collection: tuple[str, ...] = ()
    overrides: dict[str, bool] = Field(default_factory=dict)
    """Flattened override flags, e.g. ``{"agent.first_message": True, "tts.voice_id": False}``."""

    @classmethod
    def from_agent(cls, agent: Mapping[str, Any]) -> AgentSummary:
        """Read the spec's nested shape; absent parts take the spec's defaults."""
        config = _mapping(agent.get("conversation_config"))
        platform = _mapping(agent.get("platform_settings"))
        overrides = _mapping(
            _mapping(platform.get("overrides")).get("conversation_config_override")
        )
        return cls(
            agent_id=str(agent.get("agent_id", "")),
            name=str(agent.get("name", "")),
            input_format=str(
                _mapping(config.get("asr")).get("user_input_audio_format") or "pcm_16000"
            ),
            output_format=str(
                _mapping(config.get("tts")).get("agent_output_audio_format") or "pcm_16000"
            ),
            client_events=tuple(
                str(e) for e in _mapping(config.get("conversation")).get("client_events") or ()
            ),
            data_collection=tuple(_mapping(platform.get("data_collection")).keys()),
            overrides=_flags(overrides),
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def override_paths(overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"agent": {"first_message": "Hi"}}`` -> ``["agent.first_message"]`` (the leaves): the
    dotted names ElevenLabs checks each ``conversation_config_override`` entry against."""
    paths: list[str] = []
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            paths.extend(override_paths(value, f"{path}."))
        else:
            paths.append(path)
    return paths


def _flags(tree: Mapping[str, Any], prefix: str = "") -> dict[str, bool]:
    flags: dict[str, bool] = {}
    for key, value in tree.items():
        if isinstance(value, bool):
            flags[f"{prefix}{key}"] = value
        elif isinstance(value, Mapping):
            flags.update(_flags(value, f"{prefix}{key}."))
    return flags


# --- HTTP ------------------------------------------------------------------------------------


def read_error(response: httpx.Response) -> tuple[str, str]:
    """(message, code) from ElevenLabs' error bodies: ``{"detail": {"status", "message"}}``,
    ``{"detail": "text"}`` or FastAPI's validation list ``{"detail": [{"loc", "msg"}]}``."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        return str(detail.get("message") or detail), str(detail.get("status") or "")
    if isinstance(detail, list):
        parts = [
            f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}"
            for d in detail
            if isinstance(d, dict)
        ]
        return "; ".join(parts), "validation_error"
    if isinstance(detail, str):
        return detail, ""
    return "", ""


def _json_body(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise RetryableProviderError(PROVIDER, f"{what}: response is not JSON") from None
    if not isinstance(body, dict):
        raise ProviderRejected(PROVIDER, f"{what}: expected a JSON object")
    return body


def _signed_url_from(body: Mapping[str, Any]) -> str:
    url = body.get("signed_url")
    if not isinstance(url, str) or not url.startswith(("wss://", "ws://")):
        raise ProviderRejected(PROVIDER, "get signed url: no WebSocket URL in the response")
    return url


def _path_segment(value: str, name: str) -> str:
    """Ids go into URL paths: refuse anything that could change the path."""
    if not value or not all(c.isalnum() or c in "_-" for c in value):
        raise ValueError(f"malformed {name}: {value!r}")
    return value


class _Base:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._base = settings.elevenlabs_base_url.rstrip("/")

    def _url(self, path: str) -> str:
        return self._base + path

    def _headers(self) -> dict[str, str]:
        key = self._settings.elevenlabs_api_key.get_secret_value()
        if not key:
            raise ElevenLabsConfigError("CALLFLOW_ELEVENLABS_API_KEY is not set")
        return {"xi-api-key": key, "accept": "application/json"}

    def _agent(self, agent_id: str | None) -> str:
        chosen = agent_id or self._settings.elevenlabs_agent_id
        if not chosen:
            raise ElevenLabsConfigError(
                "no agent id given and CALLFLOW_ELEVENLABS_AGENT_ID is unset"
            )
        return _path_segment(chosen, "agent id")


class ElevenLabsClient(_Base):
    """Synchronous client for the Lambda tasks. Pass ``http`` to share a connection pool (or a
    transport in tests); otherwise the client owns one with :data:`DEFAULT_TIMEOUT`."""

    def __init__(self, settings: Settings, http: httpx.Client | None = None) -> None:
        super().__init__(settings)
        self._transport = HttpTransport(
            PROVIDER, timeout=DEFAULT_TIMEOUT, http=http, read_error=read_error
        )

    def close(self) -> None:
        """Close the HTTP client if this client created it; a shared ``http`` stays open."""
        self._transport.close()

    def get_json(
        self, path: str, what: str, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """``GET`` a path of the API and return its JSON object (typed errors otherwise)."""
        response = self._transport.request(
            "GET", self._url(path), what=what, params=params, headers=self._headers()
        )
        return _json_body(response, what)

    def get_signed_url(self, agent_id: str | None = None) -> str:
        """A ``wss://`` URL that starts one conversation with a private agent (valid 15 min)."""
        agent = self._agent(agent_id)
        body = self.get_json(SIGNED_URL_PATH, "get signed url", {"agent_id": agent})
        return _signed_url_from(body)

    def get_conversation(self, conversation_id: str) -> Conversation:
        """The conversation with its transcript and analysis; :class:`ProviderRejected` when the
        response does not have the expected shape."""
        path = CONVERSATION_PATH.format(
            conversation_id=_path_segment(conversation_id, "conversation id")
        )
        body = self.get_json(path, "get conversation")
        try:
            return Conversation.model_validate(body)
        except ValueError as error:
            raise ProviderRejected(
                PROVIDER, f"get conversation: unexpected shape: {error}"
            ) from None

    def get_agent(self, agent_id: str | None = None) -> dict[str, Any]:
        """The agent's configuration as the spec's ``GetAgentResponseModel``; read it with
        :meth:`AgentSummary.from_agent`."""
        path = AGENT_PATH.format(agent_id=self._agent(agent_id))
        return self.get_json(path, "get agent")


class AsyncElevenLabsClient(_Base):
    """The bridge's client: only what a live call needs (a signed URL), without blocking."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(settings)
        self._transport = AsyncHttpTransport(
            PROVIDER, timeout=DEFAULT_TIMEOUT, http=http, read_error=read_error
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it; a shared ``http`` stays open."""
        await self._transport.aclose()

    async def get_signed_url(self, agent_id: str | None = None) -> str:
        """As :meth:`ElevenLabsClient.get_signed_url`, without blocking the event loop."""
        agent = self._agent(agent_id)
        response = await self._transport.request(
            "GET",
            self._url(SIGNED_URL_PATH),
            what="get signed url",
            params={"agent_id": agent},
            headers=self._headers(),
        )
        return _signed_url_from(_json_body(response, "get signed url"))


# --- post-call webhook -----------------------------------------------------------------------


class WebhookError(ValueError):
    """The post-call webhook cannot be accepted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookSignatureError(WebhookError):
    """The ``ElevenLabs-Signature`` header is missing, malformed, stale or does not match: the
    request did not come from ElevenLabs (or was replayed). Answer 401."""


class WebhookPayloadError(WebhookError):
    """The signature is good but the body is not a JSON object. Answer 400."""


def sign_webhook(raw_body: bytes, secret: str, timestamp: int) -> str:
    """The ``ElevenLabs-Signature`` value for a body: ``t=<unix>,v0=<hex>``, hex being
    HMAC-SHA256(secret, "<t>.<body>"). Used by the stand-in and by tests."""
    digest = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v0={digest}"


def _parse_signature(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookSignatureError("malformed signature header")
        if key == "t":
            if not value.isdigit():
                raise WebhookSignatureError("malformed signature timestamp")
            timestamp = int(value)
        elif key == "v0":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookSignatureError("signature header lacks t= or v0=")
    return timestamp, signatures


@dataclass(frozen=True)
class VerifiedDelivery:
    """A post-call delivery whose signature checked out: its JSON body, the signed timestamp and
    the signature (the ``v0`` hex) that matched, which identifies the delivery: any change to the
    body or the timestamp changes it."""

    payload: dict[str, Any]
    timestamp: int
    signature: str


def verify_webhook(
    raw_body: bytes,
    signature_header: str | None,
    secret: str,
    *,
    max_age_s: int = 1800,
    now: float | None = None,
) -> dict[str, Any]:
    """Check the post-call webhook's HMAC and freshness, then return its JSON body (see
    :func:`verify_delivery`)."""
    return verify_delivery(raw_body, signature_header, secret, max_age_s=max_age_s, now=now).payload


def verify_delivery(
    raw_body: bytes,
    signature_header: str | None,
    secret: str,
    *,
    max_age_s: int = 1800,
    now: float | None = None,
) -> VerifiedDelivery:
    """Check the post-call webhook's HMAC and freshness, then return the verified delivery with
    its body parsed (:func:`verify_signature`, then :func:`parse_signed`)."""
    signed = verify_signature(raw_body, signature_header, secret, max_age_s=max_age_s, now=now)
    return parse_signed(signed, raw_body)


@dataclass(frozen=True)
class SignedDelivery:
    """A delivery whose signature checked out, before its body is parsed."""

    timestamp: int
    signature: str


def verify_signature(
    raw_body: bytes,
    signature_header: str | None,
    secret: str,
    *,
    max_age_s: int = 1800,
    now: float | None = None,
) -> SignedDelivery:
    """Check the post-call webhook's HMAC and freshness over the raw body, without parsing it.

    The timestamp is inside the signed string, so an old request cannot be replayed with a fresh
    ``t``; refusing stale (and far-future) timestamps bounds the replay window. Within the window
    a resend of the same delivery passes this check: the caller recognises it by ``signature``.
    Every candidate ``v0`` is compared in constant time.
    """
    if not secret:
        raise WebhookSignatureError("no webhook secret configured")
    if not signature_header:
        raise WebhookSignatureError("missing signature header")
    timestamp, signatures = _parse_signature(signature_header)
    current = time.time() if now is None else now
    if timestamp < current - max_age_s:
        raise WebhookSignatureError("signature timestamp too old")
    if timestamp > current + FUTURE_SKEW_S:
        raise WebhookSignatureError("signature timestamp in the future")
    expected = sign_webhook(raw_body, secret, timestamp).partition(",v0=")[2]
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    if not matched:
        raise WebhookSignatureError("signature mismatch")
    return SignedDelivery(timestamp, expected)


def parse_signed(signed: SignedDelivery, raw_body: bytes) -> VerifiedDelivery:
    """The signed body as a JSON object (:class:`WebhookPayloadError` when it is not one)."""
    try:
        payload = json.loads(raw_body)
    except ValueError:
        raise WebhookPayloadError("body is not JSON") from None
    except RecursionError:  # the parser recurses once per nested array or object
        raise WebhookPayloadError("body nested too deep") from None
    if not isinstance(payload, dict):
        raise WebhookPayloadError("body is not a JSON object")
    return VerifiedDelivery(payload, signed.timestamp, signed.signature)


_LEADING_TYPE = re.compile(rb'\A\s*\{\s*"type"\s*:\s*"([A-Za-z0-9_.:-]{1,100})"')
_LEADING_BYTES = 512


def leading_type(raw_body: bytes) -> str | None:
    """The webhook's ``type`` when it is the body's first key (ElevenLabs writes it first), read
    from the first bytes only; ``None`` when it is not there (the body is then parsed whole).

    A ``post_call_audio`` body carries the whole call's audio as base64: this lets the route
    acknowledge it without decoding megabytes of JSON it has no use for.
    """
    match = _LEADING_TYPE.match(raw_body[:_LEADING_BYTES])
    return match.group(1).decode() if match else None


PostCallType = (
    Literal["post_call_transcription", "post_call_audio", "call_initiation_failure"] | str
)
"""The webhook's ``type``: the three known ones, or one ElevenLabs adds later (acknowledged and
not acted on)."""
KNOWN_POST_CALL_TYPES: Final = frozenset(
    {"post_call_transcription", "post_call_audio", "call_initiation_failure"}
)


class PostCallEvent(_Lenient):
    """The post-call webhook envelope. ``data`` is the conversation (same model as the GET) for
    ``post_call_transcription``; the other types carry other shapes, kept as a dict."""

    type: PostCallType
    event_timestamp: int
    data: dict[str, Any]

    @property
    def conversation_id(self) -> str:
        """The conversation the event is about; empty when ``data`` names none."""
        return str(self.data.get("conversation_id", ""))

    @property
    def agent_id(self) -> str:
        """The agent of the event's conversation; empty when ``data`` names none."""
        return str(self.data.get("agent_id", ""))

    @property
    def conversation(self) -> Conversation:
        """The conversation of a ``post_call_transcription`` event (a ``ValueError`` for the
        other types, whose ``data`` is not a conversation)."""
        if self.type != "post_call_transcription":
            raise ValueError(f"a {self.type} event carries no conversation")
        return Conversation.model_validate(self.data)


def parse_post_call(payload: Mapping[str, Any]) -> PostCallEvent:
    """Validate a verified webhook body (``ValueError`` when it is not a post-call event). A
    transcription event's conversation is validated here, so a bad one is refused up front; a
    type this code does not know passes with whatever ``data`` it has (nothing is done with it)."""
    event = PostCallEvent.model_validate(payload)
    if event.type == "post_call_transcription":
        event.conversation  # noqa: B018 - validates the data eagerly
    elif event.type in KNOWN_POST_CALL_TYPES and not event.conversation_id:
        raise ValueError(f"{event.type} event without a conversation_id")
    return event

"""The ElevenLabs stand-in: the Agents REST API (signed URLs, conversations, agent settings), the
agent WebSocket (handed to the scripted agent), and the signed post-call webhook.

It behaves like the service where the project depends on it:

- ``GET /v1/convai/conversation/get-signed-url`` needs ``xi-api-key``; an unknown agent is a 404.
  The URL carries a ``conversation_signature`` that is single-use and valid for 15 minutes.
- ``/v1/convai/conversation`` (WebSocket, on the same app) checks the signature, refuses sockets
  over ``max_concurrent_conversations`` (an ``error`` event, then close 1008), and hands the rest
  to :class:`callflow_dev.sandbox.agent.ScriptedAgent`.
- ``GET /v1/convai/conversations/{id}`` reports ``in-progress`` while the socket is open,
  ``processing`` for ``processing_seconds`` after it closes, then ``done`` with the analysis
  (data collection drawn from what the scripted agent collected).
- When a conversation is ``done`` the ``post_call_transcription`` webhook is POSTed, signed like
  ElevenLabs signs it, unless ``drop_webhooks`` (ElevenLabs does not retry by default: the
  workflow's polling fallback must cope).
- ``GET /v1/convai/agents/{agent_id}`` answers the agent's settings in ``GetAgentResponseModel``'s
  shape, for the setup check.
- ``GET /v1/convai/settings`` and ``GET /v1/workspace/webhooks`` answer the workspace's post-call
  webhook (``post_call_webhook_id``) and its webhooks (``workspace_webhooks``), which the setup
  check reads to find where post-call webhooks go.

Response shapes follow ``callflow_dev/schemas/elevenlabs/openapi.json``; the contract tests
validate them. The error body ``{"detail": {"status", "message"}}`` is what ElevenLabs answers on
its ConvAI routes (the spec only describes the 422 validation shape, which FastAPI produces here
too).

Everything runs on the serving event loop (one uvicorn server), so state needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import urlencode

import httpx
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from websockets.frames import Close

from callflow.providers.elevenlabs.client import SIGNATURE_HEADER, sign_webhook
from callflow_dev.sandbox.agent import AgentConfig, ConversationRecord, ScriptedAgent

SIGNATURE_TTL_S: Final = 15 * 60
CONVERSATION_WS_PATH: Final = "/v1/convai/conversation"
FAILED_CLOSE_CODES: Final = frozenset({1008, 1011})
"""An agent-side close with these codes (refused initiation, server error) leaves the
conversation ``failed``; 1000 and 1002 (timeouts) end it normally and it is analysed."""
ValueType = Literal["boolean", "string", "integer", "number"]


@dataclass(frozen=True)
class DataItem:
    """One data-collection item defined on the agent (``LiteralJsonSchemaProperty``)."""

    type: ValueType
    description: str


DEFAULT_DATA_COLLECTION: Final[Mapping[str, DataItem]] = {
    "interested": DataItem("boolean", "Whether the person wants a site visit."),
    "monthly_bill": DataItem("number", "The person's monthly electricity bill in USD."),
    "visit_date": DataItem("string", "The agreed visit date, ISO yyyy-mm-dd."),
    "lead_status": DataItem("string", "Qualified when every question was answered."),
}


@dataclass(frozen=True)
class WorkspaceWebhook:
    """One webhook of the workspace, as ``GET /v1/workspace/webhooks`` lists it
    (``WorkspaceWebhookResponseModel``)."""

    webhook_id: str
    webhook_url: str
    name: str = "callflow"
    auth_type: Literal["hmac", "oauth2", "mtls"] = "hmac"
    is_disabled: bool = False
    is_auto_disabled: bool = False
    """ElevenLabs sets this after repeated consecutive delivery failures."""
    created_at_unix: int = 1_700_000_000

    def body(self, usage: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """The webhook as the list answers it; ``usage`` is included only when given."""
        body: dict[str, Any] = {
            "name": self.name,
            "webhook_id": self.webhook_id,
            "webhook_url": self.webhook_url,
            "is_disabled": self.is_disabled,
            "is_auto_disabled": self.is_auto_disabled,
            "created_at_unix": self.created_at_unix,
            "auth_type": self.auth_type,
        }
        if usage is not None:
            body["usage"] = usage
        return body


class SandboxError(Exception):
    """An error the stand-in answers the way ElevenLabs does: ``{"detail": {status, message}}``."""

    def __init__(self, http_status: int, status: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status = status
        self.message = message


@dataclass
class RecordedRequest:
    """A REST call the stand-in received (the API key itself is not kept)."""

    method: str
    path: str
    params: dict[str, str]
    header_names: frozenset[str]


@dataclass
class WebhookDelivery:
    """One post-call webhook POST: what was sent, and the answer's status or the request's error."""

    conversation_id: str
    url: str
    body: bytes
    signature: str
    status_code: int | None
    error: str = ""


@dataclass
class TranscriptLine:
    """One transcript line, as the conversation GET and the post-call webhook report it."""

    role: Literal["user", "agent"]
    message: str
    time_in_call_secs: float


@dataclass
class ConversationState:
    """One conversation as the REST side reports it."""

    conversation_id: str
    agent_id: str
    started_at: float
    status: str = "in-progress"
    ended_at: float | None = None
    dynamic_variables: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    transcript: list[TranscriptLine] = field(default_factory=list)
    collected: dict[str, Any] = field(default_factory=dict)
    termination_reason: str = ""
    live: Any = None
    """The scripted agent's record while the conversation runs (its transcript grows live)."""
    error: str = ""


class SignatureBook:
    """Single-use conversation signatures, each for one agent and valid ``ttl_s``."""

    def __init__(self, ttl_s: float = SIGNATURE_TTL_S, clock: Callable[[], float] = time.time):
        self._ttl = ttl_s
        self._clock = clock
        self._issued: dict[str, tuple[str, float]] = {}

    def issue(self, agent_id: str) -> str:
        """A fresh signature for ``agent_id``, valid for ``ttl_s``; expired ones are dropped."""
        now = self._clock()
        self._issued = {s: v for s, v in self._issued.items() if v[1] > now}
        signature = secrets.token_urlsafe(24)
        self._issued[signature] = (agent_id, now + self._ttl)
        return signature

    def consume(self, agent_id: str, signature: str) -> bool:
        """True once for a fresh signature issued for ``agent_id``; it is spent either way."""
        entry = self._issued.pop(signature, None)
        return entry is not None and entry[0] == agent_id and entry[1] > self._clock()


# --- the agent WebSocket ---------------------------------------------------------------------


class StarletteAgentSocket:
    """The scripted agent's socket (``recv``, ``send``, ``close``, as ``websockets``' server
    connection offers them) over a Starlette WebSocket, so the agent runs on a route of this
    app and one uvicorn server serves the REST API and the socket, as ElevenLabs' host does.

    A closed socket raises ``websockets``' ``ConnectionClosedOK`` / ``ConnectionClosedError``
    from ``recv`` and ``send``, like the library. ``on_received`` sees each text frame the client
    sends (the stand-in reads the initiation data from it while the call is in progress).
    """

    def __init__(
        self, websocket: WebSocket, on_received: Callable[[str], None] | None = None
    ) -> None:
        self._ws = websocket
        self._on_received = on_received
        self.close_code: int | None = None
        self.close_reason = ""
        self._closed_by_us = False

    def _closed(self) -> ConnectionClosed:
        code = self.close_code if self.close_code is not None else 1006
        frame = Close(code, self.close_reason)
        rcvd, sent = (None, frame) if self._closed_by_us else (frame, None)
        if code in (1000, 1001):
            return ConnectionClosedOK(rcvd, sent)
        return ConnectionClosedError(rcvd, sent)

    async def recv(self) -> str | bytes:
        """The client's next frame (text or bytes); raises ``ConnectionClosed`` once closed."""
        if self.close_code is not None:
            raise self._closed()
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            self.close_code = int(message.get("code") or 1005)
            self.close_reason = str(message.get("reason") or "")
            raise self._closed()
        if message.get("text") is not None:
            text = str(message["text"])
            if self._on_received:
                self._on_received(text)
            return text
        return bytes(message.get("bytes") or b"")

    async def send(self, message: str) -> None:
        """Send a text frame; raises ``ConnectionClosed`` if closed or if sending fails."""
        if self.close_code is not None:
            raise self._closed()
        try:
            await self._ws.send_text(message)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.close_code = 1006
            raise self._closed() from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code`` and ``reason``; does nothing if the socket is already closed."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason, self._closed_by_us = code, reason, True
        with contextlib.suppress(RuntimeError, OSError):
            await self._ws.close(code, reason)


# --- response bodies -------------------------------------------------------------------------


def _error_body(status: str, message: str) -> dict[str, Any]:
    return {"detail": {"status": status, "message": message}}


def _summary(state: ConversationState, items: Mapping[str, DataItem]) -> str:
    """A deterministic stand-in for the LLM's summary: who was called, how it ended, what was
    gathered. Enough for the note on the record to be meaningful in the demo."""
    name = str(state.dynamic_variables.get("first_name") or "the person")
    turns = sum(1 for line in state.transcript if line.role == "user")
    found = [
        f"{key} = {state.collected[key]}" for key in items if state.collected.get(key) is not None
    ]
    missing = [key for key in items if state.collected.get(key) is None]
    parts = [f"The agent spoke with {name} ({turns} caller turns)."]
    parts.append(f"Collected: {', '.join(found)}." if found else "Nothing was collected.")
    if missing:
        parts.append(f"Not collected: {', '.join(missing)}.")
    if state.termination_reason:
        parts.append(f"Ended: {state.termination_reason.rstrip('.')}.")
    return " ".join(parts)


def _call_successful(state: ConversationState, items: Mapping[str, DataItem]) -> str:
    if not any(line.role == "user" for line in state.transcript):
        return "unknown"
    return "success" if all(state.collected.get(key) is not None for key in items) else "failure"


def conversation_body(
    state: ConversationState, items: Mapping[str, DataItem], now: float
) -> dict[str, Any]:
    """``GetConversationResponseModel`` for one conversation (also the webhook's ``data``)."""
    end = state.ended_at if state.ended_at is not None else now
    analysis: dict[str, Any] | None = None
    if state.status == "done":
        analysis = {
            "evaluation_criteria_results": {},
            "data_collection_results": {
                key: {
                    "data_collection_id": key,
                    "value": state.collected.get(key),
                    "json_schema": {"type": item.type, "description": item.description},
                    "rationale": (
                        "Stated by the caller during the call."
                        if state.collected.get(key) is not None
                        else "Not mentioned in the conversation."
                    ),
                }
                for key, item in items.items()
            },
            "call_successful": _call_successful(state, items),
            "transcript_summary": _summary(state, items),
            "call_summary_title": "Sandbox call",
        }
    return {
        "agent_id": state.agent_id,
        "conversation_id": state.conversation_id,
        "status": state.status,
        "user_id": None,
        "transcript": [
            {
                "role": line.role,
                "message": line.message,
                "tool_calls": [],
                "tool_results": [],
                "time_in_call_secs": int(line.time_in_call_secs),
                "interrupted": False,
                "source_medium": "audio",
            }
            for line in state.transcript
        ],
        "metadata": {
            "start_time_unix_secs": int(state.started_at),
            "accepted_time_unix_secs": int(state.started_at),
            "call_duration_secs": max(0, round(end - state.started_at)),
            "cost": None,
            "termination_reason": state.termination_reason,
            "error": None,
            "main_language": "en",
            "text_only": False,
            "authorization_method": "signed_url",
            "conversation_initiation_source": "unknown",
        },
        "analysis": analysis,
        "conversation_initiation_client_data": {
            "conversation_config_override": state.overrides,
            "custom_llm_extra_body": {},
            "user_id": None,
            "dynamic_variables": state.dynamic_variables,
        },
        "has_audio": state.ended_at is not None,
        "has_user_audio": state.ended_at is not None,
        "has_response_audio": state.ended_at is not None,
    }


# --- the stand-in ------------------------------------------------------------------------------


class ElevenLabsSandbox:
    """State and FastAPI app of the stand-in; serve ``.app`` with uvicorn (REST and WebSocket
    on the same port, like ``api.elevenlabs.io``).

    ``agent`` is the scripted agent's configuration; its id, formats, client events and allowed
    overrides are what ``GET /v1/convai/agents/{agent_id}`` reports. ``webhook_url`` may be set
    after construction (the API's port is often known only once it is serving).
    ``post_call_webhook_id`` is the workspace's post-call webhook (``GET /v1/convai/settings``;
    None: none configured) and ``workspace_webhooks`` the webhooks ``GET /v1/workspace/webhooks``
    lists; both are plain attributes a test may change.
    ``.requests`` lists the REST calls received, ``.conversations`` the conversations by id,
    ``.webhooks`` the deliveries attempted and ``.refused`` the sockets turned down.
    """

    def __init__(
        self,
        api_key: str,
        agent: AgentConfig,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        *,
        agent_name: str = "Callflow sandbox agent",
        data_collection: Mapping[str, DataItem] = DEFAULT_DATA_COLLECTION,
        max_concurrent_conversations: int = 4,
        processing_seconds: float = 1.0,
        drop_webhooks: bool = False,
        delay_webhook_s: float = 0.0,
        post_call_webhook_id: str | None = None,
        workspace_webhooks: Sequence[WorkspaceWebhook] = (),
        clock: Callable[[], float] = time.time,
        other_agents: Sequence[AgentConfig] = (),
    ) -> None:
        if not api_key:
            raise ValueError("the stand-in needs an API key to check")
        self.api_key = api_key
        self.agent = agent
        self.agent_id = agent.agent_id
        self.other_agents = {a.agent_id: a for a in other_agents}
        """Further scripted agents of the workspace by id (e.g. a second flow's): each has its
        own script and settings, while the data-collection items are the workspace's, shared."""
        self.agent_name = agent_name
        self.data_collection = dict(data_collection)
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.max_concurrent_conversations = max_concurrent_conversations
        self.processing_seconds = processing_seconds
        self.drop_webhooks = drop_webhooks
        self.delay_webhook_s = delay_webhook_s
        self.new_enum_values = False
        """Play ElevenLabs adding enum values: a transcript turn with role ``tool``,
        ``call_successful`` ``partial``, an evaluation ``result`` ``inconclusive`` (in the GET
        and the webhook), and a ``post_call_summary`` delivery before the transcription. The
        official SDK types each of these fields as known literals or any string."""
        self.post_call_webhook_id = post_call_webhook_id
        self.send_audio = False
        """The workspace's "send audio" switch for post-call webhooks (``ConvAIWebhooks``)."""
        self.workspace_webhooks = list(workspace_webhooks)
        self.clock = clock
        self.created_at = int(clock())
        self.signatures = SignatureBook(clock=clock)
        self.requests: list[RecordedRequest] = []
        self.conversations: dict[str, ConversationState] = {}
        self.webhooks: list[WebhookDelivery] = []
        self.refused: list[tuple[int, str]] = []
        """(close code, message) of every socket the stand-in refused."""
        self.active = 0
        self.peak_active = 0
        """The most conversations that were live at once."""
        self._finishers: set[asyncio.Task[None]] = set()
        self.app = self._build_app()

    # --- REST ----------------------------------------------------------------------------

    @property
    def agents(self) -> dict[str, AgentConfig]:
        """Every agent of the workspace by id: ``agent`` (read when asked, so a test may swap
        it for a faulty one) and the others."""
        return {self.agent.agent_id: self.agent, **self.other_agents}

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="ElevenLabs stand-in", openapi_url=None, docs_url=None)

        @app.exception_handler(SandboxError)
        async def _sandbox_error(_: Request, error: SandboxError) -> JSONResponse:
            return JSONResponse(_error_body(error.status, error.message), error.http_status)

        @app.middleware("http")
        async def _record(request: Request, call_next: Any) -> Any:
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    params=dict(request.query_params),
                    header_names=frozenset(request.headers.keys()),
                )
            )
            return await call_next(request)

        @app.get("/v1/convai/conversation/get-signed-url")
        @app.get("/v1/convai/conversation/get_signed_url", include_in_schema=False)
        async def get_signed_url(request: Request, agent_id: str = Query()) -> dict[str, str]:
            self._authenticate(request)
            self._require_agent(agent_id)
            scheme = "wss" if request.url.scheme == "https" else "ws"
            query = urlencode(
                {"agent_id": agent_id, "conversation_signature": self.signatures.issue(agent_id)}
            )
            return {"signed_url": f"{scheme}://{request.url.netloc}{CONVERSATION_WS_PATH}?{query}"}

        @app.get("/v1/convai/conversations/{conversation_id}")
        async def get_conversation(request: Request, conversation_id: str) -> dict[str, Any]:
            self._authenticate(request)
            state = self.conversations.get(conversation_id)
            if state is None:
                raise SandboxError(
                    404, "conversation_not_found", f"Conversation {conversation_id} not found"
                )
            return self._shaped(conversation_body(state, self.data_collection, self.clock()))

        @app.get("/v1/convai/agents/{agent_id}")
        async def get_agent(request: Request, agent_id: str) -> dict[str, Any]:
            self._authenticate(request)
            self._require_agent(agent_id)
            return self.agent_body(agent_id)

        @app.get("/v1/convai/settings")
        async def get_convai_settings(request: Request) -> dict[str, Any]:
            """``GetConvAISettingsResponseModel``; only ``webhooks`` matters to the project."""
            self._authenticate(request)
            return {
                "conversation_initiation_client_data_webhook": None,
                "webhooks": {
                    "post_call_webhook_id": self.post_call_webhook_id,
                    "send_audio": self.send_audio,
                },
                "can_use_mcp_servers": False,
                "rag_retention_period_days": 10,
            }

        @app.get("/v1/workspace/webhooks")
        async def list_workspace_webhooks(
            request: Request, include_usages: bool = Query(False)
        ) -> dict[str, Any]:
            """``WorkspaceWebhookListResponseModel``; with ``include_usages`` each webhook names
            what triggers it (the post-call webhook: the ConvAI settings)."""
            self._authenticate(request)
            return {
                "webhooks": [self._webhook_body(w, include_usages) for w in self.workspace_webhooks]
            }

        @app.websocket(CONVERSATION_WS_PATH)
        async def conversation(websocket: WebSocket) -> None:
            await self._serve_socket(websocket)

        return app

    def _authenticate(self, request: Request) -> None:
        given = request.headers.get("xi-api-key", "")
        if not secrets.compare_digest(given.encode(), self.api_key.encode()):
            raise SandboxError(401, "invalid_api_key", "Invalid API key")

    def _webhook_body(self, webhook: WorkspaceWebhook, include_usages: bool) -> dict[str, Any]:
        if not include_usages:
            return webhook.body()
        used = webhook.webhook_id == self.post_call_webhook_id
        return webhook.body([{"usage_type": "ConvAI Settings"}] if used else [])

    def _require_agent(self, agent_id: str) -> None:
        if agent_id not in self.agents:
            raise SandboxError(404, "agent_not_found", f"Agent {agent_id} not found")

    def agent_body(self, agent_id: str | None = None) -> dict[str, Any]:
        """``GetAgentResponseModel``: the settings the setup check compares with the phone leg
        (of ``agent_id``, the first agent by default)."""
        agent = self.agents[agent_id or self.agent_id]
        allowed = set(agent.allowed_overrides)
        return {
            "agent_id": agent.agent_id,
            "name": self.agent_name,
            "conversation_config": {
                "asr": {
                    "quality": "high",
                    "provider": "elevenlabs",
                    "user_input_audio_format": agent.user_input_audio_format,
                    "keywords": [],
                },
                "turn": {"turn_timeout": 7, "silence_end_call_timeout": -1},
                "tts": {
                    "model_id": "eleven_turbo_v2",
                    "agent_output_audio_format": agent.agent_output_audio_format,
                },
                "conversation": {
                    "text_only": False,
                    "max_duration_seconds": 600,
                    "client_events": list(agent.client_events),
                },
                "agent": {"first_message": "", "language": "en"},
            },
            "metadata": {"created_at_unix_secs": self.created_at},
            "platform_settings": {
                "data_collection": {
                    key: {"type": item.type, "description": item.description}
                    for key, item in self.data_collection.items()
                },
                "overrides": {
                    "conversation_config_override": {
                        "tts": {"voice_id": "tts.voice_id" in allowed},
                        "conversation": {"text_only": "conversation.text_only" in allowed},
                        "agent": {
                            "first_message": "agent.first_message" in allowed,
                            "language": "agent.language" in allowed,
                            "prompt": {"prompt": "agent.prompt.prompt" in allowed},
                        },
                    },
                    "custom_llm_extra_body": False,
                    "enable_conversation_initiation_client_data_from_webhook": False,
                },
            },
            "phone_numbers": [],
            "tags": [],
        }

    # --- the agent socket ------------------------------------------------------------------

    async def _refuse(self, websocket: WebSocket, code: int, message: str) -> None:
        """ElevenLabs' way of turning a conversation down: an ``error`` event, then the close
        code (``ErrorData`` in the AsyncAPI contract)."""
        self.refused.append((code, message))
        await websocket.accept()
        error = {"type": "error", "error_event": {"code": code, "message": message}}
        await websocket.send_text(json.dumps(error))
        await websocket.close(code, message)

    async def _serve_socket(self, websocket: WebSocket) -> None:
        agent_id = websocket.query_params.get("agent_id", "")
        signature = websocket.query_params.get("conversation_signature", "")
        if not signature or not self.signatures.consume(agent_id, signature):
            await self._refuse(websocket, 1008, "Invalid or expired conversation signature")
            return
        if self.active >= self.max_concurrent_conversations:
            await self._refuse(
                websocket,
                1008,
                f"Concurrency limit of {self.max_concurrent_conversations} conversations reached",
            )
            return
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)
        try:
            await websocket.accept()
            await self._run_conversation(websocket, agent_id)
        finally:
            self.active -= 1

    async def _run_conversation(self, websocket: WebSocket, agent_id: str) -> None:
        state = ConversationState(
            conversation_id=f"conv_{secrets.token_hex(13)}",
            agent_id=agent_id,
            started_at=self.clock(),
        )
        self.conversations[state.conversation_id] = state

        first_frame = True

        def watch(text: str) -> None:
            # The initiation data (the first frame) shows while the call is in progress.
            nonlocal first_frame
            if not first_frame:
                return
            first_frame = False
            with contextlib.suppress(ValueError):
                frame = json.loads(text)
                if isinstance(frame, dict) and frame.get("type") == (
                    "conversation_initiation_client_data"
                ):
                    state.dynamic_variables = dict(frame.get("dynamic_variables") or {})
                    state.overrides = dict(frame.get("conversation_config_override") or {})

        socket = StarletteAgentSocket(websocket, on_received=watch)
        agent = ScriptedAgent(
            self.agents.get(agent_id, self.agent), conversation_id=state.conversation_id
        )
        state.live = agent.record
        try:
            record = await agent.run(socket)
        except Exception as error:
            state.error = f"{type(error).__name__}: {error}"
            await socket.close(1011, "Internal server error")
        else:
            _apply_record(state, record)
            if record.closed_by == "agent" and record.close_code in FAILED_CLOSE_CODES:
                state.error = record.close_reason or f"closed {record.close_code}"
        state.ended_at = self.clock()
        state.status = "processing"
        task = asyncio.create_task(self._finish(state))
        self._finishers.add(task)
        task.add_done_callback(self._finishers.discard)

    async def _finish(self, state: ConversationState) -> None:
        """Analysis takes a while; then the conversation is ``done`` and the webhook goes out."""
        await asyncio.sleep(self.processing_seconds)
        state.status = "failed" if state.error else "done"
        if not self.webhook_url or self.drop_webhooks or state.status != "done":
            return
        if self.delay_webhook_s:
            await asyncio.sleep(self.delay_webhook_s)
        if self.new_enum_values:
            await self.send_webhook(state, event_type="post_call_summary")
        await self.send_webhook(state)

    def _shaped(self, body: dict[str, Any]) -> dict[str, Any]:
        """The conversation body with :attr:`new_enum_values` applied."""
        if not self.new_enum_values:
            return body
        body["transcript"].append(
            {"role": "tool", "message": "crm lookup done", "time_in_call_secs": 0}
        )
        analysis = body.get("analysis")
        if isinstance(analysis, dict):
            analysis["call_successful"] = "partial"
            analysis["evaluation_criteria_results"]["sandbox_new"] = {
                "criteria_id": "sandbox_new",
                "result": "inconclusive",
                "rationale": "A verdict value added after this code was written.",
            }
        return body

    def webhook_body(
        self, state: ConversationState, now: float, event_type: str = "post_call_transcription"
    ) -> dict[str, Any]:
        """The post-call envelope: for ``post_call_transcription``, ``data`` is the conversation
        as the GET answers it; another type carries only the ids."""
        data = (
            self._shaped(conversation_body(state, self.data_collection, now))
            if event_type == "post_call_transcription"
            else {"agent_id": state.agent_id, "conversation_id": state.conversation_id}
        )
        return {"type": event_type, "event_timestamp": int(now), "data": data}

    async def send_webhook(
        self, state: ConversationState, event_type: str = "post_call_transcription"
    ) -> WebhookDelivery:
        """POST a post-call event (``post_call_transcription`` unless told) to ``webhook_url``,
        signed with ``webhook_secret``."""
        if not self.webhook_url:
            raise ValueError("no webhook_url configured")
        now = self.clock()
        body = json.dumps(self.webhook_body(state, now, event_type)).encode()
        headers = {"content-type": "application/json"}
        signature = ""
        if self.webhook_secret:
            signature = sign_webhook(body, self.webhook_secret, int(now))
            headers[SIGNATURE_HEADER] = signature
        delivery = WebhookDelivery(state.conversation_id, self.webhook_url, body, signature, None)
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0)) as client:
                response = await client.post(self.webhook_url, content=body, headers=headers)
            delivery.status_code = response.status_code
        except httpx.HTTPError as error:
            delivery.error = f"{type(error).__name__}: {error}"
        self.webhooks.append(delivery)
        return delivery

    async def drain(self) -> None:
        """Wait for pending analyses and webhooks (tests and the local stack's shutdown)."""
        while self._finishers:
            await asyncio.gather(*list(self._finishers), return_exceptions=True)


def _apply_record(state: ConversationState, record: ConversationRecord) -> None:
    """What the scripted agent recorded becomes the conversation's transcript and analysis."""
    state.transcript = [
        TranscriptLine(
            role="user" if line.role == "user" else "agent",
            message=line.message,
            time_in_call_secs=line.time_in_call_secs,
        )
        for line in record.transcript
    ]
    state.collected = dict(record.collected)
    state.termination_reason = record.termination_reason
    if record.dynamic_variables:
        state.dynamic_variables = dict(record.dynamic_variables)
    if record.overrides:
        state.overrides = dict(record.overrides)

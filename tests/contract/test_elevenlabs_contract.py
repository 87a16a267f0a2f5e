"""The ElevenLabs stand-in and client against ElevenLabs' own OpenAPI description.

The stand-in's REST answers and its post-call webhook must validate against the spec's response
schemas (``$ref`` resolved across the document), and every request the client sends must name a
path, method, query parameter and header the spec declares. The spec is the extracted
``callflow_dev/schemas/elevenlabs/openapi.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import SecretStr
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from starlette.testclient import TestClient

from callflow.config import Settings
from callflow.providers.elevenlabs.client import ElevenLabsClient
from callflow_dev import schemas
from callflow_dev.sandbox.agent import AgentConfig
from callflow_dev.sandbox.asyncapi import validate_server_message
from callflow_dev.sandbox.elevenlabs import (
    ConversationState,
    ElevenLabsSandbox,
    TranscriptLine,
    WorkspaceWebhook,
)
from tests.unit.elevenlabs_fixtures import CONVERSATION_DONE

SPEC_URI = "urn:elevenlabs:openapi"
API_KEY = "xi_contract_key"


def spec() -> dict[str, Any]:
    return schemas.load("elevenlabs", "openapi.json")


@cache
def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry().with_resource(
        SPEC_URI, DRAFT202012.create_resource(spec())
    )
    return registry


def schema_errors(instance: Any, schema_name: str) -> list[str]:
    """Validation errors of ``instance`` against ``#/components/schemas/<schema_name>``."""
    validator = Draft202012Validator(
        {"$ref": f"{SPEC_URI}#/components/schemas/{schema_name}"}, registry=_registry()
    )
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def response_schema(path: str, status: str = "200", method: str = "get") -> str:
    """The component name the spec gives an operation's JSON response."""
    content = spec()["paths"][path][method]["responses"][status]["content"]
    ref: str = content["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The spec's path template and operation that match a concrete request path."""
    for template, operations in spec()["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return template, operations[method.lower()]
    raise AssertionError(f"{method} {path} is not in the ElevenLabs spec")


@pytest.fixture
def sandbox() -> ElevenLabsSandbox:
    return ElevenLabsSandbox(
        API_KEY, AgentConfig(allowed_overrides=frozenset({"agent.first_message"}))
    )


@pytest.fixture
def http(sandbox: ElevenLabsSandbox) -> Iterator[TestClient]:
    with TestClient(sandbox.app, base_url="http://testserver") as client:
        yield client


def _state(status: str, *, collected: dict[str, Any] | None = None) -> ConversationState:
    state = ConversationState(
        conversation_id="conv_contract",
        agent_id="agent_sandbox",
        started_at=1_790_000_000.4,
        status=status,
        dynamic_variables={"first_name": "Maria", "score": 7, "vip": True},
    )
    if status != "in-progress":
        state.ended_at = 1_790_000_031.2
        state.termination_reason = "end_call tool was called."
        state.transcript = [
            TranscriptLine("agent", "Hi Maria, this is Sam.", 0.0),
            TranscriptLine("user", "Hello, yes.", 2.6),
        ]
        state.collected = collected or {}
    return state


HEADERS = {"xi-api-key": API_KEY}


# --- responses -----------------------------------------------------------------------------


def test_the_spec_names_the_schemas_the_stand_in_answers_with() -> None:
    assert response_schema("/v1/convai/conversation/get-signed-url") == (
        "ConversationSignedUrlResponseModel"
    )
    assert response_schema("/v1/convai/conversations/{conversation_id}") == (
        "GetConversationResponseModel"
    )
    assert response_schema("/v1/convai/agents/{agent_id}") == "GetAgentResponseModel"
    assert response_schema("/v1/convai/settings") == "GetConvAISettingsResponseModel"
    assert response_schema("/v1/workspace/webhooks") == "WorkspaceWebhookListResponseModel"


def test_signed_url_response_matches_the_spec(http: TestClient) -> None:
    response = http.get(
        "/v1/convai/conversation/get-signed-url",
        params={"agent_id": "agent_sandbox"},
        headers=HEADERS,
    )
    assert response.status_code == 200
    assert schema_errors(response.json(), "ConversationSignedUrlResponseModel") == []


@pytest.mark.parametrize(
    ("status", "collected"),
    [
        ("in-progress", None),
        ("processing", None),
        ("failed", None),
        ("done", {"interested": True, "monthly_bill": 150.5, "visit_date": "2026-12-01"}),
        ("done", {}),
    ],
)
def test_conversation_response_matches_the_spec(
    sandbox: ElevenLabsSandbox,
    http: TestClient,
    status: str,
    collected: dict[str, Any] | None,
) -> None:
    sandbox.conversations["conv_contract"] = _state(status, collected=collected)
    response = http.get("/v1/convai/conversations/conv_contract", headers=HEADERS)
    assert response.status_code == 200
    body = response.json()
    assert schema_errors(body, "GetConversationResponseModel") == []
    assert (body["analysis"] is not None) == (status == "done")


def test_agent_response_matches_the_spec(http: TestClient) -> None:
    response = http.get("/v1/convai/agents/agent_sandbox", headers=HEADERS)
    assert response.status_code == 200
    assert schema_errors(response.json(), "GetAgentResponseModel") == []


def _undeclared(instance: dict[str, Any], schema_name: str) -> set[str]:
    """Keys of ``instance`` the schema does not name (none of these schemas forbid extras)."""
    return set(instance) - set(spec()["components"]["schemas"][schema_name]["properties"])


@pytest.mark.parametrize("include_usages", [False, True])
def test_workspace_webhook_reads_match_the_spec(
    sandbox: ElevenLabsSandbox, http: TestClient, include_usages: bool
) -> None:
    sandbox.post_call_webhook_id = "wh_post_call"
    sandbox.workspace_webhooks = [
        WorkspaceWebhook("wh_post_call", "https://api.example.com/webhooks/elevenlabs"),
        WorkspaceWebhook("wh_other", "https://other.example.com/hook", is_disabled=True),
    ]
    settings = http.get("/v1/convai/settings", headers=HEADERS)
    assert settings.status_code == 200
    assert schema_errors(settings.json(), "GetConvAISettingsResponseModel") == []
    assert _undeclared(settings.json(), "GetConvAISettingsResponseModel") == set()
    assert settings.json()["webhooks"]["post_call_webhook_id"] == "wh_post_call"

    params = {"include_usages": str(include_usages).lower()}
    listing = http.get("/v1/workspace/webhooks", params=params, headers=HEADERS)
    assert listing.status_code == 200
    assert schema_errors(listing.json(), "WorkspaceWebhookListResponseModel") == []
    webhooks = listing.json()["webhooks"]
    assert [w["webhook_id"] for w in webhooks] == ["wh_post_call", "wh_other"]
    for webhook in webhooks:
        assert _undeclared(webhook, "WorkspaceWebhookResponseModel") == set()
    usages = [w.get("usage") for w in webhooks]
    assert usages == ([[{"usage_type": "ConvAI Settings"}], []] if include_usages else [None, None])


def test_workspace_reads_without_a_post_call_webhook_match_the_spec(http: TestClient) -> None:
    settings = http.get("/v1/convai/settings", headers=HEADERS).json()
    assert schema_errors(settings, "GetConvAISettingsResponseModel") == []
    assert settings["webhooks"]["post_call_webhook_id"] is None
    assert http.get("/v1/workspace/webhooks", headers=HEADERS).json() == {"webhooks": []}


@pytest.mark.parametrize("path", ["/v1/convai/settings", "/v1/workspace/webhooks"])
def test_workspace_reads_need_the_api_key(http: TestClient, path: str) -> None:
    response = http.get(path, headers={"xi-api-key": "wrong"})
    assert response.status_code == 401
    assert response.json()["detail"]["status"] == "invalid_api_key"


def test_missing_agent_id_is_answered_with_the_spec_validation_shape(http: TestClient) -> None:
    response = http.get("/v1/convai/conversation/get-signed-url", headers=HEADERS)
    assert response.status_code == 422
    assert schema_errors(response.json(), "HTTPValidationError") == []


def test_webhook_body_carries_a_spec_valid_conversation(sandbox: ElevenLabsSandbox) -> None:
    state = _state("done", collected={"interested": False, "lead_status": "Not interested"})
    body = sandbox.webhook_body(state, now=1_790_000_040.0)
    assert body["type"] == "post_call_transcription"
    assert isinstance(body["event_timestamp"], int)
    assert schema_errors(body["data"], "GetConversationResponseModel") == []


def test_shared_conversation_fixture_matches_the_spec() -> None:
    assert schema_errors(CONVERSATION_DONE, "GetConversationResponseModel") == []


def test_schema_check_catches_a_wrong_field_type() -> None:
    broken = dict(CONVERSATION_DONE, status="finished")
    assert any("status" in error for error in schema_errors(broken, "GetConversationResponseModel"))


def test_refusal_on_the_socket_is_a_contract_error_event(http: TestClient) -> None:
    url = "/v1/convai/conversation?agent_id=agent_sandbox&conversation_signature=forged"
    with http.websocket_connect(url) as ws:
        event = ws.receive_json()
        closing = ws.receive()
    assert validate_server_message(event) == []
    assert event["error_event"]["code"] == 1008
    assert closing == {
        "type": "websocket.close",
        "code": 1008,
        "reason": event["error_event"]["message"],
    }


# --- requests ------------------------------------------------------------------------------


def test_client_requests_use_the_spec_paths_parameters_and_headers(
    sandbox: ElevenLabsSandbox, http: TestClient
) -> None:
    settings = Settings(
        elevenlabs_base_url="http://testserver",
        elevenlabs_api_key=SecretStr(API_KEY),
        elevenlabs_agent_id="agent_sandbox",
    )
    sandbox.conversations["conv_contract"] = _state("done")
    client = ElevenLabsClient(settings, http)
    client.get_signed_url()
    client.get_conversation("conv_contract")
    client.get_agent()
    assert [r.path for r in sandbox.requests] == [
        "/v1/convai/conversation/get-signed-url",
        "/v1/convai/conversations/conv_contract",
        "/v1/convai/agents/agent_sandbox",
    ]
    for request in sandbox.requests:
        template, operation = operation_for(request.method, request.path)
        declared = {p["name"]: p for p in operation.get("parameters", [])}
        query = {n for n, p in declared.items() if p["in"] == "query"}
        required = {n for n, p in declared.items() if p["in"] == "query" and p.get("required")}
        assert set(request.params) <= query, template
        assert required <= set(request.params), template
        assert declared["xi-api-key"]["in"] == "header"
        assert "xi-api-key" in request.header_names

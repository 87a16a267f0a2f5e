"""Messages checked against ElevenLabs' AsyncAPI contract for the agent WebSocket."""

from __future__ import annotations

from typing import Any

import pytest

from callflow_dev import schemas
from callflow_dev.sandbox.asyncapi import (
    CONTRACT,
    ContractError,
    contract,
    load_contract,
    validate_client_message,
    validate_server_message,
)

GOOD_CLIENT_MESSAGES: list[dict[str, Any]] = [
    {"user_audio_chunk": "AAD/fw=="},
    {"type": "pong", "event_id": 3},
    {
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"first_name": "Maria", "bill": 150, "vip": True},
        "conversation_config_override": {
            "agent": {"first_message": None, "language": "no", "prompt": {"prompt": "Be brief"}},
            "tts": {"voice_id": "abc", "speed": 1.1},
        },
        "user_id": None,
    },
    {"type": "contextual_update", "text": "The caller pressed 3"},
    {"type": "user_message", "text": "hello"},
    {"type": "user_activity"},
    {"type": "client_tool_result", "tool_call_id": "t1", "result": "ok", "is_error": False},
    {"type": "feedback", "event_id": 4, "score": None},
]

BAD_CLIENT_MESSAGES: list[tuple[object, str]] = [
    ({"user_audio_chunk": "not base64!"}, "base64"),
    ({"user_audio_chunk": 12}, "not of type 'string'"),
    ({"type": "pong"}, "'event_id' is a required property"),
    ({"type": "pong", "event_id": "7"}, "not of type 'integer'"),
    ({"type": "ping", "ping_event": {"event_id": 1}}, "not a client message"),
    ({"type": "nonsense"}, "not a client message"),
    ({"audio": "x"}, "no 'type'"),
    ([1, 2], "JSON object"),
    ({"type": "client_tool_result", "tool_call_id": "t1", "result": "ok"}, "is_error"),
    (
        {
            "type": "conversation_initiation_client_data",
            "conversation_config_override": {"tts": {"speed": 9}},
        },
        "tts/speed",
    ),
    (
        {
            "type": "conversation_initiation_client_data",
            "conversation_config_override": {"agent": {"language": "xx"}},
        },
        "agent/language",
    ),
    ({"type": "feedback", "event_id": 1, "score": "meh"}, "score"),
]


@pytest.mark.parametrize("message", GOOD_CLIENT_MESSAGES, ids=lambda m: m.get("type", "audio"))
def test_contract_accepts_good_client_messages(message: dict[str, Any]) -> None:
    assert validate_client_message(message) == []


@pytest.mark.parametrize(("message", "complaint"), BAD_CLIENT_MESSAGES)
def test_contract_rejects_bad_client_messages_and_says_why(message: object, complaint: str) -> None:
    errors = validate_client_message(message)
    assert errors
    assert any(complaint in error for error in errors), errors


def test_server_messages_are_checked_against_the_server_side() -> None:
    assert (
        validate_server_message({"type": "ping", "ping_event": {"event_id": 1, "ping_ms": None}})
        == []
    )
    assert (
        validate_server_message(
            {
                "type": "error",
                "error_event": {"code": 1008, "error_type": "missing_dynamic_variable"},
            }
        )
        == []
    )
    assert (
        validate_server_message(
            {"type": "audio", "audio_event": {"audio_base_64": "AAAA", "event_id": 1}}
        )
        == []
    )
    assert validate_server_message({"type": "pong", "event_id": 1})  # a client message
    assert validate_server_message({"type": "error", "error_event": {"code": 4000}})
    assert validate_server_message({"type": "interruption", "interruption_event": {}})


def test_contract_lists_the_message_types_of_each_side() -> None:
    agent_contract = contract()
    assert {"pong", "conversation_initiation_client_data", "client_tool_result"} <= (
        agent_contract.client_types()
    )
    assert {"audio", "interruption", "ping", "error", "agent_tool_response"} <= (
        agent_contract.server_types()
    )
    assert agent_contract.has_server_type("conversation_initiation_metadata")
    assert not agent_contract.has_server_type("pong")


def test_nullable_is_honoured_next_to_a_ref() -> None:
    message = {"type": "multimodal_message", "text": None, "file": None}
    assert validate_client_message(message) == []
    assert validate_client_message({"type": "multimodal_message", "text": 5})


def test_a_document_without_the_agent_channel_is_refused() -> None:
    with pytest.raises(ContractError):
        load_contract({"asyncapi": "2.6.0", "channels": {}})


def test_committed_contract_is_extracted_from_the_elevenlabs_agent_asyncapi_file() -> None:
    document = schemas.load(*CONTRACT)
    assert document["asyncapi"] == "2.6.0"
    assert document["x-callflow-extract"]["source"].startswith("github.com/elevenlabs/packages")

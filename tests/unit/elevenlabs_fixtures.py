"""Bodies shaped like ElevenLabs' own (``GetConversationResponseModel`` and the post-call
webhook), shared by the client's unit tests and checked against the spec by the contract test."""

from __future__ import annotations

import copy
from typing import Any

CONVERSATION_DONE: dict[str, Any] = {
    "agent_id": "agent_7101k0example",
    "conversation_id": "conv_0101k0example",
    "status": "done",
    "user_id": None,
    "transcript": [
        {
            "role": "agent",
            "message": "Hi Maria, this is Sam from Acme Solar. Is now a good time?",
            "tool_calls": [],
            "tool_results": [],
            "feedback": None,
            "llm_override": None,
            "time_in_call_secs": 0,
            "conversation_turn_metrics": None,
            "rag_retrieval_info": None,
            "llm_usage": None,
            "interrupted": False,
            "original_message": None,
            "source_medium": "audio",
        },
        {"role": "user", "message": "Yes, go ahead.", "time_in_call_secs": 4},
        {"role": "agent", "message": "What is your monthly bill?", "time_in_call_secs": 6},
        {"role": "user", "message": "About a hundred and fifty.", "time_in_call_secs": 9},
        {"role": "agent", "message": None, "time_in_call_secs": 12, "tool_calls": []},
    ],
    "metadata": {
        "start_time_unix_secs": 1790000000,
        "accepted_time_unix_secs": 1790000000,
        "call_duration_secs": 14,
        "cost": 112,
        "termination_reason": "end_call tool was called.",
        "error": None,
        "main_language": "en",
        "text_only": False,
        "authorization_method": "signed_url",
    },
    "analysis": {
        "evaluation_criteria_results": {
            "qualified": {
                "criteria_id": "qualified",
                "result": "success",
                "rationale": "The caller gave a bill amount and a visit date.",
            }
        },
        "data_collection_results": {
            "interested": {
                "data_collection_id": "interested",
                "value": True,
                "json_schema": {"type": "boolean", "description": "Wants a visit"},
                "rationale": "The caller said yes.",
            },
            "monthly_bill": {
                "data_collection_id": "monthly_bill",
                "value": 150,
                "json_schema": {"type": "number", "description": "Monthly bill in USD"},
                "rationale": "About a hundred and fifty.",
            },
            "visit_date": {
                "data_collection_id": "visit_date",
                "value": None,
                "json_schema": None,
                "rationale": "Not discussed.",
            },
        },
        "call_successful": "success",
        "transcript_summary": "Maria is interested; her bill is about $150 a month.",
        "call_summary_title": "Solar visit",
    },
    "conversation_initiation_client_data": {
        "conversation_config_override": {},
        "custom_llm_extra_body": {},
        "user_id": None,
        "dynamic_variables": {"first_name": "Maria", "company": "Acme", "score": 7},
    },
    "has_audio": True,
    "has_user_audio": True,
    "has_response_audio": True,
    "some_field_added_later": {"ignored": True},
}


def conversation(**changes: Any) -> dict[str, Any]:
    """A deep copy of :data:`CONVERSATION_DONE` with top-level keys replaced."""
    body = copy.deepcopy(CONVERSATION_DONE)
    body.update(changes)
    return body


def post_call(event_type: str = "post_call_transcription", **data: Any) -> dict[str, Any]:
    """A post-call webhook body wrapping the conversation (or ``data`` for other types)."""
    return {
        "type": event_type,
        "event_timestamp": 1790000020,
        "data": data or conversation(),
    }

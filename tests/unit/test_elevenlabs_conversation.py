"""The conversation model: what the workflow keeps from ElevenLabs' analysis."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from callflow.providers.elevenlabs.client import (
    TRANSCRIPT_MESSAGE_CHARS,
    AgentSummary,
    Conversation,
)
from tests.unit.elevenlabs_fixtures import conversation


def test_done_conversation_is_final_and_summarised() -> None:
    conv = Conversation.model_validate(conversation())
    assert conv.is_final
    results = conv.results()
    assert results["status"] == "done"
    assert results["summary"] == "Maria is interested; her bill is about $150 a month."
    assert results["call_successful"] == "success"
    assert results["data_collection"] == {
        "interested": True,
        "monthly_bill": 150,
        "visit_date": None,
    }
    assert results["evaluation"] == {"qualified": "success"}
    assert results["termination_reason"] == "end_call tool was called."
    assert results["duration_secs"] == 14
    assert results["conversation_id"] == "conv_0101k0example"


@pytest.mark.parametrize("status", ["initiated", "in-progress", "processing", "something-new"])
def test_unfinished_statuses_are_not_final(status: str) -> None:
    conv = Conversation.model_validate(conversation(status=status, analysis=None))
    assert not conv.is_final
    assert conv.results()["data_collection"] == {}
    assert conv.results()["call_successful"] == "unknown"


def test_failed_conversation_is_final_without_analysis() -> None:
    conv = Conversation.model_validate(conversation(status="failed", analysis=None))
    assert conv.is_final
    assert conv.results()["summary"] == ""


def test_tool_only_turns_keep_an_empty_message() -> None:
    transcript = Conversation.model_validate(conversation()).results()["transcript"]
    assert transcript[-1] == {"role": "agent", "message": "", "time_in_call_secs": 12}


def test_transcript_in_results_is_bounded_to_the_last_turns() -> None:
    turns = [
        {"role": "user" if i % 2 else "agent", "message": "x" * 2000, "time_in_call_secs": i}
        for i in range(100)
    ]
    results = Conversation.model_validate(conversation(transcript=turns)).results(
        transcript_turns=10
    )
    assert [t["time_in_call_secs"] for t in results["transcript"]] == list(range(90, 100))
    assert all(len(t["message"]) == TRANSCRIPT_MESSAGE_CHARS for t in results["transcript"])
    assert results["transcript_truncated"] is True


def test_unknown_fields_are_ignored() -> None:
    conv = Conversation.model_validate(conversation(brand_new={"x": 1}))
    assert not hasattr(conv, "brand_new")


def test_missing_status_is_a_validation_error() -> None:
    body = conversation()
    del body["status"]
    with pytest.raises(ValidationError, match="status"):
        Conversation.model_validate(body)


def test_a_polled_conversation_with_new_enum_values_is_read_not_refused() -> None:
    """The SDK types role, call_successful and result as known literals or any string."""
    body = conversation()
    body["transcript"][0]["role"] = "tool"
    body["analysis"]["call_successful"] = "maybe"
    body["analysis"]["evaluation_criteria_results"]["qualified"]["result"] = "not_applicable"
    conv = Conversation.model_validate(body)
    assert conv.transcript[0].role == "tool"
    assert conv.analysis is not None and conv.analysis.call_successful == "maybe"
    assert conv.results()["evaluation"] == {"qualified": "not_applicable"}


def test_a_role_that_is_not_a_string_is_still_refused() -> None:
    body = conversation()
    body["transcript"][0]["role"] = 7
    with pytest.raises(ValidationError, match="role"):
        Conversation.model_validate(body)


def test_agent_summary_reads_formats_events_collection_and_overrides() -> None:
    agent = {
        "agent_id": "agent_1",
        "name": "Sam",
        "conversation_config": {
            "asr": {"user_input_audio_format": "ulaw_8000"},
            "tts": {"agent_output_audio_format": "pcm_24000"},
            "conversation": {"client_events": ["audio", "interruption", "ping"]},
        },
        "metadata": {"created_at_unix_secs": 1},
        "platform_settings": {
            "data_collection": {"interested": {"type": "boolean"}},
            "overrides": {
                "conversation_config_override": {
                    "agent": {"first_message": True, "prompt": {"prompt": False}},
                    "tts": {"voice_id": False},
                }
            },
        },
    }
    summary = AgentSummary.from_agent(agent)
    assert (summary.input_format, summary.output_format) == ("ulaw_8000", "pcm_24000")
    assert summary.client_events == ("audio", "interruption", "ping")
    assert summary.data_collection == ("interested",)
    assert summary.overrides == {
        "agent.first_message": True,
        "agent.prompt.prompt": False,
        "tts.voice_id": False,
    }


def test_agent_summary_defaults_follow_the_spec_when_parts_are_absent() -> None:
    summary = AgentSummary.from_agent({"agent_id": "a", "conversation_config": {}})
    assert (summary.input_format, summary.output_format) == ("pcm_16000", "pcm_16000")
    assert summary.client_events == ()
    assert summary.overrides == {}

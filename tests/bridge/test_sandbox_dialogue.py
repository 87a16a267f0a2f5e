"""A whole conversation through the bridge with the project's full stand-ins: the simulated callee
(``callflow_dev.sandbox.media_leg``) speaking recorded clips at real time, and the scripted agent
(``callflow_dev.sandbox.agent``) taking turns from the energy of the audio it actually receives."""

from __future__ import annotations

from callflow_dev.sandbox.agent import AgentConfig, AgentLine, DialogueStep, serve_agent
from callflow_dev.sandbox.media_leg import CalleeScript, CalleeTurn, run_media_leg
from tests.e2e.audio_match import without_silence_frames

from .conftest import MakeSession, StartBridge

CLIP_MS = 600


def _agent_config(**overrides: object) -> AgentConfig:
    settings: dict[str, object] = {
        "required_variables": ("First_Name",),
        "greeting": AgentLine("Hi {{First_Name}}, do you have a minute?", "agent_greeting"),
        "steps": (
            DialogueStep(
                caller_text="Yes, sure.",
                reply=AgentLine("Thanks {{First_Name}}, goodbye!", "agent_closing"),
                collects={"interested": True},
                ends_call=True,
            ),
        ),
        "clip_max_ms": CLIP_MS,
        "end_of_turn_silence_ms": 400,
        "response_delay_ms": 100,
        "ping_interval_s": 0.5,
        **overrides,
    }
    return AgentConfig(**settings)  # type: ignore[arg-type]


CALLEE = CalleeScript(
    turns=(CalleeTurn(clip="person_confirm", max_ms=CLIP_MS),),
    end_of_agent_turn_ms=400,
    hangup_after_s=4.0,
    max_duration_s=10.0,
)


async def test_scripted_dialogue_runs_end_to_end_and_the_goodbye_is_heard_in_full(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with serve_agent("127.0.0.1", 0, _agent_config()) as agent:
        bridge = await start_bridge(agent.url + "?agent_id=agent_sandbox")
        result = await run_media_leg(bridge.url, session.custom, 16000, CALLEE)
        await bridge.settled()

    (record,) = agent.records
    assert record.violations == []
    assert record.pings_sent >= 2 and len(record.pong_delays_ms) == record.pings_sent
    assert [turn.outcome for turn in record.caller_turns] == ["answered"]
    assert record.close_code == 1000 and record.closed_by == "agent"
    # Same formats on both legs: every byte the agent said reaches the caller, in order, and
    # the closing line is played out before the bridge hangs up. (Silence frames are left out
    # of the comparison: on a loaded machine an agent chunk can arrive late, and the bridge
    # then fills the gap with silence rather than let Infobip's stream run dry.)
    greeting, closing = (turn.audio for turn in record.sent_turns)
    played = without_silence_frames(result.played)
    assert greeting in played and closing in played
    assert played.index(closing) > played.index(greeting)
    assert result.hung_up_by == "bridge" and result.close_code == 1000
    assert result.protocol_errors == []
    assert [call_id for _, call_id in bridge.hangups] == ["infobip-call-1"]
    stored = bridge.session(session.session_id)
    assert stored.conversation_id == record.conversation_id
    assert stored.bridge["end_reason"] == "agent_ended"
    assert [t["role"] for t in stored.transcript] == ["agent", "user", "agent"]
    assert stored.transcript[0]["text"] == "Hi Ada, do you have a minute?"
    latency = stored.bridge["metrics"]["turn_latency_ms"]
    assert len(latency) == 1 and 400 <= latency[0] <= 1500


async def test_scripted_dialogue_through_an_8khz_phone_leg_and_ulaw_agent(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    config = _agent_config(
        user_input_audio_format="ulaw_8000", agent_output_audio_format="ulaw_8000"
    )
    async with serve_agent("127.0.0.1", 0, config) as agent:
        bridge = await start_bridge(agent.url)
        result = await run_media_leg(bridge.url, session.custom, 8000, CALLEE)
        await bridge.settled()

    (record,) = agent.records
    assert record.violations == []
    # The agent heard the caller's turn through μ-law and answered it.
    assert [turn.outcome for turn in record.caller_turns] == ["answered"]
    assert record.close_code == 1000
    assert result.received_frames > 0 and result.hung_up_by == "bridge"
    stored = bridge.session(session.session_id).bridge
    assert stored["formats"]["agent_input"] == "ulaw_8000"
    assert stored["end_reason"] == "agent_ended"


async def test_scripted_agent_refusing_at_initiation_ends_the_call(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with serve_agent("127.0.0.1", 0, _agent_config(refuse_with=1008)) as agent:
        bridge = await start_bridge(agent.url)
        result = await run_media_leg(bridge.url, session.custom, 16000, CALLEE)
        await bridge.settled()

    assert result.hung_up_by == "bridge"
    stored = bridge.session(session.session_id).bridge
    assert stored["end_reason"] == "agent_error"
    assert "1008" in stored["end_detail"]
    assert len(bridge.hangups) == 1
    assert agent.records[0].close_code == 1008

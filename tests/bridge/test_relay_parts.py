"""The relay's parts, each on its own: early audio, transcript, turn timing, the call's end."""

from __future__ import annotations

import asyncio

import numpy as np

from callflow_bridge.call_end import CallEnd, EndReason
from callflow_bridge.early_audio import EarlyAudio
from callflow_bridge.transcript import Transcript
from callflow_bridge.turns import TurnTimer

LOUD = (np.ones(320, dtype="<i2") * 8000).tobytes()
QUIET = bytes(640)


def test_early_audio_keeps_the_newest_frames_within_its_limit() -> None:
    early = EarlyAudio(limit_bytes=1000)
    for index in range(4):
        early.keep(bytes([index]) * 400)
    assert early.dropped == 2
    assert [frame[0] for frame in early.frames()] == [2, 3]
    assert list(early.frames()) == []  # handed out once


def test_early_keypresses_are_bounded_and_handed_out_once() -> None:
    early = EarlyAudio(limit_bytes=10, text_limit=2)
    for digit in "123":
        early.keep_text(digit)
    assert early.texts() == ["1", "2"]
    assert early.texts() == []


def test_transcript_applies_the_agents_correction_to_its_turn() -> None:
    transcript = Transcript(limit=10)
    transcript.remember("agent", "Your bill is one hundred and")
    transcript.remember("user", "Wait")
    transcript.correct("Your bill is one hundred and", "Your bill is")
    entries = transcript.entries()
    assert [e["text"] for e in entries] == ["Your bill is", "Wait"]
    assert entries[0]["corrected"] is True


def test_transcript_keeps_only_the_last_turns_and_skips_empty_ones() -> None:
    transcript = Transcript(limit=2)
    for text in ("a", "", "b", "c"):
        transcript.remember("user", text)
    assert [e["text"] for e in transcript.entries()] == ["b", "c"]


def test_a_turn_latency_runs_from_the_last_loud_caller_frame_to_the_agents_first_frame() -> None:
    turns = TurnTimer()
    turns.caller_frame(LOUD, 1.00)
    turns.caller_frame(QUIET, 1.50)
    assert turns.agent_frame_sent(False, 1.60) is None  # silence: no answer yet
    latency = turns.agent_frame_sent(True, 1.80)
    assert latency is not None and abs(latency - 800) < 1e-6
    assert turns.agent_frame_sent(True, 1.82) is None  # the same turn goes on


def test_agent_audio_without_caller_speech_before_it_is_no_turn() -> None:
    turns = TurnTimer()
    assert turns.agent_frame_sent(True, 1.0) is None  # the greeting


def test_after_an_interruption_the_agents_next_audio_is_a_new_turn() -> None:
    turns = TurnTimer()
    turns.caller_frame(LOUD, 1.0)
    assert turns.agent_frame_sent(True, 1.5) is not None
    turns.caller_frame(LOUD, 2.0)
    turns.agent_interrupted()
    latency = turns.agent_frame_sent(True, 2.3)
    assert latency is not None and abs(latency - 300) < 1e-6


async def test_the_first_end_wins_and_a_later_one_changes_nothing() -> None:
    end = CallEnd()
    end.finish(EndReason.CALLER_HUNG_UP, "socket closed")
    end.finish(EndReason.AGENT_ERROR, "late")
    assert end.finished.is_set()
    assert (end.reason, end.detail) == (EndReason.CALLER_HUNG_UP, "socket closed")
    assert not end.hangs_up  # the caller is gone already


async def test_a_timed_end_fires_unless_cancelled() -> None:
    end = CallEnd()
    end.finish_after(0.01, EndReason.AGENT_ENDED, "drained")
    end.cancel_timer()
    await asyncio.sleep(0.03)
    assert end.reason is None
    end.finish_after(0.01, EndReason.AGENT_ENDED, "drained")
    await asyncio.wait_for(end.finished.wait(), 1)
    assert end.reason is EndReason.AGENT_ENDED and end.hangs_up


def test_a_relay_that_stopped_without_a_reason_is_a_bridge_error() -> None:
    assert CallEnd().final_reason is EndReason.BRIDGE_ERROR

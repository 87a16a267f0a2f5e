"""The relay's parts, each on its own: early audio, transcript, turn timing, the call's end."""

from __future__ import annotations

import asyncio
from typing import cast

import numpy as np

from callflow_bridge.call_end import CallEnd, EndReason
from callflow_bridge.early_audio import EarlyAudio
from callflow_bridge.metrics import CallMetrics
from callflow_bridge.phone_leg import PhoneLeg
from callflow_bridge.sockets import MessageSocket
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


class _SentFrames:
    """The media socket as the phone leg writes to it: what was sent, in order."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send_now(self, message: bytes) -> None:
        self.sent.append(message)

    async def send(self, message: str | bytes) -> None:
        self.sent.append(message if isinstance(message, bytes) else message.encode())


def _phone_leg() -> tuple[PhoneLeg, _SentFrames]:
    socket = _SentFrames()
    return PhoneLeg(cast(MessageSocket, socket), 16000, CallMetrics(), TurnTimer()), socket


def test_the_agents_first_frame_goes_out_at_once_and_the_next_on_the_callers_frames() -> None:
    phone, socket = _phone_leg()
    frame = phone.frame_bytes
    phone.queue(b"\x01" * frame * 3, now=0.005)
    assert socket.sent == [b"\x01" * frame]  # not waiting for the caller's next frame
    phone.queue(b"\x02" * frame, now=0.006)
    assert len(socket.sent) == 1  # the clock has started: later audio waits for it
    phone.release(frame, now=0.02)
    phone.release(frame, now=0.04)
    phone.release(frame, now=0.06)
    assert socket.sent[1:] == [b"\x01" * frame, b"\x01" * frame, b"\x02" * frame]
    phone.release(frame, now=0.5)
    assert socket.sent[-1] == phone.pacer.silence


def test_a_first_chunk_shorter_than_a_frame_waits_for_the_callers_frame() -> None:
    phone, socket = _phone_leg()
    phone.queue(b"\x01" * (phone.frame_bytes // 2), now=0.0)
    assert socket.sent == []
    phone.release(phone.frame_bytes, now=0.2)
    assert socket.sent == [b"\x01" * (phone.frame_bytes // 2) + bytes(phone.frame_bytes // 2)]


async def test_after_a_barge_in_the_agents_audio_waits_for_the_callers_frames() -> None:
    phone, socket = _phone_leg()
    frame = phone.frame_bytes
    phone.queue(b"\x01" * frame * 5, now=0.0)
    await phone.clear()
    sent = len(socket.sent)
    phone.queue(b"\x02" * frame, now=0.01)
    assert len(socket.sent) == sent  # Infobip is playing (silence): no frame ahead of the clock
    phone.release(frame, now=0.02)
    assert socket.sent[-1] == b"\x02" * frame

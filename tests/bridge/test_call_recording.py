"""Recording both sides of a call: the spools, the stereo WAV, and whole recorded calls through
the bridge on loopback sockets (the recording kept, a store that fails, a call not recorded)."""

from __future__ import annotations

import asyncio
import io
import wave
from typing import IO

import numpy as np
import pytest
from moto import mock_aws

from callflow.recording.storage import StorageUnavailable, put_recording, s3_client
from callflow_bridge.recording import CallRecording, store

from .conftest import MakeSession, StartBridge
from .peers import AgentCall, AgentPeer, PhoneLeg, tone


def channels(wav_bytes: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    with wave.open(io.BytesIO(wav_bytes), "rb") as wav:
        assert wav.getnchannels() == 2 and wav.getsampwidth() == 2
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    return samples[:, 0], samples[:, 1], rate


def pcm(values: list[int]) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def test_the_wav_has_the_caller_left_and_the_agent_right_padded_to_one_length() -> None:
    recording = CallRecording(16000, 60)
    recording.caller(pcm([1, 2, 3, 4]))
    recording.agent(pcm([-1, -2]))
    out = io.BytesIO()
    size = recording.write_wav(out)
    left, right, rate = channels(out.getvalue())
    assert rate == 16000 and size == len(out.getvalue())
    assert left.tolist() == [1, 2, 3, 4]
    assert right.tolist() == [-1, -2, 0, 0]
    recording.close()


def test_the_recording_stops_at_its_maximum_duration() -> None:
    recording = CallRecording(8000, 1)  # 16000 bytes per channel
    frame = bytes(320)
    for _ in range(60):
        recording.caller(frame)
        recording.agent(frame)
    assert recording.caller_bytes == recording.agent_bytes == 16000
    assert recording.truncated and recording.seconds == 1.0
    recording.close()


async def test_a_store_that_fails_is_reported_not_raised() -> None:
    recording = CallRecording(16000, 60)
    recording.caller(pcm([5] * 320))

    async def unreachable(session_id: str, body: IO[bytes]) -> str:
        raise StorageUnavailable("S3 unreachable: EndpointConnectionError")

    result = await store(recording, unreachable, "s1")
    assert result["status"] == "failed" and "EndpointConnectionError" in result["error"]


async def test_nothing_recorded_stores_nothing() -> None:
    kept: list[str] = []

    async def keep(session_id: str, body: IO[bytes]) -> str:
        kept.append(session_id)
        return session_id

    assert await store(CallRecording(16000, 60), keep, "s1") == {"status": "empty"}
    assert kept == []


def test_put_recording_encrypts_under_the_session_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        s3 = s3_client("us-east-1", 2)
        s3.create_bucket(Bucket="rec")
        put_recording(s3, "rec", "recordings/s1.wav", io.BytesIO(b"RIFF"))
        head = s3.head_object(Bucket="rec", Key="recordings/s1.wav")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "audio/wav"


def test_an_unreachable_s3_gives_up_after_its_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.config import Config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=1),
    )
    with pytest.raises(StorageUnavailable, match="S3 unreachable"):
        put_recording(s3, "rec", "recordings/s1.wav", io.BytesIO(b"RIFF"))


class Kept:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def __call__(self, session_id: str, body: IO[bytes]) -> str:
        self.files[session_id] = body.read()
        return f"recordings/{session_id}.wav"


async def greet_and_end(call: AgentCall, greeting: bytes, heard: int) -> None:
    await call.send_audio(greeting, event_id=1)
    await call.wait_for(lambda: len(call.audio) >= heard)
    await asyncio.sleep(0.05)
    await call.ws.close(1000, "conversation ended")


async def test_a_recorded_call_keeps_both_sides_in_step(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    caller_audio = tone(16000, 400, 1200)
    greeting = tone(16000, 200, 2500)
    kept = Kept()
    session = make_session(record_audio=True, recording_max_seconds=60)
    async with AgentPeer(lambda call: greet_and_end(call, greeting, len(caller_audio))) as peer:
        bridge = await start_bridge(peer.url, store_recording=kept)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.play(caller_audio)
        await leg.silence(600, until_closed=True)
        await leg.closed()
        await bridge.settled()

    left, right, rate = channels(kept.files[session.session_id])
    assert rate == 16000
    caller = np.frombuffer(caller_audio, dtype="<i2")
    assert left[: len(caller)].tolist() == caller.tolist()
    played = np.frombuffer(b"".join(leg.audio_frames()), dtype="<i2")
    # The agent's channel is silence until the agent first spoke (no frame was sent then),
    # then what the caller was sent, frame for frame.
    start = int(np.flatnonzero(right)[0])
    assert start % 320 == 0 and not right[:start].any()
    assert right[start : start + len(played)].tolist() == played.tolist()
    stored = bridge.session(session.session_id)
    assert stored.recording["status"] == "stored"
    assert stored.recording["key"] == f"recordings/{session.session_id}.wav"
    assert stored.recording["seconds"] == pytest.approx(len(left) / 16000, abs=0.01)
    assert stored.bridge["end_reason"]  # the end is recorded before the recording


async def test_a_failed_store_leaves_the_call_recorded_without_the_file(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async def unreachable(session_id: str, body: IO[bytes]) -> str:
        raise StorageUnavailable("S3 unreachable: ConnectTimeoutError")

    greeting = tone(16000, 200, 2500)
    session = make_session(record_audio=True, recording_max_seconds=60)
    async with AgentPeer(lambda call: greet_and_end(call, greeting, 3200)) as peer:
        bridge = await start_bridge(peer.url, store_recording=unreachable)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(600, until_closed=True)
        await leg.closed()
        await bridge.settled()
    stored = bridge.session(session.session_id)
    assert stored.recording["status"] == "failed"
    assert "ConnectTimeoutError" in stored.recording["error"]
    assert stored.bridge["end_reason"] == "agent_ended"


async def test_a_session_not_asking_for_a_recording_is_not_recorded(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    kept = Kept()
    greeting = tone(16000, 200, 2500)
    session = make_session()
    async with AgentPeer(lambda call: greet_and_end(call, greeting, 3200)) as peer:
        bridge = await start_bridge(peer.url, store_recording=kept)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(600, until_closed=True)
        await leg.closed()
        await bridge.settled()
    assert kept.files == {}
    assert bridge.session(session.session_id).recording == {}

"""The simulated callee against a small bridge-like WebSocket server on loopback."""

from __future__ import annotations

import asyncio
import json
import math
import wave
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from callflow_bridge.audio import UnsupportedFormat, rms_dbfs
from callflow_dev.sandbox.clips import ClipError, load_clip
from callflow_dev.sandbox.media_leg import (
    CalleeScript,
    CalleeScriptError,
    CalleeTurn,
    MediaLegResult,
    run_media_leg,
    stereo_wav,
)

FRAME_S = 0.02


def tone(rate: int, ms: int, amplitude: int = 8000) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (amplitude * np.sin(2 * math.pi * 440 * t)).astype("<i2").tobytes()


def frames(pcm: bytes, rate: int) -> list[bytes]:
    size = rate * 20 // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


@dataclass
class Seen:
    first: dict[str, object] | None = None
    binary: list[tuple[float, bytes]] = field(default_factory=list)
    text: list[dict[str, object]] = field(default_factory=list)


async def poll(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


Handler = Callable[[ServerConnection, Seen], Coroutine[Any, Any, None]]


@asynccontextmanager
async def bridge(handler: Handler | None = None) -> AsyncIterator[tuple[str, Seen]]:
    """A server that records what the callee sends, then runs ``handler`` alongside."""
    seen = Seen()

    async def record(ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        seen.first = json.loads(await ws.recv())
        task = asyncio.create_task(handler(ws, seen)) if handler else None
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    seen.binary.append((loop.time(), message))
                else:
                    seen.text.append(json.loads(message))
        except ConnectionClosed:
            pass
        if task is not None:
            await task

    async with serve(record, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/media", seen


def quiet_script(**overrides: object) -> CalleeScript:
    """A person who says nothing: the leg just streams silence."""
    defaults: dict[str, object] = {"turns": (), "hangup_after_s": 30.0, "max_duration_s": 5.0}
    defaults.update(overrides)
    return CalleeScript(**defaults)  # type: ignore[arg-type]


async def run_for(
    url: str, seconds: float, script: CalleeScript, rate: int = 16000
) -> MediaLegResult:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await run_media_leg(url, {"session_id": "s-1", "token": "t"}, rate, script, stop=stop)


async def test_first_frame_announces_rate_and_flattens_custom_data() -> None:
    async with bridge() as (url, seen):
        await run_for(url, 0.1, quiet_script(), rate=8000)
    assert seen.first == {
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=8000",
        "session_id": "s-1",
        "token": "t",
    }


@pytest.mark.parametrize(("rate", "size"), [(8000, 320), (16000, 640), (24000, 960), (32000, 1280)])
async def test_every_frame_is_20_ms_of_16_bit_pcm_at_the_rate(rate: int, size: int) -> None:
    async with bridge() as (url, seen):
        result = await run_for(url, 0.15, quiet_script(), rate=rate)
    assert len(seen.binary) >= 5
    assert {len(frame) for _, frame in seen.binary} == {size}
    assert len(result.sent) == len(seen.binary) * size


async def test_frames_are_paced_at_real_time() -> None:
    async with bridge() as (url, seen):
        await run_for(url, 1.05, quiet_script())
    times = [at for at, _ in seen.binary]
    assert len(times) >= 50
    span = times[49] - times[0]
    assert span == pytest.approx(49 * FRAME_S, abs=0.1)


async def test_agent_audio_is_played_one_frame_per_tick() -> None:
    async def speak(ws: ServerConnection, seen: Seen) -> None:
        await ws.send(tone(16000, 300))  # all at once: the callee must play it at real time

    async with bridge(speak) as (url, _):
        result = await run_for(url, 0.6, quiet_script())
    played = frames(result.played, 16000)
    loud = [i for i, frame in enumerate(played) if rms_dbfs(frame) > -30]
    assert len(loud) == 15
    assert loud == list(range(loud[0], loud[0] + 15))
    assert len(result.played) == len(result.sent)


async def test_clear_empties_the_playback_buffer() -> None:
    async def speak_then_clear(ws: ServerConnection, seen: Seen) -> None:
        await ws.send(tone(16000, 2000))
        await asyncio.sleep(0.2)
        await ws.send(json.dumps({"action": "clear"}))

    async with bridge(speak_then_clear) as (url, _):
        result = await run_for(url, 0.7, quiet_script())
    played = frames(result.played, 16000)
    loud = sum(1 for frame in played if rms_dbfs(frame) > -30)
    assert result.clears == 1
    assert 5 <= loud <= 15
    assert all(rms_dbfs(frame) < -60 for frame in played[-10:])
    assert result.protocol_errors == []


async def test_unknown_text_frame_is_a_protocol_error() -> None:
    async def misbehave(ws: ServerConnection, seen: Seen) -> None:
        await ws.send(json.dumps({"action": "play", "file": "x.wav"}))
        await ws.send("not json")

    async with bridge(misbehave) as (url, _):
        result = await run_for(url, 0.2, quiet_script())
    assert len(result.protocol_errors) == 2
    assert "unexpected text frame" in result.protocol_errors[0]


async def test_turn_starts_after_the_agent_has_finished_talking() -> None:
    speech_heard_at: list[float] = []

    async def agent(ws: ServerConnection, seen: Seen) -> None:
        await ws.send(tone(16000, 400))
        while not speech_heard_at:
            await asyncio.sleep(0.02)
            if any(rms_dbfs(frame) > -40 for _, frame in seen.binary[-3:]):
                speech_heard_at.append(asyncio.get_running_loop().time())

    script = quiet_script(
        turns=(CalleeTurn(clip="person_hello", max_ms=300),), end_of_agent_turn_ms=300
    )
    async with bridge(agent) as (url, _):
        result = await run_for(url, 1.4, script)
    (turn,) = result.turns
    # agent audio is heard from the first tick for 400 ms, then 300 ms of quiet ends its turn
    assert turn.started_s == pytest.approx(0.4 + 0.3, abs=0.08)
    assert not turn.over_agent
    assert turn.ended_s == pytest.approx(turn.started_s + 0.3, abs=0.05)
    assert speech_heard_at
    sent = frames(result.sent, 16000)
    first_loud = next(i for i, frame in enumerate(sent) if rms_dbfs(frame) > -40)
    assert first_loud * FRAME_S == pytest.approx(turn.started_s, abs=0.05)


async def test_barge_in_turn_talks_over_the_agent() -> None:
    async def long_agent(ws: ServerConnection, seen: Seen) -> None:
        await ws.send(tone(16000, 1500))

    script = quiet_script(
        turns=(CalleeTurn(clip="person_interrupt", max_ms=200, barge_in_after_ms=300),)
    )
    async with bridge(long_agent) as (url, _):
        result = await run_for(url, 0.8, script)
    (turn,) = result.turns
    assert turn.over_agent
    assert turn.started_s == pytest.approx(0.3, abs=0.05)


async def test_latency_is_measured_from_turn_end_to_agent_audio() -> None:
    async def answer_late(ws: ServerConnection, seen: Seen) -> None:
        await poll(lambda: any(rms_dbfs(frame) > -40 for _, frame in seen.binary))
        await poll(lambda: all(rms_dbfs(frame) < -40 for _, frame in seen.binary[-2:]))
        await asyncio.sleep(0.25)
        await ws.send(tone(16000, 200))

    script = quiet_script(turns=(CalleeTurn(clip="person_hello", immediately=True, max_ms=300),))
    async with bridge(answer_late) as (url, _):
        result = await run_for(url, 1.2, script)
    (turn,) = result.turns
    assert turn.started_s == 0.0
    assert turn.latency_s is not None
    assert 0.2 <= turn.latency_s <= 0.45


async def test_dtmf_turn_sends_the_infobip_dtmf_frame() -> None:
    script = quiet_script(turns=(CalleeTurn(dtmf="3", immediately=True),))
    async with bridge() as (url, seen):
        result = await run_for(url, 0.2, script)
    assert seen.text == [{"event": "websocket:dtmf", "digit": "3", "duration": 250}]
    assert result.turns[0].label == "dtmf:3"


async def test_bridge_closing_the_socket_ends_the_leg() -> None:
    async def hang_up(ws: ServerConnection, seen: Seen) -> None:
        await asyncio.sleep(0.2)
        await ws.close(1000, "call ended")

    async with bridge(hang_up) as (url, _):
        result = await run_media_leg(url, {}, 16000, quiet_script())
    assert result.hung_up_by == "bridge"
    assert result.close_code == 1000
    assert result.close_reason == "call ended"
    assert 0.15 <= result.duration_s <= 0.4


async def test_callee_hangs_up_after_silence_once_the_script_is_done() -> None:
    script = quiet_script(
        turns=(CalleeTurn(clip="person_hello", immediately=True, max_ms=200),), hangup_after_s=0.3
    )
    async with bridge() as (url, _):
        result = await run_media_leg(url, {}, 16000, script)
    assert result.hung_up_by == "callee"
    assert result.close_code == 1000
    assert result.duration_s == pytest.approx(0.5, abs=0.06)


async def test_max_duration_ends_the_call() -> None:
    async with bridge() as (url, _):
        result = await run_media_leg(url, {}, 16000, quiet_script(max_duration_s=0.3))
    assert result.hung_up_by == "max_duration"
    assert result.duration_s == pytest.approx(0.3, abs=0.001)


async def test_stereo_wav_puts_the_caller_left_and_the_agent_right(tmp_path: Path) -> None:
    result = MediaLegResult(sample_rate=8000, sent=tone(8000, 100), played=bytes(800))
    path = stereo_wav(result, tmp_path / "call.wav")
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, 8000)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert len(samples) == 800
    assert np.array_equal(samples[:, 0].tobytes(), result.sent)
    assert not samples[:, 1].any()


async def test_unsupported_rate_is_refused_before_connecting() -> None:
    with pytest.raises(UnsupportedFormat):
        await run_media_leg("ws://127.0.0.1:9/", {}, 44100, quiet_script())


async def test_custom_data_cannot_overwrite_the_event_name() -> None:
    with pytest.raises(ValueError, match="event"):
        await run_media_leg("ws://127.0.0.1:9/", {"event": "x"}, 16000, quiet_script())


def test_turn_needs_a_clip_or_a_digit() -> None:
    with pytest.raises(CalleeScriptError):
        CalleeTurn()
    with pytest.raises(CalleeScriptError):
        CalleeTurn(dtmf="x")


def test_default_script_says_hello_first_then_answers_three_agent_turns() -> None:
    turns = CalleeScript.default().turns
    assert [t.clip for t in turns] == [
        "person_hello",
        "person_confirm",
        "person_bill",
        "person_visit",
    ]
    assert turns[0].immediately
    interrupting = CalleeScript.interrupting().turns
    assert interrupting[3].clip == "person_interrupt"
    assert interrupting[3].barge_in_after_ms is not None


async def test_clip_is_resampled_to_the_leg_rate() -> None:
    script = quiet_script(turns=(CalleeTurn(clip="person_hello", immediately=True, max_ms=300),))
    async with bridge() as (url, _):
        result = await run_for(url, 0.5, script, rate=8000)
    sent = frames(result.sent, 8000)
    voiced = [i for i, frame in enumerate(sent) if rms_dbfs(frame) > -60]
    assert voiced[0] == 0
    assert 12 <= len(voiced) <= 15  # 300 ms of speech, a quiet onset aside


async def test_unknown_clip_is_refused_before_connecting() -> None:
    script = quiet_script(turns=(CalleeTurn(clip="person_sings"),))
    with pytest.raises(ClipError, match="unknown clip"):
        await run_media_leg("ws://127.0.0.1:9/", {}, 16000, script)


def test_clip_names_cannot_leave_the_clips_folder() -> None:
    with pytest.raises(ClipError, match="invalid clip name"):
        load_clip("../clips/person_hello")


async def test_a_turn_ending_while_the_agent_talks_has_no_answer_latency() -> None:
    async def greet_long(ws: ServerConnection, seen: Seen) -> None:
        await ws.send(tone(16000, 900))

    script = quiet_script(turns=(CalleeTurn(clip="person_hello", immediately=True, max_ms=300),))
    async with bridge(greet_long) as (url, _):
        result = await run_for(url, 1.4, script)
    (turn,) = result.turns
    assert turn.talked_over
    assert turn.latency_s is None


@pytest.mark.parametrize(
    ("placement", "path", "header", "frame_extra"),
    [
        ("top-level", "/media", None, {"session_id": "s-1", "bridge_token": "t"}),
        ("customData", "/media", None, {"customData": {"session_id": "s-1", "bridge_token": "t"}}),
        ("identifier", "/media", None, {"identifier": "s-1.t"}),
        ("query", "/media?session_id=s-1&bridge_token=t", None, {}),
        ("headers", "/media", ("session_id", "s-1"), {}),
        ("nowhere", "/media", None, {}),
    ],
)
async def test_the_callee_shows_the_identifiers_where_the_placement_says(
    placement: str, path: str, header: tuple[str, str] | None, frame_extra: dict[str, object]
) -> None:
    seen: dict[str, Any] = {}

    async def record(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen["path"] = ws.request.path
        seen["headers"] = {k.lower(): v for k, v in ws.request.headers.raw_items()}
        seen["first"] = json.loads(await ws.recv())
        await ws.close(1000, "seen")

    async with serve(record, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        await run_media_leg(
            f"ws://127.0.0.1:{port}/media",
            {"session_id": "s-1", "bridge_token": "t"},
            16000,
            quiet_script(),
            placement=placement,
            identifier="s-1.t",
        )

    assert seen["path"] == path
    assert seen["first"] == {
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=16000",
        **frame_extra,
    }
    if header is not None:
        assert seen["headers"][header[0]] == header[1]
    else:
        assert "session_id" not in seen["headers"] and "bridge_token" not in seen["headers"]


async def test_an_unknown_placement_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="placement"):
        await run_media_leg("ws://127.0.0.1:9/", {}, 16000, quiet_script(), placement="body")

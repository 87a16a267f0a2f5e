"""First words after answer: our share of the path from CALL_ESTABLISHED to the agent's first audio.

When the person answers, Infobip posts CALL_ESTABLISHED; the API creates the dialog to the
bridge; Infobip opens the media WebSocket; the bridge admits it (one conditional write), opens the
agent conversation (a signed URL, the handshake, the initiation); the agent answers with its
formats and its greeting; the bridge sends the first 20 ms of it to Infobip on the caller's next
frame. Everything between the API receiving the event and Infobip receiving that frame is the
silence the person hears. This benchmark runs that path call after call, with the real parts:

- the API (``callflow_functions.api.handler``, Mangum as on Lambda) in a process of its own,
  warm, given each event as Lambda would give it;
- the bridge (``callflow_bridge.server.BridgeServer`` with ``BridgeDeps.from_settings``, the
  production wiring) in a process of its own;
- DynamoDB as a moto server in a process of its own (``bench/_moto.py``);
- Infobip (``GET``/``POST /calls/1/dialogs``, then the media WebSocket as the callee's side) and
  ElevenLabs (the signed-URL endpoint and the agent socket) as stand-ins in this process, each
  answering after a known latency (:data:`LATENCY_MS`).

The providers' own time is measured, not assumed: every provider HTTP request the API or the
bridge makes is timed from its client's ``send`` (``httpx``), the Infobip stand-in's time runs
from a dialog request's arrival to its media socket's first connect attempt, and the agent's
from the initiation received to the first audio sent. So is the wait for DynamoDB (botocore's
``URLLib3Session.send``), as ``bench/api_webhooks.py`` does: moto is slower than DynamoDB, and a
loaded machine slows its process further. ``own`` is the whole path less the union of all those
intervals: the event handling, the bridge's admission, the socket handshakes and the relay of the
first frame, including its wait for the caller's next frame (the bridge's output is paced by
Infobip's 20 ms frames, ``first_frame_ms``). ``with_aws`` adds the DynamoDB waits back.

Two modes, alternating, over several rounds: ``prefetched`` (the session carries the signed URL
the place-call task fetched, :mod:`callflow.lifecycle.agent_url`) and ``fetched`` (none: the
bridge asks ElevenLabs once the call is answered, as before). Target (issue 13): our share
``first_words_own_ms_p95`` <= 30 ms in the prefetched mode.

Run with ``python -m bench call_first_words``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._lambda import INFOBIP_PATH, SECRETS, http_event, infobip_basic_auth
from bench._stats import percentile

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("BENCH_FIRST_WORDS_ROUNDS", "3"))
CALLS = int(os.environ.get("BENCH_FIRST_WORDS_CALLS", "20"))
"""Measured calls per mode and round (after :data:`WARMUP` unmeasured ones)."""
WARMUP = 3
TARGET_MS = 30
LATENCY_MS = {
    "infobip_list_dialogs": 40,
    "infobip_create_dialog": 60,
    "infobip_media_connect": 80,
    "elevenlabs_signed_url": 120,
    "agent_metadata": 50,
    "agent_first_audio": 150,
}
"""What each stand-in waits before it answers (the providers' own time, set to known values)."""

INFOBIP_KEY = "bench-infobip"
ELEVENLABS_KEY = "bench-elevenlabs"
AGENT_ID = "agent_bench"
MEDIA_CONFIG_ID = "bench-media-config"
BRIDGE_SECRET = "bench-bridge"
FRAME = 640
"""20 ms of 16 kHz 16-bit PCM."""
GREETING = base64.b64encode(b"\x00\x10" * 1600).decode()
"""100 ms of a loud (non-silent) tone, as the agent's first audio chunk."""

API_WORKER = r"""
import json, os, sys, time

# Results go to the original stdout; anything else printed (Powertools' log lines) to stderr.
results = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
import httpx

spans = []
send = httpx.Client.send

def timed(client, request, **kwargs):
    start = time.monotonic()
    try:
        return send(client, request, **kwargs)
    finally:
        spans.append([start, time.monotonic()])

httpx.Client.send = timed
from botocore.httpsession import URLLib3Session

aws = []
aws_send = URLLib3Session.send

def aws_timed(session, request):
    start = time.monotonic()
    try:
        return aws_send(session, request)
    finally:
        aws.append([start, time.monotonic()])

URLLib3Session.send = aws_timed
from callflow_functions.api import handler
from bench._lambda import LambdaContext

print(json.dumps({"ready": True}), file=results, flush=True)
for line in sys.stdin:
    event = json.loads(line)
    spans.clear()
    aws.clear()
    t0 = time.monotonic()
    response = handler(event, LambdaContext())
    done = time.monotonic()
    print(json.dumps({"t0": t0, "done": done, "status": response["statusCode"],
                      "spans": spans, "aws": aws}), file=results, flush=True)
"""

BRIDGE_WORKER = r"""
import asyncio, json, os, time

results = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
import httpx

send = httpx.AsyncClient.send

async def timed(client, request, **kwargs):
    start = time.monotonic()
    try:
        return await send(client, request, **kwargs)
    finally:
        print(json.dumps({"span": [start, time.monotonic()]}), file=results, flush=True)

httpx.AsyncClient.send = timed
from botocore.httpsession import URLLib3Session

aws_send = URLLib3Session.send

def aws_timed(session, request):
    start = time.monotonic()
    try:
        return aws_send(session, request)
    finally:
        print(json.dumps({"aws": [start, time.monotonic()]}), file=results, flush=True)

URLLib3Session.send = aws_timed
from callflow.config import get_settings
from callflow.store import SessionStore
from callflow_bridge.deps import BridgeDeps
from callflow_bridge.metrics import BridgeMetrics
from callflow_bridge.server import BridgeServer

async def main():
    settings = get_settings()
    server = BridgeServer(settings, SessionStore.from_settings(settings),
                          BridgeDeps.from_settings(settings),
                          metrics=BridgeMetrics(emit=lambda line: None))
    await server.start()
    print(json.dumps({"port": server.port}), file=results, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@dataclass
class Call:
    """One measured call: the moments the stand-ins saw, and the providers' intervals."""

    session_id: str
    connect_started: float = 0.0
    agent_initiated: float = 0.0
    agent_audio_sent: float = 0.0
    first_audio: float = 0.0
    spans: list[tuple[float, float]] = field(default_factory=list)
    heard: asyncio.Event = field(default_factory=asyncio.Event)
    media_task: asyncio.Task[None] | None = None


class StandIns:
    """Infobip's dialogs and media leg, ElevenLabs' signed URLs and agent, with known latencies."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.signatures: set[str] = set()
        self.bridge_url = ""
        self.agent_url = ""
        self.bridge_spans: list[tuple[float, float]] = []
        self.aws_spans: list[tuple[float, float]] = []
        """The bridge's DynamoDB requests (moto), from its client's send."""

    # --- HTTP (both providers' REST APIs on one loopback port) ---------------------------

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def list_dialogs(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"App {INFOBIP_KEY}":
                return JSONResponse({"requestError": {"serviceException": {}}}, 401)
            await asyncio.sleep(LATENCY_MS["infobip_list_dialogs"] / 1000)
            return JSONResponse({"results": [], "paging": {"page": 0, "size": 100}})

        async def create_dialog(request: Request) -> JSONResponse:
            arrived = time.monotonic()
            if request.headers.get("authorization") != f"App {INFOBIP_KEY}":
                return JSONResponse({"requestError": {"serviceException": {}}}, 401)
            body = await request.json()
            child = body["childCallRequest"]
            assert child["endpoint"] == {
                "type": "WEBSOCKET",
                "websocketEndpointConfigId": MEDIA_CONFIG_ID,
                "identifier": child["endpoint"]["identifier"],
            }, child
            custom = child["customData"]
            call = self.calls[custom["session_id"]]
            await asyncio.sleep(LATENCY_MS["infobip_create_dialog"] / 1000)
            call.media_task = asyncio.create_task(self._media_leg(call, custom, arrived))
            parent = body["parentCallId"]
            return JSONResponse(
                {
                    "id": f"dialog-{parent}",
                    "state": "CREATED",
                    "parentCall": {"id": parent},
                    "childCall": {"id": f"child-{parent}"},
                },
                201,
            )

        async def signed_url(request: Request) -> JSONResponse:
            if request.headers.get("xi-api-key") != ELEVENLABS_KEY:
                return JSONResponse({"detail": {"status": "invalid_api_key"}}, 401)
            if request.query_params.get("agent_id") != AGENT_ID:
                return JSONResponse({"detail": {"status": "agent_not_found"}}, 404)
            await asyncio.sleep(LATENCY_MS["elevenlabs_signed_url"] / 1000)
            return JSONResponse({"signed_url": self.issue()})

        return Starlette(
            routes=[
                Route("/calls/1/dialogs", list_dialogs, methods=["GET"]),
                Route("/calls/1/dialogs", create_dialog, methods=["POST"]),
                Route("/v1/convai/conversation/get-signed-url", signed_url, methods=["GET"]),
            ]
        )

    def issue(self) -> str:
        """A single-use signed URL for the agent socket."""
        signature = secrets.token_urlsafe(16)
        self.signatures.add(signature)
        return f"{self.agent_url}?agent_id={AGENT_ID}&conversation_signature={signature}"

    # --- Infobip's media leg: the callee's side of the WebSocket ---------------------------

    async def _media_leg(self, call: Call, custom: dict[str, str], arrived: float) -> None:
        from websockets.asyncio.client import connect

        await asyncio.sleep(LATENCY_MS["infobip_media_connect"] / 1000)
        call.connect_started = time.monotonic()
        call.spans.append((arrived, call.connect_started))
        hello = {"event": "websocket:connected", "content-type": "audio/l16;rate=16000", **custom}
        async with connect(self.bridge_url, compression=None, close_timeout=2) as ws:
            await ws.send(json.dumps(hello))
            pacer = asyncio.create_task(self._caller_frames(ws))
            try:
                async for message in ws:
                    if isinstance(message, bytes) and any(message):
                        call.first_audio = time.monotonic()
                        call.heard.set()
                        break
            finally:
                pacer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pacer
            await ws.close(1000, "callee hung up")

    @staticmethod
    async def _caller_frames(ws: Any) -> None:
        """Silence every 20 ms against the connect time, as Infobip streams the callee."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        silence = bytes(FRAME)
        while True:
            await ws.send(silence)
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * 0.02 - loop.time()))

    # --- the agent socket --------------------------------------------------------------------

    async def agent(self, ws: Any) -> None:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(ws.request.path).query)
        signature = (query.get("conversation_signature") or [""])[0]
        if signature not in self.signatures:
            await ws.send(json.dumps({"type": "error", "error_event": {"code": 1008}}))
            await ws.close(1008, "Invalid or expired conversation signature")
            return
        self.signatures.discard(signature)
        initiation = json.loads(await ws.recv())
        initiated = time.monotonic()
        assert initiation["type"] == "conversation_initiation_client_data", initiation
        call = self.calls[str(initiation["dynamic_variables"]["bench_session"])]
        call.agent_initiated = initiated
        await asyncio.sleep(LATENCY_MS["agent_metadata"] / 1000)
        metadata = {
            "conversation_id": f"conv_{call.session_id}",
            "user_input_audio_format": "pcm_16000",
            "agent_output_audio_format": "pcm_16000",
        }
        await ws.send(
            json.dumps(
                {
                    "type": "conversation_initiation_metadata",
                    "conversation_initiation_metadata_event": metadata,
                }
            )
        )
        await asyncio.sleep(LATENCY_MS["agent_first_audio"] / 1000)
        audio = {"audio_base_64": GREETING, "event_id": 1}
        await ws.send(json.dumps({"type": "audio", "audio_event": audio}))
        call.agent_audio_sent = time.monotonic()
        call.spans.append((initiated, call.agent_audio_sent))
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass


def union_within(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """The length of the union of ``spans`` clipped to ``[start, end]``."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in spans if b > start and a < end)
    total, reach = 0.0, start
    for a, b in clipped:
        if b <= reach:
            continue
        total += b - max(a, reach)
        reach = b
    return total


@contextlib.asynccontextmanager
async def worker(script: str, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def read_json(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    if not line:
        raise RuntimeError("a worker process ended early")
    result: dict[str, Any] = json.loads(line)
    return result


async def collect_bridge_spans(bridge: asyncio.subprocess.Process, into: StandIns) -> None:
    while True:
        message = await read_json(bridge)
        if "span" in message:
            a, b = message["span"]
            into.bridge_spans.append((a, b))
        else:
            a, b = message["aws"]
            into.aws_spans.append((a, b))


def established(session_id: str, call_id: str) -> dict[str, Any]:
    """A ``CALL_ESTABLISHED`` of a callflow call, as Infobip posts it."""
    return {
        "type": "CALL_ESTABLISHED",
        "callId": call_id,
        "timestamp": "2026-12-03T10:00:00.000+0000",
        "properties": {
            "call": {
                "id": call_id,
                "state": "ESTABLISHED",
                "customData": {"session_id": session_id, "attempt": "1"},
            }
        },
    }


async def one_call(
    api: asyncio.subprocess.Process, stand_ins: StandIns, store: Any, prefetched: bool
) -> dict[str, float]:
    from callflow.models import Session, SessionStatus, new_session_id

    session_id = new_session_id()
    call_id = f"call-{session_id}"
    call = stand_ins.calls[session_id] = Call(session_id)
    fields: dict[str, Any] = {}
    if prefetched:
        fields = {"agent_signed_url": stand_ins.issue(), "agent_signed_url_at": int(time.time())}
    await asyncio.to_thread(
        store.create,
        Session(
            session_id=session_id,
            module="Leads",
            record_id="4000000012345",
            status=SessionStatus.RINGING,
            attempt=1,
            phone="+14155550100",
            call_id=call_id,
            variables={"First_Name": "Ada", "bench_session": session_id},
            **fields,
        ),
    )
    event = http_event(
        "POST",
        INFOBIP_PATH,
        established(session_id, call_id),
        {"authorization": infobip_basic_auth()},
    )
    assert api.stdin is not None
    api.stdin.write((json.dumps(event) + "\n").encode())
    await api.stdin.drain()
    answer = await read_json(api)
    assert answer["status"] == 200, answer
    await asyncio.wait_for(call.heard.wait(), 10)
    if call.media_task is not None:
        await call.media_task
    t0, end = float(answer["t0"]), call.first_audio
    spans = [*call.spans, *((a, b) for a, b in answer["spans"]), *stand_ins.bridge_spans]
    total = end - t0
    provider = union_within(spans, t0, end)
    aws = [*((a, b) for a, b in answer["aws"]), *stand_ins.aws_spans]
    waited = union_within([*spans, *aws], t0, end)
    del stand_ins.calls[session_id]
    every = [*spans, *aws]
    begun, initiated = call.connect_started, call.agent_initiated
    return {
        "total_ms": total * 1000,
        "own_ms": (total - waited) * 1000,
        "with_aws_ms": (total - provider) * 1000,
        "aws_ms": (waited - provider) * 1000,
        "api_ms": (begun - t0 - union_within(every, t0, begun)) * 1000,
        "bridge_connect_ms": (initiated - begun - union_within(every, begun, initiated)) * 1000,
        "first_frame_ms": (end - call.agent_audio_sent) * 1000,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 1),
        "p95": round(percentile(values, 0.95), 1),
    }


async def run() -> dict[str, Any]:
    import uvicorn
    from websockets.asyncio.server import serve

    from callflow.store import SessionStore
    from callflow_dev.local.aws import create_table

    stand_ins = StandIns()
    agent_server = await serve(stand_ins.agent, "127.0.0.1", 0, compression=None)
    agent_port = agent_server.sockets[0].getsockname()[1]
    stand_ins.agent_url = f"ws://127.0.0.1:{agent_port}/v1/convai/conversation"
    http = uvicorn.Server(
        uvicorn.Config(stand_ins.app(), host="127.0.0.1", port=0, log_level="warning")
    )
    http_task = asyncio.create_task(http.serve())
    while not http.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    http_port = http.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{http_port}"

    create_table(SECRETS["CALLFLOW_TABLE_NAME"], "us-east-1")
    store = SessionStore(SECRETS["CALLFLOW_TABLE_NAME"], "us-east-1")
    env = {
        **os.environ,
        **SECRETS,
        "CALLFLOW_INFOBIP_BASE_URL": base,
        "CALLFLOW_INFOBIP_API_KEY": INFOBIP_KEY,
        "CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID": MEDIA_CONFIG_ID,
        "CALLFLOW_ELEVENLABS_BASE_URL": base,
        "CALLFLOW_ELEVENLABS_API_KEY": ELEVENLABS_KEY,
        "CALLFLOW_ELEVENLABS_AGENT_ID": AGENT_ID,
        "CALLFLOW_BRIDGE_PATH_SECRET": BRIDGE_SECRET,
        "CALLFLOW_BRIDGE_HOST": "127.0.0.1",
        "CALLFLOW_BRIDGE_PORT": "0",
    }
    results: dict[str, list[dict[str, float]]] = {"prefetched": [], "fetched": []}
    rounds: list[dict[str, Any]] = []
    async with worker(BRIDGE_WORKER, env) as bridge, worker(API_WORKER, env) as api:
        port = (await read_json(bridge))["port"]
        stand_ins.bridge_url = f"ws://127.0.0.1:{port}/{BRIDGE_SECRET}"
        spans_task = asyncio.create_task(collect_bridge_spans(bridge, stand_ins))
        await read_json(api)
        for _ in range(ROUNDS):
            this_round: dict[str, Any] = {}
            for mode in ("prefetched", "fetched"):
                measured = []
                for i in range(WARMUP + CALLS):
                    stand_ins.bridge_spans.clear()
                    stand_ins.aws_spans.clear()
                    call = await one_call(api, stand_ins, store, mode == "prefetched")
                    await asyncio.sleep(0.15)  # the bridge records the call's end meanwhile
                    if i >= WARMUP:
                        measured.append(call)
                results[mode].extend(measured)
                this_round[mode] = summary([m["own_ms"] for m in measured])
            this_round["load_avg_1m"] = round(os.getloadavg()[0], 2)
            rounds.append(this_round)
        spans_task.cancel()
    http.should_exit = True
    await http_task
    agent_server.close()
    await agent_server.wait_closed()

    def figures(mode: str) -> dict[str, Any]:
        calls = results[mode]
        return {
            key: summary([c[key] for c in calls])
            for key in (
                "own_ms",
                "with_aws_ms",
                "aws_ms",
                "total_ms",
                "api_ms",
                "bridge_connect_ms",
                "first_frame_ms",
            )
        }

    prefetched, fetched = figures("prefetched"), figures("fetched")
    round_p95 = [r["prefetched"]["p95"] for r in rounds]
    return {
        "benchmark": "call_first_words",
        "calls": len(results["prefetched"]),
        "rounds": ROUNDS,
        "first_words_own_ms_p50": prefetched["own_ms"]["p50"],
        "first_words_own_ms_p95": prefetched["own_ms"]["p95"],
        "own_ms_p95_spread": [min(round_p95), max(round_p95)],
        "first_words_own_with_aws_ms_p95": prefetched["with_aws_ms"]["p95"],
        "target_ms": TARGET_MS,
        "prefetched": prefetched,
        "fetched": fetched,
        "provider_latency_ms": LATENCY_MS,
        "rounds_detail": rounds,
    }


def main() -> None:
    from bench._moto import moto_process

    with moto_process():
        print(json.dumps(asyncio.run(run())), flush=True)


if __name__ == "__main__":
    main()

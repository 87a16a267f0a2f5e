"""The socket interface over picows (``callflow_bridge.sockets``) behaves as the relay needs: whole
messages out of fragments, the peer's close code and reason, pings answered, size limits, our
own close, and backpressure. The peer is the ``websockets`` library over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus

import pytest
from picows import ws_connect, ws_create_server
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from callflow.config import Settings
from callflow_bridge.agent_leg import AgentLeg, AgentUnavailable
from callflow_bridge.deps import BridgeDeps
from callflow_bridge.sockets import PicowsSocket, SocketClosed

Script = Callable[[ServerConnection], Awaitable[None]]


@contextlib.asynccontextmanager
async def peer_server(script: Script) -> AsyncIterator[str]:
    """A ``websockets`` server running ``script`` per connection; yields its URL."""

    async def handle(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await script(ws)

    async with serve(handle, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


async def picows_client(url: str, max_size: int = 1 << 20) -> PicowsSocket:
    _, listener = await ws_connect(
        lambda: PicowsSocket(max_size), url, use_aiofastnet=False, max_frame_size=max_size
    )
    assert isinstance(listener, PicowsSocket)
    return listener


@contextlib.asynccontextmanager
async def picows_server(
    max_size: int = 1 << 20,
) -> AsyncIterator[tuple[str, asyncio.Queue[PicowsSocket]]]:
    """A picows server handing each opened socket to the test through a queue."""
    opened: asyncio.Queue[PicowsSocket] = asyncio.Queue()
    server = await ws_create_server(
        lambda request: PicowsSocket(
            max_size,
            request.path.decode(),
            request.headers.items(),
            on_open=opened.put_nowait,
        ),
        "127.0.0.1",
        0,
        use_aiofastnet=False,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}/media/x?y=1", opened
    finally:
        server.close()


async def test_fragmented_messages_arrive_whole_and_in_order() -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.send(["par", "tial ", "text"])
        await ws.send([b"\x01\x02", b"\x03"])
        await ws.send("whole")
        await ws.wait_closed()

    async with peer_server(script) as url:
        socket = await picows_client(url)
        got = [await socket.recv() for _ in range(3)]
        await socket.close()
    assert got == ["partial text", b"\x01\x02\x03", "whole"]


async def test_the_peers_close_code_and_reason_are_kept_and_end_the_iteration() -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.send("last words")
        await ws.close(4001, "conversation over")

    async with peer_server(script) as url:
        socket = await picows_client(url)
        got = [message async for message in socket]
        with pytest.raises(SocketClosed):
            await socket.recv()
        with pytest.raises(SocketClosed):
            await socket.send("too late")
    assert got == ["last words"]
    assert (socket.close_code, socket.close_reason) == (4001, "conversation over")


async def test_a_close_without_a_code_reads_1005_and_a_dropped_connection_1006() -> None:
    async def no_code(ws: ServerConnection) -> None:
        ws.transport.write(b"\x88\x00")  # a CLOSE frame with no payload, written raw
        await ws.wait_closed()

    async def drop(ws: ServerConnection) -> None:
        ws.transport.abort()

    async with peer_server(no_code) as url:
        socket = await picows_client(url)
        assert [m async for m in socket] == []
        assert socket.close_code == 1005
    async with peer_server(drop) as url:
        socket = await picows_client(url)
        assert [m async for m in socket] == []
        assert (socket.close_code, socket.close_reason) == (1006, "")


async def test_our_close_sends_the_code_and_reason_and_waits_for_the_answer() -> None:
    async with picows_server() as (url, opened):
        async with connect(url, compression=None) as client:
            socket = await opened.get()
            assert (socket.close_code, socket.close_reason) == (None, "")
            await socket.close(1008, "unknown session or bad token")
            with pytest.raises(ConnectionClosed):
                await client.recv()
        assert client.close_code == 1008
        assert client.close_reason == "unknown session or bad token"
        # The peer answered our CLOSE with its own: that is the close we read.
        assert socket.close_code == 1008


async def test_the_server_side_keeps_the_upgrade_request_and_answers_pings() -> None:
    headers = {"X-Test": "1"}
    async with (
        picows_server() as (url, opened),
        connect(url, compression=None, additional_headers=headers) as client,
    ):
        socket = await opened.get()
        latency = await asyncio.wait_for(await client.ping(), 2)
        await client.send(b"\x00\x01")
        assert await socket.recv() == b"\x00\x01"
    assert latency >= 0
    assert socket.path == "/media/x?y=1"
    assert ("X-Test", "1") in socket.headers


async def test_a_fragmented_message_over_the_limit_closes_1009() -> None:
    async with picows_server(max_size=64) as (url, opened):
        client: ClientConnection
        async with connect(url, compression=None) as client:
            socket = await opened.get()
            await client.send([b"x" * 40, b"y" * 40])
            with pytest.raises(ConnectionClosed):
                await client.recv()
        assert client.close_code == 1009
        assert [m async for m in socket] == []


async def test_sends_wait_while_the_transport_is_over_its_high_water_mark() -> None:
    async with picows_server() as (url, opened), connect(url, compression=None) as client:
        socket = await opened.get()
        socket.pause_writing()
        sending = asyncio.create_task(socket.send("held"))
        await asyncio.sleep(0.05)
        assert not sending.done()
        socket.resume_writing()
        await asyncio.wait_for(sending, 1)
        assert await client.recv() == "held"


async def test_an_agent_refusing_the_upgrade_is_unavailable_with_its_status() -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.FORBIDDEN, "no\n")

    async def never(ws: ServerConnection) -> None:
        raise AssertionError("the refused connection was handled")

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = next(iter(server.sockets)).getsockname()[1]

        async def signed_url(agent_id: str) -> str:
            return f"ws://127.0.0.1:{port}/v1/convai/conversation"

        async def hangup(call_id: str) -> bool:
            return True

        leg = AgentLeg(Settings(), BridgeDeps(signed_url=signed_url, hangup=hangup))
        with pytest.raises(AgentUnavailable, match=r"^agent refused the connection: 403$"):
            await leg.open({})


async def test_an_agent_that_is_not_listening_is_unreachable() -> None:
    holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = holder.sockets[0].getsockname()[1]
    holder.close()
    await holder.wait_closed()

    async def signed_url(agent_id: str) -> str:
        return f"ws://127.0.0.1:{port}/v1/convai/conversation"

    async def hangup(call_id: str) -> bool:
        return True

    leg = AgentLeg(Settings(), BridgeDeps(signed_url=signed_url, hangup=hangup))
    with pytest.raises(AgentUnavailable, match=r"^agent unreachable: "):
        await leg.open({})


async def test_a_parked_reader_gets_its_messages_through_dispatch_in_order() -> None:
    async with picows_server() as (url, opened), connect(url, compression=None) as client:
        socket = await opened.get()
        dispatched: list[str | bytes] = []

        def dispatch(message: str | bytes) -> bool:
            dispatched.append(message)
            return isinstance(message, bytes)  # text goes on to the reader

        socket.dispatch = dispatch
        reading = asyncio.create_task(socket.recv())
        await asyncio.sleep(0.01)  # the reader parks on the empty queue
        await client.send(b"\x01")
        await client.send(b"\x02")
        await client.send("text")
        assert await asyncio.wait_for(reading, 1) == "text"
    assert dispatched == [b"\x01", b"\x02", "text"]


async def test_nothing_is_dispatched_while_the_reader_is_busy_or_gone() -> None:
    async with picows_server() as (url, opened), connect(url, compression=None) as client:
        socket = await opened.get()
        dispatched: list[str | bytes] = []

        def dispatch(message: str | bytes) -> bool:
            dispatched.append(message)
            return True

        socket.dispatch = dispatch
        await client.send(b"\x01")
        await asyncio.sleep(0.05)  # it arrives while nobody reads: queued
        assert await socket.recv() == b"\x01"
        parked = asyncio.create_task(socket.recv())
        await asyncio.sleep(0.01)
        parked.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await parked
        await client.send(b"\x02")
        await asyncio.sleep(0.05)  # the reader was cancelled: queued, not dispatched
        assert await socket.recv() == b"\x02"
    assert dispatched == []


async def test_what_the_dispatcher_raises_is_raised_by_the_reader() -> None:
    async with picows_server() as (url, opened), connect(url, compression=None) as client:
        socket = await opened.get()

        def dispatch(message: str | bytes) -> bool:
            raise RuntimeError("relay bug")

        socket.dispatch = dispatch
        reading = asyncio.create_task(socket.recv())
        await asyncio.sleep(0.01)
        await client.send(b"\x01")
        await client.send(b"\x02")
        with pytest.raises(RuntimeError, match="relay bug"):
            await asyncio.wait_for(reading, 1)
        # The message after the failure was queued, not lost.
        assert await socket.recv() == b"\x02"

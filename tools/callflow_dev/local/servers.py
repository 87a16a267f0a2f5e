"""Serving ASGI apps and asyncio services from background threads, on free loopback ports.

The local stack and the tests run every part on a real socket, each in its own thread with its
own event loop, so a blocking call in one part (boto3 in a handler) never stalls another's audio.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Literal, TypeVar

import uvicorn

T = TypeVar("T")


class AsgiServer:
    """An ASGI app under uvicorn in a daemon thread.

    Also a context manager (``with AsgiServer(app) as server:``) that starts and stops it, for
    tests. ``lifespan="on"`` runs the app's lifespan, so an app that cleans up on shutdown (the
    Infobip stand-in cancels its delivery tasks) does so when the server stops.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "",
        lifespan: Literal["auto", "on", "off"] = "off",
    ) -> None:
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan=lifespan,
            access_log=False,
            ws="websockets-sansio",
        )
        self.server = uvicorn.Server(self.config)
        self.name = name
        self.thread = threading.Thread(target=self.server.run, name=f"asgi-{name}", daemon=True)
        self.port = 0

    def start(self, timeout: float = 10.0) -> AsgiServer:
        """Start the thread, wait (up to ``timeout`` s) until uvicorn listens, record its port."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name or 'ASGI'} server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        """The server's HTTP base URL on loopback (meaningful once started)."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to exit and wait up to ``timeout`` seconds for its thread to end."""
        self.server.should_exit = True
        self.thread.join(timeout=timeout)

    def __enter__(self) -> AsgiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LoopThread:
    """An asyncio loop in a daemon thread, for services that are coroutines (the bridge)."""

    def __init__(self, name: str = "loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coroutine`` on the loop and block for its result (``timeout=None``: no limit)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def submit(self, factory: Callable[[], Awaitable[T]]) -> Any:
        """Start ``factory()`` on the loop without waiting; returns a ``concurrent.futures`` future.

        The awaitable is created inside the loop's thread, not the caller's.
        """

        async def wrapper() -> T:
            return await factory()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop)

    def stop(self) -> None:
        """Stop the loop and join its thread (up to 5 s); tasks still pending are not cancelled."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)

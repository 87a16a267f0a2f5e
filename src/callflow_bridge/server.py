"""The bridge's server: one port, Infobip's media streams on a secret path, ``/health`` beside it.

Infobip's media-stream config has no authentication, so the path starts with a secret segment
(anything else gets 404 before a WebSocket exists) and each stream proves itself with its
session's token, found in the first frame or in the upgrade request (the path after the secret,
the query, the headers; see :mod:`callflow_bridge.protocol` and :class:`bridge.relay.CallRelay`).

Draining (SIGTERM on Fargate): new streams are refused with 503 and ``/health`` answers 503 so the
load balancer stops sending; calls in flight run on until they end or the deadline passes, then
are closed with 1001. The listener stays open while draining so the health route keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from http import HTTPStatus

from picows import (
    WSAutoPingStrategy,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
    ws_create_server,
)

from callflow.config import Settings

from .deps import BridgeDeps, SessionAccess
from .metrics import BridgeMetrics
from .protection import TaskProtection
from .relay import CallRelay
from .sockets import KEEPALIVE_S, PicowsSocket

logger = logging.getLogger("bridge.server")

HEALTH_PATH = "/health"
#: Infobip's frames are 20 ms of PCM (1,280 bytes at 32 kHz) or a small JSON event.
PHONE_MAX_MESSAGE = 64 * 1024
GAUGE_INTERVAL_S = 10.0
#: How long a client may take to send its upgrade request.
HANDSHAKE_TIMEOUT_S = 10.0


class BridgeServer:
    """The audio bridge, usable in-process (tests, the local stack) and by ``python -m bridge``."""

    def __init__(
        self,
        settings: Settings,
        store: SessionAccess,
        deps: BridgeDeps,
        *,
        metrics: BridgeMetrics | None = None,
        host: str | None = None,
        port: int | None = None,
        gauge_interval_s: float = GAUGE_INTERVAL_S,
        protection: TaskProtection | None = None,
    ) -> None:
        secret = settings.bridge_path_secret.get_secret_value()
        if not secret or "/" in secret:
            raise ValueError("CALLFLOW_BRIDGE_PATH_SECRET must be set to one path segment")
        self.settings = settings
        self.store = store
        self.deps = deps
        self.metrics = metrics or BridgeMetrics()
        self.host = host if host is not None else settings.bridge_host
        self.port = port if port is not None else settings.bridge_port
        self.gauge_interval_s = gauge_interval_s
        self.protection = protection
        self.draining = False
        self._path = "/" + secret
        self._relays: set[CallRelay] = set()
        self._streams: set[asyncio.Task[None]] = set()
        self._sockets: set[PicowsSocket] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._server: asyncio.Server | None = None
        self._gauge: asyncio.Task[None] | None = None

    @property
    def active_calls(self) -> int:
        """How many calls this bridge is relaying now."""
        return len(self._relays)

    async def start(self) -> None:
        """Listen; with port 0 the chosen port is in :attr:`port` afterwards."""
        self._server = await ws_create_server(
            self._route,
            self.host,
            self.port,
            websocket_handshake_timeout=HANDSHAKE_TIMEOUT_S,
            enable_auto_ping=True,
            auto_ping_idle_timeout=KEEPALIVE_S,
            auto_ping_reply_timeout=KEEPALIVE_S,
            auto_ping_strategy=WSAutoPingStrategy.PING_PERIODICALLY,
            max_frame_size=PHONE_MAX_MESSAGE,
            use_aiofastnet=False,
        )
        sockets = list(self._server.sockets)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        self._gauge = asyncio.create_task(self._gauge_loop())
        logger.info("bridge listening on %s:%s", self.host, self.port)

    async def shutdown(self, deadline_s: float) -> None:
        """Stop taking calls, let live ones finish for ``deadline_s``, then close them (1001)."""
        self.draining = True
        logger.info("draining %d call(s), deadline %.1fs", self.active_calls, deadline_s)
        try:
            await asyncio.wait_for(self._idle.wait(), deadline_s)
        except TimeoutError:
            for relay in list(self._relays):
                relay.shutdown()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), 10)
        if self._server is not None:
            self._server.close()
        # Streams still open (not admitted yet, or a relay that would not end): close them.
        await asyncio.gather(
            *(socket.close(1001, "bridge shutting down") for socket in list(self._sockets))
        )
        for task in list(self._streams):
            task.cancel()
        await asyncio.gather(*self._streams, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._gauge is not None:
            self._gauge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gauge
        self.metrics.active_calls(self.active_calls)
        if self.protection is not None:
            await self.protection.aclose()

    # --- HTTP -----------------------------------------------------------------------------

    def _route(self, request: WSUpgradeRequest) -> PicowsSocket | WSUpgradeResponseWithListener:
        """Answer ``/health`` and refusals over plain HTTP; a stream on the secret path gets a
        socket (``picows`` then checks the upgrade headers and answers 101)."""
        target = request.path.decode("latin-1")
        path = target.split("?", 1)[0]
        if path == HEALTH_PATH:
            body = {"status": "draining" if self.draining else "ok"}
            payload = (json.dumps({**body, "active_calls": self.active_calls}) + "\n").encode()
            kind = {"Content-Type": "application/json"}
            if self.draining:
                return _answer(
                    WSUpgradeResponse.create_error_response(
                        HTTPStatus.SERVICE_UNAVAILABLE, payload, kind
                    )
                )
            return _answer(WSUpgradeResponse.create_ok_response(payload, kind))
        # The secret segment, then optionally the session's own segments (per-session routing
        # puts the session id and token there; the relay reads them).
        first = "/" + path.removeprefix("/").split("/", 1)[0]
        if not hmac.compare_digest(first.encode(), self._path.encode()):
            return _refuse(HTTPStatus.NOT_FOUND, "Not Found\n")
        if self.draining:
            return _refuse(HTTPStatus.SERVICE_UNAVAILABLE, "draining\n")
        return PicowsSocket(
            PHONE_MAX_MESSAGE, target, request.headers.items(), on_open=self._opened
        )

    # --- calls ----------------------------------------------------------------------------

    def _opened(self, socket: PicowsSocket) -> None:
        """A media stream's WebSocket is open: relay it in a task of its own."""
        self._sockets.add(socket)
        task = asyncio.create_task(self._handle(socket))
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)

    async def _handle(self, socket: PicowsSocket) -> None:
        try:
            relay = CallRelay(
                socket, self.settings, self.store, self.deps, self.metrics, prefix=self._path
            )
            if not await relay.admit():
                return
            self._relays.add(relay)
            self._changed()
            try:
                await relay.run()
            finally:
                self._relays.discard(relay)
                self._changed()
        except Exception:  # a bug in one stream must not go unnoticed, nor touch the others
            logger.exception("media stream handler failed")
        finally:
            # As websockets did when a handler returned: the stream ends with it.
            await socket.close(1000, "")
            self._sockets.discard(socket)

    def _changed(self) -> None:
        if self._relays:
            self._idle.clear()
        else:
            self._idle.set()
        if self.protection is not None:
            self.protection.want(bool(self._relays))

    async def _gauge_loop(self) -> None:
        while True:
            self.metrics.active_calls(self.active_calls)
            await asyncio.sleep(self.gauge_interval_s)


def _answer(response: WSUpgradeResponse) -> WSUpgradeResponseWithListener:
    """A plain HTTP answer (``picows`` sends it with ``Connection: close``)."""
    return WSUpgradeResponseWithListener(response, None)


def _refuse(status: HTTPStatus, text: str) -> WSUpgradeResponseWithListener:
    return _answer(
        WSUpgradeResponse.create_error_response(
            status, text.encode(), {"Content-Type": "text/plain; charset=utf-8"}
        )
    )

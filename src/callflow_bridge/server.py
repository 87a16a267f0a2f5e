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

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from callflow.config import Settings

from .deps import BridgeDeps, SessionAccess
from .metrics import BridgeMetrics
from .protection import TaskProtection
from .relay import CallRelay

logger = logging.getLogger("bridge.server")

HEALTH_PATH = "/health"
#: Infobip's frames are 20 ms of PCM (1,280 bytes at 32 kHz) or a small JSON event.
PHONE_MAX_MESSAGE = 64 * 1024
GAUGE_INTERVAL_S = 10.0


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
        self._idle = asyncio.Event()
        self._idle.set()
        self._server: Server | None = None
        self._gauge: asyncio.Task[None] | None = None

    @property
    def active_calls(self) -> int:
        """How many calls this bridge is relaying now."""
        return len(self._relays)

    async def start(self) -> None:
        """Listen; with port 0 the chosen port is in :attr:`port` afterwards."""
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            process_request=self._route,
            max_size=PHONE_MAX_MESSAGE,
            compression=None,
            close_timeout=2,
            server_header=None,
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
            self._server.close(close_connections=True)
            await self._server.wait_closed()
        if self._gauge is not None:
            self._gauge.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gauge
        self.metrics.active_calls(self.active_calls)
        if self.protection is not None:
            await self.protection.aclose()

    # --- HTTP -----------------------------------------------------------------------------

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == HEALTH_PATH:
            status = HTTPStatus.SERVICE_UNAVAILABLE if self.draining else HTTPStatus.OK
            body = {"status": "draining" if self.draining else "ok"}
            response = connection.respond(
                status, json.dumps({**body, "active_calls": self.active_calls}) + "\n"
            )
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        # The secret segment, then optionally the session's own segments (per-session routing
        # puts the session id and token there; the relay reads them).
        first = "/" + path.removeprefix("/").split("/", 1)[0]
        if not hmac.compare_digest(first.encode(), self._path.encode()):
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if self.draining:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "draining\n")
        return None

    # --- calls ----------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        relay = CallRelay(
            connection, self.settings, self.store, self.deps, self.metrics, prefix=self._path
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

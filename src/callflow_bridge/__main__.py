"""``python -m bridge``: the audio bridge as a long-lived service (the Fargate task's command).

Builds the real dependencies from :func:`callflow.config.get_settings`, serves until SIGTERM or
SIGINT, then drains for ``CALLFLOW_BRIDGE_DRAIN_SECONDS`` (keep the ECS ``stopTimeout`` at least
that long, or the task is killed before its calls end).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

from callflow.config import get_settings
from callflow.store import SessionStore

from .deps import BridgeDeps
from .protection import TaskProtection
from .server import BridgeServer


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with the session id when the record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line: level, logger, message, the ids it carries, a traceback."""
        entry: dict[str, object] = {
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("session_id", "conversation_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


async def serve_until_signalled(
    server: BridgeServer,
    drain_seconds: float,
    signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Start ``server``, wait for one of ``signals``, then drain it."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        await stop.wait()
        await server.shutdown(drain_seconds)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def main() -> None:
    """Run the bridge service: JSON logs on stderr, the real dependencies from the settings, and
    uvloop when it is installed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # picows logs every connection and disconnection at INFO: lines per load-balancer health
    # check and per call that the relay's own log already says better.
    logging.getLogger("picows").setLevel(logging.WARNING)
    settings = get_settings()
    server = BridgeServer(
        settings,
        SessionStore.from_settings(settings),
        BridgeDeps.from_settings(settings),
        protection=TaskProtection.from_environment(),
    )
    coroutine = serve_until_signalled(server, settings.bridge_drain_seconds)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


if __name__ == "__main__":
    main()

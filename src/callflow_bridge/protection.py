"""ECS task scale-in protection while calls are live.

A scale-in would send SIGTERM to a task carrying calls; draining handles that, but not stopping a
busy task at all is better. The ECS agent inside every Fargate task exposes
``$ECS_AGENT_URI/task-protection/v1/state``; the bridge turns protection on when its first call
starts and off when its last call ends. Protection expires on its own (``ExpiresInMinutes``), so
a crashed bridge cannot pin a task forever; while calls keep coming it is re-asserted.
Only used when ``ECS_AGENT_URI`` is set (that is, on ECS).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import httpx

logger = logging.getLogger("bridge.protection")

EXPIRES_MINUTES = 60
_REASSERT_S = EXPIRES_MINUTES * 60 / 2


class TaskProtection:
    """Keeps the task's protection in line with "has live calls", one request at a time."""

    def __init__(self, agent_uri: str, http: httpx.AsyncClient | None = None) -> None:
        self.url = agent_uri.rstrip("/") + "/task-protection/v1/state"
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(3.0))
        self._wanted = False
        self._actual: bool | None = None
        self._asserted_at = 0.0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_environment(cls) -> TaskProtection | None:
        """Protection through the ECS agent at ``$ECS_AGENT_URI``; ``None`` when it is unset (not on
        ECS)."""
        uri = os.environ.get("ECS_AGENT_URI", "")
        return cls(uri) if uri else None

    def want(self, protected: bool) -> None:
        """Ask for protection on or off. A request is started when the last known state differs
        (or protection is due to be re-asserted) and none is in flight; one in flight sends again
        after it succeeds if the wish changed meanwhile."""
        self._wanted = protected
        stale = protected and time.monotonic() - self._asserted_at > _REASSERT_S
        if (self._actual != protected or stale) and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._sync())

    async def _sync(self) -> None:
        while True:
            wanted = self._wanted
            body: dict[str, object] = {"ProtectionEnabled": wanted}
            if wanted:
                body["ExpiresInMinutes"] = EXPIRES_MINUTES
            try:
                response = await self._http.put(self.url, json=body)
                response.raise_for_status()
            except httpx.HTTPError as error:
                logger.warning("task protection update failed: %s", error)
                return
            self._actual = wanted
            self._asserted_at = time.monotonic()
            if self._wanted == wanted:
                return

    async def aclose(self) -> None:
        """Wait for the request in flight, then close the HTTP client."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self._http.aclose()

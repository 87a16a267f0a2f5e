"""How a call ends: the first reason wins, and what that reason means for the phone call."""

from __future__ import annotations

import asyncio
from enum import StrEnum


class EndReason(StrEnum):
    """Why a call ended; a metric dimension, so the set is small and fixed."""

    AGENT_ENDED = "agent_ended"
    AGENT_ERROR = "agent_error"
    AGENT_UNAVAILABLE = "agent_unavailable"
    CALLER_HUNG_UP = "caller_hung_up"
    PHONE_LEG_ERROR = "phone_leg_error"
    UNSUPPORTED_FORMAT = "unsupported_format"
    SHUTDOWN = "shutdown"
    BRIDGE_ERROR = "bridge_error"


#: Ends after which the bridge itself must end the phone call (the caller is still on the line).
HANG_UP = frozenset(
    {
        EndReason.AGENT_ENDED,
        EndReason.AGENT_ERROR,
        EndReason.AGENT_UNAVAILABLE,
        EndReason.UNSUPPORTED_FORMAT,
        EndReason.BRIDGE_ERROR,
    }
)


class CallEnd:
    """The call's end, decided once: the first :meth:`finish` sets the reason and wakes the relay;
    later ones (the other leg noticing the same end) change nothing. A timed end (the drain's
    deadline) is a pending :meth:`finish` that a sooner end or :meth:`cancel_timer` replaces."""

    def __init__(self) -> None:
        self.reason: EndReason | None = None
        self.detail = ""
        self.finished = asyncio.Event()
        self.hangup_result = ""
        """What the hang-up through the API did: ``hung up``, ``already over``, a failure."""
        self._timer: asyncio.TimerHandle | None = None

    def finish(self, reason: EndReason, detail: str = "") -> None:
        """End the call for ``reason`` unless it has ended already."""
        if self.reason is None:
            self.reason = reason
            self.detail = detail
            self.finished.set()

    def finish_after(self, delay_s: float, reason: EndReason, detail: str) -> None:
        """End the call for ``reason`` in ``delay_s`` seconds (replacing an earlier timed end)."""
        self.cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(delay_s, self.finish, reason, detail)

    def cancel_timer(self) -> None:
        """Drop a pending timed end."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def final_reason(self) -> EndReason:
        """The reason, or ``BRIDGE_ERROR`` for a relay that stopped without one (a bug)."""
        return self.reason or EndReason.BRIDGE_ERROR

    @property
    def hangs_up(self) -> bool:
        """Whether this end obliges the bridge to hang up the phone call through the API."""
        return self.final_reason in HANG_UP

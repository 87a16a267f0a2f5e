"""May a campaign's call be dialled now? The question admission asks before every dial.

:func:`campaign_gate` reads the campaign's item (one consistent read) and answers:

- ``open``: dial (subject to the person's own calling hours and the pools' slots);
- ``paused``: the operator paused the campaign: wait and ask again later;
- ``cancelled``: the operator cancelled it, its window has ended (past ``end``, or no opening
  left before it), its records could not be enumerated, or it no longer exists: the waiting
  call ends with ``Outcome.CANCELLED``, written back like any other outcome, and ``reason`` says
  which. A call that ended this way is never dialled, so ending it cannot surprise anyone;
  keeping it waiting for a window that cannot open would hold the record's claim for nothing;
- ``closed``: outside the window (before ``start``, or outside its weekdays and hours):
  ``reopens_at`` is the next time it opens.

Pause, resume and cancel thus take effect at each call's next admission; a call already dialled
carries on to its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from callflow.campaigns.model import CampaignState, CampaignWindow
from callflow.campaigns.store import CampaignStore
from callflow.store import SessionStore

Verdict = Literal["open", "paused", "cancelled", "closed"]


@dataclass(frozen=True)
class Gate:
    """The campaign's answer for one call: see the module docstring."""

    verdict: Verdict
    reopens_at: datetime | None = None
    """For ``closed``: the next time the campaign's window opens."""
    reason: str = ""
    """Why the call may not be dialled now (for the session's timeline and outcome detail)."""


OPEN = Gate("open")


def campaign_gate(store: SessionStore, campaign_id: str, now: datetime) -> Gate:
    """The gate of ``campaign_id`` at ``now`` (aware); ``open`` for an empty id (a single
    trigger belongs to no campaign)."""
    if not campaign_id:
        return OPEN
    campaign = CampaignStore(store.table).get(campaign_id)
    if campaign is None:
        return Gate("cancelled", reason="the campaign no longer exists")
    if campaign.state is CampaignState.PAUSED:
        return Gate("paused", reason="the campaign is paused")
    if campaign.state is CampaignState.CANCELLED:
        return Gate("cancelled", reason="the campaign was cancelled")
    if campaign.state is CampaignState.FAILED:
        return Gate("cancelled", reason=f"the campaign failed: {campaign.error}"[:200])
    return window_gate(campaign.window, now)


def window_gate(window: CampaignWindow, now: datetime) -> Gate:
    """The window's answer at ``now``: open, closed until its next opening, or cancelled once
    it has ended or cannot open again before its end."""
    end = window.end_at()
    if end is not None and now >= end:
        return Gate("cancelled", reason="the campaign's window has ended")
    start = window.start_at()
    moment = max(now, start) if start is not None else now
    opening = window.hours().next_opening(moment, window.timezone)
    if end is not None and opening >= end:
        return Gate("cancelled", reason="the campaign's window does not open again before its end")
    if opening <= now:
        return OPEN
    return Gate("closed", reopens_at=opening, reason="outside the campaign's window")

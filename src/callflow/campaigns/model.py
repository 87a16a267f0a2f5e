"""A campaign: which records of one module to call, when, how many at once, and how far it got.

Stored as one item, ``campaign#<id>``, on the session table (:mod:`callflow.campaigns.store`).
The definition is flow-agnostic: it names the records (a custom view, a COQL criteria, or a list
of ids) and the window; each record then runs the same per-record call workflow as a single
trigger.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from callflow.phone import CallingHours

_HHMM = re.compile(r"^([01]\d|2[0-4]):[0-5]\d$")
CAMPAIGN_ID = re.compile(r"^c[0-9a-f]{16}$")
MAX_IDS = 10_000
"""Record ids one campaign may list: they are kept on its item (DynamoDB's 400 KB)."""


class CampaignState(StrEnum):
    """Where a campaign is: ``running`` (enumerating, then calling), ``paused`` (no new dial
    until resumed), ``cancelled`` (waiting calls end ``cancelled``), ``done`` (every record's
    workflow ended), ``failed`` (the records could not be enumerated; nobody was called)."""

    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"
    FAILED = "failed"


#: The states from which each operator action moves, and where to.
TRANSITIONS: dict[str, tuple[frozenset[CampaignState], CampaignState]] = {
    "pause": (frozenset({CampaignState.RUNNING}), CampaignState.PAUSED),
    "resume": (frozenset({CampaignState.PAUSED}), CampaignState.RUNNING),
    "cancel": (frozenset({CampaignState.RUNNING, CampaignState.PAUSED}), CampaignState.CANCELLED),
}


class CampaignSource(BaseModel):
    """Which records: exactly one of a custom view (``cvid``), a COQL ``criteria`` (the WHERE
    clause; the select list and the paging are the enumeration's), or record ``ids``."""

    kind: Literal["view", "coql", "ids"]
    cvid: str = ""
    criteria: str = ""
    ids: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> CampaignSource:
        if self.kind == "view" and not re.fullmatch(r"[0-9]{1,30}", self.cvid):
            raise ValueError("a view source needs cvid, the custom view's id (digits)")
        if self.kind == "coql" and not self.criteria.strip():
            raise ValueError("a coql source needs criteria, the query's WHERE clause")
        if self.kind == "coql" and len(self.criteria) > 2000:
            raise ValueError("the COQL criteria is longer than 2000 characters")
        if self.kind == "ids":
            if not self.ids:
                raise ValueError("an ids source needs at least one record id")
            if len(self.ids) > MAX_IDS:
                raise ValueError(f"an ids source takes at most {MAX_IDS} ids; use a view")
            if len(set(self.ids)) != len(self.ids):
                raise ValueError("the record ids repeat")
            bad = [i for i in self.ids if not re.fullmatch(r"[0-9]{1,30}", i)]
            if bad:
                raise ValueError(f"record ids are digits; not {bad[0]!r}")
        return self


class CampaignWindow(BaseModel):
    """When calls may be placed, on top of each person's calling hours: from ``start`` to
    ``end`` (ISO dates or datetimes; empty for unbounded), on ``weekdays`` (Monday = 0), between
    ``hours_start`` and ``hours_end``, local time in ``timezone``."""

    start: str = ""
    end: str = ""
    weekdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6])
    hours_start: str = "00:00"
    hours_end: str = "24:00"
    timezone: str = "UTC"

    @field_validator("hours_start", "hours_end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value) or (value.startswith("24") and value != "24:00"):
            raise ValueError(f"expected HH:MM, got {value!r}")
        return value

    @field_validator("weekdays")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if not value or any(not 0 <= day <= 6 for day in value):
            raise ValueError("weekdays are 0 (Monday) to 6, at least one")
        return sorted(set(value))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _order(self) -> CampaignWindow:
        start, end = self.start_at(), self.end_at()
        if start and end and start >= end:
            raise ValueError("the window's start is not before its end")
        if self.hours_start >= self.hours_end:
            raise ValueError("hours_start is not before hours_end")
        return self

    def start_at(self) -> datetime | None:
        """The window's start as an aware datetime (a date is its midnight in ``timezone``)."""
        return _moment(self.start, self.timezone)

    def end_at(self) -> datetime | None:
        """The window's end, exclusive (a date means the end of that day in ``timezone``)."""
        moment = _moment(self.end, self.timezone, end_of_day=True)
        return moment

    def hours(self) -> CallingHours:
        """The daily hours and weekdays as :class:`callflow.phone.CallingHours`."""
        return CallingHours.parse(self.hours_start, self.hours_end, frozenset(self.weekdays))


def _moment(value: str, zone: str, *, end_of_day: bool = False) -> datetime | None:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    if not value:
        return None
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        day = date.fromisoformat(value)
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo(zone))
        return midnight + timedelta(days=1) if end_of_day else midnight
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment


COUNTERS = (
    "records",
    "sessions",
    "skipped",
    "queued",
    "dialling",
    "in_call",
    "writing_back",
    "written_back",
    "writeback_failed",
    "reached",
    "not_reached",
    "failed",
    "cancelled",
)
"""Every counter of a campaign, all starting at 0 (see :mod:`callflow.campaigns.counters`)."""


class Campaign(BaseModel):
    """A campaign as stored (``pk = campaign#<id>``)."""

    campaign_id: str
    module: str
    source: CampaignSource
    window: CampaignWindow = Field(default_factory=CampaignWindow)
    max_concurrency: int = 10
    name: str = ""
    flow: str = ""
    """The flow every record is called with (:mod:`callflow.flows`); empty: the default flow."""
    state: CampaignState = CampaignState.RUNNING
    counters: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    enumeration: dict[str, Any] = Field(default_factory=dict)
    """The enumeration's cursor and totals (:mod:`callflow.campaigns.enumeration`)."""
    items_key: str = ""
    """The S3 key of the enumerated records, once written."""
    execution_arn: str = ""
    error: str = ""
    created_at: str = ""
    updated_at: str = ""
    finished_at: str = ""
    expires_at: int = 0

    @property
    def active(self) -> bool:
        """Whether the campaign may still place calls (running or paused)."""
        return self.state in (CampaignState.RUNNING, CampaignState.PAUSED)


def new_campaign_id() -> str:
    """A random campaign id: ``c`` and 16 hex digits."""
    return "c" + secrets.token_hex(8)


def campaign_session_id(campaign_id: str, record_id: str) -> str:
    """The session id of a record's call in a campaign: derived, not random, so a retried item
    (the Distributed Map retries a failed one) finds the session it made before instead of
    making a second, and the export finds every session from the items alone."""
    return hashlib.sha256(f"{campaign_id}#{record_id}".encode()).hexdigest()[:32]


def now_utc() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)

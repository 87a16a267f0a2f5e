"""What a flow file says: one call purpose's agent, variables, mapping, hours and retry policy.

Every model refuses keys it does not know (``extra="forbid"``): a misspelt key in a flow file is
an error at start-up, not a setting silently ignored. The file format is documented in
``docs/flows.md``; :mod:`callflow.flows.loading` reads the files and reports each mistake with
the file and line.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from callflow.config import DetectionFailedPolicy, MachinePolicy, OutsideHoursPolicy
from callflow.models import Outcome

FLOW_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""A flow's name: what a trigger sends in ``flow`` and what the session stores."""
_AGENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_HHMM = re.compile(r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
#: Weekday names a flow may use instead of numbers (Monday = 0, as ``datetime.weekday``).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

BUILTIN = "builtin"
"""Validation context key: the flow is the one built from the settings, whose agent id may be
empty (the configured ``CALLFLOW_ELEVENLABS_AGENT_ID`` is then used, as before flows)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Agent(_Strict):
    """The ElevenLabs agent the flow's calls talk to."""

    agent_id: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    """``conversation_config_override`` sent at initiation; each path must be enabled on the
    agent (``callflow setup`` and ``callflow doctor`` check)."""

    @field_validator("agent_id")
    @classmethod
    def _agent_id(cls, value: str, info: ValidationInfo) -> str:
        if not value and isinstance(info.context, dict) and info.context.get(BUILTIN):
            return value
        if not _AGENT_ID.match(value):
            raise ValueError("expected an ElevenLabs agent id (letters, digits, _ and -)")
        return value


class Hours(_Strict):
    """When the flow's calls may be placed, in the person's time zone."""

    start: str = "09:00"
    end: str = "20:00"
    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5]
    )
    """Weekdays, Monday = 0; names (``mon`` .. ``sun``) are accepted too."""
    outside: OutsideHoursPolicy = "wait"
    """A trigger outside the hours: ``wait`` for the next opening, or ``skip`` the call."""

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"expected a time HH:MM between 00:00 and 24:00, got {value!r}")
        return value

    @field_validator("days", mode="before")
    @classmethod
    def _day_names(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [
            WEEKDAYS.index(day.lower()[:3])
            if isinstance(day, str) and day.lower()[:3] in WEEKDAYS
            else day
            for day in value
        ]

    @field_validator("days")
    @classmethod
    def _some_day(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("at least one calling day is needed")
        return sorted(set(value))


class RetryRule(_Strict):
    """How often an outcome is tried in all, and how long to wait before the next try."""

    attempts: int = Field(ge=1, le=100)
    """Attempts in all (the first call included) while the calls keep ending this way."""
    delay_seconds: int = Field(default=1800, ge=0, le=7 * 24 * 3600)


class Retry(_Strict):
    """The retry policy per outcome; an outcome whose ``attempts`` is 1 is not retried."""

    no_answer: RetryRule = RetryRule(attempts=3)
    busy: RetryRule = RetryRule(attempts=3)
    voicemail: RetryRule = RetryRule(attempts=1)
    """A machine answered (detection on, policy ``hangup``)."""
    failed: RetryRule = RetryRule(attempts=1)
    """The call failed at Infobip (network, unreachable number)."""
    agent_unavailable: RetryRule = RetryRule(attempts=3)
    """Picked up, but the agent could not be reached: the person heard nobody."""

    def rule_for(self, outcome: Outcome) -> RetryRule | None:
        """The rule for ``outcome``; ``None`` for outcomes that are never retried."""
        return {
            Outcome.NO_ANSWER: self.no_answer,
            Outcome.BUSY: self.busy,
            Outcome.MACHINE: self.voicemail,
            Outcome.FAILED: self.failed,
            Outcome.AGENT_UNAVAILABLE: self.agent_unavailable,
        }.get(outcome)

    @property
    def most_attempts(self) -> int:
        """The most attempts any outcome allows: the session's bound on attempt numbers."""
        rules = (self.no_answer, self.busy, self.voicemail, self.failed, self.agent_unavailable)
        return max(rule.attempts for rule in rules)


VoicemailPolicy = Literal["hangup", "leave_message", "retry"]
"""What a flow does when detection says a machine answered (see :attr:`FlowFile.voicemail`)."""


class Machine(_Strict):
    """Answering-machine detection and what to do with a machine."""

    detection: bool = False
    policy: MachinePolicy = "hangup"
    """``hangup`` ends the call as ``machine``; ``continue`` connects the agent anyway."""
    detection_failed: DetectionFailedPolicy = "connect"


class OptOut(_Strict):
    """Where the flow's opt-outs are read and written (``ContactRules``)."""

    field: str = ""
    """The record's "never call" checkbox (API name): checked before every dial, set when the
    agent collects an opt-out; empty reads and sets none (the suppression list still applies)."""
    item: str = "opt_out"
    """The agent's data-collection item that carries an opt-out; empty looks for none."""

    @field_validator("field")
    @classmethod
    def _field(cls, value: str) -> str:
        value = value.strip()
        if value and not _FIELD_NAME.match(value):
            raise ValueError(f"{value!r} is not a Zoho field API name")
        return value

    @field_validator("item")
    @classmethod
    def _item(cls, value: str) -> str:
        return value.strip()


class Caps(_Strict):
    """The flow's frequency caps: dials per record and per number in a rolling window. The
    counters are shared by every flow (a dial counts once, whichever flow placed it); the flow
    sets the limit its own dials are held to."""

    per_record: int = Field(default=3, ge=0)
    """At most this many dials per CRM record in the window; 0 leaves the record cap out."""
    per_number: int = Field(default=3, ge=0)
    """At most this many dials per phone number (E.164) in the window; 0 leaves it out."""
    window_seconds: int = Field(default=24 * 3600, ge=0)


class Recording(_Strict):
    """Whether the flow's calls are recorded (both sides, attached to the record). Recording
    needs the deployment's recordings bucket (``CALLFLOW_RECORDING_BUCKET``); without one a flow
    asking for it records nothing. Consent to record is the operator's duty (README)."""

    enabled: bool = False
    max_seconds: int = Field(default=0, ge=0)
    """The longest recording kept; 0: the call's maximum duration."""


class Callback(_Strict):
    """The flow's callbacks: the agent's item that carries a callback time, how far ahead one
    may be, and whether each scheduled callback also creates a Zoho Task for the record's owner
    (README, *Callbacks*)."""

    item: str = "callback_at"
    """The data-collection item holding the time (ISO 8601); empty: no callbacks."""
    max_days: int = Field(default=30, ge=1)
    task: bool = False
    task_subject: str = ""
    """The Task's subject; empty: the deployment's ``CALLBACK_TASK_SUBJECT``."""

    @field_validator("item", "task_subject")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


class FlowFile(_Strict):
    """One flow file (``config/flows/<name>.yaml``)."""

    name: str
    """The flow's name; the file's stem when the file does not say."""
    agent: Agent
    variables: list[str] = Field(default_factory=lambda: ["First_Name", "Last_Name", "Company"])
    """Record fields read at trigger time and sent to the agent as dynamic variables."""
    phone_field: str = "Phone"
    phone_fields: list[str] = Field(default_factory=list)
    """The record's phone fields in the order they are tried (``[Phone, Mobile]``): the next
    one is dialled when a number is invalid, or unreachable once its retry rule is spent (no
    answer, busy, failed). Empty: ``phone_field`` alone."""
    timezone_field: str = ""
    mapping: list[dict[str, Any]] | str = ""
    """The field mapping: entries inline (the ``mappings:`` list of a mapping file), or the path
    of a mapping file (relative to the flow file); empty is the package's default mapping."""
    status_field: str = ""
    """The record field that receives the outcome; empty writes none."""
    outcomes: dict[Outcome, str] = Field(default_factory=dict)
    """Outcome -> the picklist value written to ``status_field``; an outcome not listed is
    written with its default label."""
    hours: Hours = Hours()
    retry: Retry = Retry()
    machine: Machine = Machine()
    caller_id: str = ""
    """The number calls come from (E.164); empty uses ``CALLFLOW_INFOBIP_FROM_NUMBER``."""
    optout: OptOut = OptOut()
    caps: Caps = Caps()
    recording: Recording = Recording()
    callback: Callback = Callback()
    voicemail: VoicemailPolicy | None = None
    """A machine answered (detection on): ``hangup`` ends the call, written back as voicemail
    (retried only as ``retry.voicemail`` says); ``leave_message`` connects the agent anyway,
    which receives the dynamic variable ``answered_by_machine`` = true
    (:data:`callflow.models.ANSWERED_BY_MACHINE`); ``retry`` hangs up and tries again as after
    no answer (``retry.no_answer``). Unset: ``machine.policy`` decides, as before flows
    (``hangup``, or ``continue`` = ``leave_message``)."""

    @property
    def voicemail_policy(self) -> VoicemailPolicy:
        """The flow's voicemail policy, ``machine.policy`` read when ``voicemail`` is unset."""
        if self.voicemail is not None:
            return self.voicemail
        return "leave_message" if self.machine.policy == "continue" else "hangup"

    def retry_rule(self, outcome: Outcome) -> RetryRule | None:
        """The retry rule for ``outcome`` in this flow: a machine follows the no-answer rule
        under ``voicemail: retry``, the voicemail rule otherwise."""
        if outcome is Outcome.MACHINE and self.voicemail_policy == "retry":
            return self.retry.no_answer
        return self.retry.rule_for(outcome)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not FLOW_NAME.match(value):
            raise ValueError("a flow name is lower-case letters, digits, _ and - (at most 64)")
        return value

    @field_validator("variables")
    @classmethod
    def _fields(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _FIELD_NAME.match(name):
                raise ValueError(f"{name!r} is not a Zoho field API name")
        return list(dict.fromkeys(value))

    @field_validator("phone_fields")
    @classmethod
    def _phone_fields(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _FIELD_NAME.match(name):
                raise ValueError(f"{name!r} is not a Zoho field API name")
        return list(dict.fromkeys(value))

    @property
    def phones(self) -> list[str]:
        """The phone fields in the order they are tried."""
        return self.phone_fields or [self.phone_field]

    @field_validator("phone_field", "timezone_field", "status_field")
    @classmethod
    def _field(cls, value: str) -> str:
        if value and not _FIELD_NAME.match(value):
            raise ValueError(f"{value!r} is not a Zoho field API name")
        return value

    @field_validator("caller_id")
    @classmethod
    def _caller_id(cls, value: str) -> str:
        digits = value.strip().removeprefix("+")
        if value and not (digits.isdigit() and 6 <= len(digits) <= 15):
            raise ValueError(f"{value!r} is not an international phone number")
        return value.strip()

"""The simulated phone network behind the Infobip stand-in: what each dialled number does.

Each E.164 number has a list of behaviours, one per call placed to it; the last one repeats, so
``[no_answer(), answer()]`` is "misses the first call, picks up every later one". Numbers without
a list use the network's default. Durations are in seconds of simulated time; the stand-in
multiplies them by its ``time_scale`` so tests can run a 40-second ring in a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from callflow.phone import mask

BehaviourKind = Literal["answer", "no_answer", "busy", "reject", "voicemail", "unreachable"]


@dataclass(frozen=True)
class Behaviour:
    """What one call to a number does: answer, fail in some way, or ring out."""

    kind: BehaviourKind
    after_s: float = 0.0
    """Ringing time before the phone is answered or the call refused."""
    hangup_after_s: float | None = None
    """For answered calls: the person (or the voicemail) hangs up this long after answering,
    unless the call ended before. None: stays on the line until hung up or max duration."""

    def __post_init__(self) -> None:
        if self.after_s < 0:
            raise ValueError("after_s cannot be negative")
        if self.hangup_after_s is not None and self.hangup_after_s < 0:
            raise ValueError("hangup_after_s cannot be negative")

    @property
    def picks_up(self) -> bool:
        """Whether the line answers (a person or a voicemail), if before the connect timeout."""
        return self.kind in ("answer", "voicemail")


def answer(after_s: float = 1.0, *, hangup_after_s: float | None = None) -> Behaviour:
    """The person picks up after ``after_s`` of ringing (HUMAN, if detection is on)."""
    return Behaviour("answer", after_s, hangup_after_s)


def no_answer(after_s: float | None = None) -> Behaviour:
    """Rings until the call's ``connectTimeout`` (or ``after_s`` when given, if shorter)."""
    return Behaviour("no_answer", after_s if after_s is not None else float("inf"))


def busy() -> Behaviour:
    """The line is busy: the call fails with BUSY without ringing."""
    return Behaviour("busy", 0.0)


def reject(after_s: float = 2.0) -> Behaviour:
    """Rings for ``after_s``, then the person declines: the call fails with REJECTED."""
    return Behaviour("reject", after_s)


def voicemail(after_s: float = 3.0, *, hangup_after_s: float | None = 30.0) -> Behaviour:
    """An answering machine: answers, and machine detection reports MACHINE."""
    return Behaviour("voicemail", after_s, hangup_after_s)


def unreachable() -> Behaviour:
    """The destination is unavailable: the call fails without ringing."""
    return Behaviour("unreachable", 0.0)


class PhoneNetwork:
    """Per-number behaviours and callee scripts, and how many calls each number has had."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self.default = default or answer()
        self._behaviours: dict[str, list[Behaviour]] = {}
        self._scripts: dict[str, object] = {}
        self._calls: dict[str, int] = {}

    def set_behaviour(self, number: str, behaviours: Sequence[Behaviour]) -> None:
        """Calls to ``number`` follow ``behaviours`` by its call count; the last one repeats."""
        if not behaviours:
            raise ValueError(f"no behaviours given for {mask(number)}")
        self._behaviours[_key(number)] = list(behaviours)

    def set_script(self, number: str, script: object) -> None:
        """The callee script (a :class:`callflow_dev.sandbox.media_leg.CalleeScript`) for when the
        call reaches the bridge; opaque here, handed to the media leg as it is."""
        self._scripts[_key(number)] = script

    def script_for(self, number: str) -> object | None:
        """The callee script set for ``number``, if any."""
        return self._scripts.get(_key(number))

    def next_behaviour(self, number: str) -> Behaviour:
        """The behaviour for a new call to ``number`` (counts the call)."""
        key = _key(number)
        index = self._calls.get(key, 0)
        self._calls[key] = index + 1
        behaviours = self._behaviours.get(key)
        if not behaviours:
            return self.default
        return behaviours[min(index, len(behaviours) - 1)]

    def calls_to(self, number: str) -> int:
        """How many calls have been placed to ``number`` so far."""
        return self._calls.get(_key(number), 0)


def _key(number: str) -> str:
    """Infobip's phoneNumber has no plus; the CRM side speaks E.164: both name the same line."""
    return number.strip().removeprefix("+")

"""The provider behaviours the project relies on without a source to confirm them, each judged
from what one real call showed.

README's "Provider behaviour we rely on" lists the same behaviours under the same titles (a test
keeps the two in step). Each judge reads the session as the status route shows it and answers
*held* (the call showed it), *not held* (the call showed otherwise: the setting to change is
named), or *not seen* (the call did not get far enough to tell).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from callflow.providers.infobip.events import TIMELINE_PREFIX

CADENCE_MS = (15.0, 25.0)
"""The median gap between two media frames that counts as one frame per 20 ms."""
ODD_SIZES_TOLERATED = 0.05
"""Share of frames of another size than 20 ms' worth that still counts as 20 ms frames."""


class Verdict(StrEnum):
    """What the call showed about one behaviour."""

    HELD = "held"
    NOT_HELD = "not held"
    NOT_SEEN = "not seen"


@dataclass(frozen=True)
class Observed:
    """One call as the status route showed it, with the settings it ran under."""

    view: Mapping[str, Any]
    phone_rate: int
    machine_detection: bool
    unmatched_media: Mapping[str, Any] | None = None
    """The shape of a media stream that named no session, kept by the bridge while this call
    ran (see :func:`unmatched_during`): a stream naming nothing cannot be put on the session."""

    @property
    def timeline(self) -> list[Mapping[str, Any]]:
        """The session's timeline entries (``at``, ``event``, ``detail``)."""
        entries = self.view.get("timeline")
        return [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []

    @property
    def events(self) -> list[tuple[str, Mapping[str, Any]]]:
        """The Infobip events the API received for the session, in order: (type, detail)."""
        found = []
        for entry in self.timeline:
            name = str(entry.get("event", ""))
            if name.startswith(TIMELINE_PREFIX):
                detail = entry.get("detail")
                found.append(
                    (name[len(TIMELINE_PREFIX) :], detail if isinstance(detail, Mapping) else {})
                )
        return found

    def entries(self, name: str) -> list[Mapping[str, Any]]:
        """The details of the timeline entries named ``name``."""
        details = []
        for entry in self.timeline:
            if entry.get("event") == name:
                detail = entry.get("detail")
                details.append(detail if isinstance(detail, Mapping) else {})
        return details

    @property
    def bridge(self) -> Mapping[str, Any]:
        """What the bridge recorded on the session."""
        value = self.view.get("bridge")
        return value if isinstance(value, Mapping) else {}

    @property
    def placed(self) -> bool:
        """Whether a call was placed at all."""
        return bool(self.view.get("call_id")) or bool(self.entries("call placed"))


Judge = Callable[[Observed], tuple[Verdict, str]]


@dataclass(frozen=True)
class Assumption:
    """One behaviour, how to tell it from a call, and what to change when it does not hold."""

    title: str
    judge: Judge
    setting: str
    """What the operator changes when it does not hold."""


def _identifiers(seen: Observed) -> tuple[Verdict, str]:
    admitted = seen.entries("media stream admitted")
    if admitted:
        where = admitted[0].get("ids_found_in") or seen.view.get("media_ids_found_in")
        return (
            Verdict.HELD,
            f"the bridge found them in: {where}" if where else "the bridge found them",
        )
    shape = seen.view.get("media_unmatched_frame") or seen.unmatched_media
    if shape:
        return (
            Verdict.NOT_HELD,
            f"the stream named no session the bridge could admit; it sent {shape}",
        )
    return Verdict.NOT_SEEN, "no media stream reached the bridge"


def _frame_sizes(seen: Observed) -> tuple[Verdict, str]:
    frames = seen.bridge.get("phone_frames")
    if not isinstance(frames, Mapping) or not frames.get("frames"):
        return Verdict.NOT_SEEN, "no audio frame reached the bridge"
    expected = seen.phone_rate * 2 // 50
    sizes = {int(size): int(count) for size, count in dict(frames.get("sizes", {})).items()}
    total = int(frames["frames"])
    right = sizes.get(expected, 0)
    shown = ", ".join(f"{count} of {size} B" for size, count in sorted(sizes.items()))
    if total - right <= ODD_SIZES_TOLERATED * total:
        return (
            Verdict.HELD,
            f"{total} frames, {shown} ({expected} B is 20 ms at {seen.phone_rate} Hz)",
        )
    common = max(sizes, key=lambda size: sizes[size]) if sizes else 0
    return (
        Verdict.NOT_HELD,
        f"{shown}; 20 ms at {seen.phone_rate} Hz is {expected} B; {common} B would be 20 ms at "
        f"{common * 25} Hz",
    )


def _cadence(seen: Observed) -> tuple[Verdict, str]:
    frames = seen.bridge.get("phone_frames")
    gaps = frames.get("interval_ms") if isinstance(frames, Mapping) else None
    median = gaps.get("p50") if isinstance(gaps, Mapping) else None
    if not isinstance(median, (int, float)):
        return Verdict.NOT_SEEN, "too few audio frames to tell"
    assert isinstance(gaps, Mapping)
    text = f"a frame every {median} ms (p95 {gaps.get('p95')} ms, longest gap {gaps.get('max')} ms)"
    low, high = CADENCE_MS
    return (Verdict.HELD if low <= median <= high else Verdict.NOT_HELD), text


def _events(seen: Observed) -> tuple[Verdict, str]:
    if not seen.placed:
        return Verdict.NOT_SEEN, "no call was placed"
    types = [kind for kind, _ in seen.events]
    if not types:
        return (
            Verdict.NOT_HELD,
            "no Infobip event reached the API for this call (the workflow found its end by asking "
            "Infobip, if at all)",
        )
    ended = {"CALL_FINISHED", "CALL_FAILED"} & set(types)
    answered = bool(seen.view.get("call_answered_at"))
    missing = [] if ended else ["CALL_FINISHED or CALL_FAILED"]
    if answered and "CALL_ESTABLISHED" not in types:
        missing.append("CALL_ESTABLISHED")
    order = " > ".join(types)
    if missing:
        return Verdict.NOT_HELD, f"received {order}; missing {', '.join(missing)}"
    return Verdict.HELD, f"received {order}"


def _legs(seen: Observed) -> tuple[Verdict, str]:
    phone_call = str(seen.view.get("call_id", ""))
    others = sorted(
        {
            str(d.get("call_id"))
            for _, d in seen.events
            if d.get("call_id") not in ("", None, phone_call)
        }
    )
    if not others:
        return Verdict.NOT_SEEN, "only the phone call's events arrived"
    return Verdict.HELD, f"events of {len(others)} other leg(s) arrived, told apart by call id"


def _machine_detection(seen: Observed) -> tuple[Verdict, str]:
    if not seen.machine_detection:
        return Verdict.NOT_SEEN, "machine detection is off"
    types = {kind for kind, _ in seen.events}
    verdicts = types & {"MACHINE_DETECTION_FINISHED", "MACHINE_DETECTION_FAILED"}
    if verdicts:
        return Verdict.HELD, f"received {', '.join(sorted(verdicts))}"
    if "CALL_ESTABLISHED" in types:
        return Verdict.NOT_HELD, "the call was answered but no detection verdict arrived"
    return Verdict.NOT_SEEN, "the call was not answered"


def _call_log(seen: Observed) -> tuple[Verdict, str]:
    receipt = seen.view.get("writeback")
    receipt = receipt if isinstance(receipt, Mapping) else {}
    if receipt.get("call_log_id"):
        return Verdict.HELD, f"Zoho logged the call ({receipt['call_log_id']})"
    if receipt.get("call_log_sent"):
        return Verdict.NOT_HELD, f"Zoho refused the call log: {receipt.get('error', 'no answer')}"
    return Verdict.NOT_SEEN, "no call was logged (only answered calls are)"


def _post_call_webhook(seen: Observed) -> tuple[Verdict, str]:
    collected = seen.entries("results collected")
    if not collected:
        return Verdict.NOT_SEEN, "no agent results were collected"
    source = collected[0].get("source")
    if source == "webhook":
        return Verdict.HELD, "the results came by the post-call webhook"
    return Verdict.NOT_HELD, f"the results came by {source or 'another way'}, not by the webhook"


def _agent_formats(seen: Observed) -> tuple[Verdict, str]:
    formats = seen.bridge.get("formats")
    if not isinstance(formats, Mapping) or not formats:
        return Verdict.NOT_SEEN, "the agent's conversation did not start"
    text = (
        f"phone {formats.get('phone')}, agent in {formats.get('agent_input')}, "
        f"out {formats.get('agent_output')}"
    )
    return Verdict.HELD, text + (" (the bridge converts)" if formats.get("converting") else "")


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "The media stream carries the session's identifiers",
        _identifiers,
        "CALLFLOW_INFOBIP_MEDIA_ROUTING=per-session (a media-stream config per call)",
    ),
    Assumption(
        "Media audio is 20 ms frames of 16-bit PCM at the configured rate",
        _frame_sizes,
        "CALLFLOW_INFOBIP_SAMPLE_RATE to the rate Infobip sends, then `callflow setup infobip`",
    ),
    Assumption(
        "Media frames arrive at real time, one every 20 ms",
        _cadence,
        "none: the bridge paces by Infobip's stream; report the figures",
    ),
    Assumption(
        "Infobip delivers the call's events with its customData",
        _events,
        "`callflow setup infobip` (subscription, calls configuration, events URL)",
    ),
    Assumption(
        "The WebSocket leg's events are told apart by call id",
        _legs,
        "none: only the phone call's events decide the outcome",
    ),
    Assumption(
        "Machine detection answers with a verdict event",
        _machine_detection,
        "CALLFLOW_INFOBIP_MACHINE_DETECTION=false",
    ),
    Assumption(
        "Zoho takes the call log as the writeback sends it",
        _call_log,
        "CALLFLOW_ZOHO_LOG_CALLS=false, and report the error",
    ),
    Assumption(
        "ElevenLabs delivers the post-call webhook",
        _post_call_webhook,
        "`callflow setup elevenlabs` (webhook URL, HMAC secret, enabled); polling stays the "
        "fallback",
    ),
    Assumption(
        "The agent's audio formats are the agent's, not the call's",
        _agent_formats,
        "the agent's ASR input and TTS output formats (`callflow setup elevenlabs` says which)",
    ),
)


def unmatched_during(
    view: Mapping[str, Any], kept: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The bridge's last unmatched stream (``{"shape", "at"}``, as the store keeps it) when it
    arrived during the session's life, else ``None``."""
    timeline = view.get("timeline")
    if not kept or not isinstance(timeline, list) or not timeline:
        return None
    first, last = timeline[0], timeline[-1]
    at = str(kept.get("at", ""))
    inside = (
        str(first.get("at", "")) <= at <= str(last.get("at", ""))
        if isinstance(first, Mapping) and isinstance(last, Mapping)
        else False
    )
    shape = kept.get("shape")
    return shape if inside and isinstance(shape, Mapping) else None


def judge_all(seen: Observed) -> list[tuple[Assumption, Verdict, str]]:
    """Every assumption with its verdict and the evidence for it."""
    return [(assumption, *assumption.judge(seen)) for assumption in ASSUMPTIONS]

"""``callflow doctor --test-call +NUMBER --record MODULE/ID``: one real call, reported.

The call goes through the deployment exactly as a Zoho workflow would start it (the trigger
webhook with the record), so it exercises every provider for real: it is placed only when the
record's phone is the number the operator gave, which must be one they own. While it runs, the
session's timeline is printed as it grows; when it has ended, the report says what really
happened (the Infobip events as received, what the media stream sent, the agent's formats, the
outcome and the writeback) and judges each of README's "Provider behaviour we rely on".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import httpx

from callflow.config import Settings
from callflow.masking import mask
from callflow.phone import InvalidPhone, normalise
from callflow.providers.infobip.events import TIMELINE_PREFIX
from callflow_dev.doctor.assumptions import Observed, Verdict, judge_all, unmatched_during
from callflow_dev.provisioning import api_base_url

ENDED = frozenset({"completed", "writeback_failed"})


class TrialRefused(ValueError):
    """The test call is not placed; the message says why, in a sentence."""


@dataclass(frozen=True)
class TrialOptions:
    """The number to call, the record that has it, where the deployment is, how long to wait."""

    api_url: str
    number: str
    record: str
    """``MODULE/ID`` of a record whose phone field holds :attr:`number`."""
    timeout_s: float = 900.0
    poll_s: float = 1.0


def the_record(record: str) -> tuple[str, str]:
    """``MODULE/ID`` -> (module, id); :class:`TrialRefused` for anything else."""
    module, _, record_id = record.partition("/")
    if not module or not record_id.isdigit():
        raise TrialRefused(
            f"give the record as MODULE/ID, e.g. Leads/4150868000000224005: {record!r}"
        )
    return module, record_id


def check_own_number(settings: Settings, number: str, record_phone: str) -> str:
    """The number in E.164 when the record's phone is that number; :class:`TrialRefused`
    otherwise, so the test call never rings anyone but the operator."""
    region = settings.default_phone_region
    try:
        wanted = normalise(number, region).e164
    except InvalidPhone as error:
        raise TrialRefused(f"{mask(number)} is not a phone number: {error}") from None
    try:
        have = normalise(record_phone, region).e164 if record_phone else ""
    except InvalidPhone:
        have = ""
    if have != wanted:
        shown = mask(have or record_phone) if (have or record_phone) else "empty"
        raise TrialRefused(
            f"the record's {settings.zoho_phone_field} is {shown}, not {mask(wanted)}: the test "
            "call only dials a record that holds the number you gave (put your own number on a "
            "test record)"
        )
    return wanted


def place_trial_call(
    settings: Settings,
    options: TrialOptions,
    *,
    read_phone: Callable[[str, str], str],
    http: httpx.Client,
    out: TextIO,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Trigger the call, follow the session until its writeback has ended, return the session
    as the status route shows it. :class:`TrialRefused` before anything is dialled when the
    record does not hold the number, or the trigger is refused; ``TimeoutError`` when the
    session has not ended within the timeout (the call goes on without us)."""
    module, record_id = the_record(options.record)
    check_own_number(settings, options.number, read_phone(module, record_id))
    base = api_base_url(options.api_url)
    response = http.post(
        f"{base}/webhooks/zoho",
        json={"module": module, "record_id": record_id},
        headers={"X-Callflow-Secret": settings.zoho_trigger_secret.get_secret_value()},
        timeout=30.0,
    )
    body = _json(response)
    if response.status_code != 202:
        detail = body.get("detail", response.text[:200])
        raise TrialRefused(f"the trigger answered {response.status_code}: {detail}")
    session_id = str(body["session_id"])
    print(f"Test call: session {session_id}, {module}/{record_id}", file=out)
    headers = {"Authorization": f"Bearer {settings.status_api_token.get_secret_value()}"}
    deadline = clock() + options.timeout_s
    shown = 0
    while True:
        status = http.get(f"{base}/sessions/{session_id}", headers=headers, timeout=30.0)
        if status.status_code == 200:
            view = _json(status)
            timeline = view.get("timeline") or []
            for entry in timeline[shown:]:
                print(_timeline_line(timeline[0], entry), file=out)
            shown = len(timeline)
            if view.get("status") in ENDED:
                return view
        if clock() > deadline:
            raise TimeoutError(
                f"session {session_id} has not ended after {options.timeout_s:.0f} s; "
                f"`callflow status {session_id}` shows it later"
            )
        sleep(options.poll_s)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _seconds_between(first: Mapping[str, Any], entry: Mapping[str, Any]) -> float:
    try:
        start = datetime.fromisoformat(str(first.get("at")))
        at = datetime.fromisoformat(str(entry.get("at")))
    except ValueError:
        return 0.0
    return (at - start).total_seconds()


def _timeline_line(first: Mapping[str, Any], entry: Mapping[str, Any]) -> str:
    detail = entry.get("detail") if isinstance(entry.get("detail"), Mapping) else {}
    assert isinstance(detail, Mapping)
    shown = ", ".join(f"{k}={v}" for k, v in detail.items() if v not in ("", None, [], {}))
    return f"  +{_seconds_between(first, entry):7.2f} s  {entry.get('event')}" + (
        f"  ({shown})" if shown else ""
    )


def report_trial(
    view: Mapping[str, Any],
    settings: Settings,
    out: TextIO,
    unmatched_media: Mapping[str, Any] | None = None,
) -> int:
    """Print what the call showed; the number of behaviours that did not hold.
    ``unmatched_media``: the bridge's last stream that named no session (``shape``, ``at``)."""
    seen = Observed(
        view,
        settings.infobip_sample_rate,
        settings.infobip_machine_detection,
        unmatched_during(view, unmatched_media),
    )
    timeline = seen.timeline
    phone_call = str(view.get("call_id", ""))
    print("Infobip events, as the API received them", file=out)
    if not seen.events:
        print("  none", file=out)
    for entry in timeline:
        name = str(entry.get("event", ""))
        if not name.startswith(TIMELINE_PREFIX):
            continue
        detail = entry.get("detail") if isinstance(entry.get("detail"), Mapping) else {}
        assert isinstance(detail, Mapping)
        if detail.get("call_id") == phone_call:
            leg = "phone leg"
        elif detail.get("parent_call_id"):
            leg = f"child leg {detail.get('call_id')} of {detail.get('parent_call_id')}"
        else:
            leg = f"leg {detail.get('call_id')}"
        shown = ("state", "error", "reason", "timestamp")
        extra = ", ".join(f"{key} {detail[key]}" for key in shown if detail.get(key))
        print(
            f"  +{_seconds_between(timeline[0], entry):7.2f} s  {name[len(TIMELINE_PREFIX) :]:<28}"
            f" {leg}" + (f"  ({extra})" if extra else ""),
            file=out,
        )
    bridge = seen.bridge
    frames = bridge.get("phone_frames") if isinstance(bridge.get("phone_frames"), Mapping) else {}
    assert isinstance(frames, Mapping)
    print("Media stream", file=out)
    admitted = seen.entries("media stream admitted")
    if admitted:
        print(f"  admitted: {dict(admitted[0]) or 'yes'}", file=out)
    if seen.view.get("media_ids_found_in"):
        print(f"  identifiers found in: {seen.view['media_ids_found_in']}", file=out)
    if seen.view.get("media_first_frame"):
        print(f"  first frame (values redacted): {seen.view['media_first_frame']}", file=out)
    if seen.view.get("media_unmatched_frame") or seen.unmatched_media:
        shape = seen.view.get("media_unmatched_frame") or seen.unmatched_media
        print(f"  a stream named no session the bridge could admit; it sent: {shape}", file=out)
    if frames:
        print(
            f"  {frames.get('frames')} audio frames, sizes {frames.get('sizes')}, gaps "
            f"{frames.get('interval_ms')}, text events {frames.get('text_events') or 'none'}",
            file=out,
        )
    if bridge.get("end_reason"):
        print(
            f"  ended: {bridge.get('end_reason')} {bridge.get('end_detail', '')}".rstrip(), file=out
        )
    print("Agent", file=out)
    connected = seen.entries("agent connected")
    if connected:
        print(f"  {dict(connected[0])}", file=out)
    else:
        print("  no conversation started", file=out)
    print("Outcome and writeback", file=out)
    print(
        f"  {view.get('status')}: {view.get('outcome')} - {view.get('outcome_detail') or ''}",
        file=out,
    )
    receipt = view.get("writeback") if isinstance(view.get("writeback"), Mapping) else {}
    assert isinstance(receipt, Mapping)
    for key in ("fields", "problems", "note_id", "call_log_id", "error"):
        if receipt.get(key):
            print(f"  {key}: {receipt[key]}", file=out)
    print("Provider behaviour we rely on", file=out)
    not_held = 0
    for assumption, verdict, evidence in judge_all(seen):
        print(f"  {verdict.value:<9} {assumption.title}: {evidence}", file=out)
        if verdict is Verdict.NOT_HELD:
            not_held += 1
            print(f"            change: {assumption.setting}", file=out)
    return not_held

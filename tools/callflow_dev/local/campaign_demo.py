"""``make demo SCENARIO=campaign``: a campaign over a Zoho custom view of twenty leads.

The leads are seeded in the Zoho stand-in and shown by a custom view; the campaign is started
through the API as an operator (or the Zoho button) would, ``POST /campaigns`` with the view's
``cvid``. Its state machine enumerates the view into S3 and runs the call workflow once per
lead in a Distributed Map (six records in progress at once); admission keeps the live calls at
four.

The ElevenLabs stand-in allows four concurrent conversations, as the Free plan does, and refuses
a fifth the way ElevenLabs does (an error, then close 1008): a person who answered would hear
nobody. Admission is set to the same four. The leads' phones behave in a mix (most answer, some
only on the second attempt, some are busy or decline, one number does not validate), a live
progress bar follows them, and the end lists each record's outcome.

It exits 0 only when the agent refused no call, never more than four were live at once, and
every record was written back. Its last line is a JSON object with those figures.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx

from callflow.campaigns.model import campaign_session_id
from callflow.models import Session, SessionStatus
from callflow.phone import mask
from callflow.services import get_services
from callflow_dev.local.demo import Scenario, seed_scenario
from callflow_dev.local.stack import LocalStack, StackOptions

CAP = 4
RECORDS = 20
MAX_CONCURRENCY = 6
"""Records in progress at once (the Map's MaxConcurrency): 1.5 x the cap keeps the pool full
while calls end and the next ones are opened (docs/operations.md, Campaigns)."""
FIRST_NAMES = (
    "Maria", "James", "Aiko", "Omar", "Lena", "Carlos", "Priya", "Tom", "Fatima", "Jonas",
    "Mei", "Diego", "Sara", "Ivan", "Noor", "Eric", "Ana", "Kofi", "Lucia", "Ben",
)  # fmt: skip
TERMINAL = frozenset({SessionStatus.COMPLETED, SessionStatus.WRITEBACK_FAILED})


@dataclass(frozen=True)
class Lead:
    """One lead of the campaign: who, their number, how their phone behaves per attempt."""

    name: str
    phone: str
    behaviour: str


def leads() -> list[Lead]:
    """Twenty leads with a mix of answer behaviours; the same every run."""
    kinds = ["answer"] * 12 + ["no_answer_then_answer"] * 3 + ["busy"] * 2 + ["reject"] * 2
    kinds.append("invalid")
    result = []
    for index, (name, kind) in enumerate(zip(FIRST_NAMES, kinds, strict=True)):
        phone = "555-01" if kind == "invalid" else f"(415) 555-{7100 + index}"
        result.append(Lead(name, phone, kind))
    return result


def _behaviours(kind: str) -> list[Any]:
    from callflow_dev.sandbox import phone_network as net

    return {
        "answer": [net.answer(after_s=1.5)],
        "no_answer_then_answer": [net.no_answer(after_s=3), net.answer(after_s=1)],
        "busy": [net.busy()],
        "reject": [net.reject(after_s=2)],
        "invalid": [net.answer(after_s=1)],
    }[kind]


def run_campaign_demo(*, quiet: bool = False) -> int:
    """Run the campaign on a fresh embedded stack; the exit status (see the module docstring)."""
    options = StackOptions(
        agent_concurrency=CAP, brief_clips_ms=900, max_attempts=2, retry_delay_seconds=3
    )

    def say(text: str) -> None:
        if not quiet:
            print(text, flush=True)

    say("Starting the embedded stack (moto, the API, the bridge, the stand-ins)...")
    started = time.monotonic()
    with LocalStack(options) as stack:
        say(f"The agent stand-in allows {CAP} concurrent conversations; so does admission.")
        records = {}
        for lead in leads():
            scenario = Scenario(
                "campaign", "", functools.partial(_behaviours, lead.behaviour), phone=lead.phone
            )
            record_id = seed_scenario(stack, scenario)
            stack.zoho.records["Leads"][record_id]["First_Name"] = lead.name
            records[record_id] = lead
        ids = set(records)
        cvid = stack.zoho.add_view("Leads", lambda record: record["id"] in ids)
        say(f"{len(records)} leads seeded, shown by the custom view {cvid}; starting the campaign.")
        campaign_id = _start(stack, cvid)
        say(f"Campaign {campaign_id}: enumerating the view, then {MAX_CONCURRENCY} at a time.")
        sessions = {r: campaign_session_id(campaign_id, r) for r in records}
        _follow(stack, campaign_id, sessions, quiet)
        ended = {record_id: _session(s) for record_id, s in sessions.items()}
        shown = _status(stack, campaign_id)
        if not quiet:
            _print_outcomes(records, ended)
            counted = {k: v for k, v in shown["counters"].items() if v}
            print(f"  campaign {shown['state']}: {json.dumps(counted)}", flush=True)
        summary = {
            "records": len(records),
            "written_back": sum(
                s is not None and s.status is SessionStatus.COMPLETED for s in ended.values()
            ),
            "refused_by_agent": len(stack.elevenlabs.refused),
            "max_live_calls": stack.elevenlabs.peak_active,
            "cap": CAP,
            "duration_s": round(time.monotonic() - started, 1),
        }
    passed = (
        summary["refused_by_agent"] == 0
        and summary["max_live_calls"] <= CAP
        and summary["written_back"] == summary["records"]
    )
    print(json.dumps(summary), flush=True)
    return 0 if passed else 1


def _session(session_id: str) -> Session | None:
    """The session, or ``None`` while the Map has not opened its record yet."""
    return get_services().store.get(session_id)


def _auth(stack: LocalStack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.secrets['status_api_token']}"}


def _start(stack: LocalStack, cvid: str) -> str:
    """Start the campaign over the view through the API, as a user would; its id."""
    body = {
        "module": "Leads",
        "source": {"view": cvid},
        "max_concurrency": MAX_CONCURRENCY,
        "name": "make demo SCENARIO=campaign",
    }
    answer = httpx.post(f"{stack.api_url}/campaigns", json=body, headers=_auth(stack), timeout=30)
    if answer.status_code != 202:
        raise RuntimeError(f"the campaign was refused: {answer.status_code} {answer.text}")
    return str(answer.json()["campaign_id"])


def _status(stack: LocalStack, campaign_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{stack.api_url}/campaigns/{campaign_id}", headers=_auth(stack), timeout=30)
    answer.raise_for_status()
    shown: dict[str, Any] = answer.json()
    return shown


def _follow(stack: LocalStack, campaign_id: str, sessions: dict[str, str], quiet: bool) -> None:
    """A live progress bar until the campaign's execution has ended (or 10 minutes passed)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    assert stack.aws is not None
    columns = (
        TextColumn("[bold]written back"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[phases]}"),
        TimeElapsedColumn(),
    )
    deadline = time.monotonic() + 600
    with Progress(*columns, disable=quiet) as progress:
        task = progress.add_task("campaign", total=len(sessions), phases="")
        while time.monotonic() < deadline:
            current = [_session(s) for s in sessions.values()]
            done = sum(s is not None and s.status in TERMINAL for s in current)
            phases = Counter(
                "not opened" if s is None else _phase(s)
                for s in current
                if s is None or s.status not in TERMINAL
            )
            shown = "  ".join(f"{name} {n}" for name, n in sorted(phases.items()))
            live = f"live {stack.elevenlabs.active}/{CAP} (peak {stack.elevenlabs.peak_active})"
            progress.update(task, completed=done, phases=f"{live}  {shown}")
            if stack.aws.campaign_execution(campaign_id)["status"] != "RUNNING":
                return
            time.sleep(0.25)


def _phase(session: Session) -> str:
    if session.status in (SessionStatus.DIALING, SessionStatus.RINGING):
        return "dialling"
    if session.status is SessionStatus.IN_CALL:
        return "in call"
    if session.status in (SessionStatus.COLLECTING, SessionStatus.WRITING_BACK):
        return "writing back"
    return session.status.value


def _print_outcomes(records: dict[str, Lead], ended: dict[str, Session | None]) -> None:
    print("")
    print(f"  {'lead':<8} {'phone':<16} {'outcome':<16} {'attempts':>8} {'talked':>7}  waited")
    for record_id, lead in records.items():
        session = ended[record_id]
        if session is None:
            print(f"  {lead.name:<8} {mask(lead.phone):<16} {'not called':<16}")
            continue
        waited = [e for e in session.timeline if e.event == "admitted" and "waited_s" in e.detail]
        wait = f"{waited[-1].detail['waited_s']:.1f} s queued" if waited else "-"
        outcome = session.outcome.value if session.outcome else "-"
        status = "" if session.status is SessionStatus.COMPLETED else f" ({session.status.value})"
        print(
            f"  {lead.name:<8} {mask(lead.phone):<16} {outcome + status:<16}"
            f" {session.attempt:>8} {session.call_duration:>6}s  {wait}"
        )
    print("")

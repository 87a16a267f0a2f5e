"""``make demo SCENARIO=campaign``: twenty leads called through admission, four at a time.

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
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from callflow.models import Session, SessionStatus
from callflow.phone import mask
from callflow_dev.local.demo import Scenario, seed_scenario
from callflow_dev.local.stack import LocalStack, StackOptions

CAP = 4
RECORDS = 20
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
        say(f"{len(records)} leads seeded; starting them all at once.")
        sessions = _start(stack, list(records))
        _follow(stack, sessions, quiet)
        ended = {record_id: stack.session(s) for record_id, s in sessions.items()}
        if not quiet:
            _print_outcomes(records, ended)
        summary = {
            "records": len(records),
            "written_back": sum(s.status is SessionStatus.COMPLETED for s in ended.values()),
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


def _start(stack: LocalStack, record_ids: list[str]) -> dict[str, str]:
    """Trigger every record at once, as a mass update in Zoho fires its workflow rule for each;
    record id -> session id."""
    sessions: dict[str, str] = {}
    failures: list[str] = []

    def one(record_id: str) -> None:
        response = stack.trigger("Leads", record_id)
        if response.status_code == 202:
            sessions[record_id] = response.json()["session_id"]
        else:
            failures.append(f"{record_id}: {response.status_code} {response.text}")

    threads = [threading.Thread(target=one, args=(r,)) for r in record_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError("triggers refused: " + "; ".join(failures))
    return sessions


def _follow(stack: LocalStack, sessions: dict[str, str], quiet: bool) -> None:
    """A live progress bar until every session has ended (or 10 minutes have passed)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

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
            current = [stack.session(s) for s in sessions.values()]
            done = sum(s.status in TERMINAL for s in current)
            phases = Counter(_phase(s) for s in current if s.status not in TERMINAL)
            shown = "  ".join(f"{name} {n}" for name, n in sorted(phases.items()))
            live = f"live {stack.elevenlabs.active}/{CAP} (peak {stack.elevenlabs.peak_active})"
            progress.update(task, completed=done, phases=f"{live}  {shown}")
            if done == len(current):
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


def _print_outcomes(records: dict[str, Lead], ended: dict[str, Session]) -> None:
    print("")
    print(f"  {'lead':<8} {'phone':<16} {'outcome':<16} {'attempts':>8} {'talked':>7}  waited")
    for record_id, lead in records.items():
        session = ended[record_id]
        waited = [e for e in session.timeline if e.event == "admitted" and "waited_s" in e.detail]
        wait = f"{waited[-1].detail['waited_s']:.1f} s queued" if waited else "-"
        outcome = session.outcome.value if session.outcome else "-"
        status = "" if session.status is SessionStatus.COMPLETED else f" ({session.status.value})"
        print(
            f"  {lead.name:<8} {mask(lead.phone):<16} {outcome + status:<16}"
            f" {session.attempt:>8} {session.call_duration:>6}s  {wait}"
        )
    print("")

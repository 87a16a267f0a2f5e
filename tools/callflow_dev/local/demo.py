"""``callflow demo``: one whole call on the embedded default, shown as it happens.

A CRM record is seeded in the Zoho stand-in; the Zoho workflow's webhook call is made to the API;
the workflow runs in moto; the Infobip stand-in rings the simulated person, who answers and
speaks recorded clips in real time; the bridge relays the audio to the scripted ElevenLabs agent;
the analysis is collected and written back. The timeline is printed live, then the record
before and after; the call's audio is saved as a stereo WAV (caller left, agent right).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from callflow.models import Outcome, Session, SessionStatus
from callflow.providers.infobip.events import TIMELINE_PREFIX
from callflow.services import get_services
from callflow_dev.local.stack import LocalStack, StackOptions

PERSON = {
    "First_Name": "Maria",
    "Last_Name": "Garcia",
    "Company": "Garcia Bakery",
    "Phone": "(415) 555-2671",
    "Email": "maria@garcia-bakery.example",
    "Lead_Status": "Not Contacted",
}
SHOWN_FIELDS = [
    "First_Name",
    "Last_Name",
    "Phone",
    "Lead_Status",
    "Interested",
    "Do_Not_Call",
    "Monthly_Bill",
    "Site_Visit_Date",
    "Amount_Due",
    "Paid",
    "Reminder_Status",
]


@dataclass(frozen=True)
class Scenario:
    """A named demo run: what the phone network does per attempt, the stack, the person's part."""

    name: str
    description: str
    behaviours: Callable[[], list[Any]]
    options: StackOptions = field(default_factory=StackOptions)
    phone: str = PERSON["Phone"]
    interrupting: bool = False
    opting_out: bool = False
    """The person asks not to be called again; the record is then triggered a second time,
    which must end ``suppressed`` without a dial."""
    flow: str = ""
    """The flow the trigger names (``""``: the default flow)."""
    calling_back: bool = False
    """The person asks to be called back; the callback's call is followed to its end."""


def _scenarios() -> dict[str, Scenario]:
    from callflow_dev.sandbox import phone_network as net

    return {
        "answered": Scenario(
            "answered",
            "Maria answers, talks to the agent, and books a site visit; the call is recorded "
            "and its WAV attached to the record.",
            lambda: [net.answer(after_s=2)],
            StackOptions(recording=True),
        ),
        "retry": Scenario(
            "retry",
            "No answer on the first attempt; the workflow retries and Maria picks up.",
            lambda: [net.no_answer(after_s=3), net.answer(after_s=2)],
        ),
        "busy": Scenario(
            "busy",
            "The line is busy on every attempt; 'could not reach' is written back.",
            lambda: [net.busy()],
            StackOptions(max_attempts=3),
        ),
        "voicemail": Scenario(
            "voicemail",
            "Voicemail answers; machine detection hangs up and the outcome is written back.",
            lambda: [net.voicemail(after_s=2)],
            StackOptions(machine_detection=True),
        ),
        "invalid": Scenario(
            "invalid",
            "The record's phone number does not validate; the reason is written back.",
            lambda: [net.answer(after_s=2)],
            phone="555-01",
        ),
        "interrupt": Scenario(
            "interrupt",
            "Maria talks over the agent's question; the agent stops, then asks again.",
            lambda: [net.answer(after_s=2)],
            interrupting=True,
        ),
        "optout": Scenario(
            "optout",
            "Maria asks not to be called again: the record's Do_Not_Call is ticked, the number "
            "suppressed, and a second trigger ends 'suppressed' without dialling.",
            lambda: [net.answer(after_s=2)],
            optout_options(),
            opting_out=True,
        ),
        "reminder": Scenario(
            "reminder",
            "A second flow: the trigger names 'reminder'; its own agent reminds Maria of the "
            "amount due, and its mapping writes Paid and Reminder_Status.",
            lambda: [net.answer(after_s=2)],
            reminder_options(),
            flow=REMINDER_FLOW,
        ),
        "callback": Scenario(
            "callback",
            "Maria asks to be called back tomorrow at ten: the call is scheduled (the demo's "
            "wait is shortened to 5 s), placed again, and the record shows both calls.",
            lambda: [net.answer(after_s=2)],
            callback_options(),
            calling_back=True,
        ),
    }


REMINDER_FLOW = "reminder"
REMINDER_AGENT_ID = "agent_local_reminder"
"""The reminder flow's agent (``demo_flows/reminder.yaml``), a second stand-in agent."""
REMINDER_FIELDS = {"Amount_Due": 120.5}


def reminder_options(**overrides: Any) -> StackOptions:
    """The stack of the reminder scenario: the flow files of ``demo_flows/`` and a second
    stand-in agent with the reminder's script, greeting and required variables."""
    from callflow_dev.sandbox.agent import AgentConfig, AgentLine, reminder_steps
    from callflow_dev.sandbox.elevenlabs import DEFAULT_DATA_COLLECTION, DataItem

    agent = AgentConfig(
        agent_id=REMINDER_AGENT_ID,
        required_variables=("first_name", "amount_due"),
        greeting=AgentLine(
            "Hi {{first_name}}, this is Sam from Acme Solar billing, about your payment of "
            "{{amount_due}} dollars. Is now a good time?",
            "agent_greeting",
        ),
        steps=reminder_steps(),
    )
    items = {
        **DEFAULT_DATA_COLLECTION,
        "paid": DataItem("boolean", "True when the person says the payment is made."),
    }
    flows = Path(__file__).resolve().parent / "demo_flows"
    return StackOptions(
        other_agents=(agent,),
        agent_data_collection=items,
        extra_env={"CALLFLOW_FLOWS_DIR": str(flows)},
        **overrides,
    )


def callback_options(**overrides: Any) -> StackOptions:
    """The stack of the callback scenario: the agent collects ``callback_at``, a callback waits
    at most 5 s (``CALLFLOW_CALLBACK_MAX_WAIT_SECONDS``: the demo's shortened wait), and a record
    may be dialled twice a day (the stand-in agent follows one script, so the callback's call
    asks for a callback again: the cap ends that third one ``capped``)."""
    from callflow_dev.sandbox.agent import callback_steps
    from callflow_dev.sandbox.elevenlabs import DEFAULT_DATA_COLLECTION, DataItem

    extra_env = {
        "CALLFLOW_CALLBACK_MAX_WAIT_SECONDS": str(CALLBACK_WAIT_S),
        "CALLFLOW_CAP_ATTEMPTS_PER_RECORD": "2",
    }
    items = {
        **DEFAULT_DATA_COLLECTION,
        "callback_at": DataItem(
            "string",
            "When the person asked to be called back, as ISO 8601 local time "
            "(YYYY-MM-DDTHH:MM:SS); empty when they did not.",
        ),
    }
    return StackOptions(
        agent_steps=callback_steps(),
        agent_data_collection=items,
        extra_env=extra_env,
        **overrides,
    )


CALLBACK_WAIT_S = 5


def optout_options(**overrides: Any) -> StackOptions:
    """The stack of the opt-out scenario: the agent collects ``opt_out``, the record's opt-out
    checkbox is ``Do_Not_Call``, and a record may be triggered again at once."""
    from callflow_dev.sandbox.agent import optout_steps
    from callflow_dev.sandbox.elevenlabs import DEFAULT_DATA_COLLECTION, DataItem

    extra_env = {"CALLFLOW_OPTOUT_FIELD": OPTOUT_FIELD, "CALLFLOW_TRIGGER_WINDOW_SECONDS": "0"}
    items = {
        **DEFAULT_DATA_COLLECTION,
        "opt_out": DataItem("boolean", "True when the person asks not to be called again."),
    }
    return StackOptions(
        agent_steps=optout_steps(),
        agent_data_collection=items,
        extra_env=extra_env,
        **overrides,
    )


OPTOUT_FIELD = "Do_Not_Call"
"""The demo lead's opt-out checkbox (a custom field of the Zoho stand-in's Leads)."""

SCENARIOS = (
    "answered",
    "retry",
    "busy",
    "voicemail",
    "invalid",
    "interrupt",
    "optout",
    "reminder",
    "callback",
)


class Printer:
    """The demo's output: plain lines and events stamped with seconds since :attr:`start`.

    ``quiet`` silences both; :func:`report`'s final summary is printed regardless.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.start = time.monotonic()

    def line(self, text: str = "") -> None:
        """Print ``text``, unless quiet."""
        if not self.quiet:
            print(text, flush=True)

    def event(self, text: str) -> None:
        """Print a timeline line, stamped with the seconds elapsed since :attr:`start`."""
        self.line(f"  [{time.monotonic() - self.start:6.2f}s] {text}")


@dataclass
class DemoResult:
    """What one scenario left: the session, the record before and after, its notes and logged
    calls, the phone side's media and the agent's conversation, the execution status, the WAV."""

    session: Session
    record_before: dict[str, Any]
    record_after: dict[str, Any]
    notes: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    media: Any
    conversation: Any
    execution_status: str
    wav: Path | None
    first_words_ms: int | None = None
    """From the answer to the agent's first audio on the phone (the last answered attempt)."""
    again: Session | None = None
    """The session of the record's second trigger (the opt-out scenario)."""
    again_dials: int = 0
    """Calls Infobip was asked to place for the second trigger's session."""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    again_label: str = "Second trigger"
    """What :attr:`again` is, as the report names it."""


def run_scenario(
    stack: LocalStack,
    scenario: Scenario,
    out_dir: str | Path | None,
    printer: Printer,
    phone: str | None = None,
) -> DemoResult:
    """Seed, trigger, follow and report one scenario on a running stack.

    ``phone`` replaces the scenario's number: the simulated network counts attempts per number,
    so runs sharing a stack use a number each.
    """
    if phone is not None:
        scenario = replace(scenario, phone=phone)
    from callflow_dev.sandbox.media_leg import stereo_wav

    record_id = seed_scenario(stack, scenario)
    before = dict(stack.zoho.records["Leads"][record_id])
    printer.line(f"Scenario '{scenario.name}': {scenario.description}")
    printer.line("")
    printer.line("Record before (Zoho CRM, Leads):")
    _print_record(printer, before)
    printer.line("")
    printer.line("Timeline:")
    printer.event(f"Zoho workflow rule fires: POST /webhooks/zoho (Leads/{record_id})")
    response = stack.trigger("Leads", record_id, scenario.flow)
    if response.status_code != 202:
        raise RuntimeError(f"trigger refused: {response.status_code} {response.text}")
    session_id = response.json()["session_id"]
    printer.event(f"API accepted the trigger: session {session_id}")

    _follow(stack, session_id, printer)
    execution = stack.wait_for_execution(session_id, timeout=180)
    session = stack.session(session_id)
    after = dict(stack.zoho.records["Leads"][record_id])
    media, conversation = _call_artifacts(stack, session)
    wav = None
    if media is not None and out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        wav = stereo_wav(media, Path(out_dir) / f"call-{scenario.name}-{session_id[:8]}.wav")
    again, dials = (None, 0)
    if scenario.opting_out:
        again, dials = _trigger_again(stack, record_id, printer)
        after = dict(stack.zoho.records["Leads"][record_id])
    if scenario.calling_back:
        again, dials = _follow_callbacks(stack, session, printer)
        after = dict(stack.zoho.records["Leads"][record_id])
    return DemoResult(
        session=session,
        record_before=before,
        record_after=after,
        notes=[n for n in stack.zoho.notes if _parent_id(n) == record_id],
        calls=[c for c in stack.zoho.calls if _call_parent(c) == record_id],
        media=media,
        conversation=conversation,
        execution_status=str(execution["status"]),
        wav=wav,
        first_words_ms=_first_words(stack, session_id),
        again=again,
        again_dials=dials,
        attachments=[a for a in stack.zoho.attachments if a["record_id"] == record_id],
        again_label="Callback" if scenario.calling_back else "Second trigger",
    )


def _first_words(stack: LocalStack, session_id: str) -> int | None:
    calls = [c for c in list(stack.infobip.calls) if _is_session_call(stack, c, session_id)]
    timed = [first_words_ms(stack.infobip.call_log, call_id) for call_id in calls]
    answered = [ms for ms in timed if ms is not None]
    return answered[-1] if answered else None


def _trigger_again(stack: LocalStack, record_id: str, printer: Printer) -> tuple[Session, int]:
    """Trigger the record once more and follow that session to its end; it and the number of
    dials Infobip was asked for it."""
    printer.line("")
    printer.event(f"Zoho workflow rule fires again for Leads/{record_id}")
    response = stack.trigger("Leads", record_id)
    if response.status_code != 202:
        raise RuntimeError(f"second trigger refused: {response.status_code} {response.text}")
    session_id = response.json()["session_id"]
    printer.event(f"API accepted the trigger: session {session_id}")
    _follow(stack, session_id, printer)
    stack.wait_for_execution(session_id, timeout=180)
    return stack.session(session_id), _dials(stack, session_id)


def _dials(stack: LocalStack, session_id: str) -> int:
    """How many calls the phone network was asked to create for the session."""
    return sum(
        1
        for r in stack.infobip.requests
        if r.method == "POST"
        and r.path == "/calls/1/calls"
        and r.body.get("customData", {}).get("session_id") == session_id
    )


def _follow_callbacks(stack: LocalStack, session: Session, printer: Printer) -> tuple[Session, int]:
    """Follow the callback the call scheduled to its end, and the one that call scheduled in
    turn (ended by the cap); the first callback's session and the dials placed for it."""
    from callflow.callbacks.schedule import callback_session_id

    callback_id = callback_session_id(session.session_id)
    printer.line("")
    scheduled = session.writeback.get("callback", {})
    printer.event(f"Callback scheduled: session {callback_id} at {scheduled.get('at', '-')}")
    _follow(stack, callback_id, printer)
    stack.wait_for_execution(callback_id, timeout=180)
    callback = stack.session(callback_id)
    chained = callback_session_id(callback_id)
    if get_services().store.get(chained) is not None:
        printer.event(f"The callback's call asked again: session {chained}")
        _follow(stack, chained, printer)
        stack.wait_for_execution(chained, timeout=120)
    return callback, _dials(stack, callback_id)


def callback_problems(result: DemoResult) -> list[str]:
    """What the callback scenario did not do: the callback scheduled, dialled no sooner than
    its time, answered and written back, and the record showing both calls."""
    problems = []
    scheduled = result.session.writeback.get("callback")
    if not isinstance(scheduled, dict) or not scheduled.get("session_id"):
        problems.append(f"no callback was scheduled ({scheduled})")
        return problems
    callback = result.again
    if callback is None or callback.session_id != scheduled["session_id"]:
        return [*problems, "the callback's session was not followed"]
    if callback.outcome is not Outcome.ANSWERED or callback.status is not SessionStatus.COMPLETED:
        problems.append(
            f"the callback ended {callback.outcome} / {callback.status.value}, not answered"
        )
    if result.again_dials != 1:
        problems.append(f"the callback was dialled {result.again_dials} time(s), not once")
    answered = callback.call_answered_at
    if answered and answered < callback.not_before:
        problems.append("the callback was placed before its time")
    marks = {f"Session: {result.session.session_id}", f"Session: {callback.session_id}"}
    noted = {m for m in marks for n in result.notes if m in str(n.get("Note_Content"))}
    if noted != marks:
        problems.append("the record does not have a note for each call")
    logged = {m for m in marks for c in result.calls if m in str(c.get("Description"))}
    if logged != marks:
        problems.append("the record does not have a logged call for each call")
    return problems


def optout_problems(stack: LocalStack, result: DemoResult) -> list[str]:
    """What the opt-out scenario did not do: the field ticked, the number suppressed, the
    second trigger ``suppressed`` and not dialled, the note saying so."""
    from callflow.phone import normalise

    problems = []
    if result.session.outcome is not Outcome.ANSWERED:
        problems.append(f"the call ended {result.session.outcome}, not answered")
    if result.record_after.get(OPTOUT_FIELD) is not True:
        problems.append(f"the record's {OPTOUT_FIELD} is not ticked")
    number = normalise(result.session.phone or result.record_before["Phone"], "US").e164
    if get_services().suppressions.get(number) is None:
        problems.append("the number is not on the suppression list")
    if not any("Opt-out:" in str(n.get("Note_Content")) for n in result.notes):
        problems.append("no note says the person opted out")
    again = result.again
    if again is None or again.outcome is not Outcome.SUPPRESSED:
        problems.append(f"the second trigger ended {again.outcome if again else 'nowhere'}")
    elif again.status is not SessionStatus.COMPLETED:
        problems.append(f"the second trigger's writeback is {again.status.value}")
    if result.again_dials:
        problems.append(f"the second trigger was dialled {result.again_dials} time(s)")
    return problems


def reminder_problems(stack: LocalStack, result: DemoResult) -> list[str]:
    """What the reminder scenario did not do: the session on the reminder flow, answered by the
    reminder agent with its variables, and the record written with the reminder's mapping and
    status value (and none of the default flow's fields)."""
    problems = []
    session = result.session
    if session.flow != REMINDER_FLOW:
        problems.append(f"the session's flow is {session.flow!r}, not {REMINDER_FLOW!r}")
    if session.outcome is not Outcome.ANSWERED:
        problems.append(f"the call ended {session.outcome}, not answered")
    conversation = result.conversation
    if conversation is None or conversation.agent_id != REMINDER_AGENT_ID:
        agent = conversation.agent_id if conversation is not None else "nobody"
        problems.append(f"the call talked to {agent}, not {REMINDER_AGENT_ID}")
    elif "amount_due" not in conversation.dynamic_variables:
        problems.append("the reminder agent did not get the amount due")
    after = result.record_after
    if after.get("Paid") is not True:
        problems.append("the record's Paid is not ticked")
    if after.get("Reminder_Status") != "Reminded":
        problems.append(f"Reminder_Status is {after.get('Reminder_Status')!r}, not 'Reminded'")
    if after.get("Lead_Status") != result.record_before.get("Lead_Status"):
        problems.append("the default flow's status field was written")
    if after.get("Interested") is not None:
        problems.append("the default flow's mapping was written (Interested)")
    return problems


def recording_problems(result: DemoResult) -> list[str]:
    """What a recorded scenario did not do: the WAV stored, attached once, named in the note."""
    from callflow.lifecycle.recording_attachment import recording_file_name

    session = result.session
    name = recording_file_name(session)
    attached = [a for a in result.attachments if a["File_Name"] == name]
    problems = []
    if session.recording.get("status") != "stored":
        problems.append(f"the bridge did not store the recording ({session.recording or 'none'})")
    if len(attached) != 1:
        problems.append(f"{len(attached)} attachments named {name}, not one")
    elif not bytes(attached[0]["content"]).startswith(b"RIFF"):
        problems.append("the attachment is not a WAV file")
    if not any(
        f"Recording: attached as {name}" in str(n.get("Note_Content")) for n in result.notes
    ):
        problems.append("the note does not name the recording")
    return problems


def seed_scenario(stack: LocalStack, scenario: Scenario) -> str:
    """The scenario's lead in the Zoho stand-in and its person on the phone network; the
    record's id."""
    from callflow.phone import normalise

    extra = REMINDER_FIELDS if scenario.flow == REMINDER_FLOW else {}
    record_id = stack.zoho.seed_record("Leads", {**PERSON, **extra, "Phone": scenario.phone})
    try:
        number = normalise(scenario.phone, "US").infobip
        stack.infobip.set_behaviour(number, scenario.behaviours())
        stack.infobip.set_script(number, callee_script(scenario, stack.options.brief_clips_ms))
    except ValueError:
        pass  # an invalid number never reaches the phone network
    return record_id


def callee_script(scenario: Scenario, brief_clips_ms: int | None) -> Any:
    """The person's side of the dialogue; shortened clips for fast tests."""
    from callflow_dev.sandbox.media_leg import CalleeScript

    if scenario.interrupting:
        # With brief clips the agent's question lasts brief_clips_ms: barging in early leaves
        # most of it for the caller's speech to reach the agent while it still plays, even when
        # a loaded machine delays the audio on its way.
        barge_in_ms = min(200, brief_clips_ms // 4) if brief_clips_ms else 1200
        script = CalleeScript.interrupting(barge_in_after_ms=barge_in_ms)
    elif scenario.opting_out or scenario.calling_back:
        # Hello, then one answer (the stand-in's own words for it are in the agent's script).
        script = CalleeScript.opting_out()
    else:
        script = CalleeScript.default()
    if not brief_clips_ms:
        return script
    return replace(
        script,
        turns=tuple(replace(turn, max_ms=brief_clips_ms) for turn in script.turns),
        end_of_agent_turn_ms=400,
        hangup_after_s=4.0,
    )


def _follow(stack: LocalStack, session_id: str, printer: Printer) -> None:
    """Print the session's timeline, the phone network's and the agent's lines as they come."""
    seen_timeline = 1  # "session created" is the trigger line already printed
    seen_log = 0
    seen_turns: dict[str, int] = {}
    spoken: set[str] = set()
    """Calls whose first words were shown."""
    terminal = {SessionStatus.COMPLETED, SessionStatus.WRITEBACK_FAILED}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        session = stack.session(session_id)
        for entry in session.timeline[seen_timeline:]:
            if not entry.event.startswith(TIMELINE_PREFIX):  # the phone log below shows them
                printer.event(_describe(entry.event, entry.detail))
        seen_timeline = len(session.timeline)
        calls = {c for c in list(stack.infobip.calls) if _is_session_call(stack, c, session_id)}
        log = [e for e in stack.infobip.call_log if e.call_id in calls]
        for phone_event in log[seen_log:]:
            text = _describe_phone(phone_event.what, phone_event.detail)
            if phone_event.what == "media agent_audio_started":
                waited = first_words_ms(log, phone_event.call_id)
                if waited is not None and phone_event.call_id not in spoken:
                    spoken.add(phone_event.call_id)
                    text += f": first words {waited} ms after answer"
            if text:
                printer.event(text)
        seen_log = len(log)
        _print_transcript(stack, session, seen_turns, printer)
        if session.status in terminal:
            return
        time.sleep(0.1)


def first_words_ms(log: Sequence[Any], call_id: str) -> int | None:
    """Milliseconds from the call's answer to the agent's first audio playing on the phone, from
    the Infobip stand-in's log (``answered``, then the callee's ``agent_audio_started``): the
    silence the person hears, providers' time included. ``None`` until both happened."""
    answered = heard = ""
    for entry in log:
        if entry.call_id != call_id:
            continue
        if entry.what == "answered" and not answered:
            answered = entry.at
        elif entry.what == "media agent_audio_started" and answered and not heard:
            heard = entry.at
    if not heard:
        return None
    elapsed = datetime.strptime(heard, _INFOBIP_TIME) - datetime.strptime(answered, _INFOBIP_TIME)
    return round(elapsed.total_seconds() * 1000)


_INFOBIP_TIME = "%Y-%m-%dT%H:%M:%S.%f%z"


def _is_session_call(stack: LocalStack, call_id: str, session_id: str) -> bool:
    call = stack.infobip.calls[call_id]
    return bool(getattr(call, "custom_data", {}).get("session_id") == session_id)


def _print_transcript(
    stack: LocalStack, session: Session, seen: dict[str, int], printer: Printer
) -> None:
    if not session.conversation_id:
        return
    state = stack.elevenlabs.conversations.get(session.conversation_id)
    live = state.live if state is not None else None
    lines = list(live.transcript if live is not None else [])
    for line in lines[seen.get(session.conversation_id, 0) :]:
        role = "agent " if line.role == "agent" else "person"
        printer.event(f"    {role}: {line.message}")
    seen[session.conversation_id] = len(lines)


_TIMELINE_WORDS = {
    "prepared": "Prepared: phone normalised, calling hours checked",
    "dialing": "Dialling",
    "call placed": "Infobip accepted the call",
    "ringing": "Ringing",
    "answered": "Answered",
    "connecting agent": "Connecting the call to the bridge (Infobip dialog)",
    "dialog created": "Dialog created: Infobip connects the media stream to the bridge",
    "agent connected": "Bridge connected: ElevenLabs conversation started",
    "bridge ended": "Bridge ended",
    "call ended": "Call ended",
    "retry scheduled": "Retry scheduled",
    "collecting": "Waiting for the agent's analysis (post-call webhook, polling as fallback)",
    "results collected": "Analysis collected",
    "writing back": "Writing back to Zoho CRM",
    "fields written": "Record fields updated",
    "note added": "Note added to the record",
    "call logged": "Call logged on the record",
    "written back": "Writeback complete",
    "not called: suppressed": "Not called: the person opted out",
    "not called: capped": "Not called: call limit reached",
    "transcript attached": "Transcript attached to the record",
    "writeback failed": "Writeback FAILED (results kept for replay)",
}


def _describe(event: str, detail: dict[str, Any]) -> str:
    text = _TIMELINE_WORDS.get(event, event[:1].upper() + event[1:])
    shown = {k: v for k, v in detail.items() if k not in ("call_id",) and v not in ("", None)}
    if shown:
        text += "  " + ", ".join(f"{k}={v}" for k, v in shown.items())
    return text


def _describe_phone(what: str, detail: dict[str, Any]) -> str:
    if what == "media turn_started":
        return f"  person starts speaking ({detail.get('turn', '')})"
    if what == "media agent_audio_started":
        return "  agent audio reaches the phone"
    if what == "media clear":
        return f"  barge-in: Infobip playback cleared ({detail.get('dropped_ms', 0)} ms dropped)"
    if what == "media connected":
        return f"  media stream connected to the bridge ({detail.get('rate')} Hz)"
    return ""


def _call_artifacts(stack: LocalStack, session: Session) -> tuple[Any, Any]:
    media = None
    for dialog in stack.infobip.dialogs.values():
        if dialog.custom_data.get("session_id") == session.session_id and dialog.media_result:
            media = dialog.media_result
    state = stack.elevenlabs.conversations.get(session.conversation_id)
    return media, state


def _parent_id(note: dict[str, Any]) -> str:
    parent = note.get("Parent_Id") or {}
    return str(parent.get("id", "")) if isinstance(parent, dict) else ""


def _call_parent(call: dict[str, Any]) -> str:
    for key in ("What_Id", "Who_Id"):
        value = call.get(key)
        if isinstance(value, dict):
            return str(value.get("id", ""))
        if value:
            return str(value)
    return ""


def _print_record(printer: Printer, record: dict[str, Any]) -> None:
    for name in SHOWN_FIELDS:
        value = record.get(name)
        if name == "Phone" and value:
            from callflow.phone import mask

            value = mask(str(value))
        printer.line(f"    {name:<16} {value if value not in (None, '') else '-'}")


def report(result: DemoResult, printer: Printer) -> None:
    """Print turn latencies and the record after with its notes and calls, then the summary line.

    The summary (status, outcome, attempts, workflow status) is printed even when quiet.
    """
    session = result.session
    printer.line("")
    if result.first_words_ms is not None:
        printer.line(f"First words {result.first_words_ms} ms after answer (answer -> agent audio")
        printer.line("on the phone, the providers' time included)")
        printer.line("")
    if result.media is not None:
        printer.line("Turns (latency = end of the person's speech -> agent audio on the phone):")
        for turn in result.media.turns:
            if turn.latency_s is not None:
                latency = f"{turn.latency_s * 1000:5.0f} ms"
            elif turn.talked_over:
                latency = "    - (the agent was already speaking)"
            else:
                latency = "    -"
            printer.line(f"    {turn.label:<20} {latency}")
        printer.line("")
    printer.line("Record after:")
    _print_record(printer, result.record_after)
    for note in result.notes:
        printer.line("")
        printer.line(f"  Note '{note.get('Note_Title')}':")
        for text in str(note.get("Note_Content", "")).splitlines():
            printer.line(f"    {text}")
    for call in result.calls:
        printer.line("")
        printer.line(
            f"  Call logged: {call.get('Subject')} ({call.get('Call_Type')},"
            f" {call.get('Call_Duration')})"
        )
    for attachment in result.attachments:
        printer.line("")
        printer.line(f"  Attachment: {attachment['File_Name']} ({attachment['Size']} bytes)")
    if result.again is not None:
        printer.line("")
        printer.line(
            f"{result.again_label}: session {result.again.session_id} ended"
            f" {result.again.outcome.value if result.again.outcome else '-'}"
            f" ({result.again.outcome_detail}); calls placed for it: {result.again_dials}"
        )
    printer.line("")
    if result.wav:
        printer.line(f"Call audio: {result.wav} (left: caller, right: agent)")
    print(
        f"Session {session.session_id}: status={session.status.value}"
        f" outcome={session.outcome.value if session.outcome else '-'}"
        f" attempts={session.attempt} workflow={result.execution_status}",
        flush=True,
    )


def run_demo(
    scenario_name: str,
    *,
    out_dir: str = "demo-output",
    quiet: bool = False,
    variant_names: Sequence[str] = (),
) -> int:
    """``callflow demo``: run the named scenario on a fresh embedded stack and report it.

    Returns the exit status: 0 if the writeback landed (the session completed), 1 if not. Under
    stand-in ``variant_names`` (see :mod:`callflow_dev.local.variants`) 0 also needs the call to
    have ended as the variants say (the agent reached, unless a variant says it must not be).
    """
    from callflow_dev.local import variants as known

    try:
        chosen = known.lookup(variant_names)
    except known.UnknownVariant as error:
        print(error.args[0], file=sys.stderr)
        return 2
    scenario = _scenarios()[scenario_name]
    printer = Printer(quiet)
    printer.line("Starting the embedded stack: moto (DynamoDB, Secrets Manager, Lambda, Step")
    printer.line(
        "Functions), the API, the bridge, and the Zoho, Infobip and ElevenLabs stand-ins..."
    )
    with LocalStack(scenario.options) as stack:
        printer.line(f"  API {stack.api_url}   bridge {stack.bridge_url.rsplit('/', 1)[0]}/…")
        printer.line("")
        for variant in chosen:
            printer.line(f"  Variant {variant.name}: {variant.description}")
        printer.start = time.monotonic()
        with known.applied(stack, chosen):
            result = run_scenario(stack, scenario, out_dir, printer)
        report(result, printer)
        optout = optout_problems(stack, result) if scenario.opting_out else []
        if scenario.flow == REMINDER_FLOW:
            optout += reminder_problems(stack, result)
        if scenario.options.recording:
            optout += recording_problems(result)
        if scenario.calling_back:
            optout += callback_problems(result)
    for problem in optout:
        print(f"Not as the {scenario.name} scenario expects: {problem}.", file=sys.stderr)
    if chosen:
        problems = known.problems(result.session, chosen)
        for problem in problems:
            print(f"Not as the variants expect: {problem}.", file=sys.stderr)
        return 1 if problems else 0
    landed = result.session.status is SessionStatus.COMPLETED
    if not landed:
        print("The writeback did not land.", file=sys.stderr)
    return 0 if landed and not optout else 1


def list_variants() -> int:
    """``callflow demo --list-variants``: every stand-in variant's name, one a line."""
    from callflow_dev.local.variants import all_variants

    for name in all_variants():
        print(name)
    return 0

"""Writing the call's result back to the CRM record: mapped fields, a note, the logged call.

An opt-out the agent collected puts the number on the suppression list and ticks the record's
opt-out field (the fields step); the note carries the transcript, attached as a file as well
when it is past Zoho's note size (the note step, see :mod:`callflow.lifecycle.record_note`).

The results are on the session before this runs, so nothing is lost when Zoho fails: the state
machine retries throttling and server errors, and a writeback that fails for good can be replayed
(`callflow replay SESSION`). Each step records its receipt on the session as soon as it succeeds,
and a retry or a replay skips the steps it has a receipt for. A step whose answer was lost (Zoho
saved the note, then the connection failed or it answered 5xx) has no receipt, so its retry
writes it again: the receipts prevent repeats of steps known to be done, not of those in doubt.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from callflow.admission import slots
from callflow.consent.optout import record_collected_optout
from callflow.lifecycle import media_configs, outcomes, record_note, recording_attachment, workflow
from callflow.lifecycle.record_note import NotePlan
from callflow.masking import mask
from callflow.models import Outcome, Session, SessionStatus
from callflow.observability import Metric, count, logger
from callflow.providers.errors import ProviderAuthError, ProviderRejected, RecordNotFound
from callflow.services import Services

OUTCOME_LABELS = {
    Outcome.ANSWERED: "Reached",
    Outcome.AGENT_UNAVAILABLE: "Answered, no agent",
    Outcome.AGENT_DROPPED: "Reached, call dropped by the agent",
    Outcome.NO_ANSWER: "No answer",
    Outcome.BUSY: "Busy",
    Outcome.REJECTED: "Call rejected",
    Outcome.FAILED: "Call failed",
    Outcome.MACHINE: "Reached voicemail",
    Outcome.INVALID_PHONE: "Invalid phone number",
    Outcome.OUTSIDE_HOURS: "Outside calling hours",
    Outcome.TIMEOUT: "No call outcome",
    Outcome.CANCELLED: "Not called: cancelled",
    Outcome.SUPPRESSED: "Not called: opted out",
    Outcome.CAPPED: "Not called: call limit reached",
}


def label(outcome: Outcome | None) -> str:
    """The human label for a call outcome (CRM status field, note); ``Unknown`` when unset."""
    return OUTCOME_LABELS.get(outcome, "Unknown") if outcome else "Unknown"


STEPS = ("fields", "note", "call")
"""The writeback's steps, in order; the state machine runs each as its own task with its own
retries, so three failures of one step do not spend the budget of the others."""


def write_back(services: Services, session_id: str) -> dict[str, Any]:
    """Every step in turn (a replay, the CLI); a completed session writes nothing."""
    result: dict[str, Any] = {}
    for step in STEPS:
        result = write_step(services, session_id, step)
    return result


def write_step(
    services: Services, session_id: str, step: str, workflow_arn: str = ""
) -> dict[str, Any]:
    """One step of the writeback: the mapped fields, the note, or the logged call (which then
    completes the session). ``workflow_arn`` is the call workflow running it, which a callback
    is started on (the configured one without it: a replay, the CLI).

    A step whose receipt is on the session is skipped. A note or call that an earlier try sent
    without learning the answer (Zoho saved it, then answered 5xx or the connection broke) is
    looked for on the record, by the session id it carries, before it is created again.
    """
    if step not in STEPS:
        raise ValueError(f"unknown writeback step {step!r}")
    store = services.store
    session = store.require(session_id)
    # The last sweep of an attempt's media-stream config that an end path failed to delete,
    # and of its admission slots.
    media_configs.close(services, session_id, session.media_config_id)
    if step == "fields":
        slots.release(services, session)
    if session.status is SessionStatus.COMPLETED:
        return {"status": "completed", "step": step, "receipt": session.writeback}
    moved = store.advance(session_id, SessionStatus.WRITING_BACK, event="writing back")
    session = moved or session
    receipt: dict[str, Any] = dict(session.writeback)
    receipt.pop("error", None)
    if step == "fields" and "fields" not in receipt:
        session = _settle_outcome(services, session)
        receipt.update(_write_fields(services, session))
        # After the fields (an opt-out is honoured first); a retry finds what this made.
        from callflow.callbacks.schedule import schedule

        receipt.update(schedule(services, session, workflow_arn=workflow_arn))
        store.set_fields(session_id, {"writeback": receipt}, event="fields written")
    elif step == "note" and services.settings.zoho_add_notes and not receipt.get("note_id"):
        if recording_attachment.expected(session):
            recording_attachment.attach_recording(services, session, receipt, _create_once)
        note = _plan_note(services, session, receipt)
        if note.attachment and not receipt.get("attachment_id"):
            note = _attach_transcript(services, session, receipt, note)
        _create_once(
            services,
            session,
            receipt,
            "note_id",
            find=lambda: services.zoho.find_note(
                session.module, session.record_id, session_marker(session)
            ),
            create=lambda: services.zoho.add_note(
                session.module, session.record_id, note.title, note.content
            ),
            event="note added",
        )
    elif step == "call":
        if _should_log_call(services, session) and not receipt.get("call_log_id"):
            _create_once(
                services,
                session,
                receipt,
                "call_log_id",
                find=lambda: services.zoho.find_call(
                    session.module, session.record_id, session_marker(session)
                ),
                create=lambda: _log_call(services, session),
                event="call logged",
            )
        return _complete(services, session_id, receipt)
    return {"status": "writing_back", "step": step}


def _attach_transcript(
    services: Services, session: Session, receipt: dict[str, Any], note: NotePlan
) -> NotePlan:
    """Upload the transcript the note has no room for, before the note, which names it; with
    its own receipt, so a retry of a note that failed after it does not upload it twice.

    Refused for good (a scope the connection lacks, a file Zoho will not take), the refusal is
    kept in the receipt and the note goes without the file, saying why: the note matters more.
    """
    try:
        _create_once(
            services,
            session,
            receipt,
            "attachment_id",
            find=lambda: services.zoho.find_attachment(
                session.module, session.record_id, note.attachment_name
            ),
            create=lambda: services.zoho.upload_attachment(
                session.module, session.record_id, note.attachment_name, note.attachment
            ),
            event="transcript attached",
        )
    except ProviderRejected as error:
        receipt["attachment_refused"] = error.message[:300]
        services.store.set_fields(
            session.session_id,
            {"writeback": receipt},
            event="transcript not attached",
            detail={"error": receipt["attachment_refused"]},
        )
        return _plan_note(services, session, receipt)
    return note


def _settle_outcome(services: Services, session: Session) -> Session:
    """Write the outcome as the call and the bridge saw it together (see
    :mod:`callflow.lifecycle.outcomes`) before anything reaches the record."""
    outcome, detail = outcomes.combined(session)
    if outcome is session.outcome and detail == session.outcome_detail:
        return session
    fields = {"outcome": outcome.value if outcome else None, "outcome_detail": detail[:500]}
    updated = services.store.set_fields(session.session_id, fields, event="outcome settled")
    return updated or session


def session_marker(session: Session) -> str:
    """The line every note and call of a session carries, by which a lost one is found."""
    return f"Session: {session.session_id}"


def _create_once(
    services: Services,
    session: Session,
    receipt: dict[str, Any],
    key: str,
    *,
    find: Callable[[], str | None],
    create: Callable[[], str],
    event: str,
) -> None:
    """Create the note or call, unless an earlier try already did (see :func:`write_step`).

    The ``<key>_sent`` mark is stored before the request goes out, so a retry knows that the
    answer, not the request, may be what was lost.
    """
    store = services.store
    sent = f"{key.removesuffix('_id')}_sent"
    if receipt.get(sent):
        found = find()
        if found:
            receipt[key] = found
            store.set_fields(session.session_id, {"writeback": receipt}, event=f"{event} (found)")
            return
    else:
        receipt[sent] = True
        store.set_fields(session.session_id, {"writeback": receipt})
    receipt[key] = create()
    store.set_fields(session.session_id, {"writeback": receipt}, event=event)


def _complete(services: Services, session_id: str, receipt: dict[str, Any]) -> dict[str, Any]:
    services.store.advance(
        session_id,
        SessionStatus.COMPLETED,
        fields={"writeback": receipt},
        event="written back",
        detail={"fields": sorted(receipt.get("fields", {})), "problems": receipt.get("problems")},
    )
    count(Metric.WRITEBACKS_SUCCEEDED)
    return {"status": "completed", "step": "call", "receipt": receipt}


def mark_failed(services: Services, session_id: str, error: dict[str, Any]) -> dict[str, Any]:
    """Retries are exhausted: flag the session (the results stay on it) and raise the alarm."""
    session = services.store.require(session_id)
    media_configs.close(services, session_id, session.media_config_id)
    slots.release(services, session)
    receipt = {**session.writeback, "error": _error_text(error)}
    services.store.advance(
        session_id,
        SessionStatus.WRITEBACK_FAILED,
        fields={"writeback": receipt},
        event="writeback failed",
        detail={"error": receipt["error"]},
    )
    count(Metric.WRITEBACKS_FAILED)
    logger.error("writeback failed for good; results kept for replay", extra={"error": receipt})
    return {"status": "writeback_failed"}


class NotReplayable(ValueError):
    """The session's writeback is not one that failed; the message says what it is."""


def replay(services: Services, session_id: str) -> dict[str, Any]:
    """Run a failed writeback again (operator action).

    A replay that fails again puts the session back to ``writeback_failed`` (listed as failed,
    not counted active) before the error goes on to the caller.
    """
    if services.store.reopen_writeback(session_id) is None:
        session = services.store.require(session_id)
        if session.status is not SessionStatus.WRITING_BACK:
            raise NotReplayable(
                f"session {session_id} is {session.status.value}: only a writeback_failed "
                "session can be replayed"
            )
    try:
        return write_back(services, session_id)
    except Exception as error:
        mark_failed(services, session_id, {"Error": type(error).__name__, "Cause": str(error)})
        raise


# --- the steps ----------------------------------------------------------------------------


def collected(session: Session) -> dict[str, Any]:
    """The agent's data-collection results from the session; empty when missing or malformed."""
    value = session.results.get("data_collection", {})
    return dict(value) if isinstance(value, dict) else {}


def _write_fields(services: Services, session: Session) -> dict[str, Any]:
    settings = services.settings
    flow = services.flows.of(session)
    rules = flow.contact_rules
    values = collected(session)
    # The opt-out is kept on our side first: whatever Zoho does next, the number is suppressed.
    optout = record_collected_optout(rules, services.suppressions, session, values)
    mapped = flow.mapping.apply(
        values,
        timezone=session.timezone or settings.default_timezone,
        module=session.module,
    )
    data = dict(mapped.fields)
    if flow.spec.status_field:
        data[flow.spec.status_field] = flow.status_value(session.outcome, label(session.outcome))
    if optout and rules.optout_field:
        data[rules.optout_field] = True
    problems = list(mapped.problems)
    # A field the module lacks (one mapping serves Leads, Contacts, Deals...) would be refused
    # by Zoho anyway, at the price of a second write: it is reported, not sent.
    known = services.zoho.module_fields(session.module) if data else {}
    for name in [name for name in data if name not in known]:
        problems.append(f"{name}: the {session.module} module has no such field")
        del data[name]
    if data:
        try:
            result = services.zoho.update_record_dropping_invalid(
                session.module, session.record_id, data
            )
        except (RecordNotFound, ProviderAuthError):
            raise
        except ProviderRejected as error:
            # The record refused the whole update (e.g. a validation rule): keep going so the
            # note still carries the results, and report it.
            problems.append(f"fields not written: {error.message}")
            return {"fields": {}, "problems": problems, **optout}
        for problem in result.problems:
            problems.append(str(problem))
        written = {k: v for k, v in data.items() if k not in result.refused_fields}
        return {"fields": written, "problems": problems, **optout}
    return {"fields": {}, "problems": problems, **optout}


def _plan_note(services: Services, session: Session, receipt: dict[str, Any]) -> NotePlan:
    """The note (and the transcript attachment, when the transcript does not fit in it)."""
    results = session.results
    title = f"AI call: {label(session.outcome)}"
    head = [f"Outcome: {label(session.outcome)}"]
    if session.outcome_detail:
        head.append(f"Detail: {session.outcome_detail}")
    head.append(f"Attempts: {session.attempt}")
    if len(session.phone_numbers) > 1 and session.phone:
        reached = "Reached on" if session.outcome is Outcome.ANSWERED else "Last dialled"
        head.append(f"{reached}: {session.phone_field} ({mask(session.phone)})")
    if session.call_duration:
        head.append(f"Duration: {session.call_duration} s")
    if results.get("summary"):
        head += ["", "Summary:", str(results["summary"])]
    elif session.outcome is Outcome.ANSWERED:
        head += ["", f"Summary: not available (analysis {results.get('status', 'missing')})"]
    values = collected(session)
    if values:
        head += ["", "Collected:"] + [f"- {k}: {v}" for k, v in sorted(values.items())]
    optout = receipt.get("optout")
    if isinstance(optout, dict):
        field = optout.get("field")
        ticked = f"; {field} ticked" if field and field in receipt.get("fields", {}) else ""
        head += [
            "",
            f"Opt-out: the person asked not to be called again; {optout.get('number')} is on "
            f"the suppression list and will not be dialled{ticked}.",
        ]
    from callflow.callbacks import task
    from callflow.callbacks.schedule import note_line

    callback = " ".join(line for line in (note_line(receipt), task.note_line(receipt)) if line)
    if callback:
        head += ["", callback]
    recording = recording_attachment.note_line(session, receipt)
    if recording:
        head += ["", recording]
    if receipt.get("problems"):
        head += ["", "Not written to fields:"] + [f"- {p}" for p in receipt["problems"]]
    tail = [f"Conversation: {session.conversation_id}"] if session.conversation_id else []
    tail.append(session_marker(session))
    return record_note.plan(
        session,
        title,
        head,
        tail,
        max_chars=services.settings.zoho_note_max_chars,
        whole_transcript=lambda: _whole_transcript(services, session),
        attachment_refused=str(receipt.get("attachment_refused") or ""),
    )


def _whole_transcript(services: Services, session: Session) -> list[dict[str, Any]]:
    """Every turn of the session's conversation, read again from ElevenLabs (the session keeps
    only the last ones); empty when ElevenLabs refuses for good."""
    try:
        conversation = services.elevenlabs.get_conversation(session.conversation_id)
    except ProviderRejected as error:
        # Gone or refused for good: the note and the attachment carry the turns the session has.
        logger.warning("the whole transcript could not be read", extra={"error": error.message})
        return []
    return [{"role": turn.role, "message": turn.message or ""} for turn in conversation.transcript]


def _should_log_call(services: Services, session: Session) -> bool:
    """Log every call that connected: answered (CALL_ESTABLISHED seen) or with talk time. A call
    answered and dropped within the second is logged as one second (Zoho refuses an outbound
    call of zero duration); one never answered gets only the note."""
    connected = bool(session.call_answered_at) or session.call_duration > 0
    return services.settings.zoho_log_calls and connected


def _log_call(services: Services, session: Session) -> str:
    started = session.call_answered_at or session.created_at
    start = datetime.fromisoformat(started.replace("Z", "+00:00"))
    summary = str(session.results.get("summary") or label(session.outcome))
    return services.zoho.log_call(
        session.module,
        session.record_id,
        subject=f"AI call: {label(session.outcome)}",
        start=start,
        duration_seconds=session.call_duration,
        description=f"{summary[:1900]}\n\n{session_marker(session)}",
    )


def _error_text(error: dict[str, Any]) -> str:
    name = str(error.get("Error", "Error"))
    cause = workflow.error_cause(error.get("Cause"))
    return f"{name}: {cause}"[:1000] if cause else name

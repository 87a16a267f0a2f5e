"""The workflow's calling tasks: prepare, place a call, plan the next attempt.

Each task returns the workflow's next *state*: ``session_id``, the ``action`` the Choice state
routes on (``call``, ``wait`` or ``write_back``), the ``wait_until`` timestamp the Wait state uses,
and the timeouts of the waiting tasks. Decisions live here, in code that is easy to test; the
waiting, retrying and branching live in the state machine.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from callflow.admission import slots
from callflow.consent import gate
from callflow.lifecycle import agent_url, call_events, media_configs, numbers, workflow
from callflow.models import Outcome, Session, SessionStatus, iso, utcnow
from callflow.observability import Metric, count, logger
from callflow.phone import CallingHours, InvalidPhone, normalise, timezone_for
from callflow.providers.errors import ProviderRejected
from callflow.services import Services

CALL_RATE = "infobip-calls"
"""The account-wide schedule of Infobip call creations."""

CALL = "call"
WAIT = "wait"
WRITE_BACK = "write_back"
COLLECT = "collect"
"""A call whose outcome was reconciled after its events were lost, answered: on to the analysis."""
WATCH = "watch"
"""A call checked with Infobip while its events are still awaited: wait for them again."""

#: How many times a call Infobip still reports ringing is waited for again before it is hung up
#: (Infobip ends an unanswered call at its connect timeout, so a call still ringing past two
#: margins is one whose events are not coming).
MAX_RINGING_CHECKS = 2

#: Infobip call states of a call still going on.
_LIVE_STATES = frozenset({"CALLING", "RINGING", "PRE_ESTABLISHED", "ESTABLISHED"})
#: Infobip call states that end a call, and the outcome each means when nobody answered.
_ENDED_UNANSWERED = {
    "NO_ANSWER": Outcome.NO_ANSWER,
    "BUSY": Outcome.BUSY,
    "FAILED": Outcome.FAILED,
    "CANCELLED": Outcome.FAILED,
    "FINISHED": Outcome.FAILED,
}


def next_state(
    services: Services, session_id: str, action: str, wait_until: datetime | None = None
) -> dict[str, Any]:
    """The workflow state for ``action``: the Choice state routes on it, the Wait state waits
    until ``wait_until`` (now when not given), and the waiting tasks take their timeouts from it."""
    settings = services.settings
    return {
        "session_id": session_id,
        "action": action,
        "wait_until": iso(wait_until or utcnow()),
        "outcome_timeout": settings.outcome_timeout_seconds,
        "call_wait": first_check_after(services),
        "analysis_wait": settings.analysis_wait_seconds,
    }


def first_check_after(services: Services) -> int:
    """Seconds the call's task waits for its events before Infobip is asked about the call: by
    then a call is answered or over, so a lost CALL_ESTABLISHED costs this long, not the whole
    outcome timeout (which it never exceeds)."""
    settings = services.settings
    bound = settings.infobip_connect_timeout + settings.call_check_margin_seconds
    return max(1, min(bound, settings.outcome_timeout_seconds))


def calling_hours(services: Services, session: Session | None = None) -> CallingHours:
    """The calling hours and weekdays of the session's flow (the default flow's without one)."""
    flows = services.flows
    hours = (flows.of(session) if session is not None else flows.default).spec.hours
    return CallingHours.parse(hours.start, hours.end, frozenset(hours.days))


def finish_without_call(
    services: Services, session: Session, outcome: Outcome, detail: str
) -> dict[str, Any]:
    """Record why the session is not called (``outcome`` and ``detail``) and go on to the
    writeback."""
    services.store.set_fields(
        session.session_id,
        {"outcome": outcome.value, "outcome_detail": detail},
        event=f"not called: {outcome.value}",
        detail={"reason": detail},
    )
    return next_state(services, session.session_id, WRITE_BACK)


def prepare(services: Services, state: dict[str, Any]) -> dict[str, Any]:
    """Normalise the phone, find the person's time zone, check the opt-outs
    (:func:`callflow.consent.gate.suppressed`) and calling hours."""
    settings = services.settings
    session = services.store.require(state["session_id"])
    prepared: dict[str, Any] = {}
    try:
        phone = normalise(session.phone_raw, settings.default_phone_region)
    except InvalidPhone as error:
        fallback = numbers.next_number(session, settings.default_phone_region)
        if fallback is None:
            return finish_without_call(services, session, Outcome.INVALID_PHONE, str(error))
        phone = fallback.phone
        prepared = {"phone_raw": fallback.raw, "phone_field": fallback.field}
        logger.info(
            "invalid number; the next phone field is dialled",
            extra={"skipped": [f"{session.phone_field}: {error}", *fallback.skipped]},
        )
    zone = timezone_for(phone, session.timezone or None, settings.default_timezone)
    services.store.set_fields(
        session.session_id,
        {"phone": phone.e164, "timezone": zone, **prepared},
        event="prepared",
        detail={"phone_field": prepared["phone_field"]} if prepared else None,
    )
    refusal = gate.suppressed(
        services.flows.of(session).contact_rules, services.suppressions, session, phone.e164
    )
    if refusal is not None:
        return finish_without_call(services, session, refusal.outcome, refusal.detail)
    now = utcnow()
    # A callback waits for its time; calling hours apply on top.
    earliest = max(now, _time_iso(session.not_before) or now)
    opening = calling_hours(services, session).next_opening(earliest, zone)
    if opening <= now:
        return next_state(services, session.session_id, CALL)
    if services.flows.of(session).spec.hours.outside == "skip" and not session.not_before:
        return finish_without_call(
            services, session, Outcome.OUTSIDE_HOURS, f"outside calling hours in {zone}"
        )
    services.store.advance(
        session.session_id,
        SessionStatus.SCHEDULED,
        attempt=1,
        fields={"next_attempt_at": iso(opening)},
        event="scheduled",
        detail={"at": iso(opening), "timezone": zone},
    )
    return next_state(services, session.session_id, WAIT, opening)


def attempt_to_place(session: Session) -> int:
    """The attempt number this invocation dials.

    A scheduled or queued session dials the attempt it was scheduled or queued for; a session
    whose last placement failed before Infobip accepted it (no call id) dials the same attempt
    again; otherwise the next one. So a provider error retried by the state machine does not use
    up an attempt.
    """
    if session.status in (SessionStatus.SCHEDULED, SessionStatus.QUEUED):
        return session.attempt
    if session.status is SessionStatus.DIALING and not session.call_id:
        return session.attempt
    return session.attempt + 1


def place_call(services: Services, state: dict[str, Any], task_token: str) -> dict[str, Any]:
    """Store the task token, then dial: the outcome event resumes the token, so the token must be
    on the session before Infobip can answer.

    The dial waits its turn at the account's call-creation rate, shared by every Lambda; with no
    turn free soon enough, :class:`callflow.admission.rates.RateLimited` goes to the workflow's
    Retry (the attempt is dialled by the retry, not used up)."""
    settings = services.settings
    session = services.store.require(state["session_id"])
    attempt = attempt_to_place(session)
    fields = {
        "task_token": task_token,
        "call_id": "",
        "dialog_id": "",
        "dialog_requested": False,
        "call_state": "",
        # What the previous attempt's events established must not speak for this one.
        "call_answered_at": "",
        "machine_detection": "",
        "machine_detection_reason": "",
        "dialog_failure": "",
        "media_config_id": "",
        "outcome": None,
        "outcome_detail": "",
        "attempt_numbers": {**session.attempt_numbers, str(attempt): session.phone_field},
    }
    if attempt == session.attempt and session.status is SessionStatus.DIALING:
        moved = services.store.set_fields(
            session.session_id, fields, only_if_equal={"attempt": attempt, "call_id": ""}
        )
    else:
        moved = services.store.advance(
            session.session_id,
            SessionStatus.DIALING,
            attempt=attempt,
            fields=fields,
            event="dialing",
            detail={"attempt": attempt},
        )
    if moved is None:
        logger.warning("session moved on before the call was placed; not dialling")
        return {"placed": False}
    # A config an earlier try of this placing (or the previous attempt) left behind; only now,
    # with the attempt ours, is it certain no live call uses it.
    media_configs.close(services, session.session_id, session.media_config_id)
    services.rates.wait_turn(
        CALL_RATE, settings.infobip_calls_per_second, settings.rate_max_wait_seconds
    )
    config_id = _open_media(services, session.session_id, attempt)
    if config_id is None:
        logger.warning("session moved on while its media-stream config was made; not dialling")
        return {"placed": False}
    # Fetched now, while nobody waits, and stored with the call id below: the bridge need not
    # ask ElevenLabs once the person answers.
    signed_url = agent_url.prefetched_fields(services, moved.agent_id)
    try:
        call = services.infobip.place_call(
            moved.phone.lstrip("+"),
            custom_data={"session_id": session.session_id, "attempt": str(attempt)},
            external_id=f"{session.session_id}-{attempt}",
            caller_id=moved.caller_id,
            machine_detection=services.flows.of(moved).spec.machine.detection,
        )
    except Exception:
        # No call will use the config: it goes now, not at the sweep.
        media_configs.close(services, session.session_id, config_id)
        raise
    services.store.set_fields(
        session.session_id,
        {"call_id": call.id, **signed_url},
        only_if_equal={"attempt": attempt},
        event="call placed",
        detail={"attempt": attempt, "call_id": call.id},
    )
    count(Metric.CALLS_PLACED)
    return {"placed": True, "call_id": call.id, "attempt": attempt}


def _open_media(services: Services, session_id: str, attempt: int) -> str | None:
    """In per-session routing, the attempt's own media-stream config, with the hash of the
    token its URL carries stored on the session (``connect_bridge`` reuses both); its id, empty
    when the shared config serves the attempt, ``None`` when the session moved on meanwhile
    (the config is deleted again)."""
    if not media_configs.per_session(services.settings):
        return ""
    media = media_configs.open_for_attempt(services, session_id)
    if media is None:
        return ""
    try:
        stored = services.store.set_fields(
            session_id,
            {"media_config_id": media.config_id, "bridge_token_hash": media.token_hash},
            only_if_equal={"attempt": attempt, "call_id": ""},
            event="media config created",
            detail={"config_id": media.config_id},
        )
    except Exception:
        # Not on the session, so no end path would find it: delete it now (the sweeper if not).
        media_configs.close(services, session_id, media.config_id)
        raise
    if stored is None:
        media_configs.close(services, session_id, media.config_id)
        return None
    return media.config_id


def plan_retry(services: Services, state: dict[str, Any]) -> dict[str, Any]:
    """After an unanswered call, or a task that failed: another attempt, or the writeback."""
    settings = services.settings
    session = services.store.require(state["session_id"])
    error = state.get("error")
    if error:
        return _after_error(services, session, error, state)
    slots.release(services, session)
    # The session's outcome first: after an answered call with no agent conversation it says
    # agent_unavailable, where the call's own event said answered.
    outcome = session.outcome or Outcome(state.get("call", {}).get("outcome", "failed"))
    rule = services.flows.of(session).spec.retry_rule(outcome)
    if rule is None or rule.attempts <= 1 or numbers.tries_on_number(session) >= rule.attempts:
        if outcome in numbers.UNREACHABLE:
            switched = _next_number(services, session, outcome)
            if switched is not None:
                return switched
        if rule is not None and rule.attempts > 1:
            services.store.set_fields(
                session.session_id,
                {"outcome_detail": _gave_up(outcome, session)},
                event="giving up",
            )
        return next_state(services, session.session_id, WRITE_BACK)
    earliest = utcnow() + timedelta(seconds=rule.delay_seconds)
    zone = session.timezone or settings.default_timezone
    when = calling_hours(services, session).next_opening(earliest, zone)
    services.store.advance(
        session.session_id,
        SessionStatus.SCHEDULED,
        attempt=session.attempt + 1,
        fields={"next_attempt_at": iso(when)},
        event="retry scheduled",
        detail={"attempt": session.attempt + 1, "at": iso(when), "after": outcome.value},
    )
    return next_state(services, session.session_id, WAIT, when)


def _next_number(services: Services, session: Session, outcome: Outcome) -> dict[str, Any] | None:
    """Schedule the next attempt on the record's next valid number (at the next opening of the
    calling hours), or ``None`` when the record has none left."""
    fallback = numbers.next_number(session, services.settings.default_phone_region)
    if fallback is None:
        return None
    zone = session.timezone or services.settings.default_timezone
    when = calling_hours(services, session).next_opening(utcnow(), zone)
    attempt = session.attempt + 1
    services.store.advance(
        session.session_id,
        SessionStatus.SCHEDULED,
        attempt=attempt,
        fields={
            "next_attempt_at": iso(when),
            "phone": fallback.phone.e164,
            "phone_raw": fallback.raw,
            "phone_field": fallback.field,
            "phone_from_attempt": attempt,
        },
        event="next number scheduled",
        detail={
            "attempt": attempt,
            "at": iso(when),
            "after": outcome.value,
            "from": session.phone_field,
            "to": fallback.field,
        },
    )
    return next_state(services, session.session_id, WAIT, when)


def _after_error(
    services: Services, session: Session, error: dict[str, Any], state: dict[str, Any]
) -> dict[str, Any]:
    name = str(error.get("Error", "Error"))
    cause = workflow.error_cause(error.get("Cause"))
    if name == "States.Timeout" and session.call_id:
        return check_call(services, session, state)
    if name == "States.Timeout":
        outcome, detail = Outcome.TIMEOUT, "no call outcome arrived in time"
        if session.call_id:
            services.infobip.hangup_call(session.call_id)
    else:
        outcome, detail = Outcome.FAILED, f"{name}: {cause}" if cause else name
    media_configs.close(services, session.session_id, session.media_config_id)
    slots.release(services, session)
    services.store.set_fields(
        session.session_id,
        {"outcome": outcome.value, "outcome_detail": detail[:500]},
        event="call failed",
        detail={"error": name},
    )
    count(Metric.CALLS_FAILED)
    return next_state(services, session.session_id, WRITE_BACK)


def _gave_up(outcome: Outcome, session: Session) -> str:
    """The detail written when the attempts ran out; the last attempt's own detail is kept."""
    summary = f"{outcome.value} on all {session.attempt} attempts"
    last = session.outcome_detail
    return f"{summary}; the last: {last}"[:500] if last else summary


def check_call(services: Services, session: Session, state: dict[str, Any]) -> dict[str, Any]:
    """The call's task waited ``call_wait`` seconds without its outcome: ask Infobip what the
    call is doing and go on as if the events had come.

    Before the call's deadline (the outcome timeout after dialling): a call that is established
    and live gets its dialog (:func:`callflow.lifecycle.call_events.connect_bridge`, whose claim
    keeps it to one even when CALL_ESTABLISHED did arrive) and is waited for until the deadline;
    one still ringing is waited for again, :data:`MAX_RINGING_CHECKS` times; an ended one takes
    :func:`reconcile`'s path. At or past the deadline, :func:`reconcile` hangs up a live call.
    """
    now = utcnow()
    deadline = _deadline(services, state, now)
    if deadline is None or now >= deadline or session.status is SessionStatus.CALL_ENDED:
        return reconcile(services, session)
    try:
        call = services.infobip.get_call(session.call_id)
    except ProviderRejected as error:
        if error.status != 404:
            raise
        return reconcile(services, session)
    call_state = str(call.get("state") or "")
    ringing_checks = int(state.get("ringing_checks") or 0)
    if call_state == "ESTABLISHED":
        _answered_without_event(services, session, call)
    elif call_state in _LIVE_STATES:
        ringing_checks += 1
        if ringing_checks > MAX_RINGING_CHECKS:
            return reconcile(services, session)
    else:
        return reconcile(services, session)
    remaining = int((deadline - now).total_seconds())
    wait = remaining if call_state == "ESTABLISHED" else services.settings.call_check_margin_seconds
    watching = next_state(services, session.session_id, WATCH)
    watching.update(
        call_wait=max(1, min(wait, remaining)),
        call_deadline=iso(deadline),
        ringing_checks=ringing_checks,
    )
    services.store.set_fields(
        session.session_id,
        {},
        event="call checked",
        detail={"infobip_state": call_state, "wait": watching["call_wait"]},
    )
    return watching


def _deadline(services: Services, state: dict[str, Any], now: datetime) -> datetime | None:
    """When the call's outcome is overdue: carried in the state once a check set it; on the first
    check, the outcome timeout after dialling (``call_wait`` seconds ago); ``None`` when the task
    that timed out already waited the whole outcome timeout."""
    carried = _time_iso(state.get("call_deadline"))
    if carried is not None:
        return carried
    waited = state.get("call_wait")
    total = int(state.get("outcome_timeout") or services.settings.outcome_timeout_seconds)
    if not isinstance(waited, int) or waited >= total:
        return None
    return now + timedelta(seconds=total - waited)


def _answered_without_event(services: Services, session: Session, call: dict[str, Any]) -> None:
    """Infobip says the call is established: record the answer if its event was lost, then request
    the dialog as the events would (after detection's verdict when detection is on; not for a
    machine; a no-op when it was already requested)."""
    if session.status in (SessionStatus.DIALING, SessionStatus.RINGING):
        moved = services.store.advance(
            session.session_id,
            SessionStatus.IN_CALL,
            attempt=session.attempt,
            fields={
                "call_state": "ESTABLISHED",
                "call_answered_at": iso(_time(call.get("answerTime")) or utcnow()),
            },
            event="answered (reconciled)",
            same_attempt=True,
        )
        if moved is not None:
            count(Metric.CALLS_ANSWERED)
            session = moved
    if session.call_state == call_events.MACHINE_STATE or session.dialog_requested:
        return
    # The same gate as the events': with detection on, the dialog waits for its verdict.
    call_events.connect_when_ready(services, session, session.attempt, session.call_id)


def watch_call(services: Services, state: dict[str, Any], task_token: str) -> dict[str, Any]:
    """Wait again for the call's outcome after a check: the new task token goes on the session,
    where the call-end event finds it. An outcome stored while no token was live (the event came
    between the check and now, and resumed the expired one) resumes this task at once."""
    session = services.store.require(state["session_id"])
    stored = services.store.set_fields(
        session.session_id, {"task_token": task_token}, only_if_equal={"attempt": session.attempt}
    )
    if stored is None:
        return {"watching": False}
    if stored.status is SessionStatus.CALL_ENDED and stored.outcome is not None:
        output = {
            "outcome": stored.outcome.value,
            "attempt": stored.attempt,
            "duration": stored.call_duration,
        }
        workflow.resume(services.sfn, task_token, output)
    return {"watching": True}


def reconcile(services: Services, session: Session) -> dict[str, Any]:
    """The call's outcome never reached the workflow (CALL_FINISHED lost, or its task resumed
    in vain): learn what became of the call and go on as if the event had come.

    An outcome the session already holds (the event arrived, the resume did not) is used as it
    is. Otherwise Infobip is asked (``GET`` the call): a call still live after the outcome's
    timeout, which is past its maximum duration, is hung up. An answered call goes on to the
    analysis, which finds the conversation if the agent spoke; an unanswered one is planned like
    any other (retried when its outcome is).
    """
    if session.status is SessionStatus.CALL_ENDED and session.outcome is not None:
        outcome = session.outcome
    else:
        outcome, duration, detail = _ask_infobip(services, session)
        services.store.advance(
            session.session_id,
            SessionStatus.CALL_ENDED,
            attempt=session.attempt,
            fields={
                "outcome": outcome.value,
                "outcome_detail": detail,
                "call_duration": duration,
                "call_ended_at": iso(utcnow()),
            },
            event="call reconciled",
            detail={"outcome": outcome.value, "detail": detail},
            same_attempt=True,
        )
    media_configs.close(services, session.session_id, session.media_config_id)
    if outcome is Outcome.ANSWERED:
        slots.release(services, session)
        return next_state(services, session.session_id, COLLECT)
    return plan_retry(services, {"session_id": session.session_id, "call": {"outcome": outcome}})


def _ask_infobip(services: Services, session: Session) -> tuple[Outcome, int, str]:
    """(outcome, seconds of conversation, detail) from the call as Infobip reports it now."""
    try:
        call = services.infobip.get_call(session.call_id)
    except ProviderRejected as error:
        if error.status != 404:
            raise
        if session.conversation_id:
            return Outcome.ANSWERED, 0, "no call event arrived; Infobip no longer knows the call"
        return Outcome.FAILED, 0, "no call event arrived, and Infobip no longer knows the call"
    state = str(call.get("state") or "")
    answered = _time(call.get("answerTime"))
    ended = _time(call.get("endTime"))
    if state in _LIVE_STATES:
        services.infobip.hangup_call(session.call_id)
        ended = utcnow()
    duration = int((ended - answered).total_seconds()) if answered and ended else 0
    if answered or session.conversation_id:
        return Outcome.ANSWERED, max(duration, 0), f"no call event arrived; Infobip said {state}"
    outcome = _ENDED_UNANSWERED.get(state, Outcome.TIMEOUT)
    return outcome, 0, f"no call event arrived; Infobip said {state or 'nothing'}"


def _time_iso(value: object) -> datetime | None:
    """A timestamp this module wrote with :func:`callflow.models.iso`, or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _time(value: object) -> datetime | None:
    """An Infobip timestamp (``2026-01-15T11:59:30.000+0000``), or ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None

"""Scheduling the callback a person asked for: a new session for the record, due at that time.

When the agent collects a callback time (:attr:`CallbackRules.item`), the writeback's fields step
creates the callback's session and starts its execution of the call workflow; the session's
``not_before`` is the time, clamped into the person's calling hours, and the workflow's Prepare
task waits until then (its Wait state, as for a call triggered outside hours). From there it is a
call like any other: the suppression list and calling hours are checked again, admission counts
it against the frequency caps (a refused one ends ``capped`` and its note says so), and its own
note and logged call go on the record next to the first call's.

Idempotent: the callback's session id is derived from the asking session's, its creation is
conditional and an execution is named after its session, so a retried or replayed writeback
finds what the first try made and schedules nothing twice.

The time is ISO 8601, as the agent's data-collection item gives it (ElevenLabs items are
strings, numbers or booleans: a time is a string); one without an offset is the person's local
time, a date alone is that day's first calling hour. Anything else, a time already past or one
further ahead than ``max_days``, is refused: nothing is scheduled and the note says why.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from botocore.exceptions import ClientError

from callflow.aws import error_code
from callflow.callbacks import task
from callflow.lifecycle import workflow
from callflow.lifecycle.calling import calling_hours
from callflow.models import Session, iso, utcnow
from callflow.observability import logger
from callflow.services import Services


class CallbackRefused(ValueError):
    """The collected callback time cannot be scheduled; the message says why."""


def callback_session_id(session_id: str) -> str:
    """The callback's session id: derived from the asking session's, the same on every try."""
    return "cb-" + hashlib.sha256(session_id.encode()).hexdigest()[:32]


def callback_time(value: object, zone: str) -> datetime:
    """The collected value as an aware datetime (see the module docstring)."""
    if not isinstance(value, str) or not value.strip():
        raise CallbackRefused(f"not a time: {value!r}")
    text = value.strip()
    try:
        moment = datetime.fromisoformat(
            text.removesuffix("Z") + ("+00:00" if text.endswith("Z") else "")
        )
    except ValueError as error:
        raise CallbackRefused(f"not an ISO 8601 time: {text[:60]!r}") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(UTC)


def schedule(
    services: Services, session: Session, now: datetime | None = None, workflow_arn: str = ""
) -> dict[str, Any]:
    """Schedule the callback the session's call collected; ``{"callback": ...}`` for the
    writeback's receipt (scheduled, or refused with the reason), empty when none was asked.
    ``workflow_arn`` is the call workflow to start it on (the state machine passes its own;
    the configured ``state_machine_arn`` otherwise)."""
    from callflow.lifecycle.writeback import collected

    rules = services.flows.of(session).callback_rules(services.callback_rules)
    raw = collected(session).get(rules.item) if rules.item else None
    if raw is None or raw == "":
        return {}
    now = now or utcnow()
    zone = session.timezone or services.settings.default_timezone
    requested = str(raw)[:100]
    try:
        wanted = callback_time(raw, zone)
        if wanted <= now:
            raise CallbackRefused("the time is in the past")
        if wanted > now + timedelta(days=rules.max_days):
            raise CallbackRefused(f"more than {rules.max_days} days ahead")
    except CallbackRefused as error:
        logger.info("callback not scheduled", extra={"reason": str(error)})
        return {"callback": {"requested": requested, "refused": str(error)}}
    workflow_arn = workflow_arn or services.settings.state_machine_arn
    if not workflow_arn:
        # No call workflow to start (a replay outside AWS without the setting): say so in the
        # note rather than fail the writeback.
        reason = "callbacks are not configured here (no call workflow to start)"
        logger.warning("callback not scheduled", extra={"reason": reason})
        return {"callback": {"requested": requested, "refused": reason}}
    due = calling_hours(services, session).next_opening(wanted, zone)
    if rules.max_wait_seconds:
        due = min(due, now + timedelta(seconds=rules.max_wait_seconds))
    callback = _create(services, session, due)
    _start(services, workflow_arn, callback.session_id)
    return {
        "callback": {
            "session_id": callback.session_id,
            "requested": requested,
            "at": callback.not_before,
            "timezone": zone,
            **task.for_callback(services, session, callback.session_id, callback.not_before, zone),
        }
    }


def _create(services: Services, session: Session, due: datetime) -> Session:
    """The callback's session, created once (a retry finds the one it made)."""
    callback_id = callback_session_id(session.session_id)
    existing = services.store.get(callback_id)
    if existing is not None:
        return existing
    fresh = Session(
        session_id=callback_id,
        module=session.module,
        record_id=session.record_id,
        flow=session.flow,
        agent_id=session.agent_id,
        agent_overrides=session.agent_overrides,
        caller_id=session.caller_id,
        max_attempts=session.max_attempts,
        phone_raw=session.phone_raw,
        phone_field=session.phone_field,
        phone_numbers=session.phone_numbers,
        timezone=session.timezone,
        variables=session.variables,
        record=session.record,
        record_audio=session.record_audio,
        recording_max_seconds=session.recording_max_seconds,
        not_before=iso(due),
        callback_of=session.session_id,
    )
    try:
        return services.store.create(fresh)
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        return services.store.require(callback_id)  # made by a concurrent try


def _start(services: Services, workflow_arn: str, callback_id: str) -> None:
    """Its execution, named after it: a second start of the same one is no second execution."""
    try:
        workflow.start(
            services.sfn,
            workflow_arn,
            callback_id,
            {"session_id": callback_id},
        )
    except ClientError as error:
        if error_code(error) != "ExecutionAlreadyExists":
            raise


def note_line(receipt: dict[str, Any]) -> str:
    """What the note says of the callback; empty when none was asked."""
    callback = receipt.get("callback")
    if not isinstance(callback, dict):
        return ""
    if callback.get("refused"):
        return (
            f"Callback: asked for {callback.get('requested')!r}, not scheduled: "
            f"{callback['refused']}."
        )
    at = datetime.fromisoformat(str(callback["at"]).replace("Z", "+00:00"))
    local = at.astimezone(ZoneInfo(str(callback.get("timezone") or "UTC")))
    return (
        f"Callback: asked for {callback.get('requested')!r}; the call is scheduled for "
        f"{local:%Y-%m-%d %H:%M} {local.tzname()} (session {callback['session_id']})."
    )

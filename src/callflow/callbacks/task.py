"""A Zoho Task for the record's owner with each callback scheduled (``callback_task``, off by
default): someone at the business sees that the person asked to be called back, and when.

The Task is due on the callback's local date, linked to the record (``Who_Id`` for a Contact,
``What_Id`` + ``$se_module`` otherwise) and owned by the record's owner, read with the record at
trigger time (``task_owner_field``); without one Zoho gives it to the connection's user.

It is created in the writeback's fields step, right after the callback is scheduled, once:
before the request goes out a ``task_sent`` mark is stored on the session, so a retried or
replayed step whose answer was lost looks for the Task (by the session line its description
carries) before it creates one. The step's receipt is stored only when the whole step is done,
which is why the mark goes into the stored writeback map on its own.

The Task never fails the writeback. A refusal (a 4xx: a field the org lacks, a scope the
connection was not given, an owner who left) is recorded at once; an unavailable Zoho (5xx, 429,
a timeout) raises, so the workflow retries the step as it does every Zoho write, until
``task_attempts`` tries are spent, and is then recorded. Either way the receipt and the note say
"task not created" and why; the callback itself stays scheduled.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from callflow.models import Session
from callflow.observability import logger
from callflow.providers.errors import ProviderRejected, RetryableProviderError
from callflow.services import Services

SENT = "task_sent"
"""The writeback key marking that a Task request went out (its answer may have been lost)."""
TRIES = "task_tries"
"""The writeback key counting the tries of the Task request across runs of the fields step."""


def owner_id(record: dict[str, Any], field: str) -> str:
    """The owner's user id from the record snapshot (Zoho reads an owner as ``{name, id,
    email}``); empty when the field is unset, not read, or not a Zoho id."""
    value = record.get(field) if field else None
    if isinstance(value, dict):
        value = value.get("id")
    text = str(value or "").strip()
    return text if text.isdigit() else ""


def due_date(not_before: str, zone: str) -> date:
    """The callback's date where the person is (``not_before`` is the callback session's)."""
    at = datetime.fromisoformat(not_before.replace("Z", "+00:00"))
    return at.astimezone(ZoneInfo(zone)).date()


def for_callback(
    services: Services, session: Session, callback_id: str, not_before: str, zone: str
) -> dict[str, Any]:
    """The Task for the callback ``callback_id`` that ``session`` asked for, created once;
    ``{"task": ...}`` for the callback's receipt (created, or not with the reason), empty when
    Tasks are off. Raises :class:`RetryableProviderError` while tries are left."""
    rules = services.flows.of(session).callback_rules(services.callback_rules)
    if not rules.task:
        return {}
    due = due_date(not_before, zone)
    owner = owner_id(session.record, rules.task_owner_field)
    tries = int(session.writeback.get(TRIES) or 0) + 1
    try:
        task_id = _create_once(
            services, session, callback_id, due, owner, tries, rules.task_subject
        )
    except RetryableProviderError as error:
        if tries < rules.task_attempts:
            raise
        reason = f"Zoho unavailable after {tries} tries ({error.message[:200]})"
        logger.warning("callback task not created", extra={"reason": reason})
        return {"task": {"refused": reason}}
    except ProviderRejected as error:
        reason = error.message.removeprefix("task not created: ")[:300]
        logger.warning("callback task refused", extra={"reason": reason})
        return {"task": {"refused": reason}}
    return {"task": {"task_id": task_id, "due": due.isoformat(), "owner_id": owner}}


def _create_once(
    services: Services,
    session: Session,
    callback_id: str,
    due: date,
    owner: str,
    tries: int,
    subject: str,
) -> str:
    """Find the Task an earlier try sent, else mark and send it (see the module docstring)."""
    from callflow.lifecycle.writeback import session_marker

    marker = session_marker(session)
    zoho = services.zoho
    marks = {k: v for k, v in session.writeback.items() if k != "error"}
    marks.update({SENT: True, TRIES: tries})
    # Counted before the look-up too, so a Zoho that fails every look-up still runs out of tries.
    services.store.set_fields(session.session_id, {"writeback": marks})
    if session.writeback.get(SENT):
        found = zoho.find_task(session.module, session.record_id, marker)
        if found:
            return found
    description = (
        f"The person asked to be called back; the AI call is scheduled for {due.isoformat()} "
        f"(session {callback_id}).\n\n{marker}"
    )
    return zoho.create_task(
        session.module,
        session.record_id,
        subject=subject,
        due=due,
        description=description,
        owner_id=owner,
    )


def note_line(receipt: dict[str, Any]) -> str:
    """What the note says of the callback's Task; empty when none was asked for."""
    callback = receipt.get("callback")
    task = callback.get("task") if isinstance(callback, dict) else None
    if not isinstance(task, dict):
        return ""
    if task.get("refused"):
        return f"Task: not created: {task['refused']}."
    whose = "the record's owner" if task.get("owner_id") else "the Zoho connection's user"
    return f"Task: created for {whose}, due {task.get('due')} (task {task.get('task_id')})."

"""The Zoho trigger: turn "call this record" into a call session and a workflow execution.

The webhook body is not trusted: only the module and the record id are taken from it, and the record
is re-read through the API (one Zoho credit). That read happens here rather than in the workflow so
an unknown record is refused to the caller at once (404) and the workflow starts from a snapshot it
does not have to read again: reading, the field update, the note and the logged call are the four
credits a completed call costs.

The record is claimed before it is read, so a duplicate trigger is refused without spending a
credit. Whatever fails after the claim (the read, the session's creation, the execution's start) is
undone before the error goes back to the caller: the claim is released and the ``created`` session
deleted, so a failed trigger leaves the record free to be triggered again.
"""

from __future__ import annotations

import re
from typing import Any

from callflow.flows.errors import UnknownFlow
from callflow.flows.loading import Flow
from callflow.lifecycle import workflow
from callflow.models import DynamicValue, Session, new_session_id
from callflow.observability import logger
from callflow.providers.zoho.client import MAX_READ_FIELDS
from callflow.services import Services

MODULE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
RECORD_ID_PATTERN = re.compile(r"^[0-9]{1,30}$")


class TriggerRefused(Exception):
    """The trigger is understood but not acted on (duplicate, unknown record)."""

    def __init__(self, status_code: int, reason: str, session_id: str = "") -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason
        self.session_id = session_id


def record_fields(services: Services, module: str, flow: Flow | None = None) -> list[str]:
    """The fields read at trigger time for ``flow`` (the default flow without one): phone, time
    zone, the agent's variables, the fields the writeback will touch for ``module`` (so the
    session keeps a "before" picture), and the opt-out checkbox (checked before every dial).

    Only fields the module has are asked for (its field metadata, cached): Zoho refuses a read
    that names a field the module lacks, and one configuration serves several modules (there is
    no ``Lead_Status`` on Contacts, no ``Company`` on Deals). ``callflow setup`` reports the
    configured fields a module lacks, in words; here they are skipped and logged.
    """
    flow = flow or services.flows.default
    spec = flow.spec
    wanted = [*spec.phones, spec.timezone_field, *spec.variables]
    wanted += flow.mapping.fields(module)
    if spec.status_field:
        wanted.append(spec.status_field)
    if flow.contact_rules.optout_field:
        wanted.append(flow.contact_rules.optout_field)
    callback = flow.callback_rules(services.callback_rules)
    if callback.task:  # the callback's Task goes to the record's owner
        wanted.append(callback.task_owner_field)
    unique = list(dict.fromkeys(f for f in wanted if f))
    known = services.zoho.module_fields(module)
    missing = [f for f in unique if f not in known]
    if missing:
        logger.warning(
            "configured fields the module lacks are not read",
            extra={"crm_module": module, "fields": missing},
        )
    return [f for f in unique if f in known][:MAX_READ_FIELDS]


def dynamic_variables(record: dict[str, Any], fields: list[str]) -> dict[str, DynamicValue]:
    """Record fields as the agent's dynamic variables (``First_Name`` -> ``first_name``).

    ElevenLabs takes strings, numbers and booleans only, and ends the conversation when a variable
    its prompt or a tool needs is missing, so every configured field is sent, empty when unset.
    """
    variables: dict[str, DynamicValue] = {}
    for field in fields:
        value = record.get(field)
        key = field.lower()
        if isinstance(value, bool | int | float | str):
            variables[key] = value
        elif isinstance(value, dict) and "name" in value:  # lookups come as {"id", "name"}
            variables[key] = str(value["name"])
        elif isinstance(value, list):
            variables[key] = ", ".join(str(v) for v in value)
        else:
            variables[key] = ""
    return variables


def start_session(services: Services, module: str, record_id: str, flow_name: str = "") -> Session:
    """Claim the record, re-read it, create its session and start the session's workflow.

    ``flow_name`` names the flow (empty: the default); an unknown one is refused (422) before
    anything is claimed.

    Raises :class:`TriggerRefused` (409) when another session holds the record (active, or inside
    ``trigger_window_seconds``), before Zoho is asked anything. Any error after the claim
    (provider errors from reading the record, AWS errors from the store or Step Functions)
    propagates once :func:`_undo` has released the claim and deleted the session. If the undo
    finds the session moved past ``created``, the execution did start (only its answer was lost):
    the session is returned as if nothing had failed.
    """
    settings = services.settings
    try:
        flow = services.flows.get(flow_name)
    except UnknownFlow as error:
        raise TriggerRefused(422, str(error)) from None
    session_id = new_session_id()
    blocking = services.store.claim_record(
        module, record_id, session_id, settings.trigger_window_seconds
    )
    if blocking:
        raise TriggerRefused(
            409, f"a call session for {module}/{record_id} is active or too recent", blocking
        )
    try:
        session = _open(services, module, record_id, session_id, flow)
    except Exception as error:
        started = _undo(services, module, record_id, session_id, error)
        if started is None:
            raise
        return started
    logger.info("session started", extra={"session_id": session_id, "record": f"{module}"})
    return session


def _open(services: Services, module: str, record_id: str, session_id: str, flow: Flow) -> Session:
    """Read the record, create the session from it (with what the flow's dial and bridge need),
    start its execution."""
    settings = services.settings
    record = services.zoho.get_record(module, record_id, record_fields(services, module, flow))
    session = create_session(services, module, record_id, record, session_id=session_id, flow=flow)
    workflow.start(services.sfn, settings.state_machine_arn, session_id, {"session_id": session_id})
    return session


def create_session(
    services: Services,
    module: str,
    record_id: str,
    record: dict[str, Any],
    *,
    session_id: str,
    campaign_id: str = "",
    flow: Flow | None = None,
) -> Session:
    """Create the session of a claimed record from its snapshot (the fields
    :func:`record_fields` read for ``flow``, the default flow without one): the one place a
    session is made, for a single trigger and a campaign's item alike. The session carries what
    the flow's dial and bridge need. The write is conditional on the id being new."""
    flow = flow or services.flows.default
    spec = flow.spec
    numbers = [
        {"field": name, "raw": str(record.get(name) or "").strip()}
        for name in spec.phones
        if str(record.get(name) or "").strip()
    ]
    first = numbers[0] if numbers else {"field": spec.phones[0], "raw": ""}
    recording = services.recording_rules
    # The flow decides; the deployment's bucket (and its settings' defaults) make it possible.
    record_audio = spec.recording.enabled and bool(recording.bucket)
    recording_seconds = spec.recording.max_seconds or recording.max_seconds
    return services.store.create(
        Session(
            session_id=session_id,
            module=module,
            record_id=record_id,
            campaign_id=campaign_id,
            flow=flow.name,
            agent_id=spec.agent.agent_id,
            agent_overrides=spec.agent.overrides,
            caller_id=spec.caller_id,
            max_attempts=spec.retry.most_attempts * max(1, len(numbers)),
            phone_raw=first["raw"],
            phone_field=first["field"],
            phone_numbers=numbers,
            timezone=str(record.get(spec.timezone_field) or "") if spec.timezone_field else "",
            variables=dynamic_variables(record, spec.variables),
            record=record,
            record_audio=record_audio,
            recording_max_seconds=recording_seconds if record_audio else 0,
        )
    )


def _undo(
    services: Services, module: str, record_id: str, session_id: str, cause: Exception
) -> Session | None:
    """Take back what a failed trigger wrote: the ``created`` session, then the claim.

    ``None`` when undone. A session still ``created`` is deleted even if a lost answer hid an
    execution that did start: that execution then finds no session and ends without calling
    anyone. The session is returned, and the claim kept for it, when it has moved past
    ``created``: only its execution moves it, so the execution runs.

    When the undo fails as well (the store unreachable), ``None``, and the failure is logged with
    the session id: a claim whose session was never created lapses after
    :data:`callflow.store.PENDING_CLAIM_SECONDS`, but a ``created`` session that could not be
    deleted counts as active and keeps the record blocked until it is deleted or expires.
    """
    store = services.store
    where = {"session_id": session_id, "crm_module": module, "error": type(cause).__name__}
    try:
        if not store.delete_created(session_id):
            logger.warning("trigger failed after its execution started; keeping it", extra=where)
            return store.get(session_id)
        store.release_claim(module, record_id, session_id)
    except Exception:
        logger.exception("a failed trigger could not undo its claim and session", extra=where)
        return None
    logger.info("failed trigger undone: claim released, no session left", extra=where)
    return None

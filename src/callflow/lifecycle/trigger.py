"""The Zoho trigger: turn "call this record" into a call session and a workflow execution.

The webhook body is not trusted: only the module and the record id are taken from it, and the record
is re-read through the API (one Zoho credit). That read happens here rather than in the workflow so
an unknown record is refused to the caller at once (404) and the workflow starts from a snapshot it
does not have to read again: reading, the field update, the note and the logged call are the four
credits a completed call costs.
"""

from __future__ import annotations

import re
from typing import Any

from callflow.lifecycle import workflow
from callflow.models import DynamicValue, Session, new_session_id
from callflow.observability import logger
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


def record_fields(services: Services) -> list[str]:
    """The fields read at trigger time: phone, time zone, the agent's variables, and the fields
    the writeback will touch (so the session keeps a "before" picture)."""
    settings = services.settings
    wanted = [settings.zoho_phone_field, settings.zoho_timezone_field, *settings.variable_fields]
    wanted += [target for target in services.mapping.fields()]
    if settings.zoho_call_status_field:
        wanted.append(settings.zoho_call_status_field)
    unique = list(dict.fromkeys(f for f in wanted if f))
    return unique[:50]  # Zoho reads at most 50 fields per request


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


def start_session(services: Services, module: str, record_id: str) -> Session:
    """Re-read the record, claim it, create its session and start the session's workflow.

    Raises :class:`TriggerRefused` (409) when another session holds the record (active, or inside
    ``trigger_window_seconds``); provider errors from reading the record propagate.
    """
    settings = services.settings
    record = services.zoho.get_record(module, record_id, record_fields(services))
    session_id = new_session_id()
    blocking = services.store.claim_record(
        module, record_id, session_id, settings.trigger_window_seconds
    )
    if blocking:
        raise TriggerRefused(
            409, f"a call session for {module}/{record_id} is active or too recent", blocking
        )
    session = services.store.create(
        Session(
            session_id=session_id,
            module=module,
            record_id=record_id,
            max_attempts=settings.max_attempts,
            phone_raw=str(record.get(settings.zoho_phone_field) or ""),
            timezone=str(record.get(settings.zoho_timezone_field) or "")
            if settings.zoho_timezone_field
            else "",
            variables=dynamic_variables(record, settings.variable_fields),
            record=record,
        )
    )
    workflow.start(services.sfn, settings.state_machine_arn, session_id, {"session_id": session_id})
    logger.info("session started", extra={"session_id": session_id, "record": f"{module}"})
    return session

"""An execution that ended outside the workflow's own paths: aborted, timed out, or failed past
every Catch.

The workflow releases a call's slots and ends its session on each of its own paths; an execution
stopped from outside (an operator's StopExecution, the execution's timeout, a failure no Catch
took) runs none of them. The rule on Step Functions' execution-status events calls this instead:
the call is hung up if it is still live, its slots are released, its media-stream config
deleted, and the session is marked ``writeback_failed`` with the reason, so that it no longer
counts as active (the record can be triggered again) and what it collected can be replayed.
Each step is idempotent, so a redelivered event does no harm.
"""

from __future__ import annotations

from typing import Any

from callflow.admission import slots
from callflow.lifecycle import media_configs, writeback
from callflow.models import SessionStatus, is_session_id
from callflow.observability import logger
from callflow.providers.errors import ProviderError
from callflow.services import Services

STOPPED_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
_LIVE = frozenset({SessionStatus.DIALING, SessionStatus.RINGING, SessionStatus.IN_CALL})


def session_of(detail: dict[str, Any]) -> str:
    """The session an execution ran: its name (executions are named after their session)."""
    name = str(detail.get("name") or "")
    return name if is_session_id(name) else ""


def execution_stopped(services: Services, detail: dict[str, Any]) -> dict[str, Any]:
    """Clean up after the execution the status event's ``detail`` describes."""
    status = str(detail.get("status") or "")
    session_id = session_of(detail)
    if status not in STOPPED_STATUSES or not session_id:
        return {"handled": False, "reason": f"not a stopped call execution ({status or 'none'})"}
    session = services.store.get(session_id)
    if session is None:
        return {"handled": False, "reason": "no such session"}
    if session.status in _LIVE and session.call_id:
        try:
            services.infobip.hangup_call(session.call_id)
        except ProviderError as error:
            logger.warning(
                "could not hang up a stopped execution's call", extra={"error": str(error)}
            )
    slots.release(services, session)
    media_configs.close(services, session_id, session.media_config_id)
    if session.active:
        name = "Execution" + status.title().replace("_", "")
        cause = str(detail.get("cause") or f"the execution ended {status}")
        writeback.mark_failed(services, session_id, {"Error": name, "Cause": cause})
    return {"handled": True, "status": status}

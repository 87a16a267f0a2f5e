"""Collecting what the agent gathered: the post-call webhook, with polling as the fallback.

ElevenLabs does not retry its post-call webhook by default, so the workflow waits for it only for a
while (``analysis_wait_seconds``) and then polls the conversation until the analysis is done. The
webhook and the waiting task can arrive in either order; whichever comes second resumes the
workflow, and a second resume is harmless.
"""

from __future__ import annotations

from typing import Any

from callflow.lifecycle import outcomes, workflow
from callflow.models import Session, SessionStatus
from callflow.observability import logger
from callflow.services import Services

FINAL_STATUSES = frozenset({"done", "failed"})


class AnalysisPending(Exception):
    """The conversation is still being analysed; the state machine retries with backoff."""


class ForeignConversation(ValueError):
    """Results of a conversation that is not the session's own: never stored, so nothing but
    the session's own conversation is written back. In the workflow the task fails and goes to
    the writeback without results."""


def await_analysis(services: Services, state: dict[str, Any], task_token: str) -> dict[str, Any]:
    """Park the workflow on ``task_token`` until the results are in.

    The token is stored on the session so the post-call webhook can resume it; when the results
    are already final (the webhook came first) the task is resumed at once, and a session with no
    conversation resumes it with ``no_conversation``.
    """
    session_id = state["session_id"]
    store = services.store
    session = store.require(session_id)
    if not session.conversation_id:
        # Nobody spoke to the person: nothing to collect, and the call is retried by policy.
        record_no_agent(services, session)
        workflow.resume(services.sfn, task_token, {"status": "no_conversation"})
        return {"waiting": False}
    moved = store.advance(
        session_id, SessionStatus.COLLECTING, fields={"analysis_task_token": task_token}
    ) or store.set_fields(session_id, {"analysis_task_token": task_token})
    results = moved.results if moved else {}
    if results.get("status") in FINAL_STATUSES:
        workflow.resume(services.sfn, task_token, {"status": results["status"]})
    return {"waiting": True}


def fetch_analysis(services: Services, state: dict[str, Any]) -> dict[str, Any]:
    """Poll the conversation instead of waiting for the webhook, and store its results once final.

    Raises :class:`AnalysisPending` while ElevenLabs is still analysing, so the state machine
    retries, and :class:`ForeignConversation` (nothing stored) when the answer is another
    conversation's; results already on the session (or no conversation) answer without a
    request.
    """
    session = services.store.require(state["session_id"])
    if not session.conversation_id:
        record_no_agent(services, session)
        return {"status": "no_conversation"}
    if session.results.get("status") in FINAL_STATUSES:
        return {"status": session.results["status"]}
    conversation = services.elevenlabs.get_conversation(session.conversation_id)
    if not conversation.is_final:
        raise AnalysisPending(f"conversation is {conversation.status}")
    store_results(services, session.session_id, conversation.results(), source="poll")
    return {"status": conversation.status}


def record_no_agent(services: Services, session: Session) -> None:
    """An answered call without an agent conversation: its outcome says so, in words."""
    outcome, detail = outcomes.combined(session)
    if outcome is not session.outcome:
        services.store.set_fields(
            session.session_id,
            {"outcome": outcome.value if outcome else None, "outcome_detail": detail[:500]},
            event="no agent conversation",
            detail={"outcome": outcome.value if outcome else None},
        )


def store_results(
    services: Services, session_id: str, results: dict[str, Any], *, source: str
) -> bool:
    """Keep the results on the session before anything is written to the CRM; the first copy
    wins (the webhook and the poll carry the same analysis). Resumes a waiting task.

    Only the session's own conversation's results are kept: the write is conditional on the
    session's ``conversation_id`` being the one the results name, and
    :class:`ForeignConversation` says when it is not. ``False``: results were already there.
    """
    conversation_id = str(results.get("conversation_id") or "")
    if not conversation_id:
        raise ForeignConversation("the results name no conversation")
    stored = services.store.set_fields(
        session_id,
        {"results": results},
        only_if_absent="results",
        only_if_equal={"conversation_id": conversation_id},
        event="results collected",
        detail={"source": source, "status": results.get("status")},
    )
    if stored is None:
        _refused(services, session_id, conversation_id)
        return False
    if stored.analysis_task_token:
        workflow.resume(
            services.sfn, stored.analysis_task_token, {"status": results.get("status", "done")}
        )
    logger.info("results stored", extra={"source": source})
    return True


def _refused(services: Services, session_id: str, conversation_id: str) -> None:
    """Why the conditional write refused the results (read only then): raise when they are
    another conversation's; return when the session already has its results (or is gone)."""
    session = services.store.get(session_id)
    if session is not None and session.conversation_id != conversation_id:
        logger.warning(
            "results of another conversation refused",
            extra={"conversation_id": conversation_id, "own": session.conversation_id},
        )
        raise ForeignConversation(f"{conversation_id} is not the session's conversation")

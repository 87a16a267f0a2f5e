"""What happened on a call, from what Infobip and the bridge each saw.

Infobip knows whether the phone was picked up; only the bridge knows whether anyone spoke to the
person. An answered call with no agent conversation (the agent refused it, over its concurrency,
or could not be reached, or the call was never connected to the bridge) is not "reached": the
person heard nobody, and the call is retried like an unanswered one. An answered call whose agent
side failed mid-call is "reached" but says so.
"""

from __future__ import annotations

from callflow.models import Outcome, Session

_WHY_NO_AGENT = {
    "agent_unavailable": "the agent could not take the call",
    "agent_error": "the agent's side failed before the conversation started",
    "unsupported_format": "the agent's audio format cannot be served",
    "bridge_error": "the bridge failed",
}


def combined(session: Session) -> tuple[Outcome | None, str]:
    """The session's outcome and its detail, the bridge's view included."""
    outcome = session.outcome
    if outcome is not Outcome.ANSWERED:
        return outcome, session.outcome_detail
    reason = str(session.bridge.get("end_reason") or "")
    detail = str(session.bridge.get("end_detail") or "")
    if not session.conversation_id:
        why = _WHY_NO_AGENT.get(reason, "the call was never connected to the agent")
        return Outcome.AGENT_UNAVAILABLE, f"answered, but nobody spoke: {why}" + (
            f" ({detail})" if detail else ""
        )
    if reason == "agent_error":
        return Outcome.AGENT_DROPPED, f"the agent's side failed mid-call ({detail})"
    return outcome, session.outcome_detail

"""Workflow task: one step of writing the results to the CRM record (fields, note, logged call);
the state machine runs each step as a task of its own."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.lifecycle import writeback
from callflow.observability import bind_session, logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Run ``event["step"]`` of the session's writeback (every step when none is named).

    No step is named by executions that started under the earlier definition, whose single
    WriteBack state passed the whole workflow state: an execution keeps the definition it
    started with, so after a deploy those still run to completion here."""
    bind_session(event["session_id"])
    step = event.get("step")
    if step is None:
        return writeback.write_back(get_services(), event["session_id"])
    # The call workflow's own ARN (its context object): a callback is a new execution of it.
    workflow_arn = str(event.get("workflow_arn") or "")
    return writeback.write_step(get_services(), event["session_id"], str(step), workflow_arn)

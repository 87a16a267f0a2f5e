"""EventBridge target: a call execution aborted, timed out or failed outside its own Catch.

The rule (``infra/cdk/callflow_infra/workflow.py``) matches Step Functions' "Execution Status
Change" events of the call workflow with those statuses; the work is
:func:`callflow.lifecycle.stopped.execution_stopped`.
"""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from callflow.lifecycle import stopped
from callflow.observability import bind_session, logger, metrics
from callflow.services import get_services


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Release the stopped execution's slots and end its session (``event`` is EventBridge's)."""
    detail = event.get("detail") or {}
    bind_session(stopped.session_of(detail))
    return stopped.execution_stopped(get_services(), detail)

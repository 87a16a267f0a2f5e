"""The embedded AWS: a moto server in this process, with the project's resources in it.

moto stands in for DynamoDB, Secrets Manager, S3 (campaign items), Lambda and Step Functions. Its
Step Functions interpreter executes the project's own ASL files (Retry, Wait, Choice,
``.waitForTaskToken``, the campaign's Distributed Map and ``startExecution.sync:2``), and each
Lambda invocation it makes is routed to the real task handler in this process, so the flow that
runs locally is the one that runs on AWS: no second copy of it in Python.

Every client (the API, the tasks, the bridge) reaches moto over a real socket: ``AWS_ENDPOINT_URL``
points boto3 at it, exactly as it would point at any other endpoint.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callflow.aws import error_code
from callflow.lifecycle.stopped import STOPPED_STATUSES
from callflow_functions.definition import CAMPAIGN_ASL_FILE, definition_text

#: Substitution name in the ASL file -> (Lambda function suffix, handler module).
TASK_FUNCTIONS = {
    "PrepareFunctionArn": ("prepare", "callflow_functions.prepare"),
    "AdmitFunctionArn": ("admit", "callflow_functions.admit"),
    "PlaceCallFunctionArn": ("place-call", "callflow_functions.place_call"),
    "PlanRetryFunctionArn": ("plan-retry", "callflow_functions.plan_retry"),
    "AwaitAnalysisFunctionArn": ("await-analysis", "callflow_functions.await_analysis"),
    "FetchAnalysisFunctionArn": ("fetch-analysis", "callflow_functions.fetch_analysis"),
    "WriteBackFunctionArn": ("write-back", "callflow_functions.write_back"),
    "MarkFailedFunctionArn": ("mark-failed", "callflow_functions.mark_failed"),
}

#: The campaign state machine's substitutions -> (function suffix, handler module); its
#: ``${CallWorkflowArn}`` is the call workflow's ARN.
CAMPAIGN_TASK_FUNCTIONS = {
    "CampaignEnumerateFunctionArn": ("campaign-enumerate", "callflow_functions.campaign_enumerate"),
    "CampaignItemFunctionArn": ("campaign-item", "callflow_functions.campaign_item"),
    "CampaignFinishFunctionArn": ("campaign-finish", "callflow_functions.campaign_finish"),
}

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalLambdaContext:
    """What Powertools reads from a Lambda context."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    function_version: str = "$LATEST"
    _deadline: float = field(default_factory=lambda: time.monotonic() + 900)

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left of a 900 s budget (Lambda's maximum timeout) from creation."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LambdaRouter:
    """Routes moto's Lambda invocations to handlers in this process."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.invocations: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def register(self, function_name: str, handler: Handler) -> None:
        """Route invocations of ``function_name`` (the bare name, not an ARN) to ``handler``."""
        self.handlers[function_name] = handler

    def invoke(self, function_name: str, body: str | bytes | None) -> tuple[bytes, bool]:
        """The handler's JSON answer, and whether it is a function error."""
        name = function_name.split(":function:")[-1].split(":")[0]
        handler = self.handlers.get(name)
        if handler is None:
            return _error("ResourceNotFoundException", f"no local handler for {name}"), True
        event = json.loads(body) if body else {}
        with self._lock:
            self.invocations.append((name, event))
        try:
            result = handler(event, LocalLambdaContext(function_name=name))
        except Exception as error:
            return _error(type(error).__name__, str(error), traceback.format_exc()), True
        return json.dumps(result).encode(), False


def _one_second_retries(node: Any) -> Any:
    if isinstance(node, dict):
        if "ErrorEquals" in node and "MaxAttempts" in node:
            node = {**node, "IntervalSeconds": 1, "BackoffRate": 1.0}
            node.pop("MaxDelaySeconds", None)
            node.pop("JitterStrategy", None)
        return {key: _one_second_retries(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_one_second_retries(value) for value in node]
    return node


def _error(error_type: str, message: str, trace: str = "") -> bytes:
    return json.dumps(
        {"errorType": error_type, "errorMessage": message, "stackTrace": trace.splitlines()}
    ).encode()


_active_router: LambdaRouter | None = None


def _install_router(router: LambdaRouter) -> None:
    """Point moto's Docker-less Lambda backend at the router (once per process)."""
    global _active_router
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.core.config import default_user_config

    default_user_config["lambda"] = {"use_docker": False}
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    _active_router = router

    def invoke(
        self: Any,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        assert _active_router is not None
        payload, failed = _active_router.invoke(function_name, body)
        if failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        return payload

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]


_DYNAMODB_ITEM_CALLS = (
    "update_item",
    "put_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
    "get_item",
    "query",
    "scan",
)
_dynamodb_lock = threading.RLock()


def _serialise_dynamodb_writes() -> None:
    """Make moto's DynamoDB item operations atomic, as DynamoDB's are for one item.

    moto's server handles requests on threads and applies an update in place (``list_append``
    reads the list, then assigns the new one), so two concurrent updates of one item can lose
    one of them: a timeline entry of the session vanished that way when an Infobip event and
    the workflow wrote at once. DynamoDB never does that, so the embedded one must not either.
    Idempotent.
    """
    from moto.dynamodb.models import DynamoDBBackend

    for name in _DYNAMODB_ITEM_CALLS:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_callflow_serialised", False):
            continue

        def serialised(self: Any, *args: Any, _method: Any = method, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return _method(self, *args, **kwargs)

        serialised._callflow_serialised = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, serialised)


#: The EventBridge rule on stopped executions: state machine ARN -> its target's handler.
_status_rules: dict[str, Handler] = {}
_status_log = logging.getLogger("callflow.local.events")


def _publish_execution_status_changes() -> None:
    """Emulate the stack's EventBridge rule on "Step Functions Execution Status Change" events.

    moto has no EventBridge delivery for Step Functions, so when one of its executions ends, the
    event AWS would publish is built here (the fields the rule and its target read) and, for a
    state machine with a rule and a status the rule matches, delivered to the target's handler
    on a thread of its own, as EventBridge delivers asynchronously. AWS publishes ABORTED when
    the execution is stopped, while moto's worker only ends once the state it was in returns
    (a task waiting for a token may wait for minutes), so a stop publishes at once. Idempotent.
    """
    from moto.stepfunctions.parser.backend.execution import (
        BaseExecutionWorkerCommunication,
        Execution,
    )

    original_terminated = BaseExecutionWorkerCommunication.terminated
    if getattr(original_terminated, "_callflow_published", False):
        return
    original_stop = Execution.stop

    def terminated(self: Any) -> None:
        original_terminated(self)
        execution = self.execution
        _publish(execution, str(getattr(execution.exec_status, "value", execution.exec_status)))

    def stop(self: Any, stop_date: Any, error: Any, cause: Any) -> None:
        original_stop(self, stop_date, error, cause)
        _publish(self, "ABORTED", error, cause)

    terminated._callflow_published = True  # type: ignore[attr-defined]
    BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign]
    Execution.stop = stop  # type: ignore[method-assign]


def _publish(execution: Any, status: str, error: Any = None, cause: Any = None) -> None:
    """Deliver the status event of ``execution`` to its state machine's rule, once."""
    handler = _status_rules.get(str(execution.state_machine_arn))
    if handler is None or status not in STOPPED_STATUSES:
        return
    if getattr(execution, "_callflow_status_published", False):
        return
    execution._callflow_status_published = True
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "region": execution.region_name,
        "detail": {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": status,
            "input": json.dumps(execution.input_data),
            "error": error or execution.error,
            "cause": cause or execution.cause,
        },
    }
    threading.Thread(target=_deliver, args=(handler, event), daemon=True).start()


def _deliver(handler: Handler, event: dict[str, Any]) -> None:
    try:
        handler(event, LocalLambdaContext(function_name="execution-stopped"))
    except Exception:
        _status_log.exception("the stopped-execution rule's target failed")


def _name_sfn_integration_parameters() -> None:
    """Send a Step Functions service task's parameters under the API's member names.

    An ASL task names them as AWS documents them (``StateMachineArn``, ``Name``, ``Input`` for
    ``states:startExecution``), and AWS maps them onto the API. moto 5.2's interpreter hands
    them to boto3 unchanged, with parameter validation off, so botocore fails on
    ``StateMachineArn`` (its member is ``stateMachineArn``) and the task ends ``States.Runtime``;
    and it reads the answer under AWS's capitalised names (``ExecutionArn``) that boto3 does not
    use, and keeps its times as datetimes the execution's output cannot hold. The names are
    matched to the operation's input members case-insensitively, the answer's keys capitalised
    and its times made epoch milliseconds, as AWS does. Idempotent.
    """
    from botocore.session import get_session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_sfn as sfn_task,
    )

    service = sfn_task.StateTaskServiceSfn
    original = service._normalise_parameters
    if getattr(original, "_callflow_named", False):
        return
    model = get_session().get_service_model("stepfunctions")

    def normalise(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original(self, parameters, boto_service_name, service_action_name)
        if service_action_name is not None:
            return
        action = self._get_boto_service_action()
        operation = next(
            (model.operation_model(o) for o in model.operation_names if _snake(o) == action), None
        )
        if operation is None or operation.input_shape is None:
            return
        members = {name.lower(): name for name in operation.input_shape.members}
        for key in list(parameters):
            member = members.get(key.lower())
            if member is not None and member != key:
                parameters[member] = parameters.pop(key)

    original_response = service._normalise_response

    def normalise_response(
        self: Any,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_response(self, response, boto_service_name, service_action_name)
        if isinstance(response, dict):  # AWS answers a task with the API's names capitalised
            for key in [k for k in response if k[:1].islower()]:
                value = response.pop(key)
                if isinstance(value, datetime):  # and its times in epoch milliseconds
                    value = int(value.timestamp() * 1000)
                response[key[:1].upper() + key[1:]] = value

    normalise._callflow_named = True  # type: ignore[attr-defined]
    service._normalise_parameters = normalise  # type: ignore[method-assign]
    service._normalise_response = normalise_response  # type: ignore[method-assign]


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class EmbeddedAws:
    """A moto server on a free loopback port, with the table, secret, functions and workflow.

    One per process (:meth:`shared`): clients built at import time (Powertools' idempotency
    store) keep pointing at the same endpoint however many local stacks a test run starts.
    """

    _shared: EmbeddedAws | None = None

    @classmethod
    def shared(cls) -> EmbeddedAws:
        """The process's one instance, started on first use; later calls re-export its endpoint."""
        if cls._shared is None:
            cls._shared = cls().start()
        else:
            cls._shared._export_env()
        return cls._shared

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.router = LambdaRouter()
        self.endpoint = ""
        self.port = 0
        self.state_machine_arn = ""
        self.campaign_state_machine_arn = ""
        self._server: Any = None

    def start(self) -> EmbeddedAws:
        """Start moto, route its Lambda invocations here and point boto3 (env) at it."""
        from moto.server import ThreadedMotoServer

        for name in ("moto", "werkzeug", "moto.stepfunctions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        _install_router(self.router)
        _serialise_dynamodb_writes()
        _publish_execution_status_changes()
        _name_sfn_integration_parameters()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        self.port = self._server._server.server_port
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._export_env()
        return self

    def _export_env(self) -> None:
        # The ASL interpreter calls Lambda at localhost:MOTO_PORT; every boto3 client at us.
        os.environ["MOTO_PORT"] = str(self.port)
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = self.region
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")

    def stop(self) -> None:
        """Stop the moto server; calling it again does nothing."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this moto endpoint."""
        import boto3

        return boto3.client(service, region_name=self.region, endpoint_url=self.endpoint)

    def create_table(self, name: str) -> None:
        """The session table (:func:`create_table`), reached through ``AWS_ENDPOINT_URL``."""
        create_table(name, self.region)

    def put_secret(self, name: str, values: dict[str, str]) -> str:
        """Create a secret holding ``values`` as a JSON string; return its ARN."""
        client = self.client("secretsmanager")
        arn = client.create_secret(Name=name, SecretString=json.dumps(values))["ARN"]
        return str(arn)

    def deploy_workflow(self, prefix: str = "callflow", *, fast_retries: bool = False) -> str:
        """Create the task functions and the state machine from the project's ASL file.

        Names get a unique suffix so several stacks can share one embedded AWS. ``fast_retries``
        (tests only) keeps every Retry policy but waits one second between attempts, so that
        "retries exhausted" takes seconds instead of minutes.
        """
        prefix = f"{prefix}-{uuid.uuid4().hex[:6]}"
        lam = self.client("lambda")
        role = self.client("iam").create_role(
            RoleName=f"{prefix}-local",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as archive:
            archive.writestr("README.txt", "Invocations are routed to the in-process handlers.")
        definition = definition_text()
        if fast_retries:
            definition = json.dumps(_one_second_retries(json.loads(definition)))
        for substitution, (suffix, module) in TASK_FUNCTIONS.items():
            name = f"{prefix}-{suffix}"
            arn = lam.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role,
                Handler=f"{module}.handler",
                Code={"ZipFile": package.getvalue()},
            )["FunctionArn"]
            self.router.register(name, importlib.import_module(module).handler)
            definition = definition.replace("${" + substitution + "}", arn)
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=f"{prefix}-calls", definition=definition, roleArn=role
        )["stateMachineArn"]
        _status_rules[self.state_machine_arn] = importlib.import_module(
            "callflow_functions.execution_stopped"
        ).handler
        return self.state_machine_arn

    def deploy_campaigns(
        self, call_workflow_arn: str, prefix: str = "callflow", *, fast_retries: bool = False
    ) -> tuple[str, str]:
        """Create the campaign bucket, its task functions and the campaign state machine from
        its ASL file, running ``call_workflow_arn`` per record; the machine's ARN and the
        bucket's name."""
        prefix = f"{prefix}-{uuid.uuid4().hex[:6]}"
        bucket = f"{prefix}-campaigns"
        self.client("s3").create_bucket(Bucket=bucket)
        role = self.client("iam").create_role(
            RoleName=f"{prefix}-campaigns-local",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        definition = definition_text(CAMPAIGN_ASL_FILE)
        if fast_retries:
            definition = json.dumps(_one_second_retries(json.loads(definition)))
        definition = definition.replace("${CallWorkflowArn}", call_workflow_arn)
        for substitution, (suffix, module) in CAMPAIGN_TASK_FUNCTIONS.items():
            arn = self._local_function(f"{prefix}-{suffix}", module, role)
            definition = definition.replace("${" + substitution + "}", arn)
        self.campaign_state_machine_arn = self.client("stepfunctions").create_state_machine(
            name=f"{prefix}-campaigns", definition=definition, roleArn=role
        )["stateMachineArn"]
        return self.campaign_state_machine_arn, bucket

    def _local_function(self, name: str, module: str, role: str) -> str:
        """A Lambda function whose invocations the router sends to ``module``'s handler."""
        package = io.BytesIO()
        with zipfile.ZipFile(package, "w") as archive:
            archive.writestr("README.txt", "Invocations are routed to the in-process handlers.")
        arn = self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler=f"{module}.handler",
            Code={"ZipFile": package.getvalue()},
        )["FunctionArn"]
        self.router.register(name, importlib.import_module(module).handler)
        return str(arn)

    def campaign_execution(self, campaign_id: str) -> dict[str, Any]:
        """``DescribeExecution`` of the campaign's execution (named after the campaign)."""
        arn = self.campaign_state_machine_arn.replace(":stateMachine:", ":execution:")
        return dict(
            self.client("stepfunctions").describe_execution(executionArn=f"{arn}:{campaign_id}")
        )

    def execution(self, session_id: str) -> dict[str, Any]:
        """``DescribeExecution`` of the session's execution (each is named after its session)."""
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{session_id}"
        return dict(self.client("stepfunctions").describe_execution(executionArn=arn))

    def execution_history(self, session_id: str) -> list[dict[str, Any]]:
        """The events of the session's execution, oldest first (at most 1000)."""
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{session_id}"
        events = self.client("stepfunctions").get_execution_history(
            executionArn=arn, maxResults=1000
        )["events"]
        return list(events)


def create_table(table_name: str, region: str | None = None) -> None:
    """Create the session table as the CDK stack defines it (``infra/cdk/callflow_infra/state.py``):
    one string key ``pk``, on demand, TTL on ``expires_at``. For the local stack and tests."""
    import boto3

    client = boto3.client("dynamodb", region_name=region)
    try:
        client.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except Exception as error:
        if error_code(error) != "ResourceInUseException":
            raise
        return
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )

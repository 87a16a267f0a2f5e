"""The table, the secret, the Lambda functions, the HTTP API and the IAM they get."""

from __future__ import annotations

import json

import pytest
from starlette.routing import Route

from callflow.config import Settings
from callflow_infra.functions import CAMPAIGN_TASKS, EXECUTION_STOPPED, SCHEDULED, TASKS
from callflow_infra.http_api import ROUTES
from callflow_infra.state import GENERATED_KEY, SECRET_KEYS

from .cfn import actions_of, flatten, resources_of, statements
from .conftest import Synthesized

ALL_MODULES = [
    "api",
    *(spec.module for spec in (*TASKS, *SCHEDULED, EXECUTION_STOPPED, *CAMPAIGN_TASKS)),
]


def test_table_is_on_demand_with_ttl_and_point_in_time_recovery(dev: Synthesized) -> None:
    (table,) = dev.of_type("AWS::DynamoDB::GlobalTable").values()
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    (replica,) = props["Replicas"]
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_one_secret_holds_every_secret_setting(dev: Synthesized) -> None:
    (secret,) = dev.of_type("AWS::SecretsManager::Secret").values()
    generator = secret["Properties"]["GenerateSecretString"]
    keys = set(json.loads(generator["SecretStringTemplate"])) | {generator["GenerateStringKey"]}
    secret_settings = {
        name for name, info in Settings.model_fields.items() if "SecretStr" in repr(info.annotation)
    }
    assert keys == secret_settings == set(SECRET_KEYS)
    assert generator["GenerateStringKey"] == GENERATED_KEY


def test_every_function_is_python312_on_arm64_with_tracing(dev: Synthesized) -> None:
    functions = dev.of_type("AWS::Lambda::Function")
    handlers = sorted(f["Properties"]["Handler"] for f in functions.values())
    assert handlers == sorted(f"callflow_functions.{m}.handler" for m in ALL_MODULES)
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_functions_get_table_secret_and_powertools_settings(dev: Synthesized) -> None:
    table = dev.logical_id(dev.stack.state.table)
    secret = dev.logical_id(dev.stack.state.secret)
    for function in dev.of_type("AWS::Lambda::Function").values():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["CALLFLOW_TABLE_NAME"] == {"Ref": table}
        assert env["CALLFLOW_SECRETS_ID"] == {"Ref": secret}
        assert env["POWERTOOLS_SERVICE_NAME"] == "callflow"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Callflow"
        # Non-secret settings from the stage's context block.
        assert env["CALLFLOW_INFOBIP_SAMPLE_RATE"] == "16000"
        assert not any(name.endswith(("_API_KEY", "_PASSWORD", "_TOKEN")) for name in env)


def test_only_the_api_knows_the_state_machine(dev: Synthesized) -> None:
    machine = dev.logical_id(dev.stack.workflow.state_machine)
    for logical_id, function in dev.of_type("AWS::Lambda::Function").items():
        env = function["Properties"]["Environment"]["Variables"]
        is_api = function["Properties"]["Handler"] == "callflow_functions.api.handler"
        assert ("CALLFLOW_STATE_MACHINE_ARN" in env) == is_api, logical_id
        if is_api:
            assert env["CALLFLOW_STATE_MACHINE_ARN"] == {"Ref": machine}


def test_api_role_is_scoped_to_its_table_secret_and_state_machines(dev: Synthesized) -> None:
    api = dev.stack.functions.api
    role = dev.logical_id(api.role)
    table = f"<{dev.logical_id(dev.stack.state.table)}>"
    secret = f"<{dev.logical_id(dev.stack.state.secret)}>"
    machine = f"<{dev.logical_id(dev.stack.workflow.state_machine)}>"
    campaigns = f"<{dev.logical_id(dev.stack.campaigns.state_machine)}>"
    bucket = f"<{dev.logical_id(dev.stack.campaign_items.bucket)}>"
    campaign_executions = (
        "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
        "callflow-dev-campaigns:*"
    )
    by_action: dict[str, set[str]] = {}
    for statement in statements(dev.resources, role):
        assert statement["Effect"] == "Allow"
        for action in actions_of(statement):
            by_action.setdefault(action, set()).update(resources_of(statement))
    for action, resources in by_action.items():
        if action.startswith("dynamodb:"):
            assert resources <= {table, f"{table}/index/*"}, action
        elif action.startswith("secretsmanager:"):
            assert resources == {secret}, action
        elif action == "states:StartExecution":
            assert resources == {machine, campaigns}
        elif action == "states:StopExecution":
            assert resources == {campaign_executions}  # a campaign's, never a call's
        elif action == "s3:GetObject":
            assert resources == {f"{bucket}/campaigns/*"}  # the export reads the items
        elif action == "s3:ListBucket":
            assert resources == {bucket}
        elif action in ("states:SendTaskSuccess", "states:SendTaskFailure"):
            assert resources == {"*"}
        else:
            assert action in (
                "states:SendTaskHeartbeat",
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
            ), action
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem"} <= set(by_action)
    assert {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"} <= set(
        by_action
    )


def test_task_roles_may_resume_tasks_but_only_the_writeback_starts_an_execution(
    dev: Synthesized,
) -> None:
    table = f"<{dev.logical_id(dev.stack.state.table)}>"
    machine = f"<{dev.logical_id(dev.stack.workflow.state_machine)}>"
    for module, function in dev.stack.functions.tasks.items():
        actions: set[str] = set()
        starts: list[str] = []
        for statement in statements(dev.resources, dev.logical_id(function.role)):
            for action in actions_of(statement):
                actions.add(action)
                if action.startswith("dynamodb:"):
                    assert set(resources_of(statement)) <= {table, f"{table}/index/*"}
                if action == "states:StartExecution":
                    starts += resources_of(statement)
        assert "states:SendTaskSuccess" in actions, module
        # A callback is a new execution of the call workflow, started by the writeback.
        assert starts == ([machine] if module == "write_back" else []), module
        assert "secretsmanager:GetSecretValue" in actions, module


def test_http_api_routes_exactly_what_the_app_serves(dev: Synthesized) -> None:
    from callflow_functions.api import app

    served = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route) and route.path not in ("/docs/oauth2-redirect", "/redoc")
        for method in route.methods or ()
        if method != "HEAD"
    }
    routed = {
        tuple(r["Properties"]["RouteKey"].split(" ", 1))
        for r in dev.of_type("AWS::ApiGatewayV2::Route").values()
    }
    assert routed == served
    assert routed == {(m.value, p) for m, p in ROUTES}


def test_api_stage_writes_access_logs_without_the_secret_path(dev: Synthesized) -> None:
    (stage,) = dev.of_type("AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["AccessLogSettings"]
    assert "$context.routeKey" in settings["Format"]
    assert "$context.path" not in settings["Format"]
    assert flatten(settings["DestinationArn"]).startswith("<")


def test_media_config_sweeper_runs_on_a_schedule(dev: Synthesized) -> None:
    sweeper = dev.logical_id(dev.stack.functions.by_module["sweep_media_configs"])
    rules = dev.of_type("AWS::Events::Rule").values()
    scheduled = [
        rule["Properties"]
        for rule in rules
        if any(
            target["Arn"] == {"Fn::GetAtt": [sweeper, "Arn"]}
            for target in rule["Properties"].get("Targets", [])
        )
    ]
    assert [rule["ScheduleExpression"] for rule in scheduled] == ["rate(15 minutes)"]
    permissions = dev.of_type("AWS::Lambda::Permission").values()
    assert any(
        p["Properties"]["FunctionName"] == {"Fn::GetAtt": [sweeper, "Arn"]}
        and p["Properties"]["Principal"] == "events.amazonaws.com"
        for p in permissions
    )


def test_a_call_execution_stopped_from_outside_reaches_its_cleanup_function(
    dev: Synthesized,
) -> None:
    """Aborted, timed-out and uncaught failed executions of the call workflow (only its) go to
    the function that releases their slots and ends their sessions."""
    target = dev.logical_id(dev.stack.functions.by_module["execution_stopped"])
    machine = dev.logical_id(dev.stack.workflow.state_machine)
    [rule] = [
        rule["Properties"]
        for rule in dev.of_type("AWS::Events::Rule").values()
        if any(
            t["Arn"] == {"Fn::GetAtt": [target, "Arn"]}
            for t in rule["Properties"].get("Targets", [])
        )
    ]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert pattern["detail"]["status"] == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": machine}]
    [target_spec] = rule["Targets"]
    assert target_spec["RetryPolicy"]["MaximumRetryAttempts"] == 8


@pytest.mark.parametrize(("stage", "capacity"), [("dev", 4 * 20), ("prod", 20 * 20)])
def test_the_bridge_pool_is_every_task_the_service_may_scale_to(
    stage: str, capacity: int, request: pytest.FixtureRequest
) -> None:
    synthesized: Synthesized = request.getfixturevalue(stage)
    for function in synthesized.of_type("AWS::Lambda::Function").values():
        env = function["Properties"]["Environment"]["Variables"]
        assert int(env["CALLFLOW_BRIDGE_CAPACITY"]) == capacity  # max tasks x calls per task

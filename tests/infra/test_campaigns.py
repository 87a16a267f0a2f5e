"""Campaigns in the stack: the items bucket, the campaign state machine from its ASL file, and
the least privileges its role, its task functions and the API get."""

from __future__ import annotations

import json
import re
from typing import Any

from callflow_infra.packaging import CAMPAIGN_DEFINITION

from .cfn import actions_of, flatten, resources_of, statements
from .conftest import REPO_ROOT, Synthesized

ASL = REPO_ROOT / CAMPAIGN_DEFINITION
ARN = "arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{rest}"


def machine(dev: Synthesized) -> dict[str, Any]:
    return dict(dev.resources[dev.logical_id(dev.stack.campaigns.state_machine)])


def by_action(dev: Synthesized, role: Any) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for statement in statements(dev.resources, dev.logical_id(role)):
        assert statement["Effect"] == "Allow"
        for action in actions_of(statement):
            found.setdefault(action, set()).update(resources_of(statement))
    return found


def test_the_items_bucket_is_encrypted_private_tls_only_and_expires(dev: Synthesized) -> None:
    bucket = dev.resources[dev.logical_id(dev.stack.campaign_items.bucket)]
    props = bucket["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"),
        True,
    )
    (lifecycle,) = props["LifecycleConfiguration"]["Rules"]
    assert lifecycle["Status"] == "Enabled" and lifecycle["ExpirationInDays"] == 30
    items = {"Ref": dev.logical_id(dev.stack.campaign_items.bucket)}
    (policy,) = [
        p
        for p in dev.of_type("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == items
    ]
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # No auto-delete custom resource: the only functions are callflow's own.
    handlers = {f["Properties"]["Handler"] for f in dev.of_type("AWS::Lambda::Function").values()}
    assert all(h.startswith("callflow_functions.") for h in handlers)


def test_the_campaign_machine_runs_the_asl_file_with_its_tasks_and_the_call_workflow(
    dev: Synthesized,
) -> None:
    props = machine(dev)["Properties"]
    source = json.loads(ASL.read_text())
    deployed = json.loads(flatten(props["DefinitionString"]))
    assert deployed == source  # substituted at deploy time, not edited at synth
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", ASL.read_text()))
    substitutions = {k: flatten(v) for k, v in props["DefinitionSubstitutions"].items()}
    assert set(substitutions) == placeholders
    tasks = dev.stack.functions.campaign_tasks
    assert substitutions == {
        "CampaignEnumerateFunctionArn": f"<{dev.logical_id(tasks['campaign_enumerate'])}>",
        "CampaignItemFunctionArn": f"<{dev.logical_id(tasks['campaign_item'])}>",
        "CampaignFinishFunctionArn": f"<{dev.logical_id(tasks['campaign_finish'])}>",
        "CallWorkflowArn": f"<{dev.logical_id(dev.stack.workflow.state_machine)}>",
    }
    assert props["StateMachineName"] == "callflow-dev-campaigns"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"


def test_the_campaign_machines_role_may_do_what_its_states_need_and_no_more(
    dev: Synthesized,
) -> None:
    granted = by_action(dev, dev.stack.campaigns.state_machine.role)
    call = f"<{dev.logical_id(dev.stack.workflow.state_machine)}>"
    bucket = f"<{dev.logical_id(dev.stack.campaign_items.bucket)}>"
    tasks = {f"<{dev.logical_id(f)}>" for f in dev.stack.functions.campaign_tasks.values()}
    own = "callflow-dev-campaigns"
    expected = {
        "lambda:InvokeFunction": tasks,
        # startExecution.sync:2 on the call workflow, and the Distributed Map's children.
        "states:StartExecution": {call, ARN.format(service="states", rest=f"stateMachine:{own}")},
        "states:DescribeExecution": {
            ARN.format(service="states", rest=f"execution:{call}:*"),
            ARN.format(service="states", rest=f"execution:{own}/*"),
        },
        "events:PutTargets": {
            ARN.format(
                service="events", rest="rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"
            )
        },
        "s3:GetObject": {f"{bucket}/campaigns/*"},
        "s3:ListBucket": {bucket},
    }
    expected["states:StopExecution"] = expected["states:DescribeExecution"]
    expected["events:PutRule"] = expected["events:DescribeRule"] = expected["events:PutTargets"]
    for action, resources in expected.items():
        assert granted.get(action) == resources, action
    # Whatever else is the logging and tracing Step Functions itself needs, on "*".
    for action in set(granted) - set(expected):
        assert action.startswith(("logs:", "xray:")) and granted[action] == {"*"}, action


def test_only_the_enumeration_writes_the_bucket_and_nobody_deletes(dev: Synthesized) -> None:
    bucket = f"<{dev.logical_id(dev.stack.campaign_items.bucket)}>"
    readers = {"api", "campaign_enumerate", "campaign_finish"}
    for module, function in dev.stack.functions.by_module.items():
        granted = by_action(dev, function.role)
        # Grants on this bucket only (the writeback also reads the recordings bucket).
        s3 = {
            a for a, on in granted.items() if a.startswith("s3:") and any(bucket in r for r in on)
        }
        if module not in readers:
            assert not s3, module
            continue
        wanted = {"s3:GetObject", "s3:ListBucket"}
        if module == "campaign_enumerate":
            wanted.add("s3:PutObject")
        assert s3 == wanted, module
        assert granted["s3:GetObject"] == {f"{bucket}/campaigns/*"}


def test_the_functions_know_the_bucket_and_the_api_the_campaign_machine(dev: Synthesized) -> None:
    bucket = dev.logical_id(dev.stack.campaign_items.bucket)
    campaigns = dev.logical_id(dev.stack.campaigns.state_machine)
    for function in dev.of_type("AWS::Lambda::Function").values():
        env = function["Properties"]["Environment"]["Variables"]
        assert env["CALLFLOW_CAMPAIGN_BUCKET"] == {"Ref": bucket}
        is_api = function["Properties"]["Handler"] == "callflow_functions.api.handler"
        assert ("CALLFLOW_CAMPAIGN_STATE_MACHINE_ARN" in env) == is_api
        if is_api:
            assert env["CALLFLOW_CAMPAIGN_STATE_MACHINE_ARN"] == {"Ref": campaigns}


def test_the_outputs_name_the_campaign_machine_and_bucket(dev: Synthesized) -> None:
    outputs = dev.template.to_json()["Outputs"]
    assert outputs["CampaignStateMachineArn"]["Value"] == {
        "Ref": dev.logical_id(dev.stack.campaigns.state_machine)
    }
    assert outputs["CampaignBucketName"]["Value"] == {
        "Ref": dev.logical_id(dev.stack.campaign_items.bucket)
    }

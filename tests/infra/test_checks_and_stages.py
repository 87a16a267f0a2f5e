"""cdk-nag AwsSolutions checks, and what the stage context changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sns as sns
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from callflow_infra.app import attach_checks
from callflow_infra.nag import REASONS, acknowledge

from .conftest import Synthesized


def test_aws_solutions_checks_report_no_unacknowledged_finding(dev: Synthesized) -> None:
    report = AwsSolutionsChecks().validate_scope(dev.stack)
    findings = [
        (v.rule_name, v.severity, [r.locations for r in v.violating_resources])
        for v in report.violations
    ]
    assert report.success, findings
    assert findings == []


def acknowledged(construct: IConstruct) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in construct.node.metadata:
        if entry.type == "aws:cdk:acknowledged-rules":
            for key, reason in entry.data.items():
                rule_id = key.split("::", 1)[-1]  # recorded as "Annotation::<rule id>"
                if rule_id.startswith("AwsSolutions-"):
                    found[rule_id] = reason
    return found


def test_findings_are_accepted_per_construct_with_their_reason(dev: Synthesized) -> None:
    assert acknowledged(dev.stack) == {}, "no stack-wide acknowledgment"
    everywhere: dict[str, str] = {}
    for construct in dev.stack.node.find_all():
        everywhere.update(acknowledged(construct))
    assert everywhere
    # A concrete finding (a resource pattern) carries the reason of one of its rule's generic
    # keys (acknowledge(..., finding=...)); every other finding its own key's reason.
    generic = {"task-protection", "campaign-items", "executions", "recordings-prefix"}
    for rule_id, reason in everywhere.items():
        rule = rule_id.split("[")[0]
        allowed = {REASONS[f"{rule}[{key}]"] for key in generic if f"{rule}[{key}]" in REASONS}
        assert reason == REASONS[rule_id] if rule_id in REASONS else reason in allowed, rule_id
    campaigns = acknowledged(dev.stack.campaigns.state_machine)
    assert any(f.endswith(":execution:callflow-dev-campaigns/*]") for f in campaigns)
    assert "AwsSolutions-S1" in acknowledged(dev.stack.campaign_items.bucket)
    assert "AwsSolutions-SMG4" in acknowledged(dev.stack.state.secret)
    assert "AwsSolutions-APIG4" in acknowledged(dev.stack.http.api)


def test_prod_keeps_data_and_runs_more_bridge_capacity(dev: Synthesized, prod: Synthesized) -> None:
    def policies(s: Synthesized, resource_type: str) -> set[str]:
        return {r.get("DeletionPolicy", "") for r in s.of_type(resource_type).values()}

    assert policies(prod, "AWS::DynamoDB::GlobalTable") == {"Retain"}
    assert policies(dev, "AWS::DynamoDB::GlobalTable") == {"Delete"}
    assert policies(prod, "AWS::SecretsManager::Secret") == {"Retain"}
    assert policies(dev, "AWS::KMS::Key") == {"Delete"}
    (prod_table,) = prod.of_type("AWS::DynamoDB::GlobalTable").values()
    assert prod_table["Properties"]["Replicas"][0]["DeletionProtectionEnabled"] is True

    def capacity(s: Synthesized) -> tuple[int, int]:
        (target,) = s.of_type("AWS::ApplicationAutoScaling::ScalableTarget").values()
        return target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]

    assert capacity(dev) == (1, 4)
    assert capacity(prod) == (2, 20)
    assert len(prod.of_type("AWS::EC2::NatGateway")) == 2
    assert len(dev.of_type("AWS::EC2::NatGateway")) == 1
    assert prod.stack.stack_name == "callflow-prod"


def test_outputs_give_the_three_webhook_urls_and_the_bridge_url(dev: Synthesized) -> None:
    outputs = dev.template.to_json()["Outputs"]
    from .cfn import flatten

    zoho = flatten(outputs["ZohoWebhookUrl"]["Value"])
    infobip = flatten(outputs["InfobipWebhookUrl"]["Value"])
    elevenlabs = flatten(outputs["ElevenLabsWebhookUrl"]["Value"])
    bridge = flatten(outputs["BridgeWebSocketUrl"]["Value"])
    assert zoho.startswith("https://") and zoho.endswith("/webhooks/zoho")
    assert infobip.endswith("/webhooks/infobip/{infobip_webhook_path_secret}")
    assert elevenlabs.endswith("/webhooks/elevenlabs")
    assert bridge.startswith("wss://") and bridge.endswith("/{bridge_path_secret}")


def test_synth_fails_on_an_unacknowledged_finding_and_passes_once_justified(
    tmp_path: Path,
) -> None:
    def synth(justified: bool) -> None:
        app = App(outdir=str(tmp_path / str(justified)))
        stack = Stack(app, "Gate")
        topic = sns.Topic(stack, "Topic")  # neither encrypted (SNS2) nor SSL-only (SNS3)
        if justified:
            rules = ("AwsSolutions-SNS2", "AwsSolutions-SNS3")
            REASONS.update(dict.fromkeys(rules, "test: a justified finding"))
            try:
                acknowledge(topic, *rules)
            finally:
                for rule in rules:
                    del REASONS[rule]
        attach_checks(app)
        app.synth()

    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed.*AwsSolutions-SNS3"):
        synth(justified=False)
    synth(justified=True)


def test_prod_starts_the_api_from_a_snapshot_through_an_alias_and_dev_does_not(
    dev: Synthesized, prod: Synthesized
) -> None:
    def snap_started(s: Synthesized) -> set[str]:
        return {
            logical_id
            for logical_id, function in s.of_type("AWS::Lambda::Function").items()
            if function["Properties"].get("SnapStart") == {"ApplyOn": "PublishedVersions"}
        }

    api = prod.logical_id(prod.stack.functions.api)
    assert snap_started(prod) == {api}
    assert snap_started(dev) == set()
    (alias,) = prod.of_type("AWS::Lambda::Alias").values()
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionName"] == {"Ref": api}
    (version_id,) = prod.of_type("AWS::Lambda::Version")
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    alias_id = prod.logical_id(prod.stack.functions.api_target)
    for integrations, function in ((prod, {"Ref": alias_id}), (dev, None)):
        (integration,) = integrations.of_type("AWS::ApiGatewayV2::Integration").values()
        uri = integration["Properties"]["IntegrationUri"]
        if function is None:
            assert uri == {"Fn::GetAtt": [dev.logical_id(dev.stack.functions.api), "Arn"]}
        else:
            assert uri == function
    assert dev.of_type("AWS::Lambda::Alias") == {}

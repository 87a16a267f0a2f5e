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
    for rule_id, reason in everywhere.items():
        if rule_id in REASONS:
            assert reason == REASONS[rule_id], rule_id
            continue
        # A concrete finding accepted under a generic key (task-protection, recordings-prefix).
        rule = rule_id.split("[")[0]
        generic = {r for k, r in REASONS.items() if k.startswith(f"{rule}[") and "::" not in k}
        assert reason in generic, rule_id
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

"""Alarms to the SNS topic and the operations dashboard."""

from __future__ import annotations

import json

from .cfn import flatten
from .conftest import Synthesized

LAMBDA_METRICS = (
    "CallsPlaced",
    "CallsAnswered",
    "CallsUnreached",
    "CallsFailed",
    "WritebacksSucceeded",
    "WritebacksFailed",
    "CallsQueued",
    "CallsAdmitted",
    "SlotWaitSeconds",
)
BRIDGE_METRICS = ("ActiveCalls", "ConnectTimeMs", "TurnLatencyMs")


def test_every_alarm_notifies_the_topic_on_alarm_and_recovery(dev: Synthesized) -> None:
    topic = {"Ref": dev.logical_id(dev.stack.monitoring.topic)}
    alarms = dev.of_type("AWS::CloudWatch::Alarm")
    assert alarms
    for logical_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [topic], logical_id
        assert alarm["Properties"]["OKActions"] == [topic], logical_id


def test_alarms_cover_failures_writebacks_bridge_health_api_and_lambda_errors(
    dev: Synthesized,
) -> None:
    metrics = {
        (a["Properties"].get("Namespace"), a["Properties"].get("MetricName"))
        for a in dev.of_type("AWS::CloudWatch::Alarm").values()
    }
    assert ("AWS/States", "ExecutionsFailed") in metrics
    assert ("Callflow", "WritebacksFailed") in metrics
    assert ("AWS/ApplicationELB", "UnHealthyHostCount") in metrics
    assert ("AWS/ApplicationELB", "HealthyHostCount") in metrics
    assert ("AWS/ApiGateway", "5xx") in metrics
    errors = [
        a
        for a in dev.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "Errors"
    ]
    assert len(errors) == len(dev.stack.functions.by_module)


def test_writeback_alarm_watches_the_lambdas_service_dimension(dev: Synthesized) -> None:
    (alarm,) = [
        a
        for a in dev.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "WritebacksFailed"
    ]
    assert alarm["Properties"]["Dimensions"] == [{"Name": "service", "Value": "callflow"}]
    assert alarm["Properties"]["Threshold"] == 1


def test_alarm_topic_is_encrypted_and_usable_by_cloudwatch(dev: Synthesized) -> None:
    (topic,) = dev.of_type("AWS::SNS::Topic").values()
    assert "KmsMasterKeyId" in topic["Properties"]
    (key,) = dev.of_type("AWS::KMS::Key").values()
    principals = [
        s.get("Principal", {}).get("Service") for s in key["Properties"]["KeyPolicy"]["Statement"]
    ]
    assert "cloudwatch.amazonaws.com" in principals


def test_dashboard_shows_calls_writebacks_bridge_and_lambdas(dev: Synthesized) -> None:
    (dashboard,) = dev.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.loads(flatten(dashboard["Properties"]["DashboardBody"]).replace('"<', '"'))
    rendered = json.dumps(body)
    for name in (*LAMBDA_METRICS, *BRIDGE_METRICS, "CallEnds"):
        assert name in rendered, name
    for stat in ("p50", "p90", "p99"):
        assert f'"stat": "{stat}"' in rendered
    assert "ExecutionsFailed" in rendered
    assert rendered.count('"Duration"') >= len(dev.stack.functions.by_module)


def test_the_dashboard_reads_the_namespace_the_runtime_publishes_under() -> None:
    from callflow.metric_names import NAMESPACE as PUBLISHED
    from callflow_infra.monitoring import NAMESPACE as WATCHED

    assert WATCHED == PUBLISHED

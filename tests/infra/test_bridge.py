"""The bridge on Fargate: TLS listener, timeouts matched to the drain, health, scaling, IAM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callflow_infra.bridge import CONTAINER_PORT, BridgeTimeouts

from .cfn import actions_of, resources_of, statements
from .conftest import Synthesized


def lb_attributes(dev: Synthesized, resource_type: str) -> dict[str, str]:
    (resource,) = dev.of_type(resource_type).values()
    key = "LoadBalancerAttributes" if "LoadBalancer" in resource_type else "TargetGroupAttributes"
    return {a["Key"]: a["Value"] for a in resource["Properties"][key]}


def container(dev: Synthesized) -> dict[str, Any]:
    (task,) = dev.of_type("AWS::ECS::TaskDefinition").values()
    (definition,) = task["Properties"]["ContainerDefinitions"]
    return dict(definition)


def test_listener_is_tls_on_443_with_a_certificate_parameter(dev: Synthesized) -> None:
    (listener,) = dev.of_type("AWS::ElasticLoadBalancingV2::Listener").values()
    props = listener["Properties"]
    assert props["Protocol"] == "HTTPS"
    assert props["Port"] == 443
    assert props["Certificates"] == [{"CertificateArn": {"Ref": "BridgeCertificateArn"}}]
    assert "BridgeCertificateArn" in dev.template.to_json()["Parameters"]


def test_idle_timeout_outlasts_the_longest_call(dev: Synthesized) -> None:
    longest = dev.stack.bridge.timeouts
    attributes = lb_attributes(dev, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    idle = int(attributes["idle_timeout.timeout_seconds"])
    max_call = 900 + 40  # infobip_max_duration (cdk.json) + default connect timeout
    assert max_call < idle <= 4000
    assert idle == longest.idle_timeout


def test_idle_timeout_is_capped_at_the_alb_maximum() -> None:
    assert BridgeTimeouts.for_calls_up_to(7200).idle_timeout == 4000


def test_target_group_keeps_live_calls_for_the_longest_call(dev: Synthesized) -> None:
    attributes = lb_attributes(dev, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert int(attributes["deregistration_delay.timeout_seconds"]) >= 940


def test_target_group_health_checks_the_bridge_health_route(dev: Synthesized) -> None:
    (group,) = dev.of_type("AWS::ElasticLoadBalancingV2::TargetGroup").values()
    props = group["Properties"]
    assert props["HealthCheckPath"] == "/health"
    assert props["Matcher"] == {"HttpCode": "200"}
    assert props["Port"] == CONTAINER_PORT
    assert props["TargetType"] == "ip"


def test_stop_timeout_is_the_fargate_maximum_and_drain_fits_inside(dev: Synthesized) -> None:
    definition = container(dev)
    env = {e["Name"]: e["Value"] for e in definition["Environment"]}
    assert definition["StopTimeout"] == 120
    assert 0 < float(env["CALLFLOW_BRIDGE_DRAIN_SECONDS"]) < definition["StopTimeout"]
    assert env["CALLFLOW_BRIDGE_PORT"] == str(CONTAINER_PORT)
    assert definition["PortMappings"][0]["ContainerPort"] == CONTAINER_PORT


def test_bridge_runs_arm64_fargate_in_private_subnets(dev: Synthesized) -> None:
    (task,) = dev.of_type("AWS::ECS::TaskDefinition").values()
    assert task["Properties"]["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    (service,) = dev.of_type("AWS::ECS::Service").values()
    network = service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert service["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }


def test_bridge_image_is_an_asset_from_the_bridge_dockerfile(dev: Synthesized) -> None:
    manifest = dev.asset_manifest()
    (image,) = manifest["dockerImages"].values()
    source = image["source"]
    assert source["dockerFile"] == "infra/bridge.Dockerfile"
    assert source["platform"] == "linux/arm64"
    assert (Path(source["directory"]) / "infra" / "bridge.Dockerfile").is_file() or (
        Path(dev.artifact.assembly.directory) / source["directory"] / "infra" / "bridge.Dockerfile"
    ).is_file()


def test_bridge_scales_on_active_calls_per_task(dev: Synthesized) -> None:
    (policy,) = dev.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    config = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    metric = config["CustomizedMetricSpecification"]
    assert metric["MetricName"] == "ActiveCalls"
    assert metric["Namespace"] == "Callflow"
    assert metric["Statistic"] == "Average"
    assert metric["Dimensions"] == [{"Name": "service", "Value": "callflow-bridge"}]
    assert config["TargetValue"] == 20
    (target,) = dev.of_type("AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (1, 4)


def test_bridge_task_role_reaches_table_secret_recordings_and_its_own_protection(
    dev: Synthesized,
) -> None:
    task = dev.stack.bridge.task_definition
    table = f"<{dev.logical_id(dev.stack.state.table)}>"
    cluster = dev.logical_id(dev.stack.bridge.cluster)
    for statement in statements(dev.resources, dev.logical_id(task.task_role)):
        for action in actions_of(statement):
            service = action.split(":", 1)[0]
            assert service in ("dynamodb", "secretsmanager", "ecs", "s3"), action
            if service == "s3":  # recordings: put only, under the prefix
                assert action == "s3:PutObject"
                recordings = dev.logical_id(dev.stack.recordings.bucket)
                assert resources_of(statement) == [f"<{recordings}>/recordings/*"]
            if service == "dynamodb":
                assert set(resources_of(statement)) <= {table, f"{table}/index/*"}
            if service == "ecs":
                assert action in ("ecs:GetTaskProtection", "ecs:UpdateTaskProtection")
                (resource,) = resources_of(statement)
                assert f"task/<{cluster}>/*" in resource


def test_load_balancer_accepts_only_tls_and_reaches_only_the_tasks(dev: Synthesized) -> None:
    alb_group = dev.logical_id(dev.stack.bridge.alb_security_group)
    groups = dev.of_type("AWS::EC2::SecurityGroup")
    ingress = groups[alb_group]["Properties"]["SecurityGroupIngress"]
    assert [(r["FromPort"], r["ToPort"]) for r in ingress] == [(443, 443)]
    egress = [
        r["Properties"]
        for r in dev.of_type("AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [alb_group, "GroupId"]}
    ]
    assert [(r["FromPort"], r["ToPort"]) for r in egress] == [(CONTAINER_PORT, CONTAINER_PORT)]

"""The audio bridge on Fargate, behind a TLS Application Load Balancer suited to long WebSockets.

Timeouts, the one thing that silently cuts calls, are derived from a single number, the longest a
call can last (``StageConfig.max_call_seconds``):

- ALB idle timeout: longer than the longest call (ALB maximum 4000 s). Audio frames flow every
  20 ms, so idle never trips on a live call, but a call on hold must not be cut either.
- Target group deregistration delay: as long as the longest call. A task that leaves the target
  group (deployment, scale-in) stops getting new calls at once but keeps its live ones until they
  end or the delay runs out; ECS sends SIGTERM only after that.
- Container stop timeout: 120 s, the Fargate maximum. After SIGTERM the bridge drains for
  ``CALLFLOW_BRIDGE_DRAIN_SECONDS`` (set to 110 s here, ten seconds of margin before SIGKILL).
  The long protection is the deregistration delay above; the drain covers what is still live after
  it, and stops not preceded by deregistration (host retirement). A call longer than delay + 110 s
  is cut on such a stop: the trade-off of Fargate's 120 s cap.
- Task scale-in protection: the task role may call ``ecs:UpdateTaskProtection`` so the bridge can
  protect itself while it relays calls (through ``$ECS_AGENT_URI/task-protection/v1/state``).

Scaling tracks the average of the ``ActiveCalls`` gauge that every task publishes: the average
over tasks is the number of live calls per task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import CfnElement, CfnParameter, Duration, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from callflow_infra.monitoring import BRIDGE_SERVICE, NAMESPACE
from callflow_infra.packaging import BRIDGE_DOCKERFILE, bridge_build_context
from callflow_infra.stage import StageConfig

CONTAINER_PORT = 8080
HEALTH_PATH = "/health"
FARGATE_MAX_STOP_TIMEOUT = 120
DRAIN_MARGIN_SECONDS = 10
ALB_MAX_IDLE_TIMEOUT = 4000


@dataclass(frozen=True)
class BridgeTimeouts:
    """The timeouts above, computed from the longest call."""

    idle_timeout: int
    deregistration_delay: int
    stop_timeout: int
    drain_seconds: int

    @classmethod
    def for_calls_up_to(cls, max_call_seconds: int) -> BridgeTimeouts:
        """Idle timeout and deregistration delay a minute past the longest call, within AWS caps."""
        margin = 60
        return cls(
            idle_timeout=min(ALB_MAX_IDLE_TIMEOUT, max_call_seconds + margin),
            deregistration_delay=min(3600, max_call_seconds + margin),
            stop_timeout=FARGATE_MAX_STOP_TIMEOUT,
            drain_seconds=FARGATE_MAX_STOP_TIMEOUT - DRAIN_MARGIN_SECONDS,
        )


class Bridge(Construct):
    """VPC, cluster, service, load balancer and scaling for the bridge."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        repo_root: Path,
        stage: StageConfig,
        environment: dict[str, str],
        table: dynamodb.ITableV2,
        secret: secretsmanager.ISecret,
        log_retention: logs.RetentionDays,
        removal: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        dockerfile = repo_root / BRIDGE_DOCKERFILE
        if not dockerfile.is_file():
            raise FileNotFoundError(f"the bridge image is built from {dockerfile}; it is missing")
        self.timeouts = BridgeTimeouts.for_calls_up_to(stage.max_call_seconds)

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=stage.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                ),
            ],
        )
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=log_retention, removal_policy=removal)
        self.vpc.add_flow_log(
            "FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs)
        )
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=self.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )

        self.task_definition = task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=stage.bridge_cpu,
            memory_limit_mib=stage.bridge_memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        # How cdk-nag prints the task-protection resource (for its acknowledgment in the stack).
        self.task_protection_resource_pattern = (
            "arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/"
            f"<{Stack.of(self).get_logical_id(_cfn(self.cluster))}>/*"
        )
        table.grant_read_write_data(task.task_role)
        secret.grant_read(task.task_role)
        task.add_to_task_role_policy(
            iam.PolicyStatement(
                actions=["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"],
                resources=[
                    Stack.of(self).format_arn(
                        service="ecs",
                        resource="task",
                        resource_name=f"{self.cluster.cluster_name}/*",
                    )
                ],
            )
        )
        self.container_logs = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal
        )
        container_env = {
            **environment,
            "POWERTOOLS_SERVICE_NAME": BRIDGE_SERVICE,
            "CALLFLOW_BRIDGE_PORT": str(CONTAINER_PORT),
            "CALLFLOW_BRIDGE_DRAIN_SECONDS": str(self.timeouts.drain_seconds),
        }
        self.container = task.add_container(
            "bridge",
            image=ecs.ContainerImage.from_asset(
                str(repo_root),
                file=BRIDGE_DOCKERFILE,
                platform=ecr_assets.Platform.LINUX_ARM64,
                exclude=bridge_build_context(),
                ignore_mode=IgnoreMode.DOCKER,
            ),
            environment=container_env,
            port_mappings=[ecs.PortMapping(container_port=CONTAINER_PORT)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="bridge", log_group=self.container_logs),
            stop_timeout=Duration.seconds(self.timeouts.stop_timeout),
        )

        self.alb_security_group = ec2.SecurityGroup(
            self,
            "AlbSecurityGroup",
            vpc=self.vpc,
            description="Infobip media streams (WebSocket over TLS) from the internet",
            allow_all_outbound=False,
        )
        self.alb_security_group.add_ingress_rule(
            ec2.Peer.ipv4(stage.bridge_ingress_cidr), ec2.Port.tcp(443), "wss from Infobip"
        )
        self.service_security_group = ec2.SecurityGroup(
            self,
            "ServiceSecurityGroup",
            vpc=self.vpc,
            description="bridge tasks: load balancer in, provider APIs out",
            allow_all_outbound=True,
        )
        self.service_security_group.add_ingress_rule(
            self.alb_security_group, ec2.Port.tcp(CONTAINER_PORT), "from the load balancer"
        )
        self.alb_security_group.add_egress_rule(
            self.service_security_group, ec2.Port.tcp(CONTAINER_PORT), "to the bridge tasks"
        )

        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=task,
            desired_count=stage.bridge_min_tasks,
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            security_groups=[self.service_security_group],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            assign_public_ip=False,
            health_check_grace_period=Duration.seconds(60),
        )

        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=self.vpc,
            internet_facing=True,
            security_group=self.alb_security_group,
            idle_timeout=Duration.seconds(self.timeouts.idle_timeout),
            drop_invalid_header_fields=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        )
        certificate_arn = stage.bridge_certificate_arn or (
            CfnParameter(
                Stack.of(self),
                "BridgeCertificateArn",
                type="String",
                description="ACM certificate ARN for the bridge's TLS listener (its domain name)",
                allowed_pattern="arn:aws[a-z-]*:acm:.+",
            ).value_as_string
        )
        self.listener = self.load_balancer.add_listener(
            "Tls",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[
                acm.Certificate.from_certificate_arn(self, "Certificate", certificate_arn)
            ],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            open=False,
        )
        self.target_group = self.listener.add_targets(
            "Bridge",
            port=CONTAINER_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[self.service],
            deregistration_delay=Duration.seconds(self.timeouts.deregistration_delay),
            health_check=elbv2.HealthCheck(
                path=HEALTH_PATH,
                healthy_http_codes="200",
                interval=Duration.seconds(10),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=2,
            ),
        )
        self.host = stage.bridge_domain_name or self.load_balancer.load_balancer_dns_name

        scaling = self.service.auto_scale_task_count(
            min_capacity=stage.bridge_min_tasks, max_capacity=stage.bridge_max_tasks
        )
        scaling.scale_to_track_custom_metric(
            "ActiveCallsPerTask",
            metric=self.active_calls_metric(),
            target_value=stage.bridge_calls_per_task,
            # Scale out fast for a burst of calls; scale in slowly, calls last minutes.
            scale_out_cooldown=Duration.seconds(60),
            scale_in_cooldown=Duration.seconds(600),
        )

    def active_calls_metric(self, statistic: str = "Average") -> cloudwatch.Metric:
        """``ActiveCalls`` from the bridge's EMF; Average over tasks = calls per task."""
        return cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name="ActiveCalls",
            dimensions_map={"service": BRIDGE_SERVICE},
            statistic=statistic,
            period=Duration.minutes(1),
        )


def _cfn(cluster: ecs.Cluster) -> CfnElement:
    child = cluster.node.default_child
    assert isinstance(child, CfnElement)
    return child

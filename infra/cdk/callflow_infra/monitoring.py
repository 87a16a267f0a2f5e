"""The dashboard and the alarms.

Metric names are the contract with ``callflow/observability.py`` (Lambdas, Powertools, dimension
``service=callflow``) and the bridge's EMF (dimension ``service=callflow-bridge``). Every alarm
goes to one SNS topic; subscribe people or a chat integration to it (docs/operations.md).
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

NAMESPACE = "Callflow"
"""Equal to ``callflow.metric_names.NAMESPACE``, which the Lambdas and the bridge publish under
(a test keeps the two equal; the CDK app does not import the runtime)."""
LAMBDA_SERVICE = "callflow"
BRIDGE_SERVICE = "callflow-bridge"
FIVE_MINUTES = Duration.minutes(5)


def lambda_metric(name: str, statistic: str = "Sum") -> cloudwatch.Metric:
    """A business metric the Lambdas publish through Powertools."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": LAMBDA_SERVICE},
        statistic=statistic,
        period=FIVE_MINUTES,
    )


def bridge_metric(name: str, statistic: str) -> cloudwatch.Metric:
    """A metric the bridge publishes in EMF."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": BRIDGE_SERVICE},
        statistic=statistic,
        period=Duration.minutes(1),
        label=f"{name} {statistic}",
    )


class Monitoring(Construct):
    """Alarm topic, alarms and the operations dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_name: str,
        alarm_email: str,
        functions: dict[str, lambda_.Function],
        state_machine: sfn.StateMachine,
        http_api: apigw.HttpApi,
        target_group: elbv2.ApplicationTargetGroup,
        load_balancer: elbv2.ApplicationLoadBalancer,
        removal: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        key = kms.Key(
            self,
            "TopicKey",
            enable_key_rotation=True,
            description="callflow alarm topic encryption",
            removal_policy=removal,
            pending_window=Duration.days(7),
        )
        # CloudWatch alarms publish to an encrypted topic only if they may use its key.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"callflow {stage_name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []

        def alarm(
            name: str,
            metric: cloudwatch.IMetric,
            description: str,
            *,
            threshold: float = 1,
            periods: int = 1,
            comparison: cloudwatch.ComparisonOperator = (
                cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            ),
            missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
        ) -> None:
            created = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=comparison,
                treat_missing_data=missing,
                alarm_description=description,
            )
            created.add_alarm_action(action)
            created.add_ok_action(action)
            self.alarms.append(created)

        alarm(
            "FailedExecutions",
            state_machine.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
            "A call workflow execution failed: open it in the Step Functions console.",
        )
        alarm(
            "WritebacksFailed",
            lambda_metric("WritebacksFailed"),
            "A CRM writeback failed after every retry; the results are kept on the session. "
            "See docs/operations.md, 'Replaying a failed writeback'.",
        )
        alarm(
            "BridgeUnhealthy",
            target_group.metrics.unhealthy_host_count(period=Duration.minutes(1), statistic="Max"),
            "A bridge task fails its health check (or is draining).",
            periods=3,
        )
        alarm(
            "BridgeNoHealthyTask",
            target_group.metrics.healthy_host_count(period=Duration.minutes(1), statistic="Min"),
            "No healthy bridge task: answered calls cannot reach the agent.",
            threshold=1,
            periods=2,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            missing=cloudwatch.TreatMissingData.BREACHING,
        )
        alarm(
            "Api5xx",
            http_api.metric_server_error(period=FIVE_MINUTES, statistic="Sum"),
            "The API answered 5xx: providers retry, but something is broken.",
        )
        for module, function in sorted(functions.items()):
            alarm(
                f"{_pascal(module)}Errors",
                function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                f"The {module} Lambda raised errors.",
            )

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"callflow-{stage_name}",
            default_interval=Duration.hours(24),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Calls",
                left=[
                    lambda_metric(name)
                    for name in ("CallsPlaced", "CallsAnswered", "CallsUnreached", "CallsFailed")
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Call ends by reason (bridge)",
                left=[
                    cloudwatch.MathExpression(
                        expression=(
                            f'SEARCH(\'{{{NAMESPACE},reason,service}} MetricName="CallEnds" '
                            f"service=\"{BRIDGE_SERVICE}\"', 'Sum', 300)"
                        ),
                        using_metrics={},
                        label="",
                        period=FIVE_MINUTES,
                    )
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Admission (calls queued for a slot, admitted, and their wait)",
                left=[lambda_metric("CallsQueued"), lambda_metric("CallsAdmitted")],
                right=[
                    lambda_metric("SlotWaitSeconds", statistic="p50"),
                    lambda_metric("SlotWaitSeconds", statistic="p99"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Writebacks",
                left=[lambda_metric("WritebacksSucceeded"), lambda_metric("WritebacksFailed")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Workflow executions",
                left=[
                    state_machine.metric_started(period=FIVE_MINUTES),
                    state_machine.metric_succeeded(period=FIVE_MINUTES),
                    state_machine.metric_failed(period=FIVE_MINUTES),
                    state_machine.metric_timed_out(period=FIVE_MINUTES),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[
                    http_api.metric_count(period=FIVE_MINUTES),
                    http_api.metric_client_error(period=FIVE_MINUTES),
                    http_api.metric_server_error(period=FIVE_MINUTES),
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Bridge active calls",
                left=[bridge_metric("ActiveCalls", "Sum"), bridge_metric("ActiveCalls", "Average")],
                right=[target_group.metrics.healthy_host_count(period=Duration.minutes(1))],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Agent connect time (ms)",
                left=[bridge_metric("ConnectTimeMs", p) for p in ("p50", "p90", "p99")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Turn latency (ms)",
                left=[bridge_metric("TurnLatencyMs", p) for p in ("p50", "p90", "p99")],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Bridge audio",
                left=[bridge_metric("FramesRelayed", "Sum"), bridge_metric("Conversions", "Sum")],
                right=[bridge_metric("Underruns", "Sum")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Lambda errors",
                left=[
                    f.metric_errors(period=FIVE_MINUTES, label=m)
                    for m, f in sorted(functions.items())
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Lambda duration p90 (ms)",
                left=[
                    f.metric_duration(period=FIVE_MINUTES, statistic="p90", label=m)
                    for m, f in sorted(functions.items())
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Load balancer",
                left=[
                    load_balancer.metrics.active_connection_count(period=Duration.minutes(1)),
                    load_balancer.metrics.new_connection_count(period=Duration.minutes(1)),
                ],
                right=[load_balancer.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT)],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=12),
        )


def _pascal(module: str) -> str:
    return "".join(part.capitalize() for part in module.split("_"))

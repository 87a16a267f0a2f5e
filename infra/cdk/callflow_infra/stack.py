"""The callflow stack: state, functions, workflow, API, bridge and monitoring, wired together.

The stack is environment-agnostic (no account or region in the template, nothing looked up), so
``cdk synth`` works offline with no credentials, and the same template deploys to whichever account
and region the deploying credentials point at.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnElement, CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from callflow.lifecycle.stopped import STOPPED_STATUSES
from callflow_infra.bridge import Bridge
from callflow_infra.bundle import LAMBDA_TASK_ROOT, LambdaBundle
from callflow_infra.campaigns import CampaignBucket, CampaignWorkflow, grant_items
from callflow_infra.functions import CAMPAIGN_TASKS, EXECUTION_STOPPED, Functions
from callflow_infra.http_api import HttpApi
from callflow_infra.monitoring import NAMESPACE, Monitoring
from callflow_infra.nag import acknowledge
from callflow_infra.packaging import CAMPAIGN_DEFINITION, FLOWS_IN_BUNDLE, WORKFLOW_DEFINITION
from callflow_infra.recordings import Recordings
from callflow_infra.stage import StageConfig
from callflow_infra.state import State
from callflow_infra.workflow import Workflow

SESSION_TTL_DAYS = 30
"""The sessions' (and campaigns') time to live in the table (``session_ttl_days``)."""

# Task tokens are not IAM resources: these actions only accept "*" (see nag.py).
TASK_TOKEN_ACTIONS = [
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
]


class CallflowStack(Stack):
    """Everything one stage of callflow needs in an AWS account."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        repo_root: Path,
        bundle: LambdaBundle,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id, description=description)
        removal = RemovalPolicy.RETAIN if stage.retain else RemovalPolicy.DESTROY
        retention = _retention(stage.log_retention_days)

        self.state = State(self, "State", retain=stage.retain)
        # A campaign's record snapshots live no longer than the sessions made from them.
        self.campaign_items = CampaignBucket(
            self, "CampaignItems", expire_days=SESSION_TTL_DAYS, removal=removal
        )
        items = self.campaign_items.bucket
        self.recordings = Recordings(
            self,
            "Recordings",
            prefix=stage.setting("recording_prefix"),
            retention_days=int(stage.setting("recording_retention_days")),
            removal=removal,
        )
        shared_env = {
            # Admission's bridge pool: every task the service may scale to, full (a stage's own
            # bridge_capacity setting, below, wins).
            "CALLFLOW_BRIDGE_CAPACITY": str(stage.bridge_max_tasks * stage.bridge_calls_per_task),
            **stage.environment(),
            "CALLFLOW_TABLE_NAME": self.state.table.table_name,
            "CALLFLOW_SECRETS_ID": self.state.secret.secret_arn,
            "CALLFLOW_RECORDING_BUCKET": self.recordings.bucket.bucket_name,
            "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        }
        # The bundle carries the stage's flow files there (callflow_infra.bundle); the bridge
        # needs none (a session carries its flow's agent and overrides).
        flows_env = (
            {"CALLFLOW_FLOWS_DIR": f"{LAMBDA_TASK_ROOT}/{FLOWS_IN_BUNDLE}"}
            if stage.flows_dir
            else {}
        )

        self.functions = Functions(
            self,
            "Functions",
            bundle=bundle,
            environment={
                **shared_env,
                **flows_env,
                "CALLFLOW_CAMPAIGN_BUCKET": items.bucket_name,
                "POWERTOOLS_SERVICE_NAME": "callflow",
            },
            log_retention=retention,
            removal=removal,
            api_snap_start=stage.api_snap_start,
        )
        for function in self.functions.by_module.values():
            self.state.table.grant_read_write_data(function)
            self.state.secret.grant_read(function)

        # The writeback reads a call's recording to attach it; nothing else reads one.
        self.recordings.grant(self.functions.by_module["write_back"], "s3:GetObject")

        self.workflow = Workflow(
            self,
            "Workflow",
            definition_file=repo_root / WORKFLOW_DEFINITION,
            tasks=self.functions.tasks,
            substitutions=self.functions.substitutions(),
            log_retention=retention,
            removal=removal,
        )
        machine = self.workflow.state_machine
        # A callback is a new execution of the call workflow, started by the writeback with the
        # ARN the workflow passes it. A policy of its own, not the role's default one: the
        # function depends on its role's default policy, and the workflow on the function.
        iam.Policy(
            self,
            "WriteBackStartsCallbacks",
            roles=[self.functions.by_module["write_back"].role],  # type: ignore[list-item]
            statements=[
                iam.PolicyStatement(
                    actions=["states:StartExecution"], resources=[machine.state_machine_arn]
                )
            ],
        )

        self.campaigns = CampaignWorkflow(
            self,
            "Campaigns",
            definition_file=repo_root / CAMPAIGN_DEFINITION,
            tasks=self.functions.campaign_tasks,
            substitutions=self.functions.substitutions(CAMPAIGN_TASKS),
            call_workflow=machine,
            bucket=items,
            log_retention=retention,
            removal=removal,
        )
        campaigns = self.campaigns.state_machine
        campaign_tasks = self.functions.campaign_tasks
        grant_items(items, campaign_tasks["campaign_enumerate"], write=True)  # parts, items
        grant_items(items, campaign_tasks["campaign_finish"])  # recounts the items' sessions

        api_function = self.functions.api
        api_function.add_environment("CALLFLOW_STATE_MACHINE_ARN", machine.state_machine_arn)
        machine.grant_start_execution(api_function)
        # Campaigns: started by the API, stopped by it or an operator, exported from the items.
        api_function.add_environment(
            "CALLFLOW_CAMPAIGN_STATE_MACHINE_ARN", campaigns.state_machine_arn
        )
        campaigns.grant_start_execution(api_function)
        api_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StopExecution"], resources=[self.campaigns.executions()]
            )
        )
        grant_items(items, api_function)  # the export
        api_function.add_to_role_policy(
            iam.PolicyStatement(actions=TASK_TOKEN_ACTIONS, resources=["*"])
        )
        for function in self.functions.tasks.values():
            # await_analysis resumes its own wait when the results are already in.
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["states:SendTaskSuccess"], resources=["*"])
            )

        # An execution stopped outside the workflow's own Catch (aborted, timed out, failed) runs
        # none of its end paths: this rule's function releases its slots and ends its session.
        events.Rule(
            self,
            "ExecutionStopped",
            description="callflow: clean up after a call execution stopped from outside",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": sorted(STOPPED_STATUSES),
                    "stateMachineArn": [machine.state_machine_arn],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    self.functions.by_module[EXECUTION_STOPPED.module], retry_attempts=8
                )
            ],
        )

        self.http = HttpApi(
            self,
            "Http",
            handler=self.functions.api_target,
            log_retention=retention,
            removal=removal,
        )

        self.bridge = Bridge(
            self,
            "Bridge",
            repo_root=repo_root,
            stage=stage,
            environment={**shared_env, "AWS_REGION": self.region},
            table=self.state.table,
            secret=self.state.secret,
            log_retention=retention,
            removal=removal,
        )

        # The bridge stores each recording under the prefix; it can neither read nor list.
        self.recordings.grant(self.bridge.task_definition.task_role, "s3:PutObject")

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            stage_name=stage.name,
            alarm_email=stage.alarm_email,
            functions=self.functions.by_module,
            state_machine=machine,
            http_api=self.http.api,
            target_group=self.bridge.target_group,
            load_balancer=self.bridge.load_balancer,
            removal=removal,
        )

        api_url = self.http.url
        outputs = {
            "ApiUrl": (api_url, "Base URL of the HTTP API"),
            "ZohoWebhookUrl": (f"{api_url}/webhooks/zoho", "Zoho workflow rule webhook URL"),
            "InfobipWebhookUrl": (
                f"{api_url}/webhooks/infobip/{{infobip_webhook_path_secret}}",
                "Infobip events URL; replace the braces with the secret's "
                "infobip_webhook_path_secret (callflow setup infobip does it)",
            ),
            "ElevenLabsWebhookUrl": (
                f"{api_url}/webhooks/elevenlabs",
                "ElevenLabs post-call webhook URL",
            ),
            "BridgeWebSocketUrl": (
                f"wss://{self.bridge.host}/{{bridge_path_secret}}",
                "Infobip media-stream URL; replace the braces with the secret's bridge_path_secret",
            ),
            "BridgeLoadBalancerDns": (
                self.bridge.load_balancer.load_balancer_dns_name,
                "Point the bridge domain's DNS record (CNAME/alias) here",
            ),
            "TableName": (self.state.table.table_name, "DynamoDB table"),
            "SecretArn": (self.state.secret.secret_arn, "Secrets Manager secret to fill in"),
            "StateMachineArn": (machine.state_machine_arn, "Call workflow"),
            "CampaignStateMachineArn": (campaigns.state_machine_arn, "Campaign state machine"),
            "CampaignBucketName": (items.bucket_name, "S3 bucket of campaigns' enumerated records"),
            "AlarmTopicArn": (self.monitoring.topic.topic_arn, "Subscribe to receive alarms"),
            "DashboardName": (self.monitoring.dashboard.dashboard_name, "CloudWatch dashboard"),
        }
        for name, (value, text) in outputs.items():
            CfnOutput(self, name, value=value, description=text)

        self._accept_nag_findings()

    def _accept_nag_findings(self) -> None:
        """The cdk-nag findings this design accepts, on the constructs that cause them."""
        acknowledge(self.state.secret, "AwsSolutions-SMG4")
        for function in self.functions.by_module.values():
            acknowledge(
                function,
                "AwsSolutions-L1",
                "AwsSolutions-IAM5[Resource::*]",
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
            )
        acknowledge(self.workflow.state_machine, "AwsSolutions-IAM5[Resource::*]")
        campaigns = self.campaigns.state_machine
        acknowledge(campaigns, "AwsSolutions-IAM5[Resource::*]")
        bucket = self.get_logical_id(_cfn(self.campaign_items.bucket))
        objects = f"Resource::<{bucket}.Arn>/campaigns/*"
        for grantee in (campaigns, self.functions.api, *self.functions.campaign_tasks.values()):
            acknowledge(grantee, "AwsSolutions-IAM5[campaign-items]", finding=objects)
        call_workflow = f"<{self.get_logical_id(_cfn(self.workflow.state_machine))}.Name>"
        for executions in (f"{call_workflow}:*", f"{self.campaigns.name}/*"):
            acknowledge(
                campaigns, "AwsSolutions-IAM5[executions]", finding=_execution_finding(executions)
            )
        acknowledge(
            self.functions.api,
            "AwsSolutions-IAM5[executions]",
            finding=_execution_finding(f"{self.campaigns.name}:*"),
        )
        acknowledge(self.campaign_items.bucket, "AwsSolutions-S1")
        acknowledge(self.http.api, "AwsSolutions-APIG4")
        bridge = self.bridge
        acknowledge(bridge.task_definition, "AwsSolutions-ECS2")
        acknowledge(
            bridge.task_definition.obtain_execution_role(), "AwsSolutions-IAM5[Resource::*]"
        )
        acknowledge(
            bridge.task_definition.task_role,
            "AwsSolutions-IAM5[task-protection]",
            finding=f"Resource::{bridge.task_protection_resource_pattern}",
        )
        acknowledge(bridge.alb_security_group, "AwsSolutions-EC23")
        recordings = self.recordings
        acknowledge(recordings.bucket, "AwsSolutions-S1")
        for reader_or_writer in (
            bridge.task_definition.task_role,
            self.functions.by_module["write_back"],
        ):
            acknowledge(
                reader_or_writer,
                "AwsSolutions-IAM5[recordings-prefix]",
                finding=f"Resource::{recordings.nag_objects_pattern}",
            )
        acknowledge(bridge.load_balancer, "AwsSolutions-ELB2")


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
}


def _cfn(construct: IConstruct) -> CfnElement:
    """The CloudFormation resource behind an L2 construct (for its logical id)."""
    child = construct.node.default_child
    assert isinstance(child, CfnElement)
    return child


def _execution_finding(pattern: str) -> str:
    """cdk-nag's rendering of an execution ARN pattern (``executions_of``)."""
    return (
        f"Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{pattern}"
    )


def _retention(days: int) -> logs.RetentionDays:
    if days not in _RETENTION:
        raise ValueError(f"log_retention_days must be one of {sorted(_RETENTION)}, got {days}")
    return _RETENTION[days]

"""Campaigns: the bucket of enumerated records and the campaign state machine.

The bucket holds each campaign's items (``campaigns/<id>/...``, see
``callflow/campaigns/items.py``): encrypted (S3-managed keys), never public, TLS only, and
expired after the sessions they name (the table's TTL), so no record snapshot outlives its
session. The state machine is ``functions/campaign.asl.json`` with its task functions and the call
workflow substituted; its role may invoke exactly those functions, read the bucket (the Map's
ItemReader), start and follow executions of the call workflow (``startExecution.sync:2`` watches
them through Step Functions' managed EventBridge rule) and run its own Distributed Map's child
executions.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from callflow_infra.workflow import check_substitutions

_COLON = ArnFormat.COLON_RESOURCE_NAME
SYNC_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
"""The EventBridge rule Step Functions manages for ``startExecution.sync`` tasks."""


class CampaignBucket(Construct):
    """The items bucket, expiring objects after ``expire_days``."""

    def __init__(
        self, scope: Construct, construct_id: str, *, expire_days: int, removal: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireCampaignItems",
                    expiration=Duration.days(expire_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=removal,
            auto_delete_objects=removal is RemovalPolicy.DESTROY,
        )


class CampaignWorkflow(Construct):
    """The campaign state machine, with the least privileges its states need."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition_file: Path,
        tasks: dict[str, lambda_.Function],
        substitutions: dict[str, str],
        call_workflow: sfn.StateMachine,
        bucket: s3.IBucket,
        log_retention: logs.RetentionDays,
        removal: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        substitutions = {**substitutions, "CallWorkflowArn": call_workflow.state_machine_arn}
        check_substitutions(definition_file, substitutions)
        stack = Stack.of(self)
        # A fixed name lets the role name its own executions (the Map's children) without a
        # reference to itself, which CloudFormation could not resolve.
        name = f"{stack.stack_name}-campaigns"
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            definition_body=sfn.DefinitionBody.from_string(
                definition_file.read_text(encoding="utf-8")
            ),
            definition_substitutions=substitutions,
            state_machine_type=sfn.StateMachineType.STANDARD,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            tracing_enabled=True,
        )
        role = self.state_machine
        for function in tasks.values():
            role.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[function.function_arn]
                )
            )
        bucket.grant_read(self.state_machine)
        call_workflow.grant_start_execution(self.state_machine)
        call_executions = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{call_workflow.state_machine_name}:*",
            arn_format=_COLON,
        )
        role.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[call_executions],
            )
        )
        role.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(service="events", resource="rule", resource_name=SYNC_RULE)
                ],
            )
        )
        own = stack.format_arn(
            service="states", resource="stateMachine", resource_name=name, arn_format=_COLON
        )
        own_executions = stack.format_arn(
            service="states", resource="execution", resource_name=f"{name}/*", arn_format=_COLON
        )
        role.add_to_role_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[own])
        )
        role.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[own_executions],
            )
        )

"""Campaigns: the bucket of enumerated records and the campaign state machine.

The bucket holds each campaign's items (``campaigns/<id>/...``, :mod:`callflow.campaigns.items`):
encrypted with S3-managed keys, never public, reachable over TLS only, and expired after
``expire_days`` (the sessions' own time to live), so no record snapshot outlives the sessions made
from it. No auto-delete custom resource: a stage removed with objects left in the bucket keeps the
bucket until they expire or are emptied (docs/operations.md).

The state machine is ``callflow_functions/campaign.asl.json`` with its task functions and the call
workflow substituted, as the call workflow's definition is. Its role may invoke exactly those
functions, read the bucket (the Distributed Map's ItemReader), start the call workflow and follow
its executions (``startExecution.sync:2`` describes them and stops them when the item is stopped,
through the EventBridge rule Step Functions manages for ``.sync``), and start and follow its own
Distributed Map's child executions.
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

SYNC_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"
"""The EventBridge rule Step Functions manages for ``startExecution.sync`` tasks."""
CALL_WORKFLOW_SUBSTITUTION = "CallWorkflowArn"
ITEMS_PREFIX = "campaigns/"
"""Where every campaign's objects are (``callflow.campaigns.items``)."""


class CampaignBucket(Construct):
    """The items bucket; its objects expire after ``expire_days``."""

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
        )


def grant_items(bucket: s3.IBucket, grantee: iam.IGrantable, *, write: bool = False) -> None:
    """Read (and with ``write``, write) campaigns' objects: named actions, not CDK's wildcard
    grants (no delete, no ACLs). ``s3:ListBucket`` comes with reading: without it S3 answers a
    missing key with 403 instead of 404, and a campaign not enumerated yet has no items file."""
    actions = ["s3:GetObject", *(["s3:PutObject"] if write else [])]
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(f"{ITEMS_PREFIX}*")])
    )
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
    )


class CampaignWorkflow(Construct):
    """The campaign state machine, with the privileges its states need and no more."""

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
        substitutions = {
            **substitutions,
            CALL_WORKFLOW_SUBSTITUTION: call_workflow.state_machine_arn,
        }
        check_substitutions(definition_file, substitutions)
        stack = Stack.of(self)
        # A fixed name lets the role name its own executions (the Distributed Map's children)
        # without referring to the machine itself, a cycle CloudFormation cannot resolve.
        self.name = f"{stack.stack_name}-campaigns"
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=self.name,
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
        machine = self.state_machine
        for function in tasks.values():
            machine.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[function.function_arn]
                )
            )
        grant_items(bucket, machine)  # the Distributed Map's ItemReader
        call_workflow.grant_start_execution(machine)
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[executions_of(stack, call_workflow.state_machine_name, child=False)],
            )
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    stack.format_arn(service="events", resource="rule", resource_name=SYNC_RULE)
                ],
            )
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StartExecution"],
                resources=[
                    stack.format_arn(
                        service="states",
                        resource="stateMachine",
                        resource_name=self.name,
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[executions_of(stack, self.name, child=True)],
            )
        )

    def executions(self) -> str:
        """The ARN pattern of this machine's own executions (the operator stops one)."""
        return executions_of(Stack.of(self), self.name, child=False)


def executions_of(stack: Stack, machine_name: str, *, child: bool) -> str:
    """The ARN pattern of a machine's executions: ``name:*`` for its own, ``name/*`` for the
    child executions its Distributed Map runs (``name/<map run>:<execution>``)."""
    return stack.format_arn(
        service="states",
        resource="execution",
        resource_name=f"{machine_name}{'/' if child else ':'}*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )

"""The call workflow: the Step Functions state machine from ``functions/workflow.asl.json``.

The ASL file is the only description of the flow; the local stack runs the very same file. The stack
only fills in the ``${...}FunctionArn`` substitutions, so retries, waits and catches are whatever
the file says. Logging (ALL, with execution data) and X-Ray tracing are on: a failed call's history
is the first thing an operator reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class DefinitionError(ValueError):
    """The ASL file and the stack disagree on the substitutions."""


def check_substitutions(definition_file: Path, substitutions: dict[str, str]) -> None:
    """Refuse to synthesize a machine with an unfilled (or unknown) ``${Name}``.

    CloudFormation would otherwise deploy the literal placeholder and the first execution would
    fail on a function that does not exist.
    """
    text = definition_file.read_text(encoding="utf-8")
    json.loads(text)  # a broken file fails here with the JSON position, not at deploy time
    used = set(_PLACEHOLDER.findall(text))
    missing = sorted(used - set(substitutions))
    unused = sorted(set(substitutions) - used)
    if missing or unused:
        raise DefinitionError(
            f"{definition_file.name}: substitutions missing {missing}, "
            f"not used by the file {unused}"
        )


class Workflow(Construct):
    """The state machine, allowed to invoke exactly the task functions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition_file: Path,
        tasks: dict[str, lambda_.Function],
        substitutions: dict[str, str],
        log_retention: logs.RetentionDays,
        removal: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        check_substitutions(definition_file, substitutions)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            # Inline (DefinitionString), not ``from_file``'s S3 asset: the template then carries
            # the definition for review, ``sam validate`` and drift checks, with no upload step.
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
        for function in tasks.values():
            # The ASL invokes the unqualified ARNs it is given: no version wildcard needed.
            self.state_machine.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"], resources=[function.function_arn]
                )
            )

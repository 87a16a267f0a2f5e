"""The Lambda functions: the API and one per workflow task, all from one code asset.

Python 3.12 on arm64 (Graviton: cheaper per millisecond, and every pinned dependency ships aarch64
wheels). Each function gets its own log group with the stage's retention instead of the implicit
never-expiring one, and X-Ray active tracing so one call can be followed across the API, the state
machine and the tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import AssetHashType, Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from callflow_infra.bundle import LambdaBundle


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda: its module under ``functions/``, the ASL substitution naming it, its limits."""

    module: str
    substitution: str | None
    timeout_seconds: int
    memory_mib: int = 512
    every_minutes: int = 0
    """Run on this schedule (an EventBridge rule) when positive; 0: invoked by others."""


API = FunctionSpec("api", None, timeout_seconds=29, memory_mib=1024)
TASKS = (
    FunctionSpec("prepare", "PrepareFunctionArn", timeout_seconds=60),
    FunctionSpec("admit", "AdmitFunctionArn", timeout_seconds=30),
    FunctionSpec("place_call", "PlaceCallFunctionArn", timeout_seconds=60),
    FunctionSpec("plan_retry", "PlanRetryFunctionArn", timeout_seconds=30),
    FunctionSpec("await_analysis", "AwaitAnalysisFunctionArn", timeout_seconds=60),
    FunctionSpec("fetch_analysis", "FetchAnalysisFunctionArn", timeout_seconds=60),
    FunctionSpec("write_back", "WriteBackFunctionArn", timeout_seconds=120),
    FunctionSpec("mark_failed", "MarkFailedFunctionArn", timeout_seconds=30),
)
SCHEDULED = (
    # Deletes per-session media-stream configs an attempt's end left behind (their names carry
    # their age); every 15 minutes keeps a leak far below the account's config limits.
    FunctionSpec("sweep_media_configs", None, timeout_seconds=120, every_minutes=15),
)
CAMPAIGN_TASKS = (
    # Enumeration stops itself with time in hand and the state machine calls it again
    # (callflow.campaigns.enumeration); the finish step reads every session once.
    FunctionSpec("campaign_enumerate", "CampaignEnumerateFunctionArn", timeout_seconds=300),
    FunctionSpec("campaign_item", "CampaignItemFunctionArn", timeout_seconds=30),
    FunctionSpec("campaign_finish", "CampaignFinishFunctionArn", timeout_seconds=900),
)
"""The campaign state machine's tasks (``callflow_functions/campaign.asl.json``)."""
EXECUTION_STOPPED = FunctionSpec("execution_stopped", None, timeout_seconds=60)
"""The target of the rule on the call workflow's stopped executions (``CallflowStack``)."""


def construct_name(module: str) -> str:
    """``place_call`` -> ``PlaceCall``: stable logical ids that read like the ASL states."""
    return "".join(part.capitalize() for part in module.split("_"))


class Functions(Construct):
    """Creates every function with the shared environment; exposes them by module name."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bundle: LambdaBundle,
        environment: dict[str, str],
        log_retention: logs.RetentionDays,
        removal: RemovalPolicy,
        api_snap_start: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        code = lambda_.Code.from_asset(
            str(bundle.path),
            asset_hash=bundle.asset_hash,
            asset_hash_type=AssetHashType.CUSTOM,
        )
        self.by_module: dict[str, lambda_.Function] = {}
        for spec in (API, *TASKS, *SCHEDULED, EXECUTION_STOPPED, *CAMPAIGN_TASKS):
            name = construct_name(spec.module)
            log_group = logs.LogGroup(
                self, f"{name}Logs", retention=log_retention, removal_policy=removal
            )
            self.by_module[spec.module] = lambda_.Function(
                self,
                name,
                runtime=lambda_.Runtime.PYTHON_3_12,
                architecture=lambda_.Architecture.ARM_64,
                handler=f"callflow_functions.{spec.module}.handler",
                code=code,
                timeout=Duration.seconds(spec.timeout_seconds),
                memory_size=spec.memory_mib,
                environment=dict(environment),
                tracing=lambda_.Tracing.ACTIVE,
                log_group=log_group,
                description=f"callflow {spec.module}",
                snap_start=(
                    lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS
                    if api_snap_start and spec is API
                    else None
                ),
            )
            if spec.every_minutes:
                events.Rule(
                    self,
                    f"{name}Schedule",
                    schedule=events.Schedule.rate(Duration.minutes(spec.every_minutes)),
                    targets=[targets.LambdaFunction(self.by_module[spec.module])],
                )

        self.api_target: lambda_.IFunction = self.api
        """What the HTTP API invokes: the function, or with SnapStart (which applies to
        published versions only, never ``$LATEST``) an alias of its current version."""
        if api_snap_start:
            self.api_target = lambda_.Alias(
                self, "ApiLive", alias_name="live", version=self.api.current_version
            )

    @property
    def api(self) -> lambda_.Function:
        """The function behind the HTTP API (webhooks, session status, health)."""
        return self.by_module[API.module]

    @property
    def tasks(self) -> dict[str, lambda_.Function]:
        """The workflow task functions by module name; the API function is not among them."""
        return {spec.module: self.by_module[spec.module] for spec in TASKS}

    @property
    def campaign_tasks(self) -> dict[str, lambda_.Function]:
        """The campaign state machine's task functions by module name."""
        return {spec.module: self.by_module[spec.module] for spec in CAMPAIGN_TASKS}

    def substitutions(self, specs: tuple[FunctionSpec, ...] = TASKS) -> dict[str, str]:
        """ASL ``${...}`` name -> function ARN, for a state machine's definition (the call
        workflow's by default, :data:`CAMPAIGN_TASKS` for the campaign's)."""
        return {
            spec.substitution: self.by_module[spec.module].function_arn
            for spec in specs
            if spec.substitution
        }

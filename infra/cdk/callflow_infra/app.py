"""Builds the CDK app for the stage named in the context, with the cdk-nag checks attached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from callflow_infra.bundle import build_lambda_bundle
from callflow_infra.stack import CallflowStack
from callflow_infra.stage import STAGES_KEY, check_flows, load_stage

CDK_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = CDK_DIR.parent.parent
BUNDLE_DIR = CDK_DIR / ".bundle"


def build_app(
    context: dict[str, Any] | None = None, outdir: str | None = None, *, checks: bool = True
) -> App:
    """The app for ``-c stage=..`` (default dev).

    ``context`` replaces what the CDK CLI would pass from ``cdk.json`` (tests build the app
    in-process). With ``checks`` the AwsSolutions rules run at synth and any unacknowledged
    finding fails it, so ``make synth`` is also the compliance gate.
    """
    app = App(context=context, outdir=outdir)
    stage_name = str(app.node.try_get_context("stage") or "dev")
    stage = load_stage(app.node.try_get_context(STAGES_KEY), stage_name)
    check_flows(stage, REPO_ROOT)
    bundle = build_lambda_bundle(REPO_ROOT, BUNDLE_DIR, stage.flows_dir)
    CallflowStack(
        app,
        f"callflow-{stage.name}",
        stage=stage,
        repo_root=REPO_ROOT,
        bundle=bundle,
        description=f"callflow ({stage.name}): AI phone agents from Zoho CRM",
    )
    if checks:
        attach_checks(app)
    return app


def attach_checks(app: App) -> None:
    """Run the cdk-nag AwsSolutions rules at synth; an unacknowledged finding fails it."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))

"""Synthesized stacks shared by the infra tests: each stage is synthesized once per session.

The app is built in-process the way ``infra/cdk/app.py`` builds it, with ``cdk.json``'s context;
assets are referenced in place rather than copied, and the Lambda bundle comes from the cache in
``infra/cdk/.bundle``, so a session costs two synths (dev and prod), not one per test.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_DIR = REPO_ROOT / "infra" / "cdk"
if str(CDK_DIR) not in sys.path:
    sys.path.insert(0, str(CDK_DIR))

from aws_cdk import App  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from aws_cdk.cx_api import CloudFormationStackArtifact  # noqa: E402

from callflow_infra.app import build_app  # noqa: E402
from callflow_infra.stack import CallflowStack  # noqa: E402


@dataclass
class Synthesized:
    app: App
    stack: CallflowStack
    template: Template
    artifact: CloudFormationStackArtifact

    def asset_manifest(self) -> dict[str, Any]:
        """The stack's asset manifest: what ``cdk deploy`` would build and upload."""
        for dependency in self.artifact.dependencies:
            if dependency.id.endswith(".assets"):
                manifest = Path(self.artifact.assembly.directory) / f"{dependency.id}.json"
                return dict(json.loads(manifest.read_text()))
        raise AssertionError("the stack has no asset manifest")

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.template.to_json()["Resources"])

    def of_type(self, resource_type: str) -> dict[str, Any]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.get_logical_id(construct.node.default_child))


def cdk_context(stage: str) -> dict[str, Any]:
    context = dict(json.loads((CDK_DIR / "cdk.json").read_text())["context"])
    context["stage"] = stage
    # Reference assets where they are instead of copying them into the assembly: the Lambda
    # bundle is ~80 MB and the image context is the repository (``cdk synth`` still stages both).
    context["aws:cdk:disable-asset-staging"] = True
    return context


def synthesize(stage: str, outdir: Path) -> Synthesized:
    app = build_app(context=cdk_context(stage), outdir=str(outdir), checks=False)
    stack = app.node.find_child(f"callflow-{stage}")
    assert isinstance(stack, CallflowStack)
    template = Template.from_stack(stack)
    assembly = app.synth()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    return Synthesized(app, stack, template, artifact)


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize("dev", tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize("prod", tmp_path_factory.mktemp("cdk-prod"))

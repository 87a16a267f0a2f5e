"""A stage's flow files ship with the Lambdas: the bundle carries them, their change changes the
asset, a file that does not validate stops the synth, and the functions (not the bridge) get
``CALLFLOW_FLOWS_DIR`` pointing at them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from callflow_infra import bundle as bundle_module
from callflow_infra.app import build_app
from callflow_infra.bundle import BundleError, build_lambda_bundle
from callflow_infra.packaging import FLOWS_IN_BUNDLE, LAMBDA
from callflow_infra.stack import CallflowStack
from callflow_infra.stage import StageConfig, StageConfigError, check_flows, load_stage

from .conftest import CDK_DIR, REPO_ROOT, cdk_context
from .test_bundle import _small_repo

EXAMPLES = "examples/flows"
ENV_VALUE = f"/var/task/{FLOWS_IN_BUNDLE}"


def _repo_with_flows(tmp_path: Path) -> tuple[Path, Path]:
    repo = _small_repo(tmp_path, (REPO_ROOT / LAMBDA.requirements).read_bytes())
    shutil.copytree(REPO_ROOT / EXAMPLES, repo / EXAMPLES)
    cache = tmp_path / "cache"
    deps = bundle_module.dependencies_dir(REPO_ROOT, CDK_DIR / ".bundle")
    (cache / deps.name).mkdir(parents=True)  # same lock: an (empty) cached install to reuse
    return repo, cache


def test_the_bundle_carries_the_stages_flow_files_and_their_change_changes_the_asset(
    tmp_path: Path,
) -> None:
    repo, cache = _repo_with_flows(tmp_path)
    without = build_lambda_bundle(repo, cache)
    first = build_lambda_bundle(repo, cache, EXAMPLES)
    assert first.asset_hash != without.asset_hash
    shipped = sorted(p.name for p in (first.path / FLOWS_IN_BUNDLE).iterdir())
    assert shipped == sorted(p.name for p in (REPO_ROOT / EXAMPLES).iterdir())
    reminder = repo / EXAMPLES / "reminder.yaml"
    reminder.write_text(reminder.read_text() + "# changed\n")
    second = build_lambda_bundle(repo, cache, EXAMPLES)
    assert second.asset_hash != first.asset_hash
    assert (second.path / FLOWS_IN_BUNDLE / "reminder.yaml").read_text().endswith("# changed\n")
    assert not (without.path / FLOWS_IN_BUNDLE).exists()


def test_a_missing_flows_dir_stops_the_bundle(tmp_path: Path) -> None:
    repo, cache = _repo_with_flows(tmp_path)
    with pytest.raises(BundleError, match="flows_dir"):
        build_lambda_bundle(repo, cache, "config/none")


def test_a_flow_file_that_does_not_validate_stops_the_synth_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "bad.yaml").write_text("agent: {agent_id: a}\nretry: {busy: 3}\n")
    with pytest.raises(StageConfigError, match=r"bad\.yaml: line 2: retry\.busy"):
        check_flows(StageConfig(name="dev", flows_dir="flows"), tmp_path)
    check_flows(StageConfig(name="dev", flows_dir=EXAMPLES), REPO_ROOT)  # the examples load


def test_flows_dir_is_the_stacks_to_set_not_a_setting() -> None:
    with pytest.raises(StageConfigError, match="set by the stack"):
        load_stage({"dev": {"settings": {"flows_dir": "/elsewhere"}}}, "dev")


def test_the_functions_read_the_shipped_flows_and_the_bridge_does_not(tmp_path: Path) -> None:
    context = cdk_context("dev")
    stages = dict(context["callflow:stages"])
    stages["dev"] = {**stages["dev"], "flows_dir": EXAMPLES}
    context["callflow:stages"] = stages
    app = build_app(context=context, outdir=str(tmp_path), checks=False)
    stack = app.node.find_child("callflow-dev")
    assert isinstance(stack, CallflowStack)
    from aws_cdk.assertions import Template

    resources = Template.from_stack(stack).to_json()["Resources"]
    functions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Function"]
    variables = [f["Properties"]["Environment"]["Variables"] for f in functions]
    ours = [v for v in variables if "CALLFLOW_TABLE_NAME" in v]
    assert ours and all(v.get("CALLFLOW_FLOWS_DIR") == ENV_VALUE for v in ours)
    (task,) = [r for r in resources.values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    (container,) = task["Properties"]["ContainerDefinitions"]
    assert "CALLFLOW_FLOWS_DIR" not in {e["Name"] for e in container.get("Environment", [])}

"""``make synth``: the CDK CLI synthesizes offline, without AWS credentials and without Docker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from callflow_infra.packaging import BRIDGE, BRIDGE_DOCKERFILE, SOURCE_ROOT

from .conftest import CDK_DIR, REPO_ROOT


@pytest.mark.slow
def test_make_synth_works_offline_without_credentials_or_docker(tmp_path: Path) -> None:
    if shutil.which("make") is None or shutil.which("npm") is None:
        pytest.fail("make and npm are needed for `make synth`")
    # A docker that records being called: synth must only stage the image context.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    marker = tmp_path / "docker-was-called"
    docker = fake_bin / "docker"
    docker.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    docker.chmod(0o755)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "CDK_")) and key != "VIRTUAL_ENV"
    }
    env.update(
        PATH=f"{fake_bin}:{env.get('PATH', '')}",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
    )
    result = subprocess.run(
        ["make", "synth", "STAGE=dev"],  # noqa: S607
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not marker.exists(), "synth invoked docker"
    template = json.loads((CDK_DIR / "cdk.out" / "callflow-dev.template.json").read_text())
    types = {r["Type"] for r in template["Resources"].values()}
    assert {"AWS::StepFunctions::StateMachine", "AWS::ECS::Service"} <= types
    assets = json.loads((CDK_DIR / "cdk.out" / "callflow-dev.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    staged = CDK_DIR / "cdk.out" / image["source"]["directory"]
    # The staged build context is the allow-list and nothing else.
    files = {str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file()}
    packages = tuple(f"{SOURCE_ROOT}/{package}/" for package in BRIDGE.packages)
    assert {BRIDGE_DOCKERFILE, BRIDGE.requirements} <= files
    assert {f for f in files if f not in (BRIDGE_DOCKERFILE, BRIDGE.requirements)} == {
        f for f in files if f.startswith(packages) and "__pycache__" not in f
    }
    assert any(f.startswith(f"{SOURCE_ROOT}/callflow_bridge/") for f in files)

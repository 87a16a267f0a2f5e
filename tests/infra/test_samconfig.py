"""samconfig.toml points the SAM CLI at the templates and stacks CDK actually produces."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from callflow_infra.stage import STAGE_NAMES

from .conftest import REPO_ROOT, Synthesized


def samconfig() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_every_stage_names_its_synthesized_template_and_stack(stage: str) -> None:
    config = samconfig()[stage]
    template = f"infra/cdk/cdk.out/callflow-{stage}.template.json"
    for command in ("validate", "local_invoke", "local_start_api"):
        assert config[command]["parameters"]["template_file"] == template, command
    assert config["global"]["parameters"]["stack_name"] == f"callflow-{stage}"
    assert config["logs"]["parameters"]["stack_name"] == f"callflow-{stage}"


def test_stack_name_in_samconfig_is_the_cdk_stacks(dev: Synthesized) -> None:
    assert samconfig()["dev"]["global"]["parameters"]["stack_name"] == dev.stack.stack_name
    assert dev.artifact.template_file == "callflow-dev.template.json"

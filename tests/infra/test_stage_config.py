"""Stage context: what cdk.json may say, and the clear errors for what it may not."""

from __future__ import annotations

import json
from typing import Any

import pytest

from callflow_infra.stage import StageConfigError, load_stage

from .conftest import CDK_DIR


def stages() -> dict[str, Any]:
    return dict(json.loads((CDK_DIR / "cdk.json").read_text())["context"]["callflow:stages"])


def test_cdk_json_defines_dev_and_prod() -> None:
    context = stages()
    assert load_stage(context, "dev").name == "dev"
    assert load_stage(context, "prod").retain is True
    assert load_stage(context, "dev").retain is False


def test_unknown_stage_names_the_defined_ones() -> None:
    with pytest.raises(StageConfigError, match=r"unknown stage 'qa'.*dev, prod"):
        load_stage(stages(), "qa")


def test_secret_setting_in_context_is_refused() -> None:
    context = stages()
    context["dev"]["settings"]["infobip_api_key"] = "abc"
    with pytest.raises(StageConfigError, match="is a secret"):
        load_stage(context, "dev")


def test_unknown_setting_is_refused() -> None:
    context = stages()
    context["dev"]["settings"]["infobip_sampel_rate"] = "16000"
    with pytest.raises(StageConfigError, match="not a callflow setting"):
        load_stage(context, "dev")


def test_stack_managed_setting_is_refused() -> None:
    context = stages()
    context["dev"]["settings"]["table_name"] = "mine"
    with pytest.raises(StageConfigError, match="set by the stack"):
        load_stage(context, "dev")


def test_invalid_setting_value_fails_like_the_running_code_would() -> None:
    context = stages()
    context["dev"]["settings"]["calling_hours_start"] = "9am"
    with pytest.raises(ValueError, match="HH:MM"):
        load_stage(context, "dev")


def test_unknown_stage_key_is_refused() -> None:
    context = stages()
    context["dev"]["nat_gateway"] = 1
    with pytest.raises(StageConfigError, match="unknown keys"):
        load_stage(context, "dev")


def test_wrong_type_is_refused() -> None:
    context = stages()
    context["dev"]["bridge_max_tasks"] = "4"
    with pytest.raises(StageConfigError, match="must be int"):
        load_stage(context, "dev")


def test_longest_call_comes_from_the_infobip_settings() -> None:
    context = stages()
    context["dev"]["settings"]["infobip_max_duration"] = "1800"
    context["dev"]["settings"]["infobip_connect_timeout"] = "30"
    assert load_stage(context, "dev").max_call_seconds == 1830


def test_settings_become_callflow_environment_variables() -> None:
    env = load_stage(stages(), "dev").environment()
    assert env["CALLFLOW_INFOBIP_BASE_URL"] == "https://api.infobip.com"
    assert all(name.startswith("CALLFLOW_") for name in env)

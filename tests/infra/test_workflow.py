"""The state machine: the project's ASL file with its substitutions, logging and tracing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from callflow_infra.packaging import WORKFLOW_DEFINITION
from callflow_infra.workflow import DefinitionError, check_substitutions

from .cfn import actions_of, flatten, resources_of, statements
from .conftest import REPO_ROOT, Synthesized

ASL = REPO_ROOT / WORKFLOW_DEFINITION


def call_workflow(dev: Synthesized) -> dict[str, Any]:
    """The call workflow's resource (the campaign machine is the other one)."""
    return dict(dev.resources[dev.logical_id(dev.stack.workflow.state_machine)])


def deployed_definition(dev: Synthesized) -> dict[str, Any]:
    machine = call_workflow(dev)
    return dict(json.loads(flatten(machine["Properties"]["DefinitionString"])))


def test_definition_carries_the_asl_files_retry_and_catch_policies(dev: Synthesized) -> None:
    source = json.loads(ASL.read_text())
    deployed = deployed_definition(dev)
    assert deployed["States"].keys() == source["States"].keys()
    with_retries = [name for name, state in source["States"].items() if "Retry" in state]
    assert with_retries, "the ASL file is expected to declare Retry policies"
    for name, state in source["States"].items():
        assert deployed["States"][name].get("Retry") == state.get("Retry"), name
        assert deployed["States"][name].get("Catch") == state.get("Catch"), name


def test_every_function_placeholder_is_substituted_by_a_task_function_arn(
    dev: Synthesized,
) -> None:
    machine = call_workflow(dev)
    substitutions = machine["Properties"]["DefinitionSubstitutions"]
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", ASL.read_text()))
    assert set(substitutions) == placeholders
    tasks = {
        f"<{dev.logical_id(function)}>": module
        for module, function in dev.stack.functions.tasks.items()
    }
    targets = {name: tasks[flatten(value)] for name, value in substitutions.items()}
    assert sorted(targets.values()) == sorted(tasks.values())
    assert targets["PlaceCallFunctionArn"] == "place_call"
    assert targets["MarkFailedFunctionArn"] == "mark_failed"


def test_state_machine_logs_all_events_and_traces(dev: Synthesized) -> None:
    machine = call_workflow(dev)
    props = machine["Properties"]
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is True
    (destination,) = logging["Destinations"]
    log_group = dev.logical_id(dev.stack.workflow.log_group)
    assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"] == {
        "Fn::GetAtt": [log_group, "Arn"]
    }


def test_state_machine_may_invoke_only_the_task_functions(dev: Synthesized) -> None:
    machine = dev.stack.workflow.state_machine
    invoked: set[str] = set()
    for statement in statements(dev.resources, dev.logical_id(machine.role)):
        if "lambda:InvokeFunction" in statement["Action"]:
            invoked.update(resources_of(statement))
    assert invoked == {f"<{dev.logical_id(f)}>" for f in dev.stack.functions.tasks.values()}


def test_unfilled_placeholder_stops_the_synth(tmp_path: Path) -> None:
    asl = tmp_path / "flow.asl.json"
    asl.write_text(json.dumps({"States": {"A": {"Parameters": {"FunctionName": "${Missing}"}}}}))
    with pytest.raises(DefinitionError, match="Missing"):
        check_substitutions(asl, {"Other": "arn"})


def test_the_writeback_may_start_the_call_workflow_for_a_callback_and_nothing_else(
    dev: Synthesized,
) -> None:
    role = dev.stack.functions.by_module["write_back"].role
    assert role is not None
    starts = [
        s
        for s in statements(dev.resources, dev.logical_id(role))
        if "states:StartExecution" in actions_of(s)
    ]
    machine = dev.logical_id(dev.stack.workflow.state_machine)
    assert [resources_of(s) for s in starts] == [[f"<{machine}>"]]
    fields = deployed_definition(dev)["States"]["WriteFields"]["Parameters"]["Payload"]
    assert fields["workflow_arn.$"] == "$$.StateMachine.Id"

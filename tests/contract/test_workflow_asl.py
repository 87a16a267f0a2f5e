"""The state machine definition: the structure the rest of the system relies on.

Its behaviour is checked by executing it (tests/integration, tests/e2e: moto runs this file with
the real handlers); here, the parts that a careless edit could silently break.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from moto import mock_aws

from callflow_dev.local.aws import TASK_FUNCTIONS
from callflow_functions.definition import definition_text

ASL: dict[str, Any] = json.loads(definition_text())
STATES: dict[str, dict[str, Any]] = ASL["States"]
LAMBDA_ERRORS = {"Lambda.ServiceException", "Lambda.TooManyRequestsException"}


def tasks() -> dict[str, dict[str, Any]]:
    return {name: state for name, state in STATES.items() if state["Type"] == "Task"}


def test_every_transition_names_an_existing_state() -> None:
    targets = {ASL["StartAt"]}
    for state in STATES.values():
        targets |= {state.get("Next"), state.get("Default")} - {None}
        targets |= {choice["Next"] for choice in state.get("Choices", [])}
        targets |= {catch["Next"] for catch in state.get("Catch", [])}
    assert targets <= set(STATES)
    assert set(STATES) - targets == set()  # and no state is unreachable


def test_substitutions_are_exactly_the_task_functions() -> None:
    used = set(re.findall(r"\$\{(\w+)\}", definition_text()))
    assert used == set(TASK_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(tasks()))
def test_every_task_retries_lambda_service_errors_and_catches_everything_else(
    name: str,
) -> None:
    state = tasks()[name]
    retried = {e for retry in state.get("Retry", []) for e in retry["ErrorEquals"]}
    assert retried >= LAMBDA_ERRORS
    if name != "MarkWritebackFailed":
        assert any("States.ALL" in c["ErrorEquals"] for c in state["Catch"])


def test_waiting_tasks_use_task_tokens_with_timeouts() -> None:
    for name in ("PlaceCall", "WatchCall", "AwaitAnalysis"):
        state = STATES[name]
        assert state["Resource"].endswith(".waitForTaskToken")
        assert state["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
        assert "TimeoutSecondsPath" in state


def test_call_timeout_and_failures_are_planned_not_lost() -> None:
    catches = STATES["PlaceCall"]["Catch"]
    assert catches[0]["Next"] == "PlanAfterError"
    assert STATES["AwaitAnalysis"]["Catch"][0]["Next"] == "FetchAnalysis"


WRITEBACK_STEPS = ("WriteFields", "AddNote", "LogCall")


def test_provider_throttling_is_retried_with_backoff_on_calls_and_writeback() -> None:
    for name in ("PlaceCall", *WRITEBACK_STEPS):
        [policy] = [
            r for r in STATES[name]["Retry"] if "RetryableProviderError" in r["ErrorEquals"]
        ]
        assert policy["BackoffRate"] > 1 and policy["MaxAttempts"] >= 5


def test_a_reconciled_answered_call_goes_on_to_the_analysis() -> None:
    routes = {c["StringEquals"]: c["Next"] for c in STATES["Route"]["Choices"]}
    assert routes["collect"] == "AwaitAnalysis"


def test_a_call_is_checked_with_infobip_after_a_short_wait_and_then_watched_again() -> None:
    """The call's first wait is the short check's (``call_wait``, not the whole outcome timeout);
    its expiry goes to PlanAfterError, which asks Infobip and answers ``watch`` while the call is
    live; WatchCall waits again on a new token and ends like PlaceCall."""
    routes = {c["StringEquals"]: c["Next"] for c in STATES["Route"]["Choices"]}
    assert routes["watch"] == "WatchCall"
    for name in ("PlaceCall", "WatchCall"):
        state = STATES[name]
        assert state["TimeoutSecondsPath"] == "$.call_wait"
        assert state["Parameters"]["FunctionName"] == "${PlaceCallFunctionArn}"
        assert state["Catch"][0]["Next"] == "PlanAfterError"
        assert (state["ResultPath"], state["Next"]) == ("$.call", "Answered")


def test_analysis_still_processing_is_retried() -> None:
    [policy] = [
        r for r in STATES["FetchAnalysis"]["Retry"] if r["ErrorEquals"] == ["AnalysisPending"]
    ]
    assert policy["MaxAttempts"] >= 10


def test_retries_wait_in_the_state_machine_until_calling_hours() -> None:
    assert STATES["WaitForNextAttempt"] == {
        "Type": "Wait",
        "Comment": STATES["WaitForNextAttempt"]["Comment"],
        "TimestampPath": "$.wait_until",
        "Next": "Admit",
    }


def test_every_dial_is_admitted_first_and_a_full_pool_is_waited_for_by_the_retry() -> None:
    """Route's ``call`` and every wait go through Admit; its NoSlotFree is retried with full
    jitter for longer than any admission deadline, and only ``dial`` reaches PlaceCall."""
    routes = {c["StringEquals"]: c["Next"] for c in STATES["Route"]["Choices"]}
    assert routes["call"] == "Admit"
    reaching_place_call = {
        name
        for name, state in STATES.items()
        if state.get("Next") == "PlaceCall"
        or any(c["Next"] == "PlaceCall" for c in state.get("Choices", []))
    }
    assert reaching_place_call == {"Admitted"}
    admitted = {c["StringEquals"]: c["Next"] for c in STATES["Admitted"]["Choices"]}
    assert admitted == {"dial": "PlaceCall", "wait": "WaitForNextAttempt"}
    assert STATES["Admitted"]["Default"] == "WriteFields"
    [policy] = [r for r in STATES["Admit"]["Retry"] if r["ErrorEquals"] == ["NoSlotFree"]]
    assert policy["JitterStrategy"] == "FULL"
    longest_wait = 4 * 3600  # the default admission deadline
    assert policy["MaxAttempts"] * policy["MaxDelaySeconds"] / 2 > longest_wait


def test_a_dial_over_the_call_rate_is_retried_by_the_state_machine() -> None:
    [policy] = [r for r in STATES["PlaceCall"]["Retry"] if r["ErrorEquals"] == ["RateLimited"]]
    assert policy["JitterStrategy"] == "FULL" and policy["MaxAttempts"] >= 10


def test_writeback_failing_for_good_fails_the_execution_after_marking_it() -> None:
    for name in WRITEBACK_STEPS:
        assert STATES[name]["Catch"][0]["Next"] == "MarkWritebackFailed"
    assert STATES[STATES["MarkWritebackFailed"]["Next"]]["Type"] == "Fail"


def test_each_writeback_step_is_a_task_of_its_own_in_order() -> None:
    """Each step has its own retry budget: three failures of the note do not use up the call's."""
    steps = [STATES[name]["Parameters"]["Payload"]["step"] for name in WRITEBACK_STEPS]
    assert steps == ["fields", "note", "call"]
    assert [STATES[name]["Next"] for name in WRITEBACK_STEPS] == ["AddNote", "LogCall", "Done"]
    reached = {s.get("Next") for s in STATES.values()} | {
        c["Next"] for s in STATES.values() for c in s.get("Catch", [])
    }
    assert "WriteBack" not in STATES and "WriteFields" in reached


def test_step_functions_accepts_the_definition() -> None:
    definition = definition_text()
    for name in TASK_FUNCTIONS:
        definition = definition.replace(
            "${" + name + "}", f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        )
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        import boto3

        client = boto3.client("stepfunctions", region_name="us-east-1")
        arn = client.create_state_machine(
            name="calls",
            definition=definition,
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]
        assert client.describe_state_machine(stateMachineArn=arn)["status"] == "ACTIVE"

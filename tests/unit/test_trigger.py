"""The Zoho trigger: the claim comes first, and a trigger that fails takes back what it wrote.

Against the Zoho stand-in (served on loopback) and moto's DynamoDB and Step Functions, with AWS
errors injected into the real boto3 clients (:mod:`tests.unit.aws_faults`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from fastapi.testclient import TestClient

from callflow.lifecycle.trigger import TriggerRefused, start_session
from callflow.models import SessionStatus
from callflow.providers.errors import RecordNotFound, RetryableProviderError, UnknownModule
from callflow.services import Services, get_services
from callflow_dev.sandbox.zoho import ZohoSandbox
from tests.unit.api_app import api_client
from tests.unit.aws_faults import closed_port, fail_calls, item_key_starts
from tests.unit.zoho_fixtures import (  # noqa: F401 - fixtures
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    REGION,
    TABLE,
    ZohoEnv,
    zoho_env_fixture,
    zoho_server_fixture,
    zoho_table_fixture,
)

TRIGGER_SECRET = "trigger-secret"


@pytest.fixture(scope="module")
def state_machine(zoho_table: Any) -> str:
    """A state machine in moto (inside the module's mock), for StartExecution to start."""
    client = boto3.client("stepfunctions", region_name=REGION)
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    arn = client.create_state_machine(
        name="trigger-tests",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/trigger-tests",
    )["stateMachineArn"]
    return str(arn)


@pytest.fixture
def services(zoho_env: ZohoEnv, state_machine: str) -> Services:
    settings = zoho_env.settings.model_copy(
        update={"state_machine_arn": state_machine, "aws_region": REGION}
    )
    return Services(settings)


def lead(zoho_env: ZohoEnv) -> str:
    return zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Trigger", "Phone": "+14155550100"})


def record_reads(sandbox: ZohoSandbox) -> int:
    """Record reads the stand-in has answered (each costs a Zoho credit)."""
    return sum(
        1
        for r in sandbox.requests
        if r.method == "GET" and r.path.startswith("/crm/v8/") and "/settings/" not in r.path
    )


def claim_of(zoho_env: ZohoEnv, module: str, record_id: str) -> Any:
    key = {"pk": f"record#{module}#{record_id}"}
    return zoho_env.table.get_item(Key=key, ConsistentRead=True).get("Item")


def sessions(zoho_env: ZohoEnv) -> list[dict[str, Any]]:
    items = zoho_env.table.scan(ConsistentRead=True)["Items"]
    return [i for i in items if str(i["pk"]).startswith("session#")]


def executions(services: Services) -> list[str]:
    arn = services.settings.state_machine_arn
    listed = services.sfn.list_executions(stateMachineArn=arn)["executions"]
    return [str(e["name"]) for e in listed]


# --- the claim comes first ------------------------------------------------------------------


def test_a_duplicate_trigger_is_refused_before_zoho_is_read(
    services: Services, zoho_env: ZohoEnv
) -> None:
    record_id = lead(zoho_env)
    first = start_session(services, "Leads", record_id)

    with pytest.raises(TriggerRefused) as refused:
        start_session(services, "Leads", record_id)

    assert (refused.value.status_code, refused.value.session_id) == (409, first.session_id)
    assert record_reads(zoho_env.sandbox) == 1


def test_a_trigger_that_succeeds_leaves_its_claim_session_and_execution(
    services: Services, zoho_env: ZohoEnv
) -> None:
    record_id = lead(zoho_env)
    session = start_session(services, "Leads", record_id)

    assert claim_of(zoho_env, "Leads", record_id)["session_id"] == session.session_id
    assert services.store.require(session.session_id).status is SessionStatus.CREATED
    assert session.session_id in executions(services)


# --- a failed trigger takes back what it wrote ----------------------------------------------


def test_a_trigger_whose_execution_cannot_start_releases_its_claim(
    services: Services, zoho_env: ZohoEnv
) -> None:
    record_id = lead(zoho_env)
    fail_calls(services.sfn, "StartExecution", "ThrottlingException", times=1)

    with pytest.raises(ClientError, match="ThrottlingException"):
        start_session(services, "Leads", record_id)

    assert claim_of(zoho_env, "Leads", record_id) is None
    assert sessions(zoho_env) == []
    again = start_session(services, "Leads", record_id)
    assert again.session_id in executions(services)


def test_a_trigger_whose_session_cannot_be_written_releases_its_claim(
    services: Services, zoho_env: ZohoEnv
) -> None:
    record_id = lead(zoho_env)
    started_before = set(executions(services))
    client = services.store.table.meta.client
    fail_calls(
        client,
        "PutItem",
        "ProvisionedThroughputExceededException",
        times=1,
        when=item_key_starts("session#"),
    )

    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        start_session(services, "Leads", record_id)

    assert claim_of(zoho_env, "Leads", record_id) is None
    assert set(executions(services)) == started_before
    start_session(services, "Leads", record_id)


def test_a_trigger_for_an_unknown_record_leaves_no_claim(
    services: Services, zoho_env: ZohoEnv
) -> None:
    with pytest.raises(RecordNotFound):
        start_session(services, "Leads", "5725767000999999999")

    assert claim_of(zoho_env, "Leads", "5725767000999999999") is None
    assert sessions(zoho_env) == []


def test_a_trigger_for_an_unknown_module_says_so_and_leaves_no_claim(
    services: Services, zoho_env: ZohoEnv
) -> None:
    with pytest.raises(UnknownModule) as unknown:
        start_session(services, "Leeds", "5725767000000000001")

    assert (unknown.value.module, unknown.value.code) == ("Leeds", "INVALID_MODULE")
    assert claim_of(zoho_env, "Leeds", "5725767000000000001") is None


def test_a_trigger_whose_record_cannot_be_read_releases_its_claim(
    services: Services, zoho_env: ZohoEnv
) -> None:
    record_id = lead(zoho_env)
    with closed_port() as nowhere:
        settings = services.settings.model_copy(update={"zoho_api_domain": nowhere})
        unreachable = Services(settings)
        with pytest.raises(RetryableProviderError):
            start_session(unreachable, "Leads", record_id)

    assert claim_of(zoho_env, "Leads", record_id) is None
    assert sessions(zoho_env) == []
    # (Another trigger would now read through the token the unreachable domain was cached with.)
    assert services.store.claim_record("Leads", record_id, "next", 3600) is None


def test_a_trigger_whose_start_answer_was_lost_after_the_workflow_moved_keeps_its_session(
    services: Services, zoho_env: ZohoEnv
) -> None:
    """StartExecution started the execution, its answer timed out, and the workflow already
    dialled: the session is live, so the trigger succeeds and the claim stays."""
    record_id = lead(zoho_env)

    def started_then_lost(**kwargs: Any) -> None:
        for name in executions(services):
            services.store.advance(name, SessionStatus.DIALING, attempt=1)
        raise ReadTimeoutError(endpoint_url="https://states.us-east-1.amazonaws.com/")

    services.sfn.meta.events.register("after-call.sfn.StartExecution", started_then_lost)

    session = start_session(services, "Leads", record_id)

    assert services.store.require(session.session_id).status is SessionStatus.DIALING
    assert claim_of(zoho_env, "Leads", record_id)["session_id"] == session.session_id


# --- through the API ------------------------------------------------------------------------


@pytest.fixture
def api(
    services: Services, zoho_env: ZohoEnv, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The API with its settings in the environment, as on Lambda, wired to the same stand-in,
    table and state machine as :func:`services`."""
    settings = services.settings
    environment = {
        "CALLFLOW_ZOHO_TRIGGER_SECRET": TRIGGER_SECRET,
        "CALLFLOW_ZOHO_ACCOUNTS_URL": settings.zoho_accounts_url,
        "CALLFLOW_ZOHO_CLIENT_ID": CLIENT_ID,
        "CALLFLOW_ZOHO_CLIENT_SECRET": CLIENT_SECRET,
        "CALLFLOW_ZOHO_REFRESH_TOKEN": REFRESH_TOKEN,
        "CALLFLOW_TABLE_NAME": TABLE,
        "CALLFLOW_STATE_MACHINE_ARN": settings.state_machine_arn,
        "AWS_REGION": REGION,
    }
    with api_client(monkeypatch, environment) as client:
        yield client


def trigger(api: TestClient, module: str, record_id: str) -> Any:
    return api.post(
        "/webhooks/zoho",
        json={"module": module, "record_id": record_id},
        headers={"X-Callflow-Secret": TRIGGER_SECRET},
    )


def test_a_trigger_for_an_unknown_module_is_a_422_with_the_reason(
    api: TestClient, zoho_env: ZohoEnv
) -> None:
    response = trigger(api, "Leeds", "5725767000000000001")

    assert response.status_code == 422
    assert response.json()["detail"] == "no such Zoho module: Leeds"


def test_a_trigger_whose_execution_is_throttled_is_a_503_and_can_be_sent_again(
    api: TestClient, zoho_env: ZohoEnv
) -> None:
    record_id = lead(zoho_env)
    fail_calls(get_services().sfn, "StartExecution", "ThrottlingException", times=1)

    refused = trigger(api, "Leads", record_id)
    assert refused.status_code == 503
    assert refused.json()["detail"] == (
        "AWS is unavailable: StartExecution failed: ThrottlingException"
    )

    accepted = trigger(api, "Leads", record_id)
    assert accepted.status_code == 202


def test_duplicate_triggers_through_the_api_are_409s_that_read_zoho_once(
    api: TestClient, zoho_env: ZohoEnv
) -> None:
    record_id = lead(zoho_env)
    statuses = [trigger(api, "Leads", record_id).status_code for _ in range(5)]

    assert statuses == [202, 409, 409, 409, 409]
    assert record_reads(zoho_env.sandbox) == 1


# --- fields per module ----------------------------------------------------------------------


def _record_read_fields(sandbox: ZohoSandbox) -> list[str]:
    (read,) = [
        r
        for r in sandbox.requests
        if r.method == "GET" and r.path.startswith("/crm/v8/") and "/settings/" not in r.path
    ]
    return [f for f in read.query.get("fields", "").split(",") if f]


def test_a_contact_trigger_reads_only_fields_contacts_have(
    services: Services, zoho_env: ZohoEnv
) -> None:
    """Company and Lead_Status are configured (variables, mapping) but Contacts has neither."""
    contact_id = zoho_env.sandbox.seed_record(
        "Contacts", {"Last_Name": "Ng", "Phone": "+14155550100"}
    )

    session = start_session(services, "Contacts", contact_id)

    fields = _record_read_fields(zoho_env.sandbox)
    assert "Company" not in fields and "Lead_Status" not in fields
    assert {"Phone", "Last_Name"} <= set(fields)
    assert session.variables["company"] == ""  # still sent to the agent, empty


def test_a_deal_trigger_reads_only_fields_deals_have(services: Services, zoho_env: ZohoEnv) -> None:
    deal_id = zoho_env.sandbox.seed_record("Deals", {"Deal_Name": "Roof", "Stage": "Qualification"})

    start_session(services, "Deals", deal_id)

    assert "Company" not in _record_read_fields(zoho_env.sandbox)


def test_field_metadata_is_read_once_per_module_across_triggers(
    services: Services, zoho_env: ZohoEnv
) -> None:
    start_session(services, "Leads", lead(zoho_env))
    start_session(services, "Leads", lead(zoho_env))

    metadata = [r for r in zoho_env.sandbox.requests if r.path == "/crm/v8/settings/fields"]
    assert [r.query["module"] for r in metadata] == ["Leads"]

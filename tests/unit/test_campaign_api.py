"""The campaign routes of the API: the operator's bearer token first, 4xx with a reason for a
request that cannot run, 409 for an action the state refuses, 503 when AWS is unreachable."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from callflow_dev.local.aws import create_table
from tests.unit.api_app import api_client
from tests.unit.aws_faults import closed_port

TOKEN = "operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = {"module": "Leads", "source": {"ids": ["1", "2"]}, "max_concurrency": 2}
BASE = {
    "CALLFLOW_STATUS_API_TOKEN": TOKEN,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


@pytest.fixture(name="client")
def client_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        create_table("campaign-api", "us-east-1")
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="campaign-api")
        machine = boto3.client("stepfunctions", region_name="us-east-1").create_state_machine(
            name="campaigns",
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/campaigns",
        )["stateMachineArn"]
        environment = {
            **BASE,
            "CALLFLOW_TABLE_NAME": "campaign-api",
            "CALLFLOW_CAMPAIGN_BUCKET": "campaign-api",
            "CALLFLOW_CAMPAIGN_STATE_MACHINE_ARN": machine,
        }
        with api_client(monkeypatch, environment) as client:
            yield client


def started(client: TestClient) -> str:
    response = client.post("/campaigns", json=START, headers=AUTH)
    assert response.status_code == 202, response.text
    campaign_id = response.json()["campaign_id"]
    assert response.json()["status_url"] == f"/campaigns/{campaign_id}"
    return str(campaign_id)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/campaigns"),
        ("GET", "/campaigns/c0123456789abcdef"),
        ("POST", "/campaigns/c0123456789abcdef/pause"),
        ("GET", "/campaigns/c0123456789abcdef/export"),
    ],
)
def test_every_campaign_route_needs_the_operator_token(
    client: TestClient, method: str, path: str
) -> None:
    assert client.request(method, path, json=START).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.request(method, path, json=START, headers=wrong).status_code == 403


def test_a_started_campaign_is_running_and_can_be_paused_and_resumed(client: TestClient) -> None:
    campaign_id = started(client)
    shown = client.get(f"/campaigns/{campaign_id}", headers=AUTH).json()
    assert (shown["state"], shown["module"], shown["max_concurrency"]) == ("running", "Leads", 2)
    assert shown["source"] == {"kind": "ids", "cvid": "", "criteria": "", "ids": ["1", "2"]}
    assert shown["execution_arn"].endswith(f":{campaign_id}")
    assert client.post(f"/campaigns/{campaign_id}/pause", headers=AUTH).json()["state"] == "paused"
    assert (
        client.post(f"/campaigns/{campaign_id}/resume", headers=AUTH).json()["state"] == "running"
    )
    again = client.post(f"/campaigns/{campaign_id}/resume", headers=AUTH)
    assert again.status_code == 409
    assert again.json() == {"detail": "the campaign is running; it cannot be resumed"}
    cancelled = client.post(f"/campaigns/{campaign_id}/cancel", headers=AUTH)
    assert cancelled.json()["state"] == "cancelled"


def test_ids_may_come_as_a_comma_separated_string(client: TestClient) -> None:
    body = {**START, "source": {"ids": "11, 12,13"}}
    response = client.post("/campaigns", json=body, headers=AUTH)
    assert response.status_code == 202
    shown = client.get(response.json()["status_url"], headers=AUTH).json()
    assert shown["source"]["ids"] == ["11", "12", "13"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({**START, "source": {"list": 1}}, "unknown source"),
        ({**START, "source": {"view": "x1"}}, "cvid"),
        ({**START, "source": {"ids": ["12a"]}}, "digits"),
        ({**START, "source": {"coql": " "}}, "criteria"),
        ({**START, "source": {"view": "1", "ids": ["2"]}}, "source must be one of"),
        ({**START, "module": "Leads/1"}, "module"),
        ({**START, "max_concurrency": 0}, "max_concurrency"),
        ({**START, "max_concurrency": "5"}, "max_concurrency"),
        ({**START, "window": {"timezone": "Nowhere/City"}}, "time zone"),
        ({**START, "window": {"hours_start": "25:00"}}, "HH:MM"),
        ({**START, "window": {"end": "2001-01-01"}}, "already ended"),
        ({**START, "flow": "nope"}, "unknown flow"),
        ({**START, "flow": 3}, "flow must be"),
    ],
)
def test_a_campaign_that_cannot_run_is_refused_with_a_reason(
    client: TestClient, body: dict[str, object], reason: str
) -> None:
    response = client.post("/campaigns", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert reason in response.json()["detail"]


def test_a_body_that_is_not_a_json_object_is_a_400(client: TestClient) -> None:
    assert client.post("/campaigns", content=b"[1]", headers=AUTH).status_code == 400
    assert client.post("/campaigns", content=b"{", headers=AUTH).status_code == 400


def test_unknown_campaigns_and_actions_are_404_and_malformed_ids_422(client: TestClient) -> None:
    assert client.get("/campaigns/c0123456789abcdef", headers=AUTH).status_code == 404
    assert client.post("/campaigns/c0123456789abcdef/pause", headers=AUTH).status_code == 404
    assert client.get("/campaigns/nope", headers=AUTH).status_code == 422
    campaign_id = started(client)
    assert client.post(f"/campaigns/{campaign_id}/restart", headers=AUTH).status_code == 404


def test_the_export_is_csv_with_its_header_before_any_record_is_enumerated(
    client: TestClient,
) -> None:
    campaign_id = started(client)
    response = client.get(f"/campaigns/{campaign_id}/export", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines() == [
        "record_id,session_id,status,outcome,outcome_detail,attempts,duration_s,fields_written"
    ]


@pytest.fixture(name="unreachable")
def unreachable_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with closed_port() as nowhere:
        environment = {
            **BASE,
            "AWS_ENDPOINT_URL": nowhere,
            "AWS_MAX_ATTEMPTS": "1",
            "CALLFLOW_CAMPAIGN_BUCKET": "b",
            "CALLFLOW_CAMPAIGN_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:1:stateMachine:c",
        }
        with api_client(monkeypatch, environment) as client:
            yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/campaigns"),
        ("GET", "/campaigns/c0123456789abcdef"),
        ("POST", "/campaigns/c0123456789abcdef/cancel"),
        ("GET", "/campaigns/c0123456789abcdef/export"),
    ],
)
def test_campaign_routes_answer_503_when_aws_is_unreachable(
    unreachable: TestClient, method: str, path: str
) -> None:
    response = unreachable.request(method, path, json=START, headers=AUTH)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("AWS is unavailable")

"""Every request ZohoClient sends matches Zoho's official OpenAPI (extracted in
``callflow_dev/schemas/zoho``), and so does every answer of the Zoho stand-in that the client reads.

The stand-in is served by uvicorn on loopback; an httpx response hook records each exchange, so
the bodies checked here are exactly the bytes the client put on the wire.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from callflow.providers.zoho.client import ZohoClient
from callflow.providers.zoho.token import ZohoTokenProvider
from callflow_dev.sandbox.zoho import ZohoSandbox
from tests.contract.zoho_specs import find_operation, load, request_validator, response_errors
from tests.unit.zoho_fixtures import (  # noqa: F401 - fixtures
    ZohoEnv,
    zoho_env_fixture,
    zoho_server_fixture,
    zoho_table_fixture,
)


@dataclass
class Exchange:
    method: str
    path: str
    request_body: Any
    status: int
    response_body: Any
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorder:
    exchanges: list[Exchange] = field(default_factory=list)

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        self.exchanges.append(
            Exchange(
                method=request.method,
                path=request.url.path,
                request_body=json.loads(request.content) if _is_json(request) else None,
                status=response.status_code,
                response_body=response.json() if response.content else None,
                query=dict(request.url.params),
            )
        )

    def api(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.path.startswith("/crm/v8/")]


def _is_json(request: httpx.Request) -> bool:
    return bool(request.content) and "json" in request.headers.get("content-type", "")


@dataclass
class Wired:
    client: ZohoClient
    http: httpx.Client
    sandbox: ZohoSandbox
    recorder: Recorder
    base: str


@pytest.fixture
def wired(zoho_env: ZohoEnv) -> Wired:
    recorder = Recorder()
    http = httpx.Client(timeout=httpx.Timeout(5.0), event_hooks={"response": [recorder]})
    tokens = ZohoTokenProvider(zoho_env.settings, zoho_env.table, http)
    client = ZohoClient(zoho_env.settings, tokens, http)
    return Wired(client, http, zoho_env.sandbox, recorder, zoho_env.base_url)


def _exercise(wired: Wired) -> None:
    """Every call the project makes, including the paths where Zoho refuses something."""
    sandbox, client = wired.sandbox, wired.client
    lead = sandbox.seed_record("Leads", {"Last_Name": "Lopez", "Phone": "+14155550100"})
    contact = sandbox.seed_record("Contacts", {"Last_Name": "Ng"})
    client.get_record("Leads", lead, ["Last_Name", "Phone", "Lead_Status"])
    client.update_record("Leads", lead, {"Interested": True, "Monthly_Bill": 150.25})
    client.update_record_dropping_invalid(
        "Leads", lead, {"Lead_Status": "Keen-ish", "Site_Visit_Date": "2026-12-03"}
    )
    client.add_note("Leads", lead, "AI call: Reached", "Summary: keen on a visit.")
    start = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    client.log_call(
        "Leads", lead, subject="AI call", start=start, duration_seconds=0, description="d"
    )
    client.log_call(
        "Contacts",
        contact,
        subject="AI call",
        start=start,
        duration_seconds=95,
        description="d",
        extra={"Call_Result": "Interested"},
    )
    client.create_task(
        "Leads",
        lead,
        subject="Call back",
        due=date(2026, 12, 4),
        description="d",
        owner_id=sandbox.add_user("Ana Owner", "ana@example.com"),
    )
    client.create_task(
        "Contacts", contact, subject="Call back", due=date(2026, 12, 4), description="d"
    )
    assert client.find_note("Leads", lead, "keen on a visit") is not None
    assert client.find_call("Contacts", contact, "d") is not None
    assert client.find_task("Leads", lead, "d") is not None


def test_listing_queries_name_parameters_the_spec_declares(wired: Wired) -> None:
    """The writeback's look for a lost note, call or task reads declared listing parameters."""
    _exercise(wired)
    listings = [e for e in wired.recorder.api() if e.method == "GET" and e.path.count("/") == 3]
    assert {e.path for e in listings} == {"/crm/v8/Notes", "/crm/v8/Calls", "/crm/v8/Tasks"}
    for exchange in listings:
        _, _, operation = find_operation("GET", exchange.path)
        declared = {_parameter_name(p) for p in operation.get("parameters", [])}
        assert set(exchange.query) <= declared, exchange.path


def _parameter_name(parameter: dict[str, Any]) -> str:
    ref = parameter.get("$ref")
    return str(ref.rsplit("/", 1)[-1] if isinstance(ref, str) else parameter["name"])


def test_every_request_body_validates_against_zohos_spec(wired: Wired) -> None:
    _exercise(wired)

    bodies = [e for e in wired.recorder.api() if e.request_body is not None]
    assert {(e.method, e.path.split("/")[3]) for e in bodies} == {
        ("PUT", "Leads"),
        ("POST", "Notes"),
        ("POST", "Calls"),
        ("POST", "Tasks"),
    }
    for exchange in bodies:
        validator, schema = request_validator(exchange.method, exchange.path)
        problems = [str(p) for p in validator.iter_errors(exchange.request_body)]
        assert problems == [], f"{exchange.method} {exchange.path}: {problems}"
        unknown = set(exchange.request_body) - set(schema.get("properties", {}))
        assert not unknown, f"{exchange.method} {exchange.path} sends undeclared keys {unknown}"


def test_every_answer_the_client_read_validates_against_zohos_spec(wired: Wired) -> None:
    _exercise(wired)

    answers = [e for e in wired.recorder.api() if e.response_body is not None]
    assert {e.status for e in answers} >= {200, 201, 202}
    for exchange in answers:
        problems = response_errors(
            exchange.method, exchange.path, exchange.status, exchange.response_body
        )
        assert problems == [], f"{exchange.method} {exchange.path} {exchange.status}: {problems}"


def test_error_answers_validate_against_zohos_spec(wired: Wired) -> None:
    token = wired.client.tokens.access_token().access_token
    http, base = wired.http, wired.base
    auth = {"Authorization": f"Zoho-oauthtoken {token}"}
    cases = [
        http.get(f"{base}/crm/v8/Leads/123"),  # no token
        http.get(f"{base}/crm/v8/Leads/123", headers={"Authorization": "Zoho-oauthtoken 1000.x"}),
        http.get(f"{base}/crm/v8/Leeds/123", headers=auth),
        http.get(f"{base}/crm/v8/Leads/abc", headers=auth),
    ]
    wired.sandbox.fail_next_writes(1, status=500)
    cases.append(http.put(f"{base}/crm/v8/Leads/123", json={"data": [{}]}, headers=auth))

    for response in cases:
        body = response.json()
        assert body["status"] == "error"
        method, path = response.request.method, response.request.url.path
        assert response_errors(method, path, 200, body) == [], body


def test_throttling_answer_has_zohos_common_error_shape(wired: Wired) -> None:
    lead = wired.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    wired.sandbox.fail_next_writes(1)
    with pytest.raises(Exception, match="TOO_MANY_REQUESTS"):
        wired.client.update_record("Leads", lead, {"Interested": True})

    (answer,) = [e for e in wired.recorder.api() if e.status == 429]
    required = load("common.json")["components"]["schemas"]["API_Exception"]["required"]
    assert set(required) <= set(answer.response_body)
    assert answer.response_body["code"] == "TOO_MANY_REQUESTS"


def test_contract_check_catches_a_note_without_its_parent() -> None:
    validator, _ = request_validator("POST", "/crm/v8/Notes")
    problems = list(validator.iter_errors({"data": [{"Note_Title": "t", "Note_Content": "c"}]}))
    assert [p.message for p in problems] == ["'Parent_Id' is a required property"]


def test_contract_check_catches_a_malformed_write_answer() -> None:
    bad = {"data": [{"code": "DONE", "status": "success", "message": "record updated"}]}
    assert response_errors("PUT", "/crm/v8/Leads/1", 200, bad) != []


def test_notes_path_resolves_to_the_notes_operation_not_the_module_one() -> None:
    name, template, _ = find_operation("POST", "/crm/v8/Notes")
    assert (name, template) == ("notes.json", "/crm/v8/Notes")
    name, template, _ = find_operation("POST", "/crm/v8/Calls")
    assert (name, template) == ("record.json", "/crm/v8/{module_api_name}")

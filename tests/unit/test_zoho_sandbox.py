"""The Zoho stand-in behaves like Zoho where the project depends on it: field metadata, type and
picklist checks, mandatory fields, workflow triggers, token expiry, and its request log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.unit.zoho_fixtures import (  # noqa: F401 - fixtures
    ZohoEnv,
    zoho_env_fixture,
    zoho_server_fixture,
    zoho_table_fixture,
)


def call(
    env: ZohoEnv, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None
) -> httpx.Response:
    token = env.tokens().access_token().access_token
    return httpx.request(
        method,
        f"{env.base_url}/crm/v8{path}",
        json=json,
        params=params,
        headers={"Authorization": f"Zoho-oauthtoken {token}"},
        timeout=5,
    )


def test_field_metadata_lists_types_picklists_and_mandatory_fields(zoho_env: ZohoEnv) -> None:
    response = call(zoho_env, "GET", "/settings/fields", params={"module": "Leads"})

    assert response.status_code == 200
    fields = {f["api_name"]: f for f in response.json()["fields"]}
    assert {"First_Name", "Last_Name", "Lead_Status", "Interested", "Monthly_Bill"} <= set(fields)
    assert fields["Last_Name"]["system_mandatory"] is True
    assert fields["Monthly_Bill"]["data_type"] == "currency"
    assert fields["Site_Visit_Date"]["data_type"] == "date"
    choices = [v["actual_value"] for v in fields["Lead_Status"]["pick_list_values"]]
    assert {"Contacted", "Qualified", "Not Qualified", "Attempted to Contact"} <= set(choices)


def test_a_record_of_an_unknown_module_is_answered_as_zoho_answers_it(zoho_env: ZohoEnv) -> None:
    response = call(zoho_env, "GET", "/Leeds/5725767000000524001", params={"fields": "Phone"})

    assert response.status_code == 400
    assert response.json() == {
        "code": "INVALID_MODULE",
        "details": {"resource_path_index": 0},
        "message": "the module name given seems to be invalid",
        "status": "error",
    }


def test_field_metadata_of_an_unknown_module_is_invalid_module(zoho_env: ZohoEnv) -> None:
    response = call(zoho_env, "GET", "/settings/fields", params={"module": "Widgets"})
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_MODULE"


@pytest.mark.parametrize(
    ("field", "value", "expected_type"),
    [
        ("Site_Visit_Date", "03/12/2026", "date"),
        ("Site_Visit_Date", "2026-02-30", "date"),
        ("Interested", "true", "boolean"),
        ("Monthly_Bill", "150", "double"),
        ("Lead_Status", "contacted", "picklist"),
        ("Email", "not-an-email", "email"),
    ],
)
def test_wrong_type_is_invalid_data_naming_the_field(
    zoho_env: ZohoEnv, field: str, value: Any, expected_type: str
) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})

    response = call(zoho_env, "PUT", f"/Leads/{lead_id}", json={"data": [{field: value}]})

    (element,) = response.json()["data"]
    assert element["code"] == "INVALID_DATA" and element["status"] == "error"
    assert element["details"]["api_name"] == field
    assert element["details"]["expected_data_type"] == expected_type
    assert element["details"]["json_path"] == f"$.data[0].{field}"
    assert field not in zoho_env.sandbox.records["Leads"][lead_id]


def test_unknown_field_is_invalid_data(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    response = call(zoho_env, "PUT", f"/Leads/{lead_id}", json={"data": [{"Favourite": "x"}]})
    assert response.json()["data"][0]["details"]["api_name"] == "Favourite"


def test_creating_without_a_mandatory_field_is_refused(zoho_env: ZohoEnv) -> None:
    response = call(zoho_env, "POST", "/Leads", json={"data": [{"First_Name": "Maria"}]})

    (element,) = response.json()["data"]
    assert element["code"] == "MANDATORY_NOT_FOUND"
    assert element["details"]["api_name"] == "Last_Name"
    assert zoho_env.sandbox.records["Leads"] == {}


def test_created_record_gets_a_19_digit_id(zoho_env: ZohoEnv) -> None:
    response = call(zoho_env, "POST", "/Leads", json={"data": [{"Last_Name": "Ng"}]})

    assert response.status_code == 201
    record_id = response.json()["data"][0]["details"]["id"]
    assert len(record_id) == 19 and record_id.isdigit()
    assert zoho_env.sandbox.records["Leads"][record_id]["Last_Name"] == "Ng"


def test_write_without_an_empty_trigger_list_fires_workflows(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})

    call(zoho_env, "PUT", f"/Leads/{lead_id}", json={"data": [{"Interested": True}]})
    call(
        zoho_env, "PUT", f"/Leads/{lead_id}", json={"data": [{"Interested": False}], "trigger": []}
    )

    assert zoho_env.sandbox.workflow_runs == [("Leads", lead_id)]


def test_call_linked_by_what_id_needs_its_module(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    call_row = {
        "Subject": "s",
        "Call_Type": "Outbound",
        "Call_Start_Time": "2026-11-21T15:00:00+00:00",
        "Call_Duration": "01:00",
        "What_Id": {"id": lead_id},
    }

    response = call(zoho_env, "POST", "/Calls", json={"data": [call_row]})

    (element,) = response.json()["data"]
    assert element["code"] == "MANDATORY_NOT_FOUND"
    assert element["details"]["api_name"] == "$se_module"


def test_call_linked_by_who_id_must_point_at_a_contact(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    call_row = {
        "Subject": "s",
        "Call_Type": "Outbound",
        "Call_Start_Time": "2026-11-21T15:00:00+00:00",
        "Call_Duration": "01:00",
        "Who_Id": {"id": lead_id},
    }

    response = call(zoho_env, "POST", "/Calls", json={"data": [call_row]})

    assert response.json()["data"][0]["details"]["api_name"] == "Who_Id"
    assert zoho_env.sandbox.calls == []


def test_call_start_time_needs_an_offset(zoho_env: ZohoEnv) -> None:
    contact_id = zoho_env.sandbox.seed_record("Contacts", {"Last_Name": "Ng"})
    call_row = {
        "Subject": "s",
        "Call_Type": "Outbound",
        "Call_Start_Time": "2026-11-21T15:00:00",
        "Call_Duration": "01:00",
        "Who_Id": {"id": contact_id},
    }

    response = call(zoho_env, "POST", "/Calls", json={"data": [call_row]})

    assert response.json()["data"][0]["details"]["expected_data_type"] == "datetime"


def test_access_token_stops_working_after_its_lifetime(zoho_env: ZohoEnv) -> None:
    now = [1_000.0]
    zoho_env.sandbox.clock = lambda: now[0]
    zoho_env.sandbox.token_lifetime = 60
    lead_id = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    tokens = zoho_env.tokens(clock=lambda: 0.0)  # the client believes its token is fresh
    token = tokens.access_token().access_token
    headers = {"Authorization": f"Zoho-oauthtoken {token}"}
    url = f"{zoho_env.base_url}/crm/v8/Leads/{lead_id}"

    assert httpx.get(url, headers=headers, timeout=5).status_code == 200
    now[0] += 60
    expired = httpx.get(url, headers=headers, timeout=5)

    assert expired.status_code == 401
    assert expired.json() == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }


def test_request_log_keeps_method_path_query_and_json_body(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    call(zoho_env, "PUT", f"/Leads/{lead_id}", json={"data": [{"Interested": True}], "trigger": []})

    last = zoho_env.sandbox.requests[-1]
    assert (last.method, last.path) == ("PUT", f"/crm/v8/Leads/{lead_id}")
    assert last.json == {"data": [{"Interested": True}], "trigger": []}


def test_failing_writes_knob_leaves_reads_alone(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    zoho_env.sandbox.fail_writes_forever(status=429)

    assert call(zoho_env, "GET", f"/Leads/{lead_id}").status_code == 200
    for _ in range(2):
        refused = call(zoho_env, "PUT", f"/Leads/{lead_id}", json={"data": [{"Interested": True}]})
        assert refused.status_code == 429
        assert refused.json()["code"] == "TOO_MANY_REQUESTS"
    zoho_env.sandbox.heal()
    assert call(zoho_env, "PUT", f"/Leads/{lead_id}", json={"data": [{}]}).status_code == 200


def test_seeding_an_invalid_record_is_a_value_error(zoho_env: ZohoEnv) -> None:
    with pytest.raises(ValueError, match="Lead_Status"):
        zoho_env.sandbox.seed_record("Leads", {"Last_Name": "L", "Lead_Status": "Hot"})


def test_a_call_status_zoho_does_not_list_is_refused(zoho_env: ZohoEnv) -> None:
    contact_id = zoho_env.sandbox.seed_record("Contacts", {"Last_Name": "Ng"})
    call_row = {
        "Subject": "s",
        "Call_Type": "Outbound",
        "Call_Start_Time": "2026-11-21T15:00:00+00:00",
        "Call_Duration": "01:00",
        "Outgoing_Call_Status": "Done",
        "Who_Id": {"id": contact_id},
    }

    response = call(zoho_env, "POST", "/Calls", json={"data": [call_row]})

    (element,) = response.json()["data"]
    assert element["code"] == "INVALID_DATA"
    assert element["details"]["api_name"] == "Outgoing_Call_Status"


def test_a_read_naming_a_field_the_module_lacks_is_invalid_data(zoho_env: ZohoEnv) -> None:
    contact_id = zoho_env.sandbox.seed_record("Contacts", {"Last_Name": "Ng"})

    response = call(
        zoho_env, "GET", f"/Contacts/{contact_id}", params={"fields": "Last_Name,Lead_Status"}
    )

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_DATA"
    assert response.json()["details"] == {"api_name": "Lead_Status"}


def test_field_metadata_is_per_module_with_json_types(zoho_env: ZohoEnv) -> None:
    contacts = call(zoho_env, "GET", "/settings/fields", params={"module": "Contacts"}).json()
    deals = call(zoho_env, "GET", "/settings/fields", params={"module": "Deals"}).json()

    contact_fields = {f["api_name"] for f in contacts["fields"]}
    deal_fields = {f["api_name"]: f for f in deals["fields"]}
    assert "Lead_Status" not in contact_fields and "Company" not in contact_fields
    assert "Company" not in deal_fields
    assert deal_fields["Amount"]["json_type"] == "double"
    assert deal_fields["Deal_Name"]["json_type"] == "string"


@pytest.mark.parametrize("encoding", ["json", "form", "multipart", "query"])
def test_the_stand_in_webhook_is_read_by_the_trigger_parser(
    zoho_env: ZohoEnv, encoding: str
) -> None:
    import asyncio

    from callflow_functions.trigger_body import trigger_fields

    zoho_env.sandbox.webhook_format = encoding
    request = zoho_env.sandbox.webhook_request("Leads", "42", "s3cret")
    assert request["headers"]["X-Callflow-Secret"] == "s3cret"
    fields = asyncio.run(
        trigger_fields(
            request["headers"].get("Content-Type", ""),
            request["content"],
            request.get("params", {}),
        )
    )
    assert fields == {"module": "Leads", "record_id": "42"}

"""ZohoClient against the Zoho stand-in over real HTTP, with the token cache on moto DynamoDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from callflow.providers.errors import (
    ProviderAuthError,
    ProviderRejected,
    RecordNotFound,
    RetryableProviderError,
    UnknownModule,
)
from callflow.providers.zoho.client import (
    FieldCache,
    ZohoClient,
    ZohoRequestError,
    format_duration,
)
from tests.unit.zoho_fixtures import (  # noqa: F401 - fixtures
    REGION,
    ZohoEnv,
    zoho_env_fixture,
    zoho_server_fixture,
    zoho_table_fixture,
)

LEAD = {
    "First_Name": "Maria",
    "Last_Name": "Lopez",
    "Company": "Lopez Bakery",
    "Phone": "+1 415 555 0100",
    "Lead_Status": "Not Contacted",
}


def _api_requests(env: ZohoEnv, method: str | None = None) -> list[object]:
    return [
        r
        for r in env.sandbox.requests
        if r.path.startswith("/crm/v8") and (method is None or r.method == method)
    ]


# --- reading ------------------------------------------------------------------------------


def test_read_returns_the_asked_fields_with_the_oauth_header(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    client = zoho_env.client()

    record = client.get_record("Leads", lead_id, ["First_Name", "Phone", "Lead_Status"])

    assert record == {
        "id": lead_id,
        "First_Name": "Maria",
        "Phone": "+1 415 555 0100",
        "Lead_Status": "Not Contacted",
    }
    (request,) = _api_requests(zoho_env)
    assert request.query == {"fields": "First_Name,Phone,Lead_Status"}  # type: ignore[attr-defined]
    assert client.calls_made == 1


def test_unknown_record_id_is_record_not_found(zoho_env: ZohoEnv) -> None:
    with pytest.raises(RecordNotFound):
        zoho_env.client().get_record("Leads", "5725767000000999999", ["Phone"])


def test_malformed_record_id_is_record_not_found(zoho_env: ZohoEnv) -> None:
    with pytest.raises(RecordNotFound):
        zoho_env.client().get_record("Leads", "not-an-id", ["Phone"])


def test_unknown_module_is_rejected_with_zohos_code(zoho_env: ZohoEnv) -> None:
    with pytest.raises(UnknownModule) as caught:
        zoho_env.client().get_record("Leeds", "5725767000000999999", ["Phone"])
    assert (caught.value.code, caught.value.module, caught.value.status) == (
        "INVALID_MODULE",
        "Leeds",
        400,
    )
    assert not isinstance(caught.value, RecordNotFound)


def test_a_path_zoho_has_no_api_for_is_an_unknown_module_not_a_missing_record(
    zoho_env: ZohoEnv,
) -> None:
    """Zoho answers 404 ``INVALID_URL_PATTERN`` for such a path: the 404 is not the record's."""

    def no_such_api(request: httpx.Request) -> httpx.Response:
        body = {
            "code": "INVALID_URL_PATTERN",
            "details": {},
            "message": "Please check if the URL trying to access is a correct one",
            "status": "error",
        }
        return httpx.Response(404, json=body)

    http = httpx.Client(transport=httpx.MockTransport(no_such_api))
    client = ZohoClient(zoho_env.settings, zoho_env.tokens(), http)
    with pytest.raises(UnknownModule) as caught:
        client.get_record("settings", "5725767000000999999", ["Phone"])
    assert (caught.value.code, caught.value.module) == ("INVALID_URL_PATTERN", "settings")


def test_more_than_fifty_fields_is_refused_before_sending(zoho_env: ZohoEnv) -> None:
    client = zoho_env.client()
    with pytest.raises(ZohoRequestError):
        client.get_record("Leads", "5725767000000999999", [f"F{i}" for i in range(51)])
    assert client.calls_made == 0


# --- writing ------------------------------------------------------------------------------


def test_update_sends_an_empty_trigger_list_so_workflows_do_not_refire(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)

    result = zoho_env.client().update_record(
        "Leads", lead_id, {"Interested": True, "Monthly_Bill": 150.0}
    )

    assert result.ok and result.record_id == lead_id and result.refused_fields == ()
    (put,) = _api_requests(zoho_env, "PUT")
    assert put.json == {"data": [{"Interested": True, "Monthly_Bill": 150.0}], "trigger": []}  # type: ignore[attr-defined]
    assert zoho_env.sandbox.records["Leads"][lead_id]["Monthly_Bill"] == 150.0
    assert zoho_env.sandbox.workflow_runs == []


def test_refused_field_is_reported_with_its_api_name(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)

    result = zoho_env.client().update_record(
        "Leads", lead_id, {"Interested": "maybe", "Monthly_Bill": 99.5}
    )

    assert not result.ok
    assert result.code == "INVALID_DATA"
    assert [p.api_name for p in result.problems] == ["Interested"]
    assert result.problems[0].expected_type == "boolean"
    assert set(result.refused_fields) == {"Interested", "Monthly_Bill"}
    assert "Monthly_Bill" not in zoho_env.sandbox.records["Leads"][lead_id]


def test_dropping_invalid_writes_the_other_fields_and_names_the_refused(
    zoho_env: ZohoEnv,
) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    client = zoho_env.client()

    result = client.update_record_dropping_invalid(
        "Leads", lead_id, {"Lead_Status": "Sort of keen", "Monthly_Bill": 99.5}
    )

    assert result.ok
    assert result.refused_fields == ("Lead_Status",)
    assert "Lead_Status" in str(result.problems[0])
    record = zoho_env.sandbox.records["Leads"][lead_id]
    assert record["Monthly_Bill"] == 99.5 and record["Lead_Status"] == "Not Contacted"
    puts = _api_requests(zoho_env, "PUT")
    assert [p.json["data"][0] for p in puts] == [  # type: ignore[attr-defined]
        {"Lead_Status": "Sort of keen", "Monthly_Bill": 99.5},
        {"Monthly_Bill": 99.5},
    ]


def test_dropping_invalid_does_not_retry_when_only_refused_fields_were_sent(
    zoho_env: ZohoEnv,
) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    client = zoho_env.client()

    result = client.update_record_dropping_invalid("Leads", lead_id, {"Unknown_Field": 1})

    assert not result.ok and result.refused_fields == ("Unknown_Field",)
    assert len(_api_requests(zoho_env, "PUT")) == 1


def test_clearing_a_mandatory_field_is_reported_not_retried(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)

    result = zoho_env.client().update_record_dropping_invalid(
        "Leads", lead_id, {"Last_Name": None, "Interested": True}
    )

    assert not result.ok and result.code == "MANDATORY_NOT_FOUND"
    assert set(result.refused_fields) == {"Last_Name", "Interested"}
    assert len(_api_requests(zoho_env, "PUT")) == 1


def test_update_of_a_missing_record_is_record_not_found(zoho_env: ZohoEnv) -> None:
    with pytest.raises(RecordNotFound):
        zoho_env.client().update_record("Leads", "5725767000000999999", {"Interested": True})


def test_throttled_write_is_retryable_and_not_retried_inside(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    zoho_env.sandbox.fail_next_writes(1, status=429)
    client = zoho_env.client()

    with pytest.raises(RetryableProviderError) as caught:
        client.update_record("Leads", lead_id, {"Interested": True})

    assert caught.value.status == 429 and caught.value.code == "TOO_MANY_REQUESTS"
    assert len(_api_requests(zoho_env, "PUT")) == 1
    assert client.update_record("Leads", lead_id, {"Interested": True}).ok


def test_server_error_is_retryable(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    zoho_env.sandbox.fail_writes_forever(status=503)

    with pytest.raises(RetryableProviderError) as caught:
        zoho_env.client().add_note("Leads", lead_id, "AI call", "Reached")
    assert caught.value.status == 503


def test_timeout_is_retryable(zoho_env: ZohoEnv) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    tokens = zoho_env.tokens()
    http = httpx.Client(transport=httpx.MockTransport(hang))
    client = ZohoClient(zoho_env.settings, tokens, http)
    with pytest.raises(RetryableProviderError, match="timed out"):
        client.get_record("Leads", "5725767000000999999", ["Phone"])


# --- tokens -------------------------------------------------------------------------------


def test_expired_token_is_refreshed_once_and_the_request_retried(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    client = zoho_env.client()
    client.get_record("Leads", lead_id, ["Phone"])
    zoho_env.sandbox.expire_tokens()

    record = client.get_record("Leads", lead_id, ["Phone"])

    assert record["Phone"] == LEAD["Phone"]
    assert len(zoho_env.sandbox.token_requests()) == 2
    assert client.calls_made == 3  # the read, the refused read, the retried read


def test_an_evicted_token_is_refreshed_once_and_the_request_retried(zoho_env: ZohoEnv) -> None:
    """Zoho keeps 15 live access tokens per refresh token; another user's 16th evicts ours."""
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    client = zoho_env.client()
    client.get_record("Leads", lead_id, ["Phone"])
    zoho_env.sandbox.evict_tokens()

    record = client.get_record("Leads", lead_id, ["Phone"])

    assert record["Phone"] == LEAD["Phone"]
    assert len(zoho_env.sandbox.token_requests()) == 2
    assert client.calls_made == 3


def test_a_token_refused_twice_is_an_auth_error(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    zoho_env.sandbox.token_lifetime = 0  # every token Zoho issues is already dead
    client = zoho_env.client()
    # The provider refreshes near expiry; give it tokens it believes in.
    client.tokens.clock = lambda: 0.0

    with pytest.raises(ProviderAuthError) as caught:
        client.get_record("Leads", lead_id, ["Phone"])
    assert caught.value.code == "INVALID_TOKEN"
    assert len(zoho_env.sandbox.token_requests()) == 2


def test_missing_authorization_is_authentication_failure(zoho_env: ZohoEnv) -> None:
    response = httpx.get(f"{zoho_env.base_url}/crm/v8/Leads/5725767000000999999", timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHENTICATION_FAILURE"


# --- notes and calls ----------------------------------------------------------------------


def test_note_is_attached_to_its_parent_record(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)

    note_id = zoho_env.client().add_note("Leads", lead_id, "AI call: Reached", "Summary: keen.")

    (note,) = zoho_env.sandbox.notes
    assert note["id"] == note_id and len(note_id) == 19
    assert note["Parent_Id"] == {"module": {"api_name": "Leads"}, "id": lead_id}
    assert note["Note_Title"] == "AI call: Reached" and note["Note_Content"] == "Summary: keen."


def test_note_on_a_missing_record_is_rejected(zoho_env: ZohoEnv) -> None:
    with pytest.raises(ProviderRejected) as caught:
        zoho_env.client().add_note("Leads", "5725767000000999999", "t", "c")
    assert caught.value.code == "INVALID_DATA"


def test_call_on_a_lead_links_with_what_id_and_se_module(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    start = datetime(2026, 11, 21, 10, 30, 5, 123, tzinfo=timezone(timedelta(hours=-5)))

    call_id = zoho_env.client().log_call(
        "Leads",
        lead_id,
        subject="AI call: Reached",
        start=start,
        duration_seconds=125,
        description="Keen on a visit.",
    )

    (call,) = zoho_env.sandbox.calls
    assert call["id"] == call_id
    assert call["What_Id"] == {"id": lead_id} and call["$se_module"] == "Leads"
    assert "Who_Id" not in call
    assert call["Call_Type"] == "Outbound"
    assert call["Call_Start_Time"] == "2026-11-21T10:30:05-05:00"
    assert call["Call_Duration"] == "02:05"


def test_call_on_a_contact_links_with_who_id(zoho_env: ZohoEnv) -> None:
    contact_id = zoho_env.sandbox.seed_record("Contacts", {"Last_Name": "Ng"})

    zoho_env.client().log_call(
        "Contacts",
        contact_id,
        subject="AI call",
        start=datetime(2026, 11, 21, 15, 0, tzinfo=UTC),
        duration_seconds=30,
        description="",
        extra={"Call_Result": "Interested"},
    )

    (call,) = zoho_env.sandbox.calls
    assert call["Who_Id"] == {"id": contact_id}
    assert "What_Id" not in call and "$se_module" not in call
    assert call["Call_Start_Time"] == "2026-11-21T15:00:00+00:00"
    assert call["Call_Result"] == "Interested"


def test_zero_second_call_is_logged_as_one_second(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)

    zoho_env.client().log_call(
        "Leads",
        lead_id,
        subject="AI call",
        start=datetime(2026, 11, 21, 15, 0, tzinfo=UTC),
        duration_seconds=0,
        description="",
    )

    assert zoho_env.sandbox.calls[0]["Call_Duration"] == "00:01"


def test_sandbox_refuses_an_outbound_call_of_zero_duration(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    tokens = zoho_env.tokens().access_token()
    body = {
        "data": [
            {
                "Subject": "x",
                "Call_Type": "Outbound",
                "Call_Start_Time": "2026-11-21T15:00:00+00:00",
                "Call_Duration": "00:00",
                "What_Id": {"id": lead_id},
                "$se_module": "Leads",
            }
        ]
    }
    response = httpx.post(
        f"{zoho_env.base_url}/crm/v8/Calls",
        json=body,
        headers={"Authorization": f"Zoho-oauthtoken {tokens.access_token}"},
        timeout=5,
    )
    element = response.json()["data"][0]
    assert element["code"] == "INVALID_DATA"
    assert element["details"]["api_name"] == "Call_Duration"
    assert zoho_env.sandbox.calls == []


def test_naive_start_time_is_a_clear_error(zoho_env: ZohoEnv) -> None:
    client = zoho_env.client()
    with pytest.raises(ZohoRequestError, match="time zone"):
        client.log_call(
            "Leads",
            "5725767000000999999",
            subject="s",
            start=datetime(2026, 11, 21, 15, 0),  # naive on purpose
            duration_seconds=5,
            description="",
        )
    assert client.calls_made == 0


@pytest.mark.parametrize(
    ("seconds", "expected"), [(1, "00:01"), (59, "00:59"), (60, "01:00"), (3725, "62:05")]
)
def test_duration_is_minutes_and_seconds(seconds: int, expected: str) -> None:
    assert format_duration(seconds) == expected


# --- field metadata, per module --------------------------------------------------------------


def _metadata_reads(zoho_env: ZohoEnv) -> list[str]:
    return [
        r.query.get("module", "")
        for r in zoho_env.sandbox.requests
        if r.path == "/crm/v8/settings/fields"
    ]


def test_module_fields_are_read_per_module_from_the_fields_api(zoho_env: ZohoEnv) -> None:
    client = zoho_env.client()

    leads, contacts = client.module_fields("Leads"), client.module_fields("Contacts")

    assert leads["Lead_Status"].data_type == "picklist"
    assert "Qualified" in leads["Lead_Status"].choices
    assert "Lead_Status" not in contacts and "Company" not in contacts
    assert _metadata_reads(zoho_env) == ["Leads", "Contacts"]


def test_module_fields_are_read_once_and_again_after_their_ttl(zoho_env: ZohoEnv) -> None:
    now = [1000.0]
    cache = FieldCache(ttl=60.0, clock=lambda: now[0])
    client = ZohoClient(
        zoho_env.settings, zoho_env.tokens(), httpx.Client(timeout=5.0), fields=cache
    )
    client.module_fields("Leads")
    ZohoClient(zoho_env.settings, client.tokens, httpx.Client(timeout=5.0), fields=cache)
    client.module_fields("Leads")
    assert _metadata_reads(zoho_env) == ["Leads"]

    now[0] += 61.0
    client.module_fields("Leads")
    assert _metadata_reads(zoho_env) == ["Leads", "Leads"]


def test_module_fields_of_an_unknown_module_say_so(zoho_env: ZohoEnv) -> None:
    with pytest.raises(UnknownModule):
        zoho_env.client().module_fields("Leeds")


def test_a_read_naming_a_field_the_module_lacks_is_refused_like_zoho(zoho_env: ZohoEnv) -> None:
    contact_id = zoho_env.sandbox.seed_record("Contacts", {"Last_Name": "Ng"})
    with pytest.raises(RecordNotFound):
        zoho_env.client().get_record("Contacts", contact_id, ["Last_Name", "Lead_Status"])
    refused = zoho_env.sandbox.requests[-1]
    assert refused.query["fields"] == "Last_Name,Lead_Status"


# --- the logged call's status and duration -----------------------------------------------------


def test_a_logged_call_is_marked_completed(zoho_env: ZohoEnv) -> None:
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    zoho_env.client().log_call(
        "Leads",
        lead_id,
        subject="AI call",
        start=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
        duration_seconds=3725,
        description="A long one.",
    )
    (call,) = zoho_env.sandbox.calls
    assert call["Outgoing_Call_Status"] == "Completed"
    assert call["Call_Duration"] == "62:05"


def test_a_token_evicted_every_few_requests_is_refreshed_and_the_call_goes_through(
    zoho_env: ZohoEnv,
) -> None:
    """The zoho-token-evicted variant's knob: another user of the refresh token keeps evicting."""
    lead_id = zoho_env.sandbox.seed_record("Leads", LEAD)
    zoho_env.sandbox.evict_tokens_every = 2
    client = zoho_env.client()

    for _ in range(3):
        assert client.get_record("Leads", lead_id, ["Last_Name"])["id"] == lead_id

    reads = [r for r in zoho_env.sandbox.requests if r.path.startswith("/crm/")]
    assert len(reads) > 3  # some reads were refused once and sent again
    assert len(zoho_env.sandbox.token_requests()) >= 2


def test_setup_zoho_check_fields_names_what_the_module_lacks(zoho_env: ZohoEnv) -> None:
    import io

    from pydantic import SecretStr

    from callflow_dev.provisioning import main

    settings = zoho_env.settings.model_copy(
        update={"zoho_trigger_secret": SecretStr("t"), "aws_region": REGION}
    )
    out = io.StringIO()
    argv = ["zoho", "--api-url", "https://api.example.com", "--module", "Contacts"]

    code = main([*argv, "--check-fields"], settings=settings, out=out)

    assert code == 1
    assert "Contacts has no field Company" in out.getvalue()
    assert [r.query for r in zoho_env.sandbox.requests if "/settings/" in r.path] == [
        {"module": "Contacts"}
    ]

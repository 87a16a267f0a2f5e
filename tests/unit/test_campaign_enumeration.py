"""Enumerating a campaign's records from the Zoho stand-in (over real HTTP) into S3 (moto).

The stand-in pages as Zoho does: ``page`` reaches 2,000 records, ``page_token`` the rest, and
tokens expire; it refuses what Zoho refuses (a page past 2,000, ``page`` with a token, more than
100 ids, a COQL query without WHERE or past its LIMIT and OFFSET bounds).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from callflow.campaigns.enumeration import enumerate_step
from callflow.campaigns.items import CampaignItems
from callflow.campaigns.model import Campaign, CampaignSource, new_campaign_id
from callflow.providers.errors import ProviderRejected
from callflow.providers.zoho.client import ZohoRequestError, coql_credits
from callflow.services import Services
from tests.unit.zoho_fixtures import (  # noqa: F401 - fixtures
    REGION,
    ZohoEnv,
    zoho_env_fixture,
    zoho_server_fixture,
    zoho_table_fixture,
)

BUCKET = "callflow-campaigns-test"


@pytest.fixture(name="services")
def services_fixture(zoho_env: ZohoEnv) -> Iterator[Services]:
    """Services on the stand-in and moto (the table the Zoho fixtures made, and a bucket)."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    settings = zoho_env.settings.model_copy(
        update={"campaign_bucket": BUCKET, "campaign_credit_budget": 1000}
    )
    services = Services(settings)
    services.__dict__["zoho"] = zoho_env.client()
    yield services
    for entry in s3.list_objects_v2(Bucket=BUCKET).get("Contents") or []:
        s3.delete_object(Bucket=BUCKET, Key=entry["Key"])


def seed_leads(env: ZohoEnv, count: int, **fields: Any) -> list[str]:
    return [
        env.sandbox.seed_record(
            "Leads", {"Last_Name": f"Lead {i}", "Phone": f"+1415555{i:04d}", **fields}
        )
        for i in range(count)
    ]


def campaign(services: Services, source: CampaignSource) -> Campaign:
    return services.campaigns.create(
        Campaign(campaign_id=new_campaign_id(), module="Leads", source=source)
    )


def run(services: Services, started: Campaign) -> tuple[Any, list[dict[str, Any]]]:
    items = CampaignItems(services.s3, BUCKET)
    progress = enumerate_step(services, services.campaigns.require(started.campaign_id), items)
    return progress, [i for part in items.parts(started.campaign_id) for i in part]


def listing_requests(env: ZohoEnv) -> list[dict[str, str]]:
    return [r.query for r in env.sandbox.requests if r.path == "/crm/v8/Leads"]


def test_a_view_past_2000_records_pages_on_with_page_tokens(
    zoho_env: ZohoEnv, services: Services
) -> None:
    ids = seed_leads(zoho_env, 2450)
    cvid = zoho_env.sandbox.add_view("Leads", lambda r: True)
    started = campaign(services, CampaignSource(kind="view", cvid=cvid))
    progress, items = run(services, started)
    assert progress.done and progress.records == 2450
    assert [i["record_id"] for i in items] == ids  # each once, in order
    queries = listing_requests(zoho_env)
    assert [q.get("page") for q in queries[:10]] == [str(n) for n in range(1, 11)]
    assert all("page_token" in q and "page" not in q for q in queries[10:])
    assert len(queries) == 13
    assert all(q["cvid"] == cvid for q in queries)
    snapshot = items[0]["record"]
    assert set(snapshot) <= {"id", "Phone", "First_Name", "Last_Name", "Company", "Lead_Status"}


def test_a_view_lists_only_its_records(zoho_env: ZohoEnv, services: Services) -> None:
    keep = seed_leads(zoho_env, 3, Lead_Status="Not Contacted")
    seed_leads(zoho_env, 2, Lead_Status="Contacted")
    cvid = zoho_env.sandbox.add_view("Leads", lambda r: r.get("Lead_Status") == "Not Contacted")
    _, items = run(services, campaign(services, CampaignSource(kind="view", cvid=cvid)))
    assert [i["record_id"] for i in items] == keep


def test_the_stand_in_refuses_a_page_past_2000_records_without_a_token(
    zoho_env: ZohoEnv,
) -> None:
    client = zoho_env.client()
    with pytest.raises(ZohoRequestError):
        client.list_page("Leads", ["Phone"], page=11)
    response = client._send  # the stand-in itself, as strict as Zoho
    with pytest.raises(ProviderRejected) as refused:
        response("GET", "/Leads", params={"fields": "Phone", "page": "11", "per_page": "200"})
    assert refused.value.code == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"


def test_an_expired_page_token_restarts_the_listing_without_repeating_records(
    zoho_env: ZohoEnv, services: Services
) -> None:
    ids = seed_leads(zoho_env, 2200)
    cvid = zoho_env.sandbox.add_view("Leads", lambda r: True)
    started = campaign(services, CampaignSource(kind="view", cvid=cvid))
    # Budget for the metadata read and the ten numbered pages: it stops holding a token.
    budget = services.settings.model_copy(update={"campaign_credit_budget": 11})
    limited = Services(budget)
    limited.__dict__["zoho"] = services.zoho
    progress, _ = run(limited, started)
    assert not progress.done and progress.wait_until is not None and progress.records == 2000
    assert services.campaigns.require(started.campaign_id).enumeration["page_token"]
    zoho_env.sandbox.expire_page_tokens()
    # The next day: the window is over, the token has expired.
    cursor = dict(services.campaigns.require(started.campaign_id).enumeration)
    cursor["window_started"] = "2000-01-01T00:00:00.000Z"
    services.campaigns.set_fields(started.campaign_id, {"enumeration": cursor})
    progress, _ = run(services, started)
    assert progress.done
    _, count = CampaignItems(services.s3, BUCKET).join(started.campaign_id)
    assert count == 2200
    joined = CampaignItems(services.s3, BUCKET).read(started.campaign_id)
    assert [i["record_id"] for i in joined] == ids
    assert services.campaigns.require(started.campaign_id).enumeration["restarts"] == 1


def test_the_credit_budget_stops_the_enumeration_and_it_resumes_where_it_stopped(
    zoho_env: ZohoEnv, services: Services
) -> None:
    ids = seed_leads(zoho_env, 700)
    cvid = zoho_env.sandbox.add_view("Leads", lambda r: True)
    started = campaign(services, CampaignSource(kind="view", cvid=cvid))
    limited = Services(services.settings.model_copy(update={"campaign_credit_budget": 3}))
    limited.__dict__["zoho"] = services.zoho
    progress, items = run(limited, started)
    # One credit for the field metadata, two pages of 200.
    assert not progress.done and progress.records == 400 and progress.wait_until is not None
    stored = services.campaigns.require(started.campaign_id).enumeration
    assert stored["window_credits"] == 3 and stored["page"] == 3
    progress, _ = run(limited, started)  # the same window: nothing more is read
    assert progress.records == 400 and len(listing_requests(zoho_env)) == 2
    cursor = {**stored, "window_started": "2000-01-01T00:00:00.000Z"}
    services.campaigns.set_fields(started.campaign_id, {"enumeration": cursor})
    progress, items = run(limited, started)
    assert progress.done and progress.records == 700
    assert [i["record_id"] for i in items] == ids
    assert services.campaigns.require(started.campaign_id).enumeration["credits"] == 5


def test_ids_are_read_100_at_a_time_and_missing_ones_counted(
    zoho_env: ZohoEnv, services: Services
) -> None:
    ids = seed_leads(zoho_env, 150)
    wanted = [*ids, "5725767000000999999"]
    started = campaign(services, CampaignSource(kind="ids", ids=wanted))
    progress, items = run(services, started)
    assert progress.done and sorted(i["record_id"] for i in items) == sorted(ids)
    batches = [q["ids"].split(",") for q in listing_requests(zoho_env)]
    assert [len(b) for b in batches] == [100, 51]
    assert services.campaigns.require(started.campaign_id).enumeration["missing"] == 1


def test_the_stand_in_refuses_more_than_100_ids(zoho_env: ZohoEnv) -> None:
    client = zoho_env.client()
    with pytest.raises(ProviderRejected) as refused:
        client._send("GET", "/Leads", params={"fields": "Phone", "ids": ",".join(["1"] * 101)})
    assert refused.value.code == "LIMIT_EXCEEDED"


def test_a_coql_campaign_reads_only_matching_records_and_is_charged_by_its_limit(
    zoho_env: ZohoEnv, services: Services
) -> None:
    keep = seed_leads(zoho_env, 5, Lead_Status="Not Contacted")
    seed_leads(zoho_env, 3, Lead_Status="Contacted")
    criteria = "Lead_Status = 'Not Contacted' and Phone is not null"
    started = campaign(services, CampaignSource(kind="coql", criteria=criteria))
    before = services.zoho.credits_spent
    progress, items = run(services, started)
    assert progress.done and [i["record_id"] for i in items] == keep
    [query] = [r.json["select_query"] for r in zoho_env.sandbox.requests if r.path.endswith("coql")]
    assert f"where ({criteria}) order by id asc limit 0, 2000" in query
    assert services.zoho.credits_spent - before == 1 + coql_credits(2000)  # metadata + query


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("select Phone from Leads", "SYNTAX_ERROR"),
        ("select Phone from Leads where Phone is not null limit 2001", "LIMIT_EXCEEDED"),
        ("select Phone from Leads where Phone is not null limit 99000, 2000", "LIMIT_EXCEEDED"),
        ("select Nope from Leads where Phone is not null", "INVALID_QUERY"),
        ("select Phone from Leeds where Phone is not null", "INVALID_QUERY"),
    ],
)
def test_the_stand_in_refuses_coql_queries_zoho_refuses(
    zoho_env: ZohoEnv, query: str, code: str
) -> None:
    with pytest.raises(ProviderRejected) as refused:
        zoho_env.client().coql(query, 200)
    assert refused.value.code == code


def test_a_coql_criteria_zoho_refuses_fails_the_enumeration_with_its_reason(
    zoho_env: ZohoEnv, services: Services
) -> None:
    from callflow.campaigns.enumeration import EnumerationFailed

    started = campaign(services, CampaignSource(kind="coql", criteria="Nope = 1"))
    with pytest.raises(EnumerationFailed, match="invalid column"):
        run(services, started)


def test_an_unknown_view_fails_the_enumeration(zoho_env: ZohoEnv, services: Services) -> None:
    from callflow.campaigns.enumeration import EnumerationFailed

    started = campaign(services, CampaignSource(kind="view", cvid="123"))
    with pytest.raises(EnumerationFailed):
        run(services, started)

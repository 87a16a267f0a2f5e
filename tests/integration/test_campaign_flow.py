"""A campaign through the real campaign ASL on moto: started by the API, enumerated from the Zoho
stand-in into moto's S3, a Distributed Map that makes each record's session and runs the same
call workflow a single trigger runs (``startExecution.sync:2``), and a finish step that counts.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator

import httpx
import pytest

from callflow.campaigns.model import campaign_session_id
from callflow.models import Outcome, Session, SessionStatus
from callflow.services import get_services
from callflow_dev.local.demo import Scenario, seed_scenario
from callflow_dev.local.stack import LocalStack, StackOptions
from callflow_dev.sandbox import phone_network as net

pytestmark = pytest.mark.slow
CAP = 2


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    options = StackOptions(
        brief_clips_ms=500,
        retry_delay_seconds=1,
        fast_retries=True,
        agent_concurrency=CAP,
        max_attempts=1,
    )
    with LocalStack(options) as running:
        yield running


def lead(stack: LocalStack, phone: str, behaviour: net.Behaviour | None) -> str:
    behaviours = [behaviour] if behaviour else []
    return seed_scenario(stack, Scenario("campaign", "", lambda: behaviours, phone=phone))


def test_a_campaign_calls_each_record_once_through_the_call_workflow(stack: LocalStack) -> None:
    answered = [lead(stack, f"(415) 555-43{i:02d}", net.answer(0.5)) for i in range(3)]
    invalid = lead(stack, "12", None)
    held = lead(stack, "(415) 555-4399", net.answer(0.5))
    store = get_services().store
    store.create(Session(session_id="single-trigger", module="Leads", record_id=held))
    assert store.claim_record("Leads", held, "single-trigger", 3600) is None
    auth = {"Authorization": f"Bearer {stack.secrets['status_api_token']}"}
    body = {
        "module": "Leads",
        "source": {"ids": [*answered, invalid, held]},
        "max_concurrency": 3,
    }
    started = httpx.post(f"{stack.api_url}/campaigns", json=body, headers=auth, timeout=30)
    assert started.status_code == 202, started.text
    campaign_id = started.json()["campaign_id"]
    assert stack.aws is not None
    deadline = time.monotonic() + 240
    while stack.aws.campaign_execution(campaign_id)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert stack.aws.campaign_execution(campaign_id)["status"] == "SUCCEEDED"

    shown = httpx.get(f"{stack.api_url}/campaigns/{campaign_id}", headers=auth).json()
    assert shown["state"] == "done" and shown["finished_at"]
    counted = {k: v for k, v in shown["counters"].items() if v}
    assert counted == {
        "records": 5,
        "sessions": 4,
        "skipped": 1,
        "written_back": 4,
        "reached": 3,
        "not_reached": 1,
    }
    for record_id in answered:
        session = stack.session(campaign_session_id(campaign_id, record_id))
        assert (session.status, session.outcome) == (SessionStatus.COMPLETED, Outcome.ANSWERED)
        assert session.campaign_id == campaign_id
        # The same per-record workflow a single trigger runs, one execution per session.
        assert stack.wait_for_execution(session.session_id)["status"] == "SUCCEEDED"
        assert stack.zoho.records["Leads"][record_id]["Interested"] is True
    invalid_session = stack.session(campaign_session_id(campaign_id, invalid))
    assert invalid_session.outcome is Outcome.INVALID_PHONE
    assert store.get(campaign_session_id(campaign_id, held)) is None
    assert stack.elevenlabs.refused == [] and stack.elevenlabs.peak_active <= CAP
    # One credit for the field metadata and one read of the five ids: no record read twice.
    reads = [
        r for r in stack.zoho.requests if r.method == "GET" and r.path.startswith("/crm/v8/Leads")
    ]
    assert len(reads) == 1 and reads[0].query["ids"].count(",") == 4

    exported = httpx.get(f"{stack.api_url}/campaigns/{campaign_id}/export", headers=auth)
    rows = {r["record_id"]: r for r in csv.DictReader(io.StringIO(exported.text))}
    assert set(rows) == {*answered, invalid, held}
    assert rows[held]["status"] == "skipped"
    assert rows[answered[0]]["outcome"] == "answered" and rows[answered[0]]["attempts"] == "1"
    assert int(rows[answered[0]]["duration_s"]) > 0
    assert '"Interested": true' in rows[answered[0]]["fields_written"]

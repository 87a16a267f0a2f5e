"""The callback's Zoho Task: its body as the strict Zoho stand-in takes it (and what the stand-in
refuses), created once however often the writeback runs (a lost answer included), a refusal or
a Zoho that stays unavailable recorded in the note without failing the writeback, and nothing
of it while ``callback_task`` is off (the default).

Zoho is the stand-in on a real socket; the session store is moto; Step Functions is the fake of
:mod:`tests.unit.test_callbacks`.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from callflow.callbacks import task
from callflow.callbacks.schedule import callback_session_id
from callflow.lifecycle import writeback
from callflow.lifecycle.trigger import record_fields
from callflow.models import Outcome, Session, SessionStatus, iso, utcnow
from callflow.providers.errors import ProviderRejected, RetryableProviderError
from callflow.services import Services
from callflow_dev.local.aws import create_table
from tests.unit.test_callbacks import FakeSfn
from tests.unit.test_workflow_decisions import build
from tests.unit.zoho_fixtures import (  # noqa: F401 - fixtures
    REGION,
    ZohoEnv,
    zoho_env_fixture,
    zoho_server_fixture,
    zoho_table_fixture,
)

_TABLES = itertools.count()
DUE = date(2026, 12, 4)


def services_for(env: ZohoEnv, **settings: Any) -> Services:
    """Services on a fresh table, with the real Zoho client talking to the stand-in."""
    table = f"callback-task-{next(_TABLES)}"
    create_table(table, REGION)
    services = build(
        table_name=table, state_machine_arn="arn:aws:states:::stateMachine:call", **settings
    )
    services.__dict__["zoho"] = env.client()
    services.__dict__["sfn"] = FakeSfn()
    return services


def asked(env: ZohoEnv, services: Services, owner: dict[str, Any] | None = None) -> str:
    """A Lead (owned by ``owner``) whose answered call collected a callback in two hours."""
    fields: dict[str, Any] = {"Last_Name": "Lopez", "Phone": "(415) 555-0100"}
    if owner:
        fields["Owner"] = owner
    lead = env.sandbox.seed_record("Leads", fields)
    services.store.create(
        Session(
            session_id="s1",
            module="Leads",
            record_id=lead,
            phone_raw="(415) 555-0100",
            timezone="America/New_York",
            record=env.sandbox.records["Leads"][lead],
        )
    )
    services.store.set_fields(
        "s1",
        {
            "outcome": Outcome.ANSWERED.value,
            "call_answered_at": iso(utcnow()),
            "call_duration": 20,
            "results": {
                "status": "done",
                "data_collection": {"callback_at": iso(utcnow() + timedelta(hours=2))},
            },
        },
    )
    services.store.advance("s1", SessionStatus.CALL_ENDED, attempt=1)
    return lead


def the_note(env: ZohoEnv) -> str:
    [note] = env.sandbox.notes
    return str(note["Note_Content"])


def raw_task(env: ZohoEnv, row: dict[str, Any]) -> dict[str, Any]:
    token = env.tokens().access_token().access_token
    response = httpx.post(
        f"{env.base_url}/crm/v8/Tasks",
        json={"data": [row]},
        headers={"Authorization": f"Zoho-oauthtoken {token}"},
        timeout=5,
    )
    element: dict[str, Any] = response.json()["data"][0]
    return element


# --- the client and the stand-in --------------------------------------------------------------


def test_a_task_is_created_on_the_record_for_its_owner(zoho_env: ZohoEnv) -> None:
    owner = zoho_env.sandbox.add_user("Ana Owner", "ana@example.com")
    lead = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    task_id = zoho_env.client().create_task(
        "Leads", lead, subject="Call back", due=DUE, description="why", owner_id=owner
    )
    [stored] = zoho_env.sandbox.tasks
    assert stored["id"] == task_id
    assert stored["Subject"] == "Call back" and stored["Due_Date"] == "2026-12-04"
    assert stored["Status"] == "Not Started" and stored["Description"] == "why"
    assert stored["What_Id"] == {"id": lead} and stored["$se_module"] == "Leads"
    assert stored["Owner"] == {"name": "Ana Owner", "id": owner, "email": "ana@example.com"}
    assert zoho_env.sandbox.requests[-1].json["trigger"] == []


def test_a_contacts_task_links_with_who_id(zoho_env: ZohoEnv) -> None:
    contact = zoho_env.sandbox.seed_record("Contacts", {"Last_Name": "Ng"})
    zoho_env.client().create_task("Contacts", contact, subject="s", due=DUE, description="d")
    [stored] = zoho_env.sandbox.tasks
    assert stored["Who_Id"] == {"id": contact} and "What_Id" not in stored
    assert stored["Owner"]["name"] == "Sandbox Admin"  # no owner given: the connection's user


def test_a_task_for_an_unknown_owner_is_refused(zoho_env: ZohoEnv) -> None:
    lead = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    with pytest.raises(ProviderRejected, match="Owner"):
        zoho_env.client().create_task(
            "Leads", lead, subject="s", due=DUE, description="d", owner_id="5725767000000999999"
        )
    assert zoho_env.sandbox.tasks == []


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"Subject": None}, "MANDATORY_NOT_FOUND", "Subject"),
        ({"Due_Date": "04/12/2026"}, "INVALID_DATA", "Due_Date"),
        ({"Due_Date": "2026-02-30"}, "INVALID_DATA", "Due_Date"),
        ({"What_Id": {"id": "5725767000000999999"}}, "INVALID_DATA", "What_Id"),
        ({"$se_module": None}, "MANDATORY_NOT_FOUND", "$se_module"),
        ({"Status": "Done"}, "INVALID_DATA", "Status"),
        ({"Colour": "red"}, "INVALID_DATA", "Colour"),
    ],
)
def test_the_stand_in_refuses_a_bad_task(
    zoho_env: ZohoEnv, change: dict[str, Any], code: str, field: str
) -> None:
    lead = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    row = {
        "Subject": "s",
        "Due_Date": "2026-12-04",
        "Status": "Not Started",
        "What_Id": {"id": lead},
        "$se_module": "Leads",
        **change,
    }
    row = {k: v for k, v in row.items() if v is not None}
    element = raw_task(zoho_env, row)
    assert element["code"] == code and element["details"]["api_name"] == field
    assert zoho_env.sandbox.tasks == []


def test_a_task_is_found_by_its_marker_on_its_own_record_only(zoho_env: ZohoEnv) -> None:
    client = zoho_env.client()
    lead, other = (zoho_env.sandbox.seed_record("Leads", {"Last_Name": n}) for n in "AB")
    made = client.create_task("Leads", lead, subject="s", due=DUE, description="x\nSession: s1")
    client.create_task("Leads", other, subject="s", due=DUE, description="x\nSession: s1")
    assert client.find_task("Leads", lead, "Session: s1") == made
    assert client.find_task("Leads", lead, "Session: s2") is None


# --- the rules ----------------------------------------------------------------------------------


def test_the_task_is_due_on_the_callbacks_local_date() -> None:
    # 04:30 UTC on the 5th is 23:30 on the 4th in New York.
    assert task.due_date("2026-12-05T04:30:00.000Z", "America/New_York") == DUE


def test_the_owner_is_read_from_the_snapshot_as_zoho_gives_it() -> None:
    assert task.owner_id({"Owner": {"name": "A", "id": "123", "email": "a@x"}}, "Owner") == "123"
    assert task.owner_id({"Owner": "123"}, "Owner") == "123"
    assert task.owner_id({"Owner": {"name": "A"}}, "Owner") == ""
    assert task.owner_id({}, "Owner") == "" and task.owner_id({"Owner": "x"}, "") == ""


def test_the_owner_is_read_at_trigger_time_only_when_tasks_are_on(zoho_env: ZohoEnv) -> None:
    assert "Owner" not in record_fields(services_for(zoho_env), "Leads")
    assert "Owner" in record_fields(services_for(zoho_env, callback_task=True), "Leads")


# --- the writeback --------------------------------------------------------------------------


def test_off_by_default_no_task_is_created(zoho_env: ZohoEnv) -> None:
    services = services_for(zoho_env)
    asked(zoho_env, services)
    writeback.write_back(services, "s1")
    assert zoho_env.sandbox.tasks == []
    assert "task" not in services.store.require("s1").writeback["callback"]
    assert "Task:" not in the_note(zoho_env)
    assert not [r for r in zoho_env.sandbox.requests if r.path.startswith("/crm/v8/Tasks")]


def test_the_writeback_creates_the_task_once_and_the_note_says_so(zoho_env: ZohoEnv) -> None:
    services = services_for(zoho_env, callback_task=True)
    owner = zoho_env.sandbox.add_user("Ana Owner", "ana@example.com")
    lead = asked(zoho_env, services, owner={"id": owner})
    writeback.write_back(services, "s1")
    [stored] = zoho_env.sandbox.tasks
    assert stored["Owner"]["id"] == owner and stored["What_Id"] == {"id": lead}
    assert callback_session_id("s1") in stored["Description"]
    assert stored["Description"].endswith("Session: s1")
    receipt = services.store.require("s1").writeback["callback"]["task"]
    assert receipt == {"task_id": stored["id"], "due": stored["Due_Date"], "owner_id": owner}
    assert f"Task: created for the record's owner, due {stored['Due_Date']}" in the_note(zoho_env)
    # A replay of the completed writeback creates nothing more.
    writeback.write_back(services, "s1")
    assert len(zoho_env.sandbox.tasks) == 1


def test_a_lost_answer_is_found_not_created_again(zoho_env: ZohoEnv) -> None:
    services = services_for(zoho_env, callback_task=True)
    asked(zoho_env, services)
    zoho_env.sandbox.lose_answers(1, "/crm/v8/Tasks")
    with pytest.raises(RetryableProviderError):
        writeback.write_step(services, "s1", "fields")
    assert len(zoho_env.sandbox.tasks) == 1  # made, though its answer was a 500
    writeback.write_back(services, "s1")  # the workflow's retry of the step, then the rest
    [stored] = zoho_env.sandbox.tasks
    receipt = services.store.require("s1").writeback["callback"]["task"]
    assert receipt["task_id"] == stored["id"]
    assert "Task: created for the record's owner" in the_note(zoho_env)


def test_a_refused_task_is_in_the_note_and_the_writeback_completes(zoho_env: ZohoEnv) -> None:
    services = services_for(zoho_env, callback_task=True)
    asked(zoho_env, services, owner={"id": zoho_env.sandbox.add_user("Gone", "gone@example.com")})
    gone = services.store.require("s1").record["Owner"]["id"]
    del zoho_env.sandbox.users[gone]  # the owner left the org after the trigger read the record
    result = writeback.write_back(services, "s1")
    assert result["status"] == "completed"
    assert zoho_env.sandbox.tasks == []
    callback = services.store.require("s1").writeback["callback"]
    assert callback["session_id"] == callback_session_id("s1")  # the callback stays scheduled
    assert "Owner" in callback["task"]["refused"]
    assert f"Task: not created: {callback['task']['refused']}." in the_note(zoho_env)


def test_a_zoho_outage_is_retried_then_recorded(zoho_env: ZohoEnv) -> None:
    services = services_for(zoho_env, callback_task=True, callback_task_attempts=3)
    asked(zoho_env, services)
    zoho_env.sandbox.fail_next_writes(100, status=503, path="/crm/v8/Tasks")
    for _ in range(2):  # the workflow retries the step on RetryableProviderError
        with pytest.raises(RetryableProviderError):
            writeback.write_step(services, "s1", "fields")
    result = writeback.write_back(services, "s1")  # the third try gives the Task up
    assert result["status"] == "completed" and zoho_env.sandbox.tasks == []
    refused = services.store.require("s1").writeback["callback"]["task"]["refused"]
    assert refused.startswith("Zoho unavailable after 3 tries")
    assert "Task: not created: Zoho unavailable after 3 tries" in the_note(zoho_env)


def test_a_records_owner_reads_back_as_the_user(zoho_env: ZohoEnv) -> None:
    owner = zoho_env.sandbox.add_user("Ana Owner", "ana@example.com")
    lead = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Lopez"})
    client = zoho_env.client()
    assert client.get_record("Leads", lead, ["Owner"])["Owner"]["name"] == "Sandbox Admin"
    client.update_record("Leads", lead, {"Owner": {"id": owner}})
    assert client.get_record("Leads", lead, ["Owner"])["Owner"] == {
        "name": "Ana Owner",
        "id": owner,
        "email": "ana@example.com",
    }

"""Opt-outs, the suppression list and frequency caps, one rule at a time.

The rules run against the session store on an in-process moto (with DynamoDB's single-item
atomicity, as the embedded default has it), and the lifecycle's own prepare, admission and
writeback steps drive them, with the provider fakes of the workflow decisions' tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from callflow.config import Settings
from callflow.consent.caps import FrequencyCaps, number_counter, record_counter
from callflow.consent.rules import ContactRules, is_yes
from callflow.lifecycle import admission, calling, writeback
from callflow.models import Outcome, Session, SessionStatus
from callflow.services import Services
from callflow_dev.local.aws import _serialise_dynamodb_writes, create_table
from tests.unit.test_workflow_decisions import FakeZoho, build, infobip, zoho

NUMBER = "+14155550100"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    _serialise_dynamodb_writes()
    with mock_aws():
        create_table("decisions", "us-east-1")
        yield


@pytest.fixture
def services(aws: None) -> Services:
    return build(optout_field="Do_Not_Call")


def new_session(
    services: Services, session_id: str = "s1", record_id: str = "42", **fields: Any
) -> Session:
    fields.setdefault("phone_raw", "(415) 555-0100")
    return services.store.create(
        Session(session_id=session_id, module="Leads", record_id=record_id, **fields)
    )


def prepared_and_admitted(services: Services, session_id: str = "s1") -> dict[str, Any]:
    state = calling.prepare(services, {"session_id": session_id})
    if state["action"] != calling.CALL:
        return state
    return admission.admit(services, state)


# --- the rules object -------------------------------------------------------------------------


def test_the_rules_come_from_the_settings_in_one_object() -> None:
    settings = Settings(
        optout_field=" Do_Not_Call ",
        optout_item="dnc",
        cap_attempts_per_record=2,
        cap_attempts_per_number=5,
        cap_window_seconds=3600,
    )
    assert ContactRules.from_settings(settings) == ContactRules("Do_Not_Call", "dnc", 2, 5, 3600)


def test_negative_caps_are_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="negative"):
        Settings(cap_attempts_per_number=-1)


@pytest.mark.parametrize(
    ("value", "yes"),
    [
        (True, True),
        (False, False),
        ("yes", True),
        (" TRUE ", True),
        ("no", False),
        (1, True),
        (0, False),
        (None, False),
        ("", False),
        (2, False),
    ],
)
def test_a_collected_opt_out_reads_yes_from_booleans_numbers_and_words(
    value: object, yes: bool
) -> None:
    assert is_yes(value) is yes
    assert ContactRules(optout_item="opt_out").collected_optout({"opt_out": value}) is yes


def test_only_a_ticked_checkbox_is_an_opt_out_on_the_record() -> None:
    rules = ContactRules(optout_field="Do_Not_Call")
    assert rules.record_opted_out({"Do_Not_Call": True})
    assert not rules.record_opted_out({"Do_Not_Call": False})
    assert not rules.record_opted_out({"Do_Not_Call": "true"})  # a checkbox is a JSON boolean
    assert not ContactRules(optout_field="").record_opted_out({"Do_Not_Call": True})


# --- the suppression list ---------------------------------------------------------------------


def test_suppressing_a_number_twice_keeps_the_first_entry(services: Services) -> None:
    suppressions = services.suppressions
    assert suppressions.get(NUMBER) is None
    assert suppressions.add(NUMBER, why="asked", source="agent") is True
    first = suppressions.get(NUMBER)
    assert suppressions.add(NUMBER, why="again", source="operator") is False
    assert suppressions.get(NUMBER) == first
    assert first is not None and (first.why, first.source) == ("asked", "agent")
    item = services.store.table.get_item(Key={"pk": f"suppress#{NUMBER}"})["Item"]
    assert "expires_at" not in item  # an opt-out does not lapse


def test_a_number_taken_off_the_list_is_callable_again(services: Services) -> None:
    services.suppressions.add(NUMBER, why="asked", source="agent")
    assert services.suppressions.remove(NUMBER) is True
    assert services.suppressions.remove(NUMBER) is False
    assert services.suppressions.get(NUMBER) is None


def test_only_e164_numbers_go_on_the_list(services: Services) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        services.suppressions.add("(415) 555-0100", why="", source="")


# --- before the dial --------------------------------------------------------------------------


def test_a_ticked_opt_out_checkbox_ends_the_session_suppressed_without_a_dial(
    services: Services,
) -> None:
    new_session(services, record={"Do_Not_Call": True})
    state = prepared_and_admitted(services)
    assert state["action"] == calling.WRITE_BACK
    session = services.store.require("s1")
    assert session.outcome is Outcome.SUPPRESSED
    assert "Do_Not_Call" in session.outcome_detail
    assert infobip(services).placed == []
    writeback.write_back(services, "s1")
    fake = zoho(services)
    [(title, note)] = fake.notes
    assert title == "AI call: Not called: opted out"
    assert "Detail: the record's Do_Not_Call is ticked" in note
    assert fake.calls == []  # nothing to log: never dialled


def test_a_suppressed_number_is_not_dialled_from_any_record(services: Services) -> None:
    services.suppressions.add(NUMBER, why="asked not to be called again", source="agent")
    new_session(services, record_id="77")
    assert prepared_and_admitted(services)["action"] == calling.WRITE_BACK
    session = services.store.require("s1")
    assert session.outcome is Outcome.SUPPRESSED
    assert "suppression list" in session.outcome_detail
    assert infobip(services).placed == []


def test_a_number_suppressed_while_a_retry_waits_is_not_dialled_again(
    services: Services,
) -> None:
    new_session(services)
    state = prepared_and_admitted(services)
    assert state["action"] == admission.DIAL  # the first attempt is allowed
    # Meanwhile another record with the same number opts out; the retry's admission sees it.
    services.suppressions.add(NUMBER, why="asked", source="agent")
    services.store.advance(
        "s1", SessionStatus.SCHEDULED, attempt=2, fields={"outcome": None}, event="retry"
    )
    assert admission.admit(services, {"session_id": "s1"})["action"] == calling.WRITE_BACK
    assert services.store.require("s1").outcome is Outcome.SUPPRESSED


def test_a_refused_dial_gives_its_admission_slots_back(services: Services) -> None:
    services.suppressions.add(NUMBER, why="asked", source="agent")
    new_session(services)
    services.store.set_fields("s1", {"phone": NUMBER})
    admission.admit(services, {"session_id": "s1"})
    from callflow.admission.slots import configured_pools

    for pool in configured_pools(services.settings):
        assert services.pools.holders(pool) == {}


# --- frequency caps ---------------------------------------------------------------------------


def test_the_cap_allows_n_dials_per_record_in_the_window(aws: None) -> None:
    services = build(cap_attempts_per_record=2, cap_attempts_per_number=0)
    for n in range(3):
        new_session(services, session_id=f"s{n}", phone_raw=f"(415) 555-01{n:02d}")
    assert prepared_and_admitted(services, "s0")["action"] == admission.DIAL
    assert prepared_and_admitted(services, "s1")["action"] == admission.DIAL
    assert prepared_and_admitted(services, "s2")["action"] == calling.WRITE_BACK
    capped = services.store.require("s2")
    assert capped.outcome is Outcome.CAPPED
    assert "record Leads/42: 2 calls in 24 h" in capped.outcome_detail
    assert len(infobip(services).placed) == 0  # admission only; nothing dialled here


def test_the_number_cap_counts_across_records(aws: None) -> None:
    services = build(cap_attempts_per_record=0, cap_attempts_per_number=1)
    new_session(services, session_id="a", record_id="1")
    new_session(services, session_id="b", record_id="2")
    assert prepared_and_admitted(services, "a")["action"] == admission.DIAL
    assert prepared_and_admitted(services, "b")["action"] == calling.WRITE_BACK
    capped = services.store.require("b")
    assert capped.outcome is Outcome.CAPPED and "phone number: 1 calls" in capped.outcome_detail
    assert "415" not in capped.outcome_detail  # the detail never carries the number


def test_admitting_the_same_attempt_again_counts_it_once(aws: None) -> None:
    services = build(cap_attempts_per_record=1, cap_attempts_per_number=1)
    new_session(services)
    assert prepared_and_admitted(services)["action"] == admission.DIAL
    # The state machine runs Admit again for the same attempt (its answer was lost).
    services.store.advance("s1", SessionStatus.QUEUED, attempt=1)
    assert admission.admit(services, {"session_id": "s1"})["action"] == admission.DIAL
    counter = record_counter("Leads", "42", 1)
    assert list(services.caps.attempts(counter)) == ["s1#1"]


def test_a_full_cap_counts_the_dial_against_no_cap_at_all(services: Services) -> None:
    caps = services.caps
    record = record_counter("Leads", "42", 5)
    number = number_counter(NUMBER, 1)
    assert caps.count([record, number], "a#1", 3600) == ()
    assert caps.count([record, number], "b#1", 3600) == (number,)
    assert list(caps.attempts(record)) == ["a#1"]  # b was not counted against the record


def test_dials_older_than_the_window_no_longer_count(services: Services) -> None:
    now = [1_000_000.0]
    caps = FrequencyCaps(services.store.table, clock=lambda: now[0])
    counter = number_counter(NUMBER, 2)
    assert caps.count([counter], "a#1", 3600) == ()
    now[0] += 1800
    assert caps.count([counter], "b#1", 3600) == ()
    assert caps.count([counter], "c#1", 3600) == (counter,)
    now[0] += 1801  # a's dial is now past the rolling window; b's is not
    assert caps.count([counter], "c#1", 3600) == ()
    assert sorted(caps.attempts(counter)) == ["b#1", "c#1"]
    assert caps.count([counter], "d#1", 3600) == (counter,)


def test_a_cap_of_zero_counts_nothing(services: Services) -> None:
    assert services.caps.count([number_counter(NUMBER, 0)], "a#1", 3600) == ()
    assert services.store.table.get_item(Key={"pk": f"cap#number#{NUMBER}"}).get("Item") is None


def test_concurrent_dials_never_pass_the_cap(services: Services) -> None:
    """Twenty dials of different records to one number at once, against a cap of three: the
    count and its check are one conditional write, so exactly three get through."""
    caps = services.caps
    counter = number_counter(NUMBER, 3)
    results: dict[str, tuple[Any, ...]] = {}
    start = threading.Barrier(20)

    def dial(n: int) -> None:
        start.wait()
        results[f"s{n}#1"] = caps.count(
            [record_counter("Leads", str(n), 3), counter], f"s{n}#1", 3600
        )

    threads = [threading.Thread(target=dial, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    allowed = sorted(h for h, full in results.items() if not full)
    assert len(results) == 20 and len(allowed) == 3
    assert sorted(caps.attempts(counter)) == allowed
    for holder, full in results.items():
        if full:  # a refused dial was counted against its record's cap neither
            n = holder.split("#")[0][1:]
            assert caps.attempts(record_counter("Leads", n, 3)) == {}


def test_concurrent_triggers_of_one_record_dial_at_most_its_cap(aws: None) -> None:
    """Sessions of one record admitted at once (a campaign and single triggers racing): the
    record's cap holds. (Admission's pools are left out: only the caps are under test.)"""
    services = build(
        cap_attempts_per_record=2, cap_attempts_per_number=0, agent_concurrency=0, bridge_capacity=0
    )
    for n in range(8):
        new_session(services, session_id=f"s{n}", phone_raw=f"(415) 555-02{n:02d}")
    states: dict[str, str] = {}
    start = threading.Barrier(8)

    def trigger(n: int) -> None:
        start.wait()
        states[f"s{n}"] = prepared_and_admitted(services, f"s{n}")["action"]

    threads = [threading.Thread(target=trigger, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(states.values()).count(admission.DIAL) == 2
    capped = [s for s, action in states.items() if action == calling.WRITE_BACK]
    assert len(capped) == 6
    assert all(services.store.require(s).outcome is Outcome.CAPPED for s in capped)


# --- an opt-out the agent collected -----------------------------------------------------------


def _answered(services: Services, collected: dict[str, Any]) -> None:
    new_session(services)
    services.store.set_fields("s1", {"phone": NUMBER})
    services.store.advance(
        "s1",
        SessionStatus.CALL_ENDED,
        attempt=1,
        fields={
            "outcome": Outcome.ANSWERED.value,
            "call_duration": 20,
            "call_answered_at": "2026-12-01T15:00:00.000Z",
            "conversation_id": "conv_1",
            "results": {
                "conversation_id": "conv_1",
                "status": "done",
                "summary": "Asked not to be called.",
                "data_collection": collected,
                "transcript": [
                    {"role": "agent", "message": "Hi Maria, do you have a minute?"},
                    {"role": "user", "message": "Please don't call me again."},
                ],
            },
        },
    )


def test_a_collected_opt_out_ticks_the_field_suppresses_the_number_and_says_so(
    services: Services,
) -> None:
    fake = zoho(services)
    fake.fields = (*fake.fields, "Do_Not_Call")
    _answered(services, {"opt_out": True, "interested": False})
    writeback.write_back(services, "s1")
    assert fake.updates[0]["Do_Not_Call"] is True
    entry = services.suppressions.get(NUMBER)
    assert entry is not None and entry.source.startswith("agent, session s1")
    [(_, note)] = fake.notes
    assert "Opt-out: the person asked not to be called again" in note
    assert "Do_Not_Call ticked" in note and NUMBER not in note


def test_an_opt_out_is_kept_even_when_zoho_refuses_the_field(services: Services) -> None:
    fake = zoho(services)
    fake.refuse_update = "validation rule"
    _answered(services, {"opt_out": "yes"})
    writeback.write_back(services, "s1")
    assert services.suppressions.get(NUMBER) is not None
    [(_, note)] = fake.notes
    assert "is on the suppression list" in note and "ticked" not in note


def test_a_retried_writeback_suppresses_once_and_ticks_once(services: Services) -> None:
    fake = zoho(services)
    fake.fields = (*fake.fields, "Do_Not_Call")
    fake.fail_notes = 1
    _answered(services, {"opt_out": True})
    with pytest.raises(Exception, match="503"):
        writeback.write_back(services, "s1")
    writeback.write_back(services, "s1")
    assert len(fake.updates) == 1 and len(fake.notes) == 1
    assert services.suppressions.get(NUMBER) is not None


def test_no_opt_out_collected_suppresses_nothing(services: Services) -> None:
    _answered(services, {"opt_out": False, "interested": True})
    writeback.write_back(services, "s1")
    assert services.suppressions.get(NUMBER) is None
    assert "Do_Not_Call" not in zoho(services).updates[0]


def test_the_next_trigger_after_an_opt_out_is_suppressed(services: Services) -> None:
    _answered(services, {"opt_out": True})
    writeback.write_back(services, "s1")
    new_session(services, session_id="s2")
    assert prepared_and_admitted(services, "s2")["action"] == calling.WRITE_BACK
    assert services.store.require("s2").outcome is Outcome.SUPPRESSED
    assert infobip(services).placed == []


def test_the_opt_out_rule_reads_the_configured_item(aws: None) -> None:
    services = build(optout_item="do_not_call_again")
    _answered(services, {"opt_out": True})
    writeback.write_back(services, "s1")
    assert services.suppressions.get(NUMBER) is None  # not the configured item
    assert isinstance(services.zoho, FakeZoho)

"""The session store: conditional writes make duplicate and late events harmless."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from moto import mock_aws

from callflow.models import Session, SessionStatus, progress_of
from callflow.store import (
    MAX_NESTING,
    PENDING_CLAIM_SECONDS,
    SessionNotFound,
    SessionStore,
    UnstorableValue,
)
from callflow_dev.local.aws import create_table


@pytest.fixture
def store() -> Iterator[SessionStore]:
    with mock_aws():
        create_table("sessions", "us-east-1")
        yield SessionStore("sessions", "us-east-1")


def new(store: SessionStore, session_id: str = "s1") -> Session:
    return store.create(Session(session_id=session_id, module="Leads", record_id="42"))


def test_created_session_reads_back_with_timeline_and_ttl(store: SessionStore) -> None:
    new(store)
    session = store.require("s1")
    assert session.status is SessionStatus.CREATED
    assert session.expires_at > 0
    assert [entry.event for entry in session.timeline] == ["session created"]


def test_creating_the_same_session_twice_is_refused(store: SessionStore) -> None:
    new(store)
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        new(store)


def test_unknown_session_raises_not_found(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        store.require("nope")


def test_duplicate_status_change_acts_once(store: SessionStore) -> None:
    new(store)
    assert store.advance("s1", SessionStatus.DIALING, attempt=1) is not None
    assert store.advance("s1", SessionStatus.DIALING, attempt=1) is None


def test_late_event_cannot_move_session_backwards(store: SessionStore) -> None:
    new(store)
    store.advance("s1", SessionStatus.DIALING, attempt=1)
    store.advance("s1", SessionStatus.CALL_ENDED, attempt=1, fields={"outcome": "no_answer"})
    assert store.advance("s1", SessionStatus.RINGING, attempt=1) is None
    assert store.require("s1").status is SessionStatus.CALL_ENDED


def test_event_of_an_earlier_attempt_is_stale(store: SessionStore) -> None:
    new(store)
    store.advance("s1", SessionStatus.DIALING, attempt=2)
    assert store.advance("s1", SessionStatus.CALL_ENDED, attempt=1) is None
    assert store.require("s1").attempt == 2


def test_same_attempt_event_moves_the_session_with_one_write(store: SessionStore) -> None:
    new(store)
    store.advance("s1", SessionStatus.DIALING, attempt=2)
    moved = store.advance("s1", SessionStatus.RINGING, attempt=2, same_attempt=True)
    assert moved is not None and moved.status is SessionStatus.RINGING


def test_same_attempt_refuses_an_event_of_a_later_attempt(store: SessionStore) -> None:
    new(store)
    store.advance("s1", SessionStatus.DIALING, attempt=1)
    assert store.advance("s1", SessionStatus.RINGING, attempt=2, same_attempt=True) is None
    assert store.require("s1").status is SessionStatus.DIALING


def test_same_attempt_creates_nothing_for_an_unknown_session(store: SessionStore) -> None:
    assert store.advance("nope", SessionStatus.RINGING, attempt=1, same_attempt=True) is None
    assert store.get("nope") is None


def test_next_attempt_ranks_above_every_phase_of_the_previous_one() -> None:
    assert progress_of(SessionStatus.SCHEDULED, 2) > progress_of(SessionStatus.CALL_ENDED, 1)
    assert progress_of(SessionStatus.COLLECTING) > progress_of(SessionStatus.CALL_ENDED, 50)


def test_set_if_absent_acts_exactly_once(store: SessionStore) -> None:
    new(store)
    first = store.set_fields("s1", {"dialog_requested": True}, only_if_absent="dialog_requested")
    second = store.set_fields("s1", {"dialog_requested": True}, only_if_absent="dialog_requested")
    assert first is not None and second is None


def test_results_are_kept_by_the_first_writer(store: SessionStore) -> None:
    new(store)
    assert store.set_fields("s1", {"results": {"status": "done"}}, only_if_absent="results")
    assert store.set_fields("s1", {"results": {"status": "x"}}, only_if_absent="results") is None
    assert store.require("s1").results == {"status": "done"}


def test_floats_survive_the_round_trip(store: SessionStore) -> None:
    new(store)
    store.set_fields("s1", {"results": {"data_collection": {"bill": 149.5, "n": 3}}})
    assert store.require("s1").results["data_collection"] == {"bill": 149.5, "n": 3}


def test_setting_a_conversation_id_does_not_index_it_on_its_own(store: SessionStore) -> None:
    store.create(Session(session_id="s1", module="Leads", record_id="1"))
    store.set_fields("s1", {"conversation_id": "conv_1"})
    assert store.session_for_conversation("conv_1") is None


def test_an_indexed_conversation_leads_to_its_session(store: SessionStore) -> None:
    new(store)
    store.index_conversation("conv_1", "s1")
    assert store.session_for_conversation("conv_1") == "s1"
    assert store.session_for_conversation("conv_2") is None


def test_record_claim_blocks_a_second_trigger_within_the_window(store: SessionStore) -> None:
    new(store)
    assert store.claim_record("Leads", "42", "s1", 3600) is None
    assert store.claim_record("Leads", "42", "s2", 3600) == "s1"


def test_record_claim_blocks_while_the_session_is_active_even_after_the_window(
    store: SessionStore,
) -> None:
    new(store)
    assert store.claim_record("Leads", "42", "s1", 0) is None
    assert store.claim_record("Leads", "42", "s2", 0) == "s1"
    store.advance("s1", SessionStatus.COMPLETED)
    assert store.claim_record("Leads", "42", "s2", 0) is None


def test_first_claim_of_a_record_is_a_single_conditional_write(store: SessionStore) -> None:
    calls: list[str] = []
    store.table.meta.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    assert store.claim_record("Leads", "42", "s1", 3600) is None
    assert calls == ["PutItem"]


def test_a_claim_that_lapsed_passes_to_the_next_session(store: SessionStore) -> None:
    new(store)
    store.advance("s1", SessionStatus.COMPLETED)
    assert store.claim_record("Leads", "42", "s1", 0) is None
    assert store.claim_record("Leads", "42", "s2", 3600) is None
    assert store.claim_record("Leads", "42", "s3", 3600) == "s2"


def test_failed_writeback_can_be_reopened_for_replay_only_once(store: SessionStore) -> None:
    new(store)
    store.advance("s1", SessionStatus.WRITEBACK_FAILED)
    assert store.reopen_writeback("s1") is not None
    assert store.reopen_writeback("s1") is None
    assert store.require("s1").status is SessionStatus.WRITING_BACK


# --- media stream claims, the session's own conversation -------------------------------------

LIVE = frozenset({SessionStatus.DIALING, SessionStatus.RINGING, SessionStatus.IN_CALL})


def in_call(store: SessionStore) -> Session:
    """Session s1 in a call, its bridge token hashing to ``hash-1``."""
    new(store)
    store.advance("s1", SessionStatus.IN_CALL, attempt=1)
    moved = store.set_fields("s1", {"bridge_token_hash": "hash-1"})
    assert moved is not None
    return moved


def test_a_bridge_token_admits_one_media_stream(store: SessionStore) -> None:
    in_call(store)
    first = store.claim_media_stream("s1", "hash-1", LIVE)
    assert first is not None and first.media_claimed_hash == "hash-1"
    assert store.claim_media_stream("s1", "hash-1", LIVE) is None


def test_a_media_stream_claim_is_a_single_conditional_write(store: SessionStore) -> None:
    in_call(store)
    calls: list[str] = []
    store.table.meta.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    assert store.claim_media_stream("s1", "hash-1", LIVE) is not None
    assert store.claim_media_stream("s1", "hash-1", LIVE) is None
    assert calls == ["UpdateItem", "UpdateItem"]


def test_a_media_stream_claim_needs_the_current_token_and_a_live_session(
    store: SessionStore,
) -> None:
    in_call(store)
    assert store.claim_media_stream("s1", "hash-other", LIVE) is None
    assert store.claim_media_stream("nope", "hash-1", LIVE) is None
    assert store.get("nope") is None
    store.advance("s1", SessionStatus.CALL_ENDED, attempt=1)
    assert store.claim_media_stream("s1", "hash-1", LIVE) is None
    assert store.require("s1").media_claimed_hash == ""


def test_the_next_dialogs_token_admits_its_own_stream(store: SessionStore) -> None:
    in_call(store)
    assert store.claim_media_stream("s1", "hash-1", LIVE) is not None
    store.set_fields("s1", {"bridge_token_hash": "hash-2"})
    assert store.claim_media_stream("s1", "hash-1", LIVE) is None
    assert store.claim_media_stream("s1", "hash-2", LIVE) is not None


def test_a_session_keeps_the_first_conversation_set(store: SessionStore) -> None:
    new(store)
    assert store.set_conversation("s1", "conv_1") is not None
    assert store.set_conversation("s1", "conv_1") is not None
    assert store.set_conversation("s1", "conv_2") is None
    assert store.require("s1").conversation_id == "conv_1"
    assert store.set_conversation("nope", "conv_1") is None
    assert store.get("nope") is None


def test_a_conversation_index_entry_is_never_re_pointed(store: SessionStore) -> None:
    assert store.index_conversation("conv_1", "s1") is True
    assert store.index_conversation("conv_1", "s1") is True
    assert store.index_conversation("conv_1", "s2") is False
    assert store.session_for_conversation("conv_1") == "s1"


# --- the webhook replay cache ------------------------------------------------------------------


def test_a_delivery_is_first_seen_once_and_expires_with_its_window(store: SessionStore) -> None:
    assert store.first_delivery("v0-abc", 1_790_001_800) is True
    assert store.first_delivery("v0-abc", 1_790_001_800) is False
    assert store.first_delivery("v0-def", 1_790_001_800) is True
    digest = hashlib.sha256(b"v0-abc").hexdigest()
    item = store.table.get_item(Key={"pk": f"webhook#{digest}"})["Item"]
    assert item["expires_at"] == 1_790_001_800


def test_a_forgotten_delivery_is_seen_afresh(store: SessionStore) -> None:
    assert store.first_delivery("v0-abc", 1_790_001_800) is True
    store.forget_delivery("v0-abc")
    assert store.first_delivery("v0-abc", 1_790_001_800) is True


def test_a_released_claim_frees_the_record_at_once(store: SessionStore) -> None:
    new(store)
    assert store.claim_record("Leads", "42", "s1", 3600) is None
    assert store.release_claim("Leads", "42", "s1") is True
    assert store.claim_record("Leads", "42", "s2", 3600) is None


def test_only_the_holder_can_release_a_claim(store: SessionStore) -> None:
    new(store)
    assert store.claim_record("Leads", "42", "s1", 3600) is None
    assert store.release_claim("Leads", "42", "s2") is False
    assert store.claim_record("Leads", "42", "s3", 3600) == "s1"


def test_a_created_session_can_be_deleted(store: SessionStore) -> None:
    new(store)
    assert store.delete_created("s1") is True
    assert store.get("s1") is None
    assert store.delete_created("never-written") is True


def test_a_session_that_moved_past_created_is_not_deleted(store: SessionStore) -> None:
    new(store)
    store.advance("s1", SessionStatus.DIALING, attempt=1)
    assert store.delete_created("s1") is False
    assert store.require("s1").status is SessionStatus.DIALING


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_claim_whose_session_is_not_created_yet_blocks_even_without_a_window(
    store: SessionStore,
) -> None:
    """The trigger that claimed is still reading the record: its session comes next."""
    store.clock = Clock()
    assert store.claim_record("Leads", "42", "s1", 0) is None
    assert store.claim_record("Leads", "42", "s2", 0) == "s1"


def test_a_claim_whose_session_never_appeared_lapses_after_the_pending_time(
    store: SessionStore,
) -> None:
    """Its trigger died before it could create the session or undo the claim."""
    clock = store.clock = Clock()
    assert store.claim_record("Leads", "42", "s1", 3600) is None
    clock.now += PENDING_CLAIM_SECONDS - 1
    assert store.claim_record("Leads", "42", "s2", 3600) == "s1"
    clock.now += 2
    assert store.claim_record("Leads", "42", "s2", 3600) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (10**40, "1.000E+40 is outside"),
        (-(10**38), "outside"),
        (1e300, "1.000E+300 is outside"),
        (1e-300, "outside"),
        (float("nan"), "NaN is not a number"),
        (float("inf"), "Infinity is not a number"),
    ],
)
def test_numbers_dynamodb_cannot_hold_are_refused_with_a_reason(
    store: SessionStore, value: float, reason: str
) -> None:
    new(store)
    with pytest.raises(UnstorableValue, match=re.escape(reason)):
        store.set_fields("s1", {"results": {"data_collection": {"bill": value}}})
    assert store.require("s1").results == {}


def test_the_numbers_at_the_edges_of_dynamodb_s_range_are_stored(store: SessionStore) -> None:
    new(store)
    edge = {"digits": 10**38 - 1, "big": 9.99e125, "small": 1e-130, "negative": -12.5}
    store.set_fields("s1", {"results": edge})
    stored = store.require("s1").results
    assert stored == {**edge, "big": int(Decimal("9.99E+125"))}  # integral: read back as an int


def nested(levels: int) -> dict[str, Any]:
    """A map ``levels`` deep, counting itself."""
    value: dict[str, Any] = {"bottom": True}
    for _ in range(levels - 1):
        value = {"down": value}
    return value


def test_values_nested_as_deep_as_dynamodb_allows_are_stored(store: SessionStore) -> None:
    new(store)
    store.set_fields("s1", {"results": nested(MAX_NESTING)})
    assert store.require("s1").results == nested(MAX_NESTING)


def test_values_nested_deeper_than_dynamodb_allows_are_refused(store: SessionStore) -> None:
    new(store)
    with pytest.raises(UnstorableValue, match="nested deeper than 32 levels"):
        store.set_fields("s1", {"results": nested(MAX_NESTING + 1)})
    with pytest.raises(UnstorableValue, match="nested deeper than 32 levels"):
        store.create(Session(session_id="s2", module="Leads", record_id="1", record=nested(33)))

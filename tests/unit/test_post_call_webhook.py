"""The post-call webhook through the API: a genuine delivery acts once, and only on the session
whose own conversation it reports."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from callflow.models import Session
from callflow.providers.elevenlabs.client import SIGNATURE_HEADER, sign_webhook
from callflow.services import get_services
from callflow.store import SessionStore
from callflow_dev.local.aws import create_table
from tests.unit.api_app import api_client
from tests.unit.elevenlabs_fixtures import conversation, post_call

SECRET = "el-secret"
TABLE = "post-call-tests"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    environment = {
        "CALLFLOW_ELEVENLABS_WEBHOOK_SECRET": SECRET,
        "CALLFLOW_TABLE_NAME": TABLE,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with mock_aws():
        create_table(TABLE, "us-east-1")
        with api_client(monkeypatch, environment) as client:
            yield client


@pytest.fixture
def store(client: TestClient) -> SessionStore:
    """The API's own store, with session s1 whose conversation is ``conv_own`` (indexed, as the
    bridge leaves it)."""
    store = get_services().store
    store.create(
        Session(session_id="s1", module="Leads", record_id="42", conversation_id="conv_own")
    )
    store.index_conversation("conv_own", "s1")
    return store


def delivery(conversation_id: str, *, at: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A genuine delivery: the body ElevenLabs sends, signed with the real helper."""
    raw = json.dumps(post_call(**conversation(conversation_id=conversation_id))).encode()
    signature = sign_webhook(raw, SECRET, int(time.time()) if at is None else at)
    return raw, {SIGNATURE_HEADER: signature, "Content-Type": "application/json"}


def post(client: TestClient, raw: bytes, headers: dict[str, str]) -> Any:
    response = client.post("/webhooks/elevenlabs", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def dynamodb_calls(store: SessionStore) -> list[str]:
    calls: list[str] = []
    store.table.meta.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )
    return calls


def test_a_resent_delivery_is_acknowledged_and_not_acted_on_again(
    client: TestClient, store: SessionStore
) -> None:
    raw, headers = delivery("conv_own")
    assert post(client, raw, headers) == {"result": "stored"}
    calls = dynamodb_calls(store)

    assert post(client, raw, headers) == {"result": "duplicate delivery"}
    assert calls == ["PutItem"]  # the replay cache's refused put: no session read, no write
    timeline = [entry.event for entry in store.require("s1").timeline]
    assert timeline.count("results collected") == 1


def test_a_resent_delivery_is_refused_before_the_session_is_looked_up(
    client: TestClient, store: SessionStore
) -> None:
    """The first copy found no session yet (the bridge indexes the conversation late): its
    resend is still a duplicate, however the table changed since."""
    raw, headers = delivery("conv_late")
    assert post(client, raw, headers) == {"result": "ignored: unknown conversation"}
    store.create(
        Session(session_id="s2", module="Leads", record_id="43", conversation_id="conv_late")
    )
    store.index_conversation("conv_late", "s2")

    assert post(client, raw, headers) == {"result": "duplicate delivery"}
    assert store.require("s2").results == {}


def test_a_new_delivery_of_the_same_conversation_is_not_a_replay(
    client: TestClient, store: SessionStore
) -> None:
    """Another signature (a later timestamp) is another delivery: it is handled, and the
    results, already kept, are not written again."""
    now = int(time.time())
    assert post(client, *delivery("conv_own", at=now - 10)) == {"result": "stored"}
    assert post(client, *delivery("conv_own", at=now)) == {"result": "duplicate"}


def test_a_delivery_that_failed_is_handled_when_resent(
    client: TestClient, store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw, headers = delivery("conv_own")
    with monkeypatch.context() as patch:

        def unreachable(conversation_id: str) -> str | None:
            raise ConnectionError("dynamodb unreachable")

        patch.setattr(store, "session_for_conversation", unreachable)
        assert client.post("/webhooks/elevenlabs", content=raw, headers=headers).status_code == 500

    assert post(client, raw, headers) == {"result": "stored"}
    assert store.require("s1").results["conversation_id"] == "conv_own"


def test_a_post_call_webhook_for_another_conversation_cannot_store_results_on_the_session(
    client: TestClient, store: SessionStore
) -> None:
    """An index entry leads ``conv_other`` to s1 (as a second media stream's conversation was
    indexed before streams were claimed): its results are refused, the session's own are
    kept."""
    store.index_conversation("conv_other", "s1")
    assert post(client, *delivery("conv_other")) == {
        "result": "ignored: not the session's conversation"
    }
    assert store.require("s1").results == {}

    assert post(client, *delivery("conv_own")) == {"result": "stored"}
    assert store.require("s1").results["conversation_id"] == "conv_own"


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The API with a 2 KB general body limit and a 200 KB post-call limit."""
    environment = {
        "CALLFLOW_ELEVENLABS_WEBHOOK_SECRET": SECRET,
        "CALLFLOW_TABLE_NAME": TABLE,
        "AWS_DEFAULT_REGION": "us-east-1",
        "CALLFLOW_MAX_BODY_BYTES": "2048",
        "CALLFLOW_ELEVENLABS_MAX_BODY_BYTES": "200000",
    }
    with mock_aws():
        create_table(TABLE, "us-east-1")
        with api_client(monkeypatch, environment) as client:
            yield client


def signed(body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    signature = sign_webhook(raw, SECRET, int(time.time()))
    return raw, {SIGNATURE_HEADER: signature, "Content-Type": "application/json"}


def test_a_transcription_larger_than_the_general_body_limit_is_accepted(
    small_limits: TestClient,
) -> None:
    long_turns = [
        {"role": "user", "message": "word " * 200, "time_in_call_secs": i} for i in range(100)
    ]
    raw, headers = signed(post_call(**conversation(transcript=long_turns)))
    assert 2048 < len(raw) < 200000
    assert post(small_limits, raw, headers) == {"result": "ignored: unknown conversation"}


def test_an_audio_delivery_is_acknowledged_after_its_signature_without_parsing(
    small_limits: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {
        "type": "post_call_audio",
        "event_timestamp": 1790000020,
        "data": {"conversation_id": "conv_x", "full_audio": "UklGR" * 30000},
    }
    raw, headers = signed(body)

    def no_parse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the audio body was parsed")

    monkeypatch.setattr("callflow.providers.elevenlabs.client.parse_signed", no_parse)
    assert post(small_limits, raw, headers) == {"result": "ignored: post_call_audio"}


def test_an_unsigned_audio_delivery_is_refused(small_limits: TestClient) -> None:
    raw = json.dumps({"type": "post_call_audio", "data": {}}).encode()
    response = small_limits.post(
        "/webhooks/elevenlabs", content=raw, headers={SIGNATURE_HEADER: "t=1,v0=00"}
    )
    assert response.status_code == 401


def test_an_event_type_added_later_is_acknowledged(small_limits: TestClient) -> None:
    raw, headers = signed({"type": "post_call_summary", "event_timestamp": 1, "data": {}})
    assert post(small_limits, raw, headers) == {"result": "ignored: post_call_summary"}


def test_an_unknown_type_that_is_not_the_first_key_is_acknowledged_too(
    small_limits: TestClient,
) -> None:
    raw, headers = signed({"event_timestamp": 1, "data": {}, "type": "post_call_summary"})
    assert post(small_limits, raw, headers) == {"result": "ignored: post_call_summary"}


def test_a_post_call_body_over_its_own_limit_is_a_413(small_limits: TestClient) -> None:
    raw, headers = signed({"type": "post_call_audio", "data": {"full_audio": "A" * 210000}})
    response = small_limits.post("/webhooks/elevenlabs", content=raw, headers=headers)
    assert response.status_code == 413

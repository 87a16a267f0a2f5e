"""Per-session media routing: a media-stream config per call attempt, its URL carrying the
session id and token; deleted on every end path; swept when left behind; within a creation
budget shared by every Lambda, with the shared config to fall back on."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from pydantic import SecretStr

from callflow.config import Settings
from callflow.lifecycle import call_events, calling, media_configs, writeback
from callflow.lifecycle.call_events import handle
from callflow.models import Session, SessionStatus, hash_token
from callflow.providers.errors import ProviderRejected, RetryableProviderError
from callflow.providers.infobip.calls import CallInfo, DialogInfo, InfobipClient
from callflow.providers.infobip.events import InfobipEvent, parse_event
from callflow.services import Services
from callflow.store import SessionStore
from callflow_bridge.protocol import Upgrade, parse_connected
from callflow_dev.local.aws import create_table
from tests.unit.aws_faults import fail_calls
from tests.unit.infobip_fixtures import example

BRIDGE = "wss://bridge.example.com/path-secret"
PHONE_CALL = "call-1"


@dataclass
class FakeInfobip:
    """The Calls API routes the routing uses, in memory, as strict as Infobip where it
    matters here: a dialog to a config that does not exist (deleted) is refused."""

    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    fail_deletes: int = 0
    """Deletions answered 503 before the next one succeeds."""
    refuse_creations: int = 0
    """The status creations are answered with (429: Infobip's own limit); 0 creates."""
    placing_fails: Exception | None = None
    placed: list[dict[str, Any]] = field(default_factory=list)
    dialogs: list[dict[str, Any]] = field(default_factory=list)
    hung_up: list[str] = field(default_factory=list)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)

    def create_media_stream_config(self, name: str, url: str, sample_rate: int) -> str:
        if self.refuse_creations:
            raise RetryableProviderError(
                "infobip", "Too many requests", status=self.refuse_creations
            )
        config_id = f"config-{len(self.created) + 1}"
        config = {"id": config_id, "name": name, "url": url, "sampleRate": str(sample_rate)}
        self.created.append(config)
        self.configs[config_id] = config
        return config_id

    def delete_media_stream_config(self, config_id: str) -> bool:
        if self.fail_deletes:
            self.fail_deletes -= 1
            raise RetryableProviderError("infobip", "503", status=503)
        self.deleted.append(config_id)
        return self.configs.pop(config_id, None) is not None

    def list_media_stream_configs(self) -> list[dict[str, Any]]:
        return list(self.configs.values())

    def place_call(
        self,
        phone_number: str,
        *,
        custom_data: dict[str, str],
        external_id: str,
        caller_id: str = "",
        machine_detection: bool | None = None,
    ) -> CallInfo:
        if self.placing_fails is not None:
            raise self.placing_fails
        self.placed.append({"to": phone_number, "custom_data": custom_data})
        return CallInfo(id=f"call-{len(self.placed)}", state="CALLING")

    def hangup_call(self, call_id: str, error_code: str = "") -> bool:
        self.hung_up.append(call_id)
        return True

    def get_call(self, call_id: str) -> dict[str, Any]:
        if call_id not in self.calls:
            raise ProviderRejected("infobip", "call not found", status=404)
        return self.calls[call_id]

    def find_dialog(self, parent_call_id: str) -> DialogInfo | None:
        return None

    def create_dialog(
        self, parent_call_id: str, *, custom_data: dict[str, str], config_id: str = ""
    ) -> DialogInfo:
        if config_id and config_id not in self.configs:
            raise ProviderRejected("infobip", "no media-stream config has this id", status=400)
        self.dialogs.append({"parent": parent_call_id, "custom": custom_data, "config": config_id})
        return DialogInfo(id=f"dialog-{len(self.dialogs)}", state="CREATED")


@dataclass
class FakeSfn:
    resumed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def send_task_success(self, *, taskToken: str, output: str) -> None:
        self.resumed[taskToken] = json.loads(output)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        create_table("media", "us-east-1")
        yield


def build(**overrides: Any) -> Services:
    values: dict[str, Any] = {
        "table_name": "media",
        "aws_region": "us-east-1",
        "default_timezone": "America/Los_Angeles",
        "infobip_media_routing": "per-session",
        "bridge_public_url": BRIDGE,
        "infobip_sample_rate": 16000,
    }
    services = Services(Settings(**{**values, **overrides}))
    services.__dict__["infobip"] = FakeInfobip()
    services.__dict__["sfn"] = FakeSfn()
    return services


@pytest.fixture
def services(aws: None) -> Services:
    return build()


def fake(services: Services) -> FakeInfobip:
    infobip = services.infobip
    assert isinstance(infobip, FakeInfobip)
    return infobip


def placed(services: Services, session_id: str = "s1") -> Session:
    """A session whose first attempt was placed (``call-1``, ... in placing order)."""
    if services.store.get(session_id) is None:
        services.store.create(
            Session(
                session_id=session_id,
                module="Leads",
                record_id="42",
                phone="+14155550100",
                phone_raw="+14155550100",
            )
        )
    answer = calling.place_call(services, {"session_id": session_id}, f"task-{session_id}")
    assert answer["placed"] is True
    return services.store.require(session_id)


def answered(services: Services, session: Session) -> Session:
    moved = services.store.advance(
        session.session_id,
        SessionStatus.IN_CALL,
        attempt=session.attempt,
        fields={"call_state": "ESTABLISHED", "call_answered_at": "2026-12-02T10:00:00.000Z"},
        same_attempt=True,
    )
    assert moved is not None
    return moved


def phone_event(kind: str, session: Session) -> InfobipEvent:
    """An example Infobip event of the session's phone call and attempt."""
    body = example(kind)
    body["callId"] = session.call_id
    props = body["properties"]
    for holder in (props.get("callLog"), props.get("call"), props):
        if isinstance(holder, dict) and "customData" in holder:
            holder["customData"] = {"session_id": session.session_id, "attempt": "1"}
            break
    if "dialog" in props:
        props["dialog"]["parentCall"]["customData"] = {
            "session_id": session.session_id,
            "attempt": "1",
        }
    return parse_event(body)


# --- a config per attempt ------------------------------------------------------------------


def test_placing_creates_the_attempts_config_whose_url_path_names_the_session_and_token(
    services: Services,
) -> None:
    before = int(time.time())
    session = placed(services)

    [config] = fake(services).created
    assert session.media_config_id == config["id"]
    assert config["sampleRate"] == "16000"
    name = re.fullmatch(r"callflow-s-s1-(\d+)", config["name"])
    assert name is not None and before <= int(name.group(1)) <= int(time.time())
    assert config["url"].startswith(f"{BRIDGE}/s1/")
    # The bridge reads the path under its secret segment, whatever the frame carries.
    target = config["url"].removeprefix("wss://bridge.example.com")
    frame = json.dumps({"event": "websocket:connected", "content-type": "audio/l16;rate=16000"})
    connected = parse_connected(frame, Upgrade.from_request(target, "/path-secret", []))
    assert (connected.session_id, connected.found_in) == ("s1", "path")
    assert session.bridge_token_hash == hash_token(connected.token)


def test_each_attempt_gets_its_own_config_and_token(services: Services) -> None:
    first = placed(services)
    services.store.advance("s1", SessionStatus.CALL_ENDED, attempt=1, same_attempt=True)

    second = placed(services)

    assert second.attempt == 2
    assert second.media_config_id != first.media_config_id
    assert second.bridge_token_hash != first.bridge_token_hash
    assert list(fake(services).configs) == [second.media_config_id]


def test_shared_routing_creates_no_config(aws: None) -> None:
    services = build(infobip_media_routing="shared", infobip_media_stream_config_id="shared-1")

    session = placed(services)

    assert fake(services).created == []
    assert session.media_config_id == ""


def test_the_dialog_goes_to_the_attempts_config_and_reuses_its_token(services: Services) -> None:
    session = answered(services, placed(services))

    assert call_events.connect_bridge(services, "s1", 1, session.call_id) == "dialog created"

    [dialog] = fake(services).dialogs
    assert dialog["config"] == session.media_config_id
    assert "bridge_token" not in dialog["custom"]
    assert services.store.require("s1").bridge_token_hash == session.bridge_token_hash


# --- deleted on every end path ---------------------------------------------------------------


def test_the_call_end_event_deletes_the_attempts_config(services: Services) -> None:
    session = answered(services, placed(services))

    assert handle(services, phone_event("finished after a conversation", session)).startswith(
        "call ended"
    )

    assert fake(services).deleted == [session.media_config_id]
    assert services.store.require("s1").media_config_id == ""


def test_an_unanswered_call_end_deletes_the_attempts_config(services: Services) -> None:
    session = placed(services)

    assert handle(services, phone_event("busy", session)) == "call ended: busy"

    assert fake(services).configs == {}


def test_a_failed_dialog_hangs_up_and_deletes_the_attempts_config(services: Services) -> None:
    session = answered(services, placed(services))

    assert handle(services, phone_event("dialog failed", session)) == "DIALOG_FAILED: hung up"

    assert fake(services).hung_up == [session.call_id]
    assert fake(services).configs == {}


def test_a_refused_dialog_hangs_up_and_deletes_the_attempts_config(services: Services) -> None:
    session = answered(services, placed(services))
    fake(services).configs.clear()  # gone at Infobip: the dialog to it is refused

    outcome = call_events.connect_bridge(services, "s1", 1, session.call_id)

    assert outcome.startswith("dialog refused")
    assert fake(services).hung_up == [session.call_id]
    assert fake(services).deleted == [session.media_config_id]
    assert services.store.require("s1").media_config_id == ""


def test_a_call_that_cannot_be_placed_deletes_the_config_made_for_it(services: Services) -> None:
    fake(services).placing_fails = RetryableProviderError("infobip", "502", status=502)
    services.store.create(
        Session(session_id="s1", module="Leads", record_id="42", phone="+14155550100")
    )

    with pytest.raises(RetryableProviderError):
        calling.place_call(services, {"session_id": "s1"}, "task-1")

    [config] = fake(services).created
    assert fake(services).deleted == [config["id"]]
    assert services.store.require("s1").media_config_id == ""


def test_a_config_that_could_not_be_stored_on_the_session_is_deleted_at_once(
    services: Services,
) -> None:
    services.store.create(
        Session(session_id="s1", module="Leads", record_id="42", phone="+14155550100")
    )
    client = services.store.table.meta.client
    fail_calls(
        client,
        "UpdateItem",
        "ProvisionedThroughputExceededException",
        times=1,
        when=lambda body: "config-1" in json.dumps(body),  # storing the new config's id
    )

    with pytest.raises(ClientError):
        calling.place_call(services, {"session_id": "s1"}, "task-1")

    [config] = fake(services).created
    assert fake(services).deleted == [config["id"]]
    assert fake(services).placed == []


def test_reconciliation_deletes_the_attempts_config(services: Services) -> None:
    session = placed(services)
    fake(services).calls[session.call_id] = {"id": session.call_id, "state": "NO_ANSWER"}

    calling.reconcile(services, session)

    assert fake(services).configs == {}
    assert services.store.require("s1").media_config_id == ""


def test_a_delete_that_fails_stays_on_the_session_for_the_writebacks_sweep(
    services: Services,
) -> None:
    session = placed(services)
    fake(services).fail_deletes = 1

    handle(services, phone_event("busy", session))

    assert services.store.require("s1").media_config_id == session.media_config_id
    assert session.media_config_id in fake(services).configs
    writeback.mark_failed(services, "s1", {"Error": "States.Timeout"})
    assert fake(services).configs == {}
    assert services.store.require("s1").media_config_id == ""


def test_a_writeback_step_deletes_a_config_still_on_the_session(services: Services) -> None:
    session = placed(services)
    services.store.advance("s1", SessionStatus.COMPLETED)

    writeback.write_step(services, "s1", "fields")

    assert fake(services).deleted == [session.media_config_id]


# --- the sweeper ---------------------------------------------------------------------------


def test_the_sweeper_deletes_only_per_session_configs_older_than_a_call_can_live(
    services: Services,
) -> None:
    now = 1_800_000_000
    age = media_configs.max_age_seconds(services.settings)
    assert age == 40 + 900 + 600
    infobip = fake(services)
    for config_id, name in {
        "old": f"callflow-s-s1-{now - age - 1}",
        "young": f"callflow-s-s2-{now - age + 60}",
        "shared": "callflow-local",
        "no-time": "callflow-s-s3-later",
        "other-app": f"ivr-{now - 10 * age}",
    }.items():
        infobip.configs[config_id] = {"id": config_id, "name": name, "type": "WEBSOCKET_ENDPOINT"}

    assert media_configs.sweep(services, now=now) == {"deleted": 1, "failed": 0, "kept": 1}

    assert infobip.deleted == ["old"]
    assert sorted(infobip.configs) == ["no-time", "other-app", "shared", "young"]


def test_a_config_the_sweeper_cannot_delete_is_left_for_its_next_run(services: Services) -> None:
    now = 1_800_000_000
    infobip = fake(services)
    infobip.configs["old"] = {"id": "old", "name": f"callflow-s-s1-{now - 86400}"}
    infobip.fail_deletes = 1

    assert media_configs.sweep(services, now=now) == {"deleted": 0, "failed": 1, "kept": 0}
    assert media_configs.sweep(services, now=now) == {"deleted": 1, "failed": 0, "kept": 0}
    assert infobip.configs == {}


# --- the creation budget -------------------------------------------------------------------


def test_config_creations_are_counted_once_for_every_lambda_per_minute(aws: None) -> None:
    clock = [1_800_000_020.0]
    lambdas = [SessionStore("media", "us-east-1", clock=lambda: clock[0]) for _ in range(2)]

    taken = [lambdas[i % 2].take_slot("configs", 3, 60) for i in range(4)]
    assert taken == [True, True, True, False]

    clock[0] += 60
    assert lambdas[1].take_slot("configs", 3, 60) is True


def test_with_the_budget_used_up_the_attempt_falls_back_to_the_shared_config(aws: None) -> None:
    services = build(
        infobip_config_creations_per_minute=1, infobip_media_stream_config_id="shared-1"
    )
    placed(services, "s1")

    second = answered(services, placed(services, "s2"))

    assert len(fake(services).created) == 1
    assert second.media_config_id == ""
    assert call_events.connect_bridge(services, "s2", 1, second.call_id) == "dialog created"
    [dialog] = fake(services).dialogs
    assert dialog["config"] == ""  # the client sends the shared config's id
    token = dialog["custom"]["bridge_token"]
    assert services.store.require("s2").bridge_token_hash == hash_token(token)


@pytest.mark.parametrize(("shared", "falls_back"), [("shared-1", True), ("", False)])
def test_infobips_own_429_falls_back_like_our_budget(
    aws: None, shared: str, falls_back: bool
) -> None:
    services = build(infobip_media_stream_config_id=shared)
    fake(services).refuse_creations = 429
    services.store.create(
        Session(session_id="s1", module="Leads", record_id="42", phone="+14155550100")
    )

    if falls_back:
        calling.place_call(services, {"session_id": "s1"}, "task-1")
        assert services.store.require("s1").media_config_id == ""
        assert len(fake(services).placed) == 1
    else:
        with pytest.raises(RetryableProviderError):
            calling.place_call(services, {"session_id": "s1"}, "task-1")
        assert fake(services).placed == []


def test_a_server_error_creating_the_config_is_not_a_fallback(aws: None) -> None:
    services = build(infobip_media_stream_config_id="shared-1")
    fake(services).refuse_creations = 503
    services.store.create(
        Session(session_id="s1", module="Leads", record_id="42", phone="+14155550100")
    )

    with pytest.raises(RetryableProviderError):  # the workflow retries; a lost one is swept
        calling.place_call(services, {"session_id": "s1"}, "task-1")
    assert fake(services).placed == []


def test_with_the_budget_used_up_and_no_shared_config_the_attempt_fails_retryably(
    aws: None,
) -> None:
    services = build(infobip_config_creations_per_minute=1)
    placed(services, "s1")
    services.store.create(
        Session(session_id="s2", module="Leads", record_id="43", phone="+14155550101")
    )

    with pytest.raises(RetryableProviderError) as refused:
        calling.place_call(services, {"session_id": "s2"}, "task-s2")

    assert refused.value.code == media_configs.BUDGET_EXHAUSTED
    assert len(fake(services).placed) == 1  # s2 was not dialled
    stuck = services.store.require("s2")
    assert (stuck.status, stuck.call_id) == (SessionStatus.DIALING, "")  # the retry redials it
    # The workflow's retries ran out: the outcome says why.
    error = {
        "Error": "RetryableProviderError",
        "Cause": json.dumps({"errorMessage": str(refused.value)}),
    }
    calling.plan_retry(services, {"session_id": "s2", "error": error})
    failed = services.store.require("s2")
    assert failed.outcome is not None and failed.outcome.value == "failed"
    assert "media-stream config creations" in failed.outcome_detail


# --- the client ----------------------------------------------------------------------------


def test_the_client_deletes_a_config_and_treats_an_unknown_one_as_deleted() -> None:
    seen: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.url.path.endswith("/gone"):
            not_found = {"serviceException": {"messageId": "NOT_FOUND", "text": "Not found"}}
            return httpx.Response(404, json={"requestError": not_found})
        return httpx.Response(200, json={"id": "c-1", "type": "WEBSOCKET_ENDPOINT", "name": "n"})

    settings = Settings(
        infobip_base_url="https://x.api.infobip.com", infobip_api_key=SecretStr("k")
    )
    client = InfobipClient(settings, httpx.Client(transport=httpx.MockTransport(answer)))

    assert client.delete_media_stream_config("c-1") is True
    assert client.delete_media_stream_config("gone") is False
    assert seen == [
        ("DELETE", "/calls/1/media-stream-configs/c-1"),
        ("DELETE", "/calls/1/media-stream-configs/gone"),
    ]

"""The Infobip stand-in: phone behaviours become the right events at a webhook with Basic auth,
duplicates and reordering on demand, API auth and validation as documented, dialogs to a
WebSocket bridge."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from callflow.config import Settings
from callflow.models import Outcome
from callflow.providers.errors import RetryableProviderError
from callflow.providers.infobip.calls import InfobipClient
from callflow.providers.infobip.events import parse_event
from callflow_dev.local.servers import AsgiServer
from callflow_dev.sandbox import phone_network as net
from callflow_dev.sandbox.infobip import InfobipSandbox
from tests.unit.infobip_fixtures import (
    API_KEY,
    CALLS_CONFIGURATION_ID,
    WEBHOOK_PASSWORD,
    WEBHOOK_USER,
    Receiver,
    event_pointer,
    voice_spec,
)

NUMBER = "+41792036727"
SCALE = 0.01
"""Simulated seconds to real: a 30 s connect timeout takes 0.3 s."""


@dataclass
class Env:
    sandbox: InfobipSandbox
    receiver: Receiver
    client: InfobipClient
    api: httpx.Client
    hooks_url: str
    bridge_url: str

    def place(self, number: str = NUMBER, session_id: str = "s-1", **settings: Any) -> str:
        client = self.client
        if settings:
            client = InfobipClient(self.client._settings.model_copy(update=settings))
        call = client.place_call(
            number, custom_data={"session_id": session_id, "attempt": "1"}, external_id="x"
        )
        return call.id

    def ended_events(self, call_id: str) -> list[dict[str, Any]]:
        self.receiver.wait_for_end(call_id)
        with self.receiver.lock:
            return [e for e in self.receiver.events if e["callId"] == call_id]


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[Receiver, AsgiServer]]:
    receiver = Receiver()
    with AsgiServer(receiver.app()) as server:
        yield receiver, server


def _env(hooks: tuple[Receiver, AsgiServer], **options: Any) -> Iterator[Env]:
    receiver, server = hooks
    sandbox = InfobipSandbox(API_KEY, time_scale=SCALE, **options)
    with AsgiServer(sandbox.app, lifespan="on") as api_server:
        settings = Settings(
            infobip_base_url=api_server.url,
            infobip_api_key=SecretStr(API_KEY),
            infobip_calls_configuration_id=CALLS_CONFIGURATION_ID,
            infobip_connect_timeout=30,
            infobip_max_duration=300,
        )
        with (
            InfobipClient(settings) as client,
            httpx.Client(base_url=api_server.url, timeout=5) as api,
        ):
            yield Env(
                sandbox,
                receiver,
                client,
                api,
                f"{server.url}/events",
                f"ws://127.0.0.1:{server.port}/bridge",
            )


def _with_webhook(hooks: tuple[Receiver, AsgiServer], **options: Any) -> Iterator[Env]:
    url = f"{hooks[1].url}/events"
    yield from _env(
        hooks,
        events_url=url,
        events_username=WEBHOOK_USER,
        events_password=WEBHOOK_PASSWORD,
        **options,
    )


@pytest.fixture
def env(hooks: tuple[Receiver, AsgiServer]) -> Iterator[Env]:
    yield from _with_webhook(hooks)


APP_AUTH = {"Authorization": f"App {API_KEY}"}


@pytest.mark.parametrize(
    ("behaviour", "detection", "types", "error", "outcome"),
    [
        (
            net.answer(after_s=1, hangup_after_s=5),
            False,
            ["CALL_RINGING", "CALL_PRE_ESTABLISHED", "CALL_ESTABLISHED", "CALL_FINISHED"],
            "NORMAL_HANGUP",
            Outcome.ANSWERED,
        ),
        (
            net.answer(after_s=1, hangup_after_s=5),
            True,
            [
                "CALL_RINGING",
                "CALL_PRE_ESTABLISHED",
                "CALL_ESTABLISHED",
                "MACHINE_DETECTION_FINISHED",
                "CALL_FINISHED",
            ],
            "NORMAL_HANGUP",
            Outcome.ANSWERED,
        ),
        (net.no_answer(), False, ["CALL_RINGING", "CALL_FAILED"], "NO_ANSWER", Outcome.NO_ANSWER),
        (net.busy(), False, ["CALL_FAILED"], "BUSY", Outcome.BUSY),
        (
            net.reject(after_s=1),
            False,
            ["CALL_RINGING", "CALL_FAILED"],
            "REJECTED",
            Outcome.REJECTED,
        ),
        (net.unreachable(), False, ["CALL_FAILED"], "DESTINATION_UNAVAILABLE", Outcome.FAILED),
        (
            net.voicemail(after_s=1, hangup_after_s=5),
            True,
            [
                "CALL_RINGING",
                "CALL_PRE_ESTABLISHED",
                "CALL_ESTABLISHED",
                "MACHINE_DETECTION_FINISHED",
                "CALL_FINISHED",
            ],
            "NORMAL_HANGUP",
            Outcome.MACHINE,
        ),
    ],
    ids=["answer", "answer+detection", "no_answer", "busy", "reject", "unreachable", "voicemail"],
)
def test_each_phone_behaviour_sends_its_event_sequence(
    env: Env,
    behaviour: net.Behaviour,
    detection: bool,
    types: list[str],
    error: str,
    outcome: Outcome,
) -> None:
    env.sandbox.set_behaviour(NUMBER, [behaviour])

    call_id = env.place(infobip_machine_detection=detection)

    events = env.ended_events(call_id)
    assert [e["type"] for e in events] == types
    parsed = [parse_event(e) for e in events]
    assert all(p.session_id == "s-1" and p.attempt == 1 for p in parsed)
    assert parsed[-1].error_name == error
    assert parsed[-1].outcome() is outcome
    if detection:
        expected = "MACHINE" if behaviour.kind == "voicemail" else "HUMAN"
        assert parsed[types.index("MACHINE_DETECTION_FINISHED")].detection_result == expected


def test_a_numbers_behaviours_apply_one_per_call_and_the_last_repeats(env: Env) -> None:
    env.sandbox.set_behaviour(NUMBER, [net.busy(), net.answer(after_s=0, hangup_after_s=1)])

    outcomes = []
    for attempt in range(3):
        call_id = env.place(session_id=f"s-{attempt}")
        outcomes.append(parse_event(env.ended_events(call_id)[-1]).outcome())

    assert outcomes == [Outcome.BUSY, Outcome.ANSWERED, Outcome.ANSWERED]
    assert env.sandbox.network.calls_to(NUMBER) == 3


@pytest.mark.parametrize("behaviour", [net.answer(after_s=45), net.reject(after_s=45)])
def test_a_phone_that_rings_past_the_connect_timeout_is_not_answered(
    env: Env, behaviour: net.Behaviour
) -> None:
    env.sandbox.set_behaviour(NUMBER, [behaviour])

    call_id = env.place()

    last = parse_event(env.ended_events(call_id)[-1])
    assert (last.type, last.error_name, last.outcome()) == (
        "CALL_FAILED",
        "NO_ANSWER",
        Outcome.NO_ANSWER,
    )


def test_duplicate_events_sends_every_event_twice(hooks: tuple[Receiver, AsgiServer]) -> None:
    for env in _with_webhook(hooks, duplicate_events=True):
        env.sandbox.set_behaviour(NUMBER, [net.reject(after_s=1)])
        call_id = env.place()

        assert [e["type"] for e in env.ended_events(call_id)] == [
            "CALL_RINGING",
            "CALL_RINGING",
            "CALL_FAILED",
            "CALL_FAILED",
        ]


def test_reorder_events_delivers_later_events_first(hooks: tuple[Receiver, AsgiServer]) -> None:
    for env in _with_webhook(hooks, reorder_events=True):
        env.sandbox.set_behaviour(NUMBER, [net.answer(after_s=1, hangup_after_s=3)])
        call_id = env.place()

        env.receiver.wait_for(lambda: len(env.receiver.types_for(call_id)) == 4)  # noqa: B023
        assert env.receiver.types_for(call_id) == [
            "CALL_ESTABLISHED",
            "CALL_PRE_ESTABLISHED",
            "CALL_RINGING",
            "CALL_FINISHED",
        ]


def test_events_go_to_a_voice_video_subscription_with_basic_auth(
    hooks: tuple[Receiver, AsgiServer],
) -> None:
    for env in _env(hooks):
        subscription = {
            "subscriptionId": "callflow-calls",
            "name": "callflow call events",
            "events": ["CALL_RINGING", "CALL_FAILED", "CALL_FINISHED"],
            "criteria": [{"callsConfigurationId": CALLS_CONFIGURATION_ID}],
            "profile": {
                "profileId": "callflow-profile",
                "webhook": {"notifyUrl": env.hooks_url},
                "security": {
                    "authId": "callflow-basic",
                    "type": "BASIC",
                    "credentials": {"username": WEBHOOK_USER, "password": WEBHOOK_PASSWORD},
                },
            },
        }
        created = env.api.post(
            "/subscriptions/1/subscription/VOICE_VIDEO", json=subscription, headers=APP_AUTH
        )
        assert created.status_code == 201
        assert created.json() == {
            "subscriptionId": "callflow-calls",
            "profile": {"profileId": "callflow-profile", "security": {"authId": "callflow-basic"}},
        }
        env.sandbox.set_behaviour(NUMBER, [net.reject(after_s=0.5)])

        subscribed = env.place()
        other = env.place(infobip_calls_configuration_id="another-configuration")

        assert [e["type"] for e in env.ended_events(subscribed)] == [
            "CALL_RINGING",
            "CALL_FAILED",
        ]
        env.receiver.wait_for(env.sandbox.calls[other].delivered.is_set)
        assert env.receiver.types_for(other) == []


def test_a_profile_can_reference_security_created_before(env: Env) -> None:
    security = {
        "authId": "basic-1",
        "type": "BASIC",
        "credentials": {"username": "u", "password": "p"},
    }
    assert env.api.post("/subscriptions/1/security", json=security, headers=APP_AUTH).json() == {
        "authId": "basic-1"
    }
    profile = {
        "profileId": "p-1",
        "webhook": {"notifyUrl": env.hooks_url},
        "security": {"authId": "basic-1"},
    }

    answer = env.api.post("/subscriptions/1/profiles", json=profile, headers=APP_AUTH)

    assert answer.status_code == 201
    assert answer.json() == {"profileId": "p-1", "security": {"authId": "basic-1"}}
    shown = env.api.get("/subscriptions/1/profiles/p-1", headers=APP_AUTH).json()
    assert shown == {
        "profileId": "p-1",
        "security": {"authId": "basic-1"},
        "webhook": {"notifyUrl": env.hooks_url, "contentType": "application/json"},
    }
    assert env.api.get("/subscriptions/1/profiles/p-2", headers=APP_AUTH).status_code == 404


def _subscribe(env: Env, notify_url: str) -> None:
    subscription = {
        "subscriptionId": "sub-1",
        "name": "calls",
        "events": ["CALL_FAILED"],
        "profile": {
            "profileId": "profile-1",
            "webhook": {"notifyUrl": notify_url},
            "security": {
                "authId": "auth-1",
                "type": "BASIC",
                "credentials": {"username": WEBHOOK_USER, "password": WEBHOOK_PASSWORD},
            },
        },
    }
    answer = env.api.post(
        "/subscriptions/1/subscription/VOICE_VIDEO", json=subscription, headers=APP_AUTH
    )
    assert answer.status_code == 201


def test_subscriptions_are_listed_per_channel_with_paging(
    hooks: tuple[Receiver, AsgiServer],
) -> None:
    for env in _env(hooks):
        _subscribe(env, env.hooks_url)

        listed = env.api.get("/subscriptions/1/subscription/VOICE_VIDEO", headers=APP_AUTH)
        other = env.api.get("/subscriptions/1/subscription/SMS", headers=APP_AUTH)

        assert listed.json() == {
            "results": [
                {
                    "subscriptionId": "sub-1",
                    "name": "calls",
                    "profile": {"profileId": "profile-1", "security": {"authId": "auth-1"}},
                    "events": ["CALL_FAILED"],
                    "criteria": [],
                }
            ],
            "paging": {"page": 0, "size": 20, "totalPages": 1, "totalResults": 1},
        }
        assert other.json()["results"] == []


def test_updating_the_profile_moves_the_events_to_its_new_url(
    hooks: tuple[Receiver, AsgiServer],
) -> None:
    for env in _env(hooks):
        _subscribe(env, env.hooks_url.replace("/events", "/gone"))
        env.sandbox.set_behaviour(NUMBER, [net.busy()])
        lost = env.place()
        env.receiver.wait_for(env.sandbox.calls[lost].delivered.is_set)

        update = {"webhook": {"notifyUrl": env.hooks_url}, "security": {"authId": "auth-1"}}
        answer = env.api.put("/subscriptions/1/profiles/profile-1", json=update, headers=APP_AUTH)
        delivered = env.place()

        assert answer.json() == {"profileId": "profile-1", "security": {"authId": "auth-1"}}
        assert [e["type"] for e in env.ended_events(delivered)] == ["CALL_FAILED"]
        assert env.receiver.types_for(lost) == []
        assert [d.status for d in env.sandbox.deliveries if d.call_id == lost] == [404]


def test_a_webhook_refusing_the_credentials_is_not_retried(
    hooks: tuple[Receiver, AsgiServer],
) -> None:
    for env in _env(hooks):
        env.sandbox.add_webhook(env.hooks_url, WEBHOOK_USER, "wrong-password")
        env.sandbox.set_behaviour(NUMBER, [net.busy()])
        call_id = env.place()

        env.receiver.wait_for(
            lambda: any(d.call_id == call_id for d in env.sandbox.deliveries)  # noqa: B023
        )
        assert [(d.status, d.attempt) for d in env.sandbox.deliveries] == [(401, 1)]
        assert env.receiver.types_for(call_id) == []


def test_an_event_the_webhook_answers_503_to_is_delivered_again(env: Env) -> None:
    env.sandbox.set_behaviour(NUMBER, [net.busy()])
    env.receiver.unavailable_for = 1
    call_id = env.place()

    assert [e["type"] for e in env.ended_events(call_id)] == ["CALL_FAILED"]
    assert [(d.status, d.attempt) for d in env.sandbox.deliveries] == [(503, 1), (200, 2)]


def test_requests_without_the_app_key_get_the_documented_401(env: Env) -> None:
    for headers in ({}, {"Authorization": "App wrong"}, {"Authorization": f"Basic {API_KEY}"}):
        answer = env.api.post("/calls/1/calls", json={}, headers=headers)

        assert answer.status_code == 401
        assert answer.json() == {
            "requestError": {
                "serviceException": {"messageId": "UNAUTHORIZED", "text": "Unauthorized"}
            }
        }
    assert [r.authorized for r in env.sandbox.requests] == [False, False, False]


def test_a_numeric_sample_rate_is_refused_without_naming_a_field(env: Env) -> None:
    body = {
        "type": "WEBSOCKET_ENDPOINT",
        "name": "b",
        "url": "wss://b.example",
        "sampleRate": 16000,
    }

    answer = env.api.post("/calls/1/media-stream-configs", json=body, headers=APP_AUTH)

    assert answer.status_code == 400
    assert answer.json() == {
        "requestError": {"serviceException": {"messageId": "BAD_REQUEST", "text": "Bad request"}}
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"callsConfigurationId": "c"}, "endpoint"),
        (
            {"endpoint": {"type": "PHONE", "phoneNumber": "+4179"}, "callsConfigurationId": "c"},
            "endpoint.phoneNumber",
        ),
        ({"endpoint": {"type": "PHONE", "phoneNumber": "4179"}}, "callsConfigurationId"),
        (
            {
                "endpoint": {"type": "PHONE", "phoneNumber": "4179"},
                "callsConfigurationId": "c",
                "connectTimeout": 90,
            },
            "connectTimeout",
        ),
        (
            {
                "endpoint": {"type": "PHONE", "phoneNumber": "4179"},
                "callsConfigurationId": "c",
                "customData": {"attempt": 1},
            },
            "customData",
        ),
    ],
)
def test_an_invalid_call_request_gets_a_validation_error_naming_the_field(
    env: Env, body: dict[str, Any], field: str
) -> None:
    answer = env.api.post("/calls/1/calls", json=body, headers=APP_AUTH)

    assert answer.status_code == 400
    exception = answer.json()["requestError"]["serviceException"]
    assert exception["messageId"] == "BAD_REQUEST"
    assert list(exception["validationErrors"]) == [field]


def test_hanging_up_before_the_answer_cancels_the_call(env: Env) -> None:
    env.sandbox.set_behaviour(NUMBER, [net.no_answer()])
    call_id = env.place()

    assert env.client.hangup_call(call_id)

    last = parse_event(env.ended_events(call_id)[-1])
    assert (last.type, last.state, last.error_name, last.hangup_source) == (
        "CALL_FAILED",
        "CANCELLED",
        "CANCELLED",
        "API",
    )
    assert last.outcome() is Outcome.FAILED


def test_hanging_up_on_a_detected_machine_finishes_with_machine_detected(env: Env) -> None:
    """The cause is the one the hangup request names (``errorCode``), not guessed from
    detection: a plain hangup of a machine is a NORMAL_HANGUP at Infobip too."""
    env.sandbox.set_behaviour(NUMBER, [net.voicemail(after_s=0)])
    call_id = env.place(infobip_machine_detection=True)
    env.receiver.wait_for(lambda: "MACHINE_DETECTION_FINISHED" in env.receiver.types_for(call_id))

    assert env.client.hangup_call(call_id, error_code="MACHINE_DETECTED")

    last = parse_event(env.ended_events(call_id)[-1])
    assert (last.type, last.error_name, last.hangup_source) == (
        "CALL_FINISHED",
        "MACHINE_DETECTED",
        "API",
    )
    assert last.outcome() is Outcome.MACHINE


def _config(env: Env, rate: int = 16000) -> str:
    return env.client.create_media_stream_config("bridge", env.bridge_url, rate)


def _answered(env: Env, session_id: str) -> str:
    env.sandbox.set_behaviour(NUMBER, [net.answer(after_s=0)])
    call_id = env.place(session_id=session_id)
    env.receiver.wait_for(lambda: "CALL_ESTABLISHED" in env.receiver.types_for(call_id))
    return call_id


def test_a_dialog_connects_the_child_call_to_the_bridge_and_ends_the_call_with_it(
    env: Env,
) -> None:
    config_id = _config(env)
    call_id = _answered(env, "dialog-1")
    client = InfobipClient(
        env.client._settings.model_copy(update={"infobip_media_stream_config_id": config_id})
    )

    dialog = client.create_dialog(
        call_id, custom_data={"session_id": "dialog-1", "bridge_token": "tok", "attempt": "1"}
    )

    events = env.ended_events(call_id)
    first = next(f for f in env.receiver.first_frames if f.get("session_id") == "dialog-1")
    assert first == {
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=16000",
        "session_id": "dialog-1",
        "bridge_token": "tok",
        "attempt": "1",
    }
    finished = parse_event(events[-1])
    assert (finished.type, finished.error_name, finished.dialog_id) == (
        "CALL_FINISHED",
        "NORMAL_HANGUP",
        dialog.id,
    )
    assert finished.outcome() is Outcome.ANSWERED
    assert env.receiver.closed_by_caller["dialog-1"] is False
    assert env.sandbox.dialogs[dialog.id].media_result.received_frames == 0
    assert len(env.sandbox.dialogs[dialog.id].media_result.sent) > 0
    assert "media connected" in [entry.what for entry in env.sandbox.call_log]


def test_hanging_up_the_dialog_closes_the_media_leg_and_finishes_the_call(env: Env) -> None:
    config_id = _config(env, 8000)
    call_id = _answered(env, "dialog-2")
    client = InfobipClient(
        env.client._settings.model_copy(update={"infobip_media_stream_config_id": config_id})
    )
    dialog = client.create_dialog(call_id, custom_data={"session_id": "dialog-2", "hold_s": "10"})
    env.receiver.wait_for(
        lambda: any(f.get("session_id") == "dialog-2" for f in env.receiver.first_frames)
    )

    assert client.hangup_dialog(dialog.id)

    finished = parse_event(env.ended_events(call_id)[-1])
    assert (finished.type, finished.hangup_source) == ("CALL_FINISHED", "API")
    env.receiver.wait_for(lambda: "dialog-2" in env.receiver.closed_by_caller)
    assert env.receiver.closed_by_caller["dialog-2"] is True
    first = next(f for f in env.receiver.first_frames if f.get("session_id") == "dialog-2")
    assert first["content-type"] == "audio/l16;rate=8000"


def test_a_dialog_needs_an_established_parent_call(env: Env) -> None:
    config_id = _config(env)
    env.sandbox.set_behaviour(NUMBER, [net.no_answer()])
    call_id = env.place()
    body = {
        "parentCallId": call_id,
        "childCallRequest": {
            "endpoint": {"type": "WEBSOCKET", "websocketEndpointConfigId": config_id}
        },
    }

    answer = env.api.post("/calls/1/dialogs", json=body, headers=APP_AUTH)

    assert answer.status_code == 400
    assert answer.json()["requestError"]["serviceException"]["messageId"] == "BAD_REQUEST"
    assert env.sandbox.dialogs == {}


def test_a_dialog_endpoint_identifier_must_be_a_string_and_is_shown_on_the_child_call(
    env: Env,
) -> None:
    config_id = _config(env)
    call_id = _answered(env, "dialog-4")
    endpoint: dict[str, object] = {
        "type": "WEBSOCKET",
        "websocketEndpointConfigId": config_id,
        "identifier": 7,
    }
    body = {"parentCallId": call_id, "childCallRequest": {"endpoint": endpoint}}

    refused = env.api.post("/calls/1/dialogs", json=body, headers=APP_AUTH)
    endpoint["identifier"] = "dialog-4.tok"
    created = env.api.post("/calls/1/dialogs", json=body, headers=APP_AUTH)

    assert refused.status_code == 400
    assert "childCallRequest.endpoint.identifier" in refused.text
    assert created.status_code in (200, 201), created.text
    assert created.json()["childCall"]["endpoint"]["identifier"] == "dialog-4.tok"


def test_the_call_log_tells_what_happened_to_each_call(env: Env) -> None:
    env.sandbox.set_behaviour(NUMBER, [net.busy()])
    call_id = env.place()
    env.ended_events(call_id)

    entries = [(e.what, e.detail) for e in env.sandbox.call_log if e.call_id == call_id]
    assert entries == [
        ("placed", {"to": "********727", "behaviour": "busy"}),
        ("failed", {"error": "BUSY"}),
        ("event CALL_FAILED", {}),
    ]


def test_child_call_events_report_the_websocket_leg_with_the_dialogs_custom_data(
    hooks: tuple[Receiver, AsgiServer],
) -> None:
    for env in _with_webhook(hooks, child_call_events=True):
        config_id = _config(env)
        call_id = _answered(env, "dialog-3")
        client = InfobipClient(
            env.client._settings.model_copy(update={"infobip_media_stream_config_id": config_id})
        )
        dialog = client.create_dialog(call_id, custom_data={"session_id": "dialog-3"})

        env.ended_events(call_id)
        child = [parse_event(e) for e in env.ended_events(dialog.child_call_id)]
        assert [(e.type, e.dialog_id, e.session_id) for e in child] == [
            ("CALL_ESTABLISHED", dialog.id, "dialog-3"),
            ("CALL_FINISHED", dialog.id, "dialog-3"),
        ]
        assert child[-1].outcome() is Outcome.ANSWERED
        assert env.receiver.types_for(call_id)[-1] == "CALL_FINISHED"


async def test_the_stand_in_runs_inside_the_callers_event_loop() -> None:
    sandbox = InfobipSandbox(API_KEY)  # real time: the busy signal comes 0.2 s after dialling
    sandbox.set_behaviour(NUMBER, [net.busy()])
    transport = httpx.ASGITransport(app=sandbox.app)
    body = {
        "endpoint": {"type": "PHONE", "phoneNumber": NUMBER.lstrip("+")},
        "callsConfigurationId": CALLS_CONFIGURATION_ID,
        "customData": {"session_id": "s-9"},
    }
    async with httpx.AsyncClient(transport=transport, base_url="http://infobip") as api:
        answer = await api.post("/calls/1/calls", json=body, headers=APP_AUTH)
        sent_before_answer = list(sandbox.events_sent)

        call = await sandbox.wait_finished(answer.json()["id"], timeout_s=5)

    assert answer.status_code == 201
    assert answer.json()["state"] == "CALLING"
    assert sent_before_answer == []
    assert call.state == "BUSY"
    assert sandbox.events_for(call.id) == ["CALL_FAILED"]
    await sandbox.aclose()


def test_a_plain_hangup_of_a_detected_machine_is_a_normal_hangup(env: Env) -> None:
    env.sandbox.set_behaviour(NUMBER, [net.voicemail(after_s=0)])
    call_id = env.place(infobip_machine_detection=True)
    env.receiver.wait_for(lambda: "MACHINE_DETECTION_FINISHED" in env.receiver.types_for(call_id))

    assert env.client.hangup_call(call_id)

    assert parse_event(env.ended_events(call_id)[-1]).error_name == "NORMAL_HANGUP"


@pytest.mark.parametrize(
    ("answered", "body"),
    [
        (False, {"errorCode": "MACHINE_DETECTED"}),
        (True, {"errorCode": "BUSY"}),
        (True, {"errorCode": "HUNG_UP"}),
    ],
)
def test_a_hangup_cause_against_the_specs_rules_is_refused(
    env: Env, answered: bool, body: dict[str, Any]
) -> None:
    behaviour = net.answer(after_s=0) if answered else net.no_answer()
    env.sandbox.set_behaviour(NUMBER, [behaviour])
    call_id = env.place()
    if answered:
        env.receiver.wait_for(lambda: "CALL_ESTABLISHED" in env.receiver.types_for(call_id))

    answer = env.api.post(f"/calls/1/calls/{call_id}/hangup", json=body, headers=APP_AUTH)

    assert answer.status_code == 400
    assert answer.json()["requestError"]["serviceException"]["messageId"] == "BAD_REQUEST"
    env.client.hangup_call(call_id)


def _media_client(env: Env) -> InfobipClient:
    config_id = _config(env)
    settings = env.client._settings.model_copy(update={"infobip_media_stream_config_id": config_id})
    return InfobipClient(settings)


def test_dialogs_are_listed_by_parent_call_and_a_misnamed_filter_filters_nothing(
    env: Env,
) -> None:
    client = _media_client(env)
    first, second = _answered(env, "list-1"), _answered(env, "list-2")
    made = [client.create_dialog(c, custom_data={"session_id": "x"}) for c in (first, second)]

    found = client.find_dialog(second)
    everything = env.api.get("/calls/1/dialogs", params={"callId": first}, headers=APP_AUTH)

    assert found is not None and found.id == made[1].id
    assert {d["id"] for d in everything.json()["results"]} == {d.id for d in made}
    spec = voice_spec()
    pointer = spec.response_schema_pointer("GET", "/calls/1/dialogs", 200)
    assert spec.problems(everything.json(), pointer) == []
    for call_id in (first, second):
        client.hangup_call(call_id)
    assert client.find_dialog(first) is None


def test_a_dialog_creation_can_lose_its_answer_after_doing_the_work(env: Env) -> None:
    client = _media_client(env)
    call_id = _answered(env, "lost-1")
    env.sandbox.lose_dialog_answers = 1

    with pytest.raises(RetryableProviderError):
        client.create_dialog(call_id, custom_data={"session_id": "lost-1"})

    found = client.find_dialog(call_id)
    assert found is not None and [found.id] == list(env.sandbox.dialogs)
    assert env.sandbox.lose_dialog_answers == 0
    client.hangup_call(call_id)


def test_a_failing_dialog_reports_dialog_failed_and_leaves_the_phone_call_up(env: Env) -> None:
    client = _media_client(env)
    call_id = _answered(env, "fails-1")
    env.sandbox.fail_dialogs = "the endpoint refused the connection"

    dialog = client.create_dialog(call_id, custom_data={"session_id": "fails-1"})
    env.receiver.wait_for(lambda: "DIALOG_FAILED" in env.receiver.types_for(call_id))
    assert env.sandbox.calls[call_id].ended.is_set() is False
    client.hangup_call(call_id)

    [failed] = [e for e in env.ended_events(call_id) if e["type"] == "DIALOG_FAILED"]
    assert voice_spec().problems(failed, event_pointer("DIALOG_FAILED")) == []
    parsed = parse_event(failed)
    assert (parsed.session_id, parsed.dialog_id) == ("fails-1", dialog.id)
    assert "refused the connection" in parsed.reason
    assert env.receiver.types_for(dialog.child_call_id) == []  # the leg never connected


@pytest.mark.parametrize("fails", [False, True])
def test_detection_can_overtake_the_answer_or_fail(env: Env, fails: bool) -> None:
    env.sandbox.detection_before_established = not fails
    env.sandbox.machine_detection_fails = "TIMEOUT" if fails else ""
    env.sandbox.set_behaviour(NUMBER, [net.answer(after_s=0, hangup_after_s=3)])
    call_id = env.place(infobip_machine_detection=True)

    events = env.ended_events(call_id)
    types = [e["type"] for e in events]

    if fails:
        [failed] = [e for e in events if e["type"] == "MACHINE_DETECTION_FAILED"]
        assert voice_spec().problems(failed, event_pointer("MACHINE_DETECTION_FAILED")) == []
        assert parse_event(failed).reason == "TIMEOUT"
        assert types.index("CALL_ESTABLISHED") < types.index("MACHINE_DETECTION_FAILED")
    else:
        assert types.index("MACHINE_DETECTION_FINISHED") < types.index("CALL_ESTABLISHED")


@pytest.mark.parametrize("forced", [False, True])
def test_the_websocket_legs_end_reports_first_when_it_ended_first_or_when_forced(
    env: Env, forced: bool
) -> None:
    """Infobip reports each leg: by default the leg that ended first reports first (here the
    phone call is hung up, so the phone leg); the variant puts the WebSocket leg first."""
    env.sandbox.websocket_leg_finishes_first = forced
    client = _media_client(env)
    call_id = _answered(env, f"legs-{forced}")
    dialog = client.create_dialog(call_id, custom_data={"session_id": f"legs-{forced}"})
    env.receiver.wait_for(
        lambda: "CALL_ESTABLISHED" in env.receiver.types_for(dialog.child_call_id)
    )

    client.hangup_call(call_id)
    env.ended_events(call_id)
    env.receiver.wait_for(lambda: "CALL_FINISHED" in env.receiver.types_for(dialog.child_call_id))

    with env.receiver.lock:
        ends = [e["callId"] for e in env.receiver.events if e["type"] == "CALL_FINISHED"]
    ends = [c for c in ends if c in (call_id, dialog.child_call_id)]
    assert ends == ([dialog.child_call_id, call_id] if forced else [call_id, dialog.child_call_id])
    child = next(parse_event(e) for e in env.receiver.events if e["callId"] == dialog.child_call_id)
    assert child.parent_call_id == call_id and child.websocket_leg


def test_a_deleted_media_stream_config_is_gone_and_a_dialog_to_it_is_refused(env: Env) -> None:
    config_id = _config(env)
    call_id = _answered(env, "deleted-config")

    assert env.client.delete_media_stream_config(config_id) is True
    assert env.client.delete_media_stream_config(config_id) is False  # 404: already gone

    assert config_id not in [c["id"] for c in env.client.list_media_stream_configs()]
    body = {
        "parentCallId": call_id,
        "childCallRequest": {
            "endpoint": {"type": "WEBSOCKET", "websocketEndpointConfigId": config_id}
        },
    }
    answer = env.api.post("/calls/1/dialogs", json=body, headers=APP_AUTH)
    assert answer.status_code == 400
    assert env.sandbox.dialogs == {}
    env.client.hangup_call(call_id)


def test_media_stream_config_creations_are_limited_to_100_a_minute(env: Env) -> None:
    for _ in range(100):
        _config(env)

    with pytest.raises(RetryableProviderError) as refused:
        _config(env)

    assert (refused.value.status, refused.value.code) == (429, "TOO_MANY_REQUESTS")
    assert len(env.sandbox.media_stream_configs) == 100

"""The Infobip client against the stand-in on a free port (and a mock transport for failures
the stand-in has no reason to produce: timeouts, 5xx)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from callflow.config import Settings
from callflow.providers.errors import ProviderAuthError, ProviderRejected, RetryableProviderError
from callflow.providers.infobip.calls import InfobipClient, InvalidInfobipRequest
from callflow_dev.local.servers import AsgiServer
from callflow_dev.sandbox import phone_network as net
from callflow_dev.sandbox.infobip import InfobipSandbox
from tests.unit.infobip_fixtures import (
    API_KEY,
    CALLS_CONFIGURATION_ID,
    Receiver,
    voice_spec,
)

NUMBER = "+41792036727"


@dataclass
class Stack:
    sandbox: InfobipSandbox
    receiver: Receiver
    settings: Settings
    client: InfobipClient
    bridge_url: str


def _settings(base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "infobip_base_url": base_url,
        "infobip_api_key": SecretStr(API_KEY),
        "infobip_calls_configuration_id": CALLS_CONFIGURATION_ID,
        "infobip_from_number": "+41793026834",
        "infobip_connect_timeout": 30,
        "infobip_max_duration": 300,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[Receiver, AsgiServer]]:
    receiver = Receiver()
    with AsgiServer(receiver.app()) as server:
        yield receiver, server


@pytest.fixture
def stack(hooks: tuple[Receiver, AsgiServer]) -> Iterator[Stack]:
    receiver, server = hooks
    sandbox = InfobipSandbox(
        API_KEY,
        events_url=f"{server.url}/events",
        events_username=receiver.username,
        events_password=receiver.password,
        time_scale=0.01,
    )
    with AsgiServer(sandbox.app, lifespan="on") as api:
        settings = _settings(api.url)
        with InfobipClient(settings) as client:
            yield Stack(sandbox, receiver, settings, client, f"ws://127.0.0.1:{server.port}")


def test_place_call_sends_the_documented_body_and_returns_the_call(stack: Stack) -> None:
    settings = stack.settings.model_copy(
        update={"infobip_machine_detection": True, "infobip_recording": True}
    )
    call = InfobipClient(settings).place_call(
        NUMBER, custom_data={"session_id": "s-1", "attempt": "1"}, external_id="s-1-1"
    )

    assert call.state == "CALLING"
    assert call.id in stack.sandbox.calls
    sent = stack.sandbox.requests[-1]
    assert (sent.method, sent.path, sent.authorized) == ("POST", "/calls/1/calls", True)
    assert sent.body == {
        "endpoint": {"type": "PHONE", "phoneNumber": "41792036727"},
        "callsConfigurationId": CALLS_CONFIGURATION_ID,
        "from": "41793026834",
        "connectTimeout": 30,
        "maxDuration": 300,
        "machineDetection": {"enabled": True},
        "recording": {"recordingType": "AUDIO"},
        "customData": {"session_id": "s-1", "attempt": "1"},
        "externalId": "s-1-1",
    }


def test_optional_call_features_are_left_out_when_not_configured(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"infobip_from_number": ""})
    InfobipClient(settings).place_call(NUMBER, custom_data={}, external_id="x")

    body = stack.sandbox.requests[-1].body
    assert "from" not in body
    assert "machineDetection" not in body
    assert "recording" not in body


def test_the_full_phone_number_never_reaches_the_log(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        stack.client.place_call(NUMBER, custom_data={}, external_id="x")

    logged = " ".join(str(vars(record)) for record in caplog.records)
    assert "placing call" in logged
    assert "********727" in logged
    assert "41792036727" not in logged


def test_a_wrong_api_key_is_an_auth_error(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"infobip_api_key": SecretStr("wrong")})

    with pytest.raises(ProviderAuthError) as caught:
        InfobipClient(settings).place_call(NUMBER, custom_data={}, external_id="x")

    assert caught.value.status == 401
    assert caught.value.code == "UNAUTHORIZED"


def test_a_refused_request_carries_the_message_id_and_field_errors(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"infobip_media_stream_config_id": "nope"})

    with pytest.raises(ProviderRejected) as caught:
        InfobipClient(settings).create_dialog("some-call", custom_data={"session_id": "s"})

    assert caught.value.status == 400
    assert caught.value.code == "BAD_REQUEST"
    assert "websocketEndpointConfigId" in caught.value.message
    assert not caught.value.retryable


def test_rate_limited_calls_are_retryable(stack: Stack) -> None:
    for _ in range(6):
        stack.client.place_call(NUMBER, custom_data={}, external_id="x")

    with pytest.raises(RetryableProviderError) as caught:
        stack.client.place_call(NUMBER, custom_data={}, external_id="x")

    assert caught.value.status == 429
    assert caught.value.code == "TOO_MANY_REQUESTS"


def test_hangup_ends_a_live_call_and_reports_a_gone_one_as_false(stack: Stack) -> None:
    stack.sandbox.set_behaviour(NUMBER, [net.no_answer()])
    call = stack.client.place_call(NUMBER, custom_data={}, external_id="x")

    assert stack.client.hangup_call(call.id) is True
    assert stack.client.get_call(call.id)["state"] == "CANCELLED"
    assert stack.client.hangup_call(call.id) is False
    assert stack.client.hangup_call("no-such-call") is False
    assert stack.sandbox.requests[-1].body == {}


def test_media_stream_config_sends_the_sample_rate_as_a_string(stack: Stack) -> None:
    config_id = stack.client.create_media_stream_config("bridge", "wss://bridge.example/s", 16000)

    assert stack.sandbox.requests[-1].body == {
        "type": "WEBSOCKET_ENDPOINT",
        "name": "bridge",
        "url": "wss://bridge.example/s",
        "sampleRate": "16000",
    }
    listed = stack.client.list_media_stream_configs()
    assert [(c["id"], c["sampleRate"]) for c in listed] == [(config_id, "16000")]


@pytest.mark.parametrize(
    ("rate", "url"), [(44100, "wss://bridge.example"), (16000, "https://bridge.example")]
)
def test_a_media_stream_config_infobip_would_refuse_is_not_sent(
    stack: Stack, rate: int, url: str
) -> None:
    with pytest.raises(InvalidInfobipRequest):
        stack.client.create_media_stream_config("bridge", url, rate)

    assert stack.sandbox.requests == []


@pytest.mark.parametrize("number", ["", "+12", "+41 79 203 67 27", "tel:+41792036727"])
def test_a_number_that_is_not_international_digits_is_refused_before_sending(
    stack: Stack, number: str
) -> None:
    with pytest.raises(InvalidInfobipRequest):
        stack.client.place_call(number, custom_data={}, external_id="x")

    assert stack.sandbox.requests == []


@pytest.mark.parametrize(
    "update",
    [
        {"infobip_connect_timeout": 61},
        {"infobip_connect_timeout": 0},
        {"infobip_max_duration": 0},
        {"infobip_calls_configuration_id": ""},
        {"infobip_api_key": SecretStr("")},
    ],
)
def test_settings_infobip_would_refuse_fail_clearly_before_sending(
    stack: Stack, update: dict[str, Any]
) -> None:
    client = InfobipClient(stack.settings.model_copy(update=update))

    with pytest.raises(InvalidInfobipRequest, match="CALLFLOW_INFOBIP_"):
        client.place_call(NUMBER, custom_data={}, external_id="x")

    assert stack.sandbox.requests == []


def test_non_string_custom_data_is_refused_before_sending(stack: Stack) -> None:
    with pytest.raises(InvalidInfobipRequest, match="attempt"):
        stack.client.place_call(NUMBER, custom_data={"attempt": 1}, external_id="x")  # type: ignore[dict-item]


def test_create_dialog_sends_the_session_in_custom_data_and_as_the_endpoint_identifier(
    stack: Stack,
) -> None:
    config_id = stack.client.create_media_stream_config("b", f"{stack.bridge_url}/bridge", 16000)
    settings = stack.settings.model_copy(update={"infobip_media_stream_config_id": config_id})
    client = InfobipClient(settings)
    stack.sandbox.set_behaviour(NUMBER, [net.answer(after_s=0)])
    call = client.place_call(NUMBER, custom_data={"session_id": "s-1"}, external_id="x")
    _wait_state(client, call.id, "ESTABLISHED")

    dialog = client.create_dialog(call.id, custom_data={"session_id": "s-1", "bridge_token": "t"})

    assert dialog.parent_call_id == call.id
    assert dialog.child_call_id
    assert stack.sandbox.requests[-1].body == {
        "parentCallId": call.id,
        "childCallRequest": {
            "endpoint": {
                "type": "WEBSOCKET",
                "websocketEndpointConfigId": config_id,
                "identifier": "s-1.t",
            },
            "customData": {"session_id": "s-1", "bridge_token": "t"},
        },
    }
    assert client.hangup_dialog(dialog.id) is True
    assert stack.sandbox.requests[-1].body is None
    assert client.hangup_dialog(dialog.id) is False


def _wait_state(client: InfobipClient, call_id: str, state: str) -> None:
    deadline = time.monotonic() + 5
    while client.get_call(call_id)["state"] != state:
        assert time.monotonic() < deadline, f"call never reached {state}"
        time.sleep(0.02)


# --- failures the stand-in has no reason to produce ------------------------------------------


def _client_with(handler: Any) -> InfobipClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return InfobipClient(_settings("https://xyz.api.infobip.com"), http)


def test_timeouts_are_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(RetryableProviderError, match="timed out"):
        _client_with(handler).place_call(NUMBER, custom_data={}, external_id="x")


def test_connection_failures_are_retryable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RetryableProviderError):
        _client_with(handler).hangup_call("c-1")


def test_server_errors_are_retryable_with_infobip_text() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"requestError": {"serviceException": {"messageId": "GENERAL_ERROR", "text": "x"}}}
        return httpx.Response(500, json=body)

    with pytest.raises(RetryableProviderError) as caught:
        _client_with(handler).get_call("c-1")

    assert (caught.value.status, caught.value.code, caught.value.message) == (
        500,
        "GENERAL_ERROR",
        "GET /calls/1/calls/c-1: x",
    )


def test_forbidden_is_an_auth_error_even_without_a_json_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, text="<html>forbidden</html>")

    with pytest.raises(ProviderAuthError, match="HTTP 403"):
        _client_with(handler).get_call("c-1")


def test_a_created_call_without_an_id_is_not_taken_for_success() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"state": "CALLING"})

    with pytest.raises(ProviderRejected, match="'id'"):
        _client_with(handler).place_call(NUMBER, custom_data={}, external_id="x")


def test_listing_configs_follows_every_page() -> None:
    pages = {
        0: [{"id": f"c{i}", "type": "WEBSOCKET_ENDPOINT"} for i in range(100)],
        1: [{"id": "c100", "type": "WEBSOCKET_ENDPOINT"}],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        assert request.headers["authorization"] == f"App {API_KEY}"
        paging = {"page": page, "size": 100, "totalPages": 2, "totalResults": 101}
        return httpx.Response(200, json={"results": pages[page], "paging": paging})

    configs = _client_with(handler).list_media_stream_configs()

    assert [c["id"] for c in configs] == [f"c{i}" for i in range(101)]


def test_requests_carry_the_app_api_key_and_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "c-1", "state": "ESTABLISHED"})

    _client_with(handler).hangup_call("c-1")

    assert seen[0].headers["authorization"] == f"App {API_KEY}"
    assert seen[0].url == "https://xyz.api.infobip.com/calls/1/calls/c-1/hangup"
    assert json.loads(seen[0].content) == {}


def test_ids_that_would_change_the_url_path_are_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent")

    client = _client_with(handler)
    for bad in ("../dialogs/x", "..", "", "a b", "c-1?x=1"):
        with pytest.raises(InvalidInfobipRequest):
            client.hangup_call(bad)


def test_a_hangup_names_its_cause_as_the_specs_error_code() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "c-1", "state": "FINISHED"})

    _client_with(handler).hangup_call("c-1", error_code="MACHINE_DETECTED")

    body = json.loads(seen[0].content)
    assert body == {"errorCode": "MACHINE_DETECTED"}
    spec = voice_spec()
    pointer = spec.request_schema_pointer("POST", "/calls/1/calls/{callId}/hangup")
    assert spec.problems(body, pointer) == []


def test_a_calls_dialog_is_looked_up_by_the_parent_call_id_filter() -> None:
    seen: list[httpx.Request] = []
    page = {
        "results": [
            {"id": "d-0", "state": "FINISHED", "parentCall": {"id": "c-1"}},
            {"id": "d-1", "state": "ESTABLISHED", "parentCall": {"id": "c-1"}},
        ],
        "paging": {"page": 0, "size": 100, "totalPages": 1, "totalResults": 2},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=page)

    found = _client_with(handler).find_dialog("c-1")

    assert found is not None and found.id == "d-1"
    assert seen[0].url.path == "/calls/1/dialogs"
    assert seen[0].url.params["parentCallId"] == "c-1"
    names = {p["name"] for p in voice_spec().spec["paths"]["/calls/1/dialogs"]["get"]["parameters"]}
    assert set(seen[0].url.params) <= names

"""Every route authenticates first and answers a client's mistake with a 4xx and a reason."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from callflow.config import reset_settings
from callflow.models import Session, SessionStatus
from callflow.providers.elevenlabs.client import sign_webhook
from callflow.services import get_services
from callflow_dev.local.aws import create_table
from tests.unit.api_app import api_client
from tests.unit.aws_faults import closed_port, fail_calls
from tests.unit.elevenlabs_fixtures import conversation, post_call
from tests.unit.infobip_fixtures import example

SECRETS = {
    "CALLFLOW_ZOHO_TRIGGER_SECRET": "trigger-secret",
    "CALLFLOW_INFOBIP_WEBHOOK_USERNAME": "infobip",
    "CALLFLOW_INFOBIP_WEBHOOK_PASSWORD": "hook-password",
    "CALLFLOW_INFOBIP_WEBHOOK_PATH_SECRET": "pathsecret",
    "CALLFLOW_ELEVENLABS_WEBHOOK_SECRET": "el-secret",
    "CALLFLOW_STATUS_API_TOKEN": "status-token",
    "CALLFLOW_TABLE_NAME": "api-tests",
    "CALLFLOW_MAX_BODY_BYTES": "2048",
}
BASIC = "Basic " + base64.b64encode(b"infobip:hook-password").decode()


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with mock_aws():
        create_table("api-tests", "us-east-1")
        with api_client(monkeypatch, {**SECRETS, "AWS_DEFAULT_REGION": "us-east-1"}) as client:
            yield client


def test_health_answers_ok(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_openapi_document_lists_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/webhooks/zoho", "/webhooks/infobip/{secret}", "/webhooks/elevenlabs"} <= set(paths)
    assert "/sessions/{session_id}" in paths


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-Callflow-Secret": "wrong"}, 403)],
)
def test_zoho_trigger_requires_the_shared_secret(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    response = client.post(
        "/webhooks/zoho", json={"module": "Leads", "record_id": "1"}, headers=headers
    )
    assert response.status_code == status
    assert "X-Callflow-Secret" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "JSON object"),
        (b"", "application/json", 400, "empty body"),
        (b'{"module": "Leads"}', "application/json", 422, "record_id"),
        (b'{"module": "Le ads", "record_id": "1"}', "application/json", 422, "module"),
        (b'{"module": "Leads", "record_id": ["1"]}', "application/json", 422, "record_id"),
        (b"module=Leads&record_id=abc", "application/x-www-form-urlencoded", 422, "record_id"),
    ],
)
def test_malformed_trigger_is_refused_with_a_reason(
    client: TestClient, body: bytes, content_type: str, status: int, reason: str
) -> None:
    response = client.post(
        "/webhooks/zoho",
        content=body,
        headers={"X-Callflow-Secret": "trigger-secret", "Content-Type": content_type},
    )
    assert response.status_code == status
    assert reason in response.json()["detail"]


def test_oversized_body_is_refused_by_its_declared_length(client: TestClient) -> None:
    response = client.post(
        "/webhooks/zoho",
        content=b"{" + b" " * 4096 + b"}",
        headers={"X-Callflow-Secret": "trigger-secret", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_oversized_streamed_body_is_refused_once_it_passes_the_limit(client: TestClient) -> None:
    """No Content-Length (chunked): the limit is counted as the body streams in."""

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b" " * 1024

    response = client.post(
        "/webhooks/zoho",
        content=chunks(),
        headers={"X-Callflow-Secret": "trigger-secret", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert "larger than 2048 bytes" in response.json()["detail"]
    assert "content-length" not in {k.lower() for k in response.request.headers}


def test_infobip_events_require_basic_auth(client: TestClient) -> None:
    missing = client.post("/webhooks/infobip/pathsecret", json={})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Basic")
    wrong = "Basic " + base64.b64encode(b"infobip:nope").decode()
    assert (
        client.post(
            "/webhooks/infobip/pathsecret", json={}, headers={"Authorization": wrong}
        ).status_code
        == 403
    )
    garbage = client.post(
        "/webhooks/infobip/pathsecret", json={}, headers={"Authorization": "Basic !!!"}
    )
    assert garbage.status_code == 401


def test_infobip_events_require_the_secret_path(client: TestClient) -> None:
    response = client.post("/webhooks/infobip/guess", json={}, headers={"Authorization": BASIC})
    assert response.status_code == 403


def test_malformed_infobip_event_is_a_400(client: TestClient) -> None:
    response = client.post(
        "/webhooks/infobip/pathsecret",
        content=b"{oops",
        headers={"Authorization": BASIC, "Content-Type": "application/json"},
    )
    assert response.status_code == 400


def test_elevenlabs_webhook_without_signature_is_refused(client: TestClient) -> None:
    response = client.post("/webhooks/elevenlabs", json={"type": "post_call_transcription"})
    assert response.status_code == 401


def test_elevenlabs_webhook_with_forged_signature_is_refused(client: TestClient) -> None:
    """A fresh timestamp, so the refusal is the HMAC's and not the age check's."""
    response = client.post(
        "/webhooks/elevenlabs",
        json={"type": "post_call_transcription"},
        headers={"ElevenLabs-Signature": f"t={int(time.time())},v0=" + "0" * 64},
    )
    assert response.status_code == 401
    assert response.json()["detail"] == "signature rejected: signature mismatch"


def test_elevenlabs_webhook_with_an_old_signature_is_refused(client: TestClient) -> None:
    response = client.post(
        "/webhooks/elevenlabs",
        json={"type": "post_call_transcription"},
        headers={"ElevenLabs-Signature": "t=1700000000,v0=" + "0" * 64},
    )
    assert response.status_code == 401
    assert response.json()["detail"] == "signature rejected: signature timestamp too old"


def test_session_status_requires_the_bearer_token(client: TestClient) -> None:
    assert client.get("/sessions/abc").status_code == 401
    assert client.get("/sessions/abc", headers={"Authorization": "Bearer wrong"}).status_code == 403


def test_unknown_session_is_a_404(client: TestClient) -> None:
    response = client.get("/sessions/abc", headers={"Authorization": "Bearer status-token"})
    assert response.status_code == 404


def test_malformed_session_id_is_a_422(client: TestClient) -> None:
    response = client.get("/sessions/" + "x" * 80, headers={"Authorization": "Bearer status-token"})
    assert response.status_code == 422


def test_session_status_shows_no_token_hash_nor_signed_url(client: TestClient) -> None:
    from callflow.models import Session
    from callflow.services import get_services

    session = Session(session_id="s1", module="Leads", record_id="42")
    secret_url = "wss://agents.example/v1/convai/conversation?conversation_signature=secret"
    get_services().store.create(
        session.model_copy(
            update={
                "bridge_token_hash": "h",
                "media_claimed_hash": "h",
                "agent_signed_url": secret_url,
                "agent_signed_url_at": 1_800_000_000,
            }
        )
    )
    response = client.get("/sessions/s1", headers={"Authorization": "Bearer status-token"})
    view = response.json()
    assert view["session_id"] == "s1"
    assert not {"bridge_token_hash", "media_claimed_hash", "task_token", "agent_signed_url"} & set(
        view
    )
    assert "conversation_signature" not in response.text


def test_unconfigured_secret_refuses_everything(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLFLOW_ZOHO_TRIGGER_SECRET", "")
    reset_settings()
    response = client.post(
        "/webhooks/zoho",
        json={"module": "Leads", "record_id": "1"},
        headers={"X-Callflow-Secret": ""},
    )
    assert response.status_code == 503


# --- AWS unavailable: 503 with a reason, on every route --------------------------------------


def ringing_event(attempt: str = "1", session_id: str = "s1") -> dict[str, Any]:
    body = example("ringing")
    body["properties"]["call"]["customData"] = {"session_id": session_id, "attempt": attempt}
    return body


def signed(body: Any) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    return raw, {"ElevenLabs-Signature": sign_webhook(raw, "el-secret", int(time.time()))}


def send(client: TestClient, route: str) -> Any:
    """One authenticated, well-formed request to ``route``."""
    if route == "zoho":
        return client.post(
            "/webhooks/zoho",
            json={"module": "Leads", "record_id": "5725767000000524001"},
            headers={"X-Callflow-Secret": "trigger-secret"},
        )
    if route == "infobip":
        return client.post(
            "/webhooks/infobip/pathsecret", json=ringing_event(), headers={"Authorization": BASIC}
        )
    if route == "elevenlabs":
        raw, headers = signed(post_call(conversation_id="conv_1", status="done"))
        return client.post("/webhooks/elevenlabs", content=raw, headers=headers)
    return client.get("/sessions/s1", headers={"Authorization": "Bearer status-token"})


ROUTES = ["zoho", "infobip", "elevenlabs", "sessions"]


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The API with every AWS endpoint (and Zoho) on a port that refuses connections."""
    with closed_port() as nowhere:
        environment = {
            **SECRETS,
            "AWS_ENDPOINT_URL": nowhere,
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_RETRY_MODE": "standard",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "CALLFLOW_ZOHO_ACCOUNTS_URL": nowhere,
            "CALLFLOW_ZOHO_API_DOMAIN": nowhere,
        }
        with api_client(monkeypatch, environment) as client:
            yield client


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_answers_503_with_a_reason_when_aws_is_unreachable(
    unreachable: TestClient, route: str
) -> None:
    response = send(unreachable, route)

    assert response.status_code == 503
    assert response.json() == {"detail": "AWS is unavailable: EndpointConnectionError"}


def test_health_needs_no_aws(unreachable: TestClient) -> None:
    assert unreachable.get("/health").json() == {"status": "ok"}


def test_unreadable_secrets_are_a_503_on_every_route(
    unreachable: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.parameters import base

    monkeypatch.setattr(base, "DEFAULT_PROVIDERS", {})  # no client built for another endpoint
    monkeypatch.setenv("CALLFLOW_SECRETS_ID", "callflow/secrets")
    reset_settings()

    for route in ROUTES:
        response = send(unreachable, route)
        assert response.status_code == 503, route
        assert response.json() == {
            "detail": "Secrets Manager is unavailable: EndpointConnectionError"
        }


def test_health_needs_no_settings_and_answers_while_secrets_are_unreadable(
    unreachable: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.parameters import base

    monkeypatch.setattr(base, "DEFAULT_PROVIDERS", {})
    monkeypatch.setenv("CALLFLOW_SECRETS_ID", "callflow/secrets")
    reset_settings()

    response = unreachable.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("route", "operation", "code"),
    [
        ("sessions", "GetItem", "InternalServerError"),
        ("infobip", "UpdateItem", "ProvisionedThroughputExceededException"),
        ("zoho", "PutItem", "ThrottlingException"),
        ("elevenlabs", "GetItem", "RequestLimitExceeded"),
    ],
)
def test_an_aws_error_no_route_expects_is_a_503_naming_the_operation(
    client: TestClient, route: str, operation: str, code: str
) -> None:
    fail_calls(get_services().store.table.meta.client, operation, code)

    response = send(client, route)

    assert response.status_code == 503
    assert response.json() == {"detail": f"AWS is unavailable: {operation} failed: {code}"}


def test_an_infobip_event_that_could_not_be_applied_is_applied_when_delivered_again(
    client: TestClient,
) -> None:
    store = get_services().store
    store.create(Session(session_id="s1", module="Leads", record_id="42"))
    store.advance("s1", SessionStatus.DIALING, attempt=1)
    fail_calls(store.table.meta.client, "UpdateItem", "InternalServerError", times=1)

    assert send(client, "infobip").status_code == 503
    assert store.require("s1").status is SessionStatus.DIALING

    again = send(client, "infobip")
    assert (again.status_code, again.json()) == (200, {"result": "ringing"})
    assert store.require("s1").status is SessionStatus.RINGING


def test_an_applied_event_whose_timeline_entry_cannot_be_written_is_still_acknowledged(
    client: TestClient,
) -> None:
    """The event as received goes on the timeline after it was applied, best effort: a failed
    write there must not make Infobip deliver an event already applied."""
    store = get_services().store
    store.create(Session(session_id="s1", module="Leads", record_id="42"))
    store.advance("s1", SessionStatus.DIALING, attempt=1)
    injected = fail_calls(
        store.table.meta.client,
        "UpdateItem",
        "InternalServerError",
        when=lambda body: "infobip CALL_RINGING" in json.dumps(body),
    )

    response = send(client, "infobip")
    assert (response.status_code, response.json()) == (200, {"result": "ringing"})
    assert injected  # the timeline write was attempted and failed
    assert store.require("s1").status is SessionStatus.RINGING


# --- malformed input after authentication: 4xx with a reason ---------------------------------


@pytest.mark.parametrize("attempt", ["²", "1" * 40, "0"])
def test_an_infobip_attempt_callflow_cannot_have_sent_is_not_ours(
    client: TestClient, attempt: str
) -> None:
    response = client.post(
        "/webhooks/infobip/pathsecret",
        json=ringing_event(attempt=attempt),
        headers={"Authorization": BASIC},
    )

    assert (response.status_code, response.json()) == (
        200,
        {"result": "ignored: not a callflow call"},
    )


@pytest.mark.parametrize(
    ("duration", "reason"),
    [(10**40, "out of range (0 to 86400)"), (-1, "out of range"), (12.5, "not an integer")],
)
def test_an_infobip_call_duration_no_call_can_have_is_a_400(
    client: TestClient, duration: Any, reason: str
) -> None:
    body = example("busy")
    body["properties"]["callLog"]["customData"] = {"session_id": "s1", "attempt": "1"}
    body["properties"]["callLog"]["duration"] = duration

    response = client.post(
        "/webhooks/infobip/pathsecret", json=body, headers={"Authorization": BASIC}
    )

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert "callLog.duration" in response.json()["detail"]


DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/webhooks/zoho", {"X-Callflow-Secret": "trigger-secret"}),
        ("/webhooks/infobip/pathsecret", {"Authorization": BASIC}),
    ],
)
def test_a_body_nested_too_deep_is_a_400(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, path: str, headers: dict[str, str]
) -> None:
    monkeypatch.setenv("CALLFLOW_MAX_BODY_BYTES", "65536")
    reset_settings()

    response = client.post(
        path, content=DEEP, headers={**headers, "Content-Type": "application/json"}
    )

    assert (response.status_code, response.json()) == (400, {"detail": "body nested too deep"})


def test_a_signed_elevenlabs_body_nested_too_deep_is_a_400(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLFLOW_MAX_BODY_BYTES", "65536")
    reset_settings()
    headers = {"ElevenLabs-Signature": sign_webhook(DEEP, "el-secret", int(time.time()))}

    response = client.post("/webhooks/elevenlabs", content=DEEP, headers=headers)

    assert response.status_code == 400
    assert response.json()["detail"] == "signed body is not a JSON object: body nested too deep"


@pytest.mark.parametrize(
    ("value", "reason"), [(10**40, "1.000E+40 is outside"), (float("nan"), "NaN is not")]
)
def test_signed_results_dynamodb_cannot_hold_are_a_400(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, value: float, reason: str
) -> None:
    monkeypatch.setenv("CALLFLOW_MAX_BODY_BYTES", "65536")
    reset_settings()
    store = get_services().store
    store.create(Session(session_id="s1", module="Leads", record_id="42"))
    store.index_conversation("conv_0101k0example", "s1")
    data = conversation()
    data["analysis"]["data_collection_results"]["interested"]["value"] = value
    raw, headers = signed(post_call(**data))

    response = client.post("/webhooks/elevenlabs", content=raw, headers=headers)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("a value in the body cannot be stored: ")
    assert reason in response.json()["detail"]
    assert store.require("s1").results == {}


@pytest.mark.parametrize(
    "body",
    [
        b'{"module": "Leads", "record_id": 1e400}',
        b'{"module": "Leads", "record_id": NaN}',
        b'{"module": "Leads", "record_id": 10000000000000000000000000000000000000000}',
        b'{"module": "Leads", "record_id": true}',
    ],
)
def test_a_trigger_with_a_record_id_that_is_no_zoho_id_is_a_422(
    client: TestClient, body: bytes
) -> None:
    response = client.post(
        "/webhooks/zoho",
        content=body,
        headers={"X-Callflow-Secret": "trigger-secret", "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert "record_id" in response.json()["detail"]


def test_a_signed_post_call_naming_no_conversation_elevenlabs_could_have_is_a_400(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation id longer than any key DynamoDB takes is the sender's mistake, not an AWS
    outage."""
    monkeypatch.setenv("CALLFLOW_MAX_BODY_BYTES", "65536")
    reset_settings()
    raw, headers = signed(post_call(conversation_id="c" * 3000, status="done"))

    response = client.post("/webhooks/elevenlabs", content=raw, headers=headers)

    assert response.status_code == 400
    assert "conversation_id" in response.json()["detail"]


def test_an_aws_error_on_the_infobip_route_does_not_log_its_path_secret(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    fail_calls(get_services().store.table.meta.client, "UpdateItem", "InternalServerError")

    with caplog.at_level("WARNING"):
        assert send(client, "infobip").status_code == 503

    [warning] = [r for r in caplog.records if r.getMessage() == "aws error"]
    assert warning.__dict__["route"] == "/webhooks/infobip/{secret}"
    assert "pathsecret" not in repr([r.__dict__ for r in caplog.records])


MULTIPART = "multipart/form-data; boundary=b0undary"


def _multipart_body(fields: dict[str, str]) -> bytes:
    parts = [
        f'--b0undary\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    ]
    return ("".join(parts) + "--b0undary--\r\n").encode()


@pytest.mark.parametrize(
    ("content", "content_type", "query"),
    [
        (_multipart_body({"module": "Leads", "record_id": "abc"}), MULTIPART, ""),
        (b"", "", "?module=Leads&record_id=abc"),
        (b"", "application/x-www-form-urlencoded", "?module=Leads&id=abc"),
    ],
    ids=["multipart", "url-parameters", "url-parameters-empty-form"],
)
def test_a_trigger_in_each_zoho_encoding_is_read_up_to_its_validation(
    client: TestClient, content: bytes, content_type: str, query: str
) -> None:
    """The fields are found in each encoding: the bad record id is named (422), not 'empty'."""
    response = client.post(
        "/webhooks/zoho" + query,
        content=content,
        headers={"X-Callflow-Secret": "trigger-secret", "Content-Type": content_type},
    )
    assert response.status_code == 422
    assert "record_id" in response.json()["detail"]


def test_a_malformed_multipart_trigger_is_a_400_with_a_reason(client: TestClient) -> None:
    response = client.post(
        "/webhooks/zoho",
        content=b"--other\r\ngarbage",
        headers={"X-Callflow-Secret": "trigger-secret", "Content-Type": MULTIPART},
    )
    assert response.status_code == 400
    assert "multipart" in response.json()["detail"]


def test_a_multipart_trigger_is_authenticated_before_it_is_read(client: TestClient) -> None:
    response = client.post(
        "/webhooks/zoho", content=b"--other\r\ngarbage", headers={"Content-Type": MULTIPART}
    )
    assert response.status_code == 401


def _at_a_snapshot_init(*lines: str) -> str:
    """What ``lines`` print in a fresh interpreter initialised as for a SnapStart snapshot (every
    route module imported), the API imported as ``api``."""
    import subprocess
    import sys

    script = "\n".join(
        (
            "import os, sys",
            "os.environ['AWS_LAMBDA_INITIALIZATION_TYPE'] = 'snap-start'",
            "os.environ['CALLFLOW_SECRETS_ID'] = 'callflow/never-read'",
            "import callflow_functions.api as api",
            *lines,
        )
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)  # noqa: S603
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_modules_a_snapshot_holds_are_the_routes_own_and_import_without_settings() -> None:
    from callflow_functions import api

    printed = _at_a_snapshot_init(
        "import callflow.config as config",
        "missing = [m for m in api.ROUTE_MODULES if m not in sys.modules]",
        "assert not missing, missing",
        "assert config.get_settings.cache_info().currsize == 0, 'settings read before snapshot'",
        "print('ok')",
    )
    assert printed == "ok"
    assert {"callflow.lifecycle.call_events", "callflow.config"} <= set(api.ROUTE_MODULES)


def test_the_api_never_loads_pydantic_v1() -> None:
    """FastAPI imports ``pydantic.v1`` (~0.1 s of a cold start) the first time it builds a field
    for a typed route parameter or a response model; the routes have neither (see
    :mod:`callflow_functions.route_params`). Checked with every route module imported and the
    OpenAPI document built."""
    printed = _at_a_snapshot_init(
        "assert api.app.openapi()['paths']", "print('pydantic.v1' in sys.modules)"
    )
    assert printed == "False"


def test_path_parameters_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    [parameter] = paths["/webhooks/infobip/{secret}"]["post"]["parameters"]
    assert parameter == {
        "name": "secret",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    act = paths["/campaigns/{campaign_id}/{action}"]["post"]["parameters"]
    assert [p["name"] for p in act] == ["campaign_id", "action"]


def test_session_status_masks_every_phone_field_of_the_flow(client: TestClient) -> None:
    from callflow.models import Session
    from callflow.services import get_services

    numbers = [{"field": "Phone", "raw": "+14155550100"}, {"field": "Mobile", "raw": "4155550199"}]
    get_services().store.create(
        Session(
            session_id="s2",
            module="Leads",
            record_id="42",
            phone_numbers=numbers,
            record={"Phone": "+14155550100", "Mobile": "4155550199", "First_Name": "Ada"},
        )
    )
    response = client.get("/sessions/s2", headers={"Authorization": "Bearer status-token"})
    assert "0100" not in response.text and "0199" not in response.text
    view = response.json()
    assert [n["field"] for n in view["phone_numbers"]] == ["Phone", "Mobile"]
    assert view["record"]["First_Name"] == "Ada"

"""Every route authenticates first and answers a client's mistake with a 4xx and a reason."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from moto import mock_aws

from callflow.config import reset_settings
from callflow.services import reset_services
from callflow_dev.local.aws import create_table

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
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    reset_settings()
    reset_services()
    with mock_aws():
        create_table("api-tests", "us-east-1")
        from callflow_functions.api import app

        yield TestClient(app, raise_server_exceptions=False)
    reset_settings()
    reset_services()


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


def test_session_status_shows_no_token_hash(client: TestClient) -> None:
    from callflow.models import Session
    from callflow.services import get_services

    session = Session(session_id="s1", module="Leads", record_id="42")
    get_services().store.create(
        session.model_copy(update={"bridge_token_hash": "h", "media_claimed_hash": "h"})
    )
    view = client.get("/sessions/s1", headers={"Authorization": "Bearer status-token"}).json()
    assert view["session_id"] == "s1"
    assert not {"bridge_token_hash", "media_claimed_hash", "task_token"} & set(view)


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

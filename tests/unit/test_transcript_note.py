"""The transcript on the record: speaker-labelled in the note, attached whole past Zoho's note
size, and never attached twice when a writeback step is retried.

The writeback runs against the session store on an in-process moto with fakes of Zoho (that
keep attachments) and ElevenLabs (the whole conversation); the Zoho client's own attachment
calls run over real HTTP against the Zoho stand-in, which holds them to Zoho's limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from moto import mock_aws

from callflow.lifecycle import record_note, writeback
from callflow.models import Outcome, Session, SessionStatus
from callflow.providers.elevenlabs.client import Conversation
from callflow.providers.errors import ProviderRejected, RetryableProviderError
from callflow.providers.zoho.client import ZohoRequestError
from callflow.services import Services
from callflow_dev.local.aws import create_table
from tests.unit.test_workflow_decisions import FakeZoho, build
from tests.unit.zoho_fixtures import (  # noqa: F401 - fixtures
    ZohoEnv,
    zoho_env_fixture,
    zoho_server_fixture,
    zoho_table_fixture,
)


@dataclass
class AttachingZoho(FakeZoho):
    """Zoho with the Attachments API: files by id, failures on demand."""

    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    lose_upload_answers: int = 0
    """Uploads saved, then answered 5xx."""
    attachment_lookups: int = 0
    refuse_uploads: str = ""
    """Uploads refused for good with this message (a scope the connection lacks)."""
    uploads_tried: int = 0

    def upload_attachment(self, module: str, record_id: str, file_name: str, content: bytes) -> str:
        self.uploads_tried += 1
        if self.refuse_uploads:
            raise ProviderRejected("zoho", self.refuse_uploads, status=401)
        self.attachments.append((file_name, content))
        if self.lose_upload_answers:
            self.lose_upload_answers -= 1
            raise RetryableProviderError("zoho", "500 after saving", status=500)
        return f"att-{len(self.attachments)}"

    def find_attachment(self, module: str, record_id: str, file_name: str) -> str | None:
        self.attachment_lookups += 1
        for index, (name, _) in enumerate(self.attachments, start=1):
            if name == file_name:
                return f"att-{index}"
        return None


@dataclass
class FakeElevenLabs:
    """The conversation as ``GET /v1/convai/conversations/{id}`` has it, every turn."""

    turns: list[dict[str, Any]] = field(default_factory=list)
    reads: int = 0
    gone: bool = False

    def get_conversation(self, conversation_id: str) -> Conversation:
        self.reads += 1
        if self.gone:
            raise ProviderRejected("elevenlabs", "not found", status=404)
        return Conversation.model_validate(
            {"conversation_id": conversation_id, "status": "done", "transcript": self.turns}
        )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        create_table("decisions", "us-east-1")
        yield


def services_with(aws: None, **settings: Any) -> Services:
    services = build(**settings)
    services.__dict__["zoho"] = AttachingZoho()
    services.__dict__["elevenlabs"] = FakeElevenLabs()
    return services


@pytest.fixture
def services(aws: None) -> Services:
    return services_with(aws, zoho_note_max_chars=2000)


def zoho(services: Services) -> AttachingZoho:
    fake = services.zoho
    assert isinstance(fake, AttachingZoho)
    return fake


def turns(n: int, words: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "role": "agent" if i % 2 == 0 else "user",
            "message": f"turn {i} " + " ".join(["word"] * words),
        }
        for i in range(n)
    ]


def answered(services: Services, results: dict[str, Any], **fields: Any) -> None:
    services.store.create(
        Session(session_id="s1", module="Leads", record_id="42", phone_raw="(415) 555-0100")
    )
    services.store.advance(
        "s1",
        SessionStatus.CALL_ENDED,
        attempt=1,
        fields={
            "outcome": Outcome.ANSWERED.value,
            "call_duration": 30,
            "call_answered_at": "2026-12-01T15:00:00.000Z",
            "conversation_id": "conv_1",
            "results": {"conversation_id": "conv_1", "status": "done", **results},
            **fields,
        },
    )


def test_the_note_carries_the_transcript_labelled_by_speaker(services: Services) -> None:
    answered(
        services,
        {
            "summary": "Booked a visit.",
            "transcript": [
                {"role": "agent", "message": "Hi Maria, do you have a minute?"},
                {"role": "user", "message": "Yes,\n  speaking."},
                {"role": "agent", "message": ""},  # a turn that was only a tool call
            ],
        },
    )
    writeback.write_back(services, "s1")
    [(_, note)] = zoho(services).notes
    lines = note.splitlines()
    start = lines.index("Transcript:")
    assert lines[start + 1 : start + 3] == [
        "Agent: Hi Maria, do you have a minute?",
        "Person: Yes, speaking.",
    ]
    assert lines.index("Summary:") < start < lines.index("Session: s1")
    assert zoho(services).attachments == []  # it fits: nothing attached


def test_without_an_analysis_the_bridges_transcript_is_used(services: Services) -> None:
    answered(
        services,
        {"status": "failed"},
        transcript=[{"role": "agent", "text": "Hello?"}, {"role": "user", "text": "Who is it?"}],
    )
    writeback.write_back(services, "s1")
    [(_, note)] = zoho(services).notes
    assert "Agent: Hello?\nPerson: Who is it?" in note


def test_past_the_note_size_the_whole_transcript_is_attached(services: Services) -> None:
    answered(services, {"summary": "Long call.", "transcript": turns(60)})
    writeback.write_back(services, "s1")
    fake = zoho(services)
    [(_, note)] = fake.notes
    [(name, content)] = fake.attachments
    assert len(note) <= 2000
    assert name == "call-transcript-s1.txt" and f"attached to the record as {name}" in note
    assert "Summary:\nLong call." in note and note.endswith("Session: s1")
    assert "Agent: turn 0 word" in note and "turn 59" not in note  # the first lines only
    text = content.decode()
    assert all(f"turn {i} " in text for i in range(60))
    assert text.count("\nAgent: ") + text.count("\nPerson: ") == 60
    assert services.store.require("s1").writeback["attachment_id"] == "att-1"


def test_a_cut_stored_transcript_is_read_whole_for_the_attachment(services: Services) -> None:
    whole = turns(90)
    eleven = services.elevenlabs
    assert isinstance(eleven, FakeElevenLabs)
    eleven.turns = whole
    answered(services, {"transcript": whole[-60:], "transcript_truncated": True})
    writeback.write_back(services, "s1")
    [(_, content)] = zoho(services).attachments
    assert "Agent: turn 0 word" in content.decode()  # a turn the session did not keep
    assert eleven.reads == 1


def test_a_short_cut_transcript_read_whole_fits_the_note(aws: None) -> None:
    services = services_with(aws)
    eleven = services.elevenlabs
    assert isinstance(eleven, FakeElevenLabs)
    eleven.turns = turns(5)
    answered(services, {"transcript": turns(5)[-2:], "transcript_truncated": True})
    writeback.write_back(services, "s1")
    [(_, note)] = zoho(services).notes
    assert "Agent: turn 0 word" in note and zoho(services).attachments == []


def test_a_conversation_gone_from_elevenlabs_attaches_what_the_session_kept(
    services: Services,
) -> None:
    eleven = services.elevenlabs
    assert isinstance(eleven, FakeElevenLabs)
    eleven.gone = True
    answered(services, {"transcript": turns(60)[-60:], "transcript_truncated": True})
    writeback.write_back(services, "s1")
    [(_, content)] = zoho(services).attachments
    assert "turn 59" in content.decode()


def test_a_note_retried_after_the_attachment_does_not_attach_twice(services: Services) -> None:
    answered(services, {"transcript": turns(60)})
    fake = zoho(services)
    fake.fail_notes = 1
    with pytest.raises(RetryableProviderError):
        writeback.write_back(services, "s1")
    writeback.write_back(services, "s1")  # the state machine's retry of the note step
    assert len(fake.attachments) == 1 and len(fake.notes) == 1
    assert fake.attachment_lookups == 0  # the receipt said it was done: not even looked for


def test_an_attachment_saved_but_answered_500_is_found_not_uploaded_again(
    services: Services,
) -> None:
    answered(services, {"transcript": turns(60)})
    fake = zoho(services)
    fake.lose_upload_answers = 1
    with pytest.raises(RetryableProviderError):
        writeback.write_back(services, "s1")
    writeback.write_back(services, "s1")
    assert len(fake.attachments) == 1 and fake.attachment_lookups == 1
    assert services.store.require("s1").writeback["attachment_id"] == "att-1"
    [(_, note)] = fake.notes
    assert "call-transcript-s1.txt" in note


def test_an_attachment_refused_for_good_still_leaves_the_note_saying_why(
    services: Services,
) -> None:
    answered(services, {"summary": "Long call.", "transcript": turns(60)})
    fake = zoho(services)
    fake.refuse_uploads = "OAUTH_SCOPE_MISMATCH: invalid oauth scope to access this URL"
    fake.fail_notes = 1
    with pytest.raises(RetryableProviderError):
        writeback.write_back(services, "s1")
    writeback.write_back(services, "s1")  # the note's retry does not ask Zoho again
    assert fake.uploads_tried == 1 and fake.attachments == []
    [(_, note)] = fake.notes
    assert "Zoho refused the transcript's attachment (OAUTH_SCOPE_MISMATCH" in note
    assert "Agent: turn 0 word" in note and len(note) <= 2000
    assert "attached to the record" not in note
    assert services.store.require("s1").status is SessionStatus.COMPLETED


def test_an_overlong_summary_is_cut_but_the_session_line_stays() -> None:
    session = Session(
        session_id="s9", module="Leads", record_id="1", results={"transcript": turns(3)}
    )
    head = ["Summary:", "x" * 5000]
    plan = record_note.plan(
        session, "t", head, ["Session: s9"], max_chars=1000, whole_transcript=list
    )
    assert len(plan.content) <= 1000 and plan.content.endswith("Session: s9")
    assert plan.attachment_name == "call-transcript-s9.txt"


# --- the Zoho client's attachment calls, against the stand-in ---------------------------------


def test_an_uploaded_transcript_is_found_by_its_file_name(zoho_env: ZohoEnv) -> None:
    lead = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Garcia"})
    client = zoho_env.client()
    assert client.find_attachment("Leads", lead, "call-transcript-s1.txt") is None
    attachment_id = client.upload_attachment(
        "Leads", lead, "call-transcript-s1.txt", b"Agent: Hi\nPerson: Hello\n"
    )
    assert client.find_attachment("Leads", lead, "call-transcript-s1.txt") == attachment_id
    [stored] = zoho_env.sandbox.attachments
    assert stored["content"] == b"Agent: Hi\nPerson: Hello\n"
    assert stored["content_type"].startswith("text/plain")
    assert client.find_attachment("Leads", lead, "other.txt") is None


def test_an_attachment_for_an_unknown_record_is_refused(zoho_env: ZohoEnv) -> None:
    with pytest.raises(ProviderRejected, match="related id"):
        zoho_env.client().upload_attachment("Leads", "5725767000000999999", "a.txt", b"x")


def test_the_client_refuses_what_zoho_would_before_sending(zoho_env: ZohoEnv) -> None:
    client = zoho_env.client()
    with pytest.raises(ZohoRequestError):
        client.upload_attachment("Leads", "1", "a.txt", b"")
    with pytest.raises(ZohoRequestError):
        client.upload_attachment("Leads", "1", "x" * 251, b"x")
    assert client.calls_made == 0


def _raw(env: ZohoEnv, method: str, path: str, **kwargs: Any) -> httpx.Response:
    token = env.tokens().access_token().access_token
    return httpx.request(
        method,
        f"{env.base_url}/crm/v8{path}",
        headers={"Authorization": f"Zoho-oauthtoken {token}"},
        timeout=5,
        **kwargs,
    )


def test_the_stand_in_holds_uploads_and_listings_to_zohos_rules(zoho_env: ZohoEnv) -> None:
    lead = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Garcia"})
    title_only = {"title": (None, b"x")}  # multipart, but no file part
    no_file = _raw(zoho_env, "POST", f"/Leads/{lead}/Attachments", files=title_only)
    assert no_file.status_code == 400 and no_file.json()["code"] == "REQUIRED_PARAM_MISSING"
    as_json = _raw(zoho_env, "POST", f"/Leads/{lead}/Attachments", json={"file": "x"})
    assert as_json.status_code == 400 and as_json.json()["code"] == "INVALID_DATA"
    no_fields = _raw(zoho_env, "GET", f"/Leads/{lead}/Attachments")
    assert no_fields.status_code == 400 and no_fields.json()["code"] == "REQUIRED_PARAM_MISSING"
    empty = _raw(zoho_env, "GET", f"/Leads/{lead}/Attachments", params={"fields": "File_Name"})
    assert empty.status_code == 200 and empty.json()["data"] == []
    unknown = _raw(
        zoho_env, "POST", "/Leeds/1/Attachments", files={"file": ("a.txt", b"x", "text/plain")}
    )
    assert unknown.json()["code"] == "INVALID_MODULE"


def test_the_stand_in_refuses_a_note_past_zohos_size(zoho_env: ZohoEnv) -> None:
    lead = zoho_env.sandbox.seed_record("Leads", {"Last_Name": "Garcia"})
    client = zoho_env.client()
    with pytest.raises(ProviderRejected, match="INVALID_DATA"):
        client.add_note("Leads", lead, "AI call", "x" * 65536)
    assert client.add_note("Leads", lead, "AI call", "x" * 65535)
    with pytest.raises(ProviderRejected, match="INVALID_DATA"):
        client.add_note("Leads", lead, "t" * 121, "x")

"""The recording on the record: attached once from S3 by the note step, or "unavailable" with the
reason (never stored, failed, late past the wait, S3 unreachable, too large, refused by Zoho),
and in every case the writeback completes.

The session store and the recordings bucket are an in-process moto; Zoho is the transcript
tests' fake that keeps attachments and loses answers on demand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from callflow.lifecycle import recording_attachment, writeback
from callflow.models import Outcome, Session, SessionStatus, iso, utcnow
from callflow.services import Services
from callflow_dev.local.aws import create_table
from tests.unit.test_transcript_note import AttachingZoho, FakeElevenLabs
from tests.unit.test_workflow_decisions import build

BUCKET = "callflow-recordings-test"
WAV = b"RIFF" + bytes(2000)


@dataclass
class RecordingZoho(AttachingZoho):
    """Records each upload's content type too (a WAV goes as ``audio/wav``)."""

    content_types: list[str] | None = None

    def upload_attachment(  # type: ignore[override]
        self,
        module: str,
        record_id: str,
        file_name: str,
        content: bytes,
        content_type: str = "text/plain; charset=utf-8",
    ) -> str:
        if self.content_types is None:
            self.content_types = []
        self.content_types.append(content_type)
        return super().upload_attachment(module, record_id, file_name, content)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        create_table("decisions", "us-east-1")
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield


def make_services(**settings: Any) -> Services:
    values = {
        "recording_enabled": True,
        "recording_bucket": BUCKET,
        "recording_wait_seconds": 0,
        **settings,
    }
    services = build(**values)
    services.__dict__["zoho"] = RecordingZoho()
    services.__dict__["elevenlabs"] = FakeElevenLabs()
    return services


@pytest.fixture
def services(aws: None) -> Services:
    return make_services()


def zoho(services: Services) -> RecordingZoho:
    fake = services.zoho
    assert isinstance(fake, RecordingZoho)
    return fake


def recorded_call(services: Services, *, stored: bool = True, **fields: Any) -> None:
    """A call that was answered and recorded; ``stored`` puts the WAV in the bucket and says so
    on the session, as the bridge does."""
    services.store.create(
        Session(session_id="s1", module="Leads", record_id="42", record_audio=True)
    )
    recording: dict[str, Any] = {}
    if stored:
        services.recordings_s3.put_object(Bucket=BUCKET, Key="recordings/s1.wav", Body=WAV)
        recording = {"status": "stored", "key": "recordings/s1.wav", "seconds": 12.5}
    services.store.advance(
        "s1",
        SessionStatus.CALL_ENDED,
        attempt=1,
        fields={
            "outcome": Outcome.ANSWERED.value,
            "call_duration": 13,
            "call_answered_at": "2026-12-01T15:00:00.000Z",
            "call_ended_at": "2026-12-01T15:00:13.000Z",
            "results": {"status": "done", "summary": "Talked."},
            "bridge": {"end_reason": "agent_ended"},
            "recording": recording,
            **fields,
        },
    )


def the_note(services: Services) -> str:
    [(_, note)] = zoho(services).notes
    return note


def test_a_stored_recording_is_attached_and_named_in_the_note(services: Services) -> None:
    recorded_call(services)
    writeback.write_back(services, "s1")
    fake = zoho(services)
    assert [name for name, _ in fake.attachments] == ["call-recording-s1.wav"]
    assert fake.attachments[0][1] == WAV and fake.content_types == ["audio/wav"]
    assert "Recording: attached as call-recording-s1.wav, 12.5 s" in the_note(services)
    session = services.store.require("s1")
    assert session.status is SessionStatus.COMPLETED
    assert session.writeback["recording_id"] == "att-1"


def test_a_retried_writeback_never_attaches_the_recording_twice(services: Services) -> None:
    recorded_call(services)
    zoho(services).lose_upload_answers = 1  # saved, then a 500
    with pytest.raises(Exception, match="500 after saving"):
        writeback.write_step(services, "s1", "note")
    writeback.write_back(services, "s1")
    writeback.write_back(services, "s1")  # and a replay of a completed one
    assert [name for name, _ in zoho(services).attachments] == ["call-recording-s1.wav"]
    assert services.store.require("s1").writeback["recording_id"] == "att-1"


def test_a_recording_the_bridge_never_stored_is_unavailable(services: Services) -> None:
    recorded_call(services, stored=False)  # the bridge died mid-call: no file, no word
    writeback.write_back(services, "s1")
    assert zoho(services).attachments == []
    assert "Recording: unavailable (none was stored" in the_note(services)
    assert services.store.require("s1").status is SessionStatus.COMPLETED


def test_a_file_in_s3_is_attached_even_when_the_bridges_word_was_lost(services: Services) -> None:
    recorded_call(services, stored=False)
    services.recordings_s3.put_object(Bucket=BUCKET, Key="recordings/s1.wav", Body=WAV)
    writeback.write_back(services, "s1")
    assert [name for name, _ in zoho(services).attachments] == ["call-recording-s1.wav"]


def test_a_failed_upload_is_unavailable_with_its_reason(services: Services) -> None:
    recorded_call(
        services,
        stored=False,
        recording={"status": "failed", "error": "S3 unreachable: EndpointConnectionError"},
    )
    writeback.write_back(services, "s1")
    assert "Recording: unavailable (not stored: S3 unreachable" in the_note(services)


def test_a_late_recording_within_the_wait_is_attached(aws: None) -> None:
    services = make_services(recording_wait_seconds=30)
    recorded_call(services, stored=False, call_ended_at=iso(utcnow()))
    waits: list[float] = []

    def bridge_finishes(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:  # the bridge stores it while the writeback waits
            services.recordings_s3.put_object(Bucket=BUCKET, Key="recordings/s1.wav", Body=WAV)
            services.store.set_fields(
                "s1", {"recording": {"status": "stored", "key": "recordings/s1.wav"}}
            )

    receipt: dict[str, Any] = {}
    session = services.store.require("s1")
    recording_attachment.attach_recording(
        services, session, receipt, writeback._create_once, sleep=bridge_finishes
    )
    assert len(waits) == 2 and all(0 < w <= 1.0 for w in waits)
    assert receipt["recording_id"] == "att-1"


def test_the_wait_is_bounded_from_the_calls_end(aws: None) -> None:
    services = make_services(recording_wait_seconds=30)
    recorded_call(services, stored=False)  # ended long ago: the wait is over
    slept: list[float] = []
    receipt: dict[str, Any] = {}
    recording_attachment.attach_recording(
        services, services.store.require("s1"), receipt, writeback._create_once, sleep=slept.append
    )
    assert slept == [] and receipt["recording_unavailable"].startswith("none was stored")


def test_s3_unreachable_at_writeback_is_unavailable_not_a_failure(services: Services) -> None:
    recorded_call(services)
    services.__dict__["recordings_s3"] = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    writeback.write_back(services, "s1")
    assert "Recording: unavailable (storage unavailable: S3 unreachable" in the_note(services)
    assert services.store.require("s1").status is SessionStatus.COMPLETED


def test_a_recording_past_zohos_limit_stays_in_s3(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recording_attachment, "MAX_ATTACHMENT_BYTES", len(WAV) - 1)
    recorded_call(services)
    writeback.write_back(services, "s1")
    assert zoho(services).attachments == []
    assert "past Zoho's attachment limit; kept in the recordings bucket as recordings/s1.wav" in (
        the_note(services)
    )


def test_zoho_refusing_the_file_is_unavailable(services: Services) -> None:
    recorded_call(services)
    zoho(services).refuse_uploads = "scope ZohoCRM.Files.CREATE missing"
    writeback.write_back(services, "s1")
    assert "Recording: unavailable (Zoho refused the file: scope" in the_note(services)
    assert services.store.require("s1").status is SessionStatus.COMPLETED


def test_a_call_not_recorded_says_nothing_of_a_recording(services: Services) -> None:
    recorded_call(services, record_audio=False)
    writeback.write_back(services, "s1")
    assert "Recording" not in the_note(services) and zoho(services).attachments == []


def test_recording_is_decided_at_trigger_time_and_off_by_default(aws: None) -> None:
    assert not build().recording_rules.enabled
    assert not build(recording_enabled=True).recording_rules.enabled  # no bucket: off
    rules = make_services(infobip_max_duration=600).recording_rules
    assert rules.enabled and rules.max_seconds == 600 and rules.key("s1") == "recordings/s1.wav"

"""The results kept on a session are its own conversation's: from the webhook or the poll."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from callflow.config import Settings
from callflow.lifecycle import analysis
from callflow.models import Session
from callflow.providers.elevenlabs.client import Conversation
from callflow.services import Services
from callflow_dev.local.aws import create_table
from tests.unit.elevenlabs_fixtures import conversation


class FakeElevenLabs:
    """Answers every GET with one conversation, whatever id was asked for."""

    def __init__(self, body: Conversation) -> None:
        self.body = body
        self.asked: list[str] = []

    def get_conversation(self, conversation_id: str) -> Conversation:
        self.asked.append(conversation_id)
        return self.body


@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        create_table("analysis", "us-east-1")
        services = Services(Settings(table_name="analysis", aws_region="us-east-1"))
        services.__dict__["sfn"] = None  # nothing waits: no task token on the sessions
        services.store.create(
            Session(session_id="s1", module="Leads", record_id="42", conversation_id="conv_own")
        )
        yield services


def results_of(conversation_id: str) -> dict[str, object]:
    return Conversation.model_validate(conversation(conversation_id=conversation_id)).results()


def test_the_sessions_own_results_are_stored_once(services: Services) -> None:
    assert analysis.store_results(services, "s1", results_of("conv_own"), source="webhook")
    assert not analysis.store_results(services, "s1", results_of("conv_own"), source="poll")
    assert services.store.require("s1").results["conversation_id"] == "conv_own"


@pytest.mark.parametrize("conversation_id", ["conv_other", ""])
def test_results_of_another_conversation_are_refused(
    services: Services, conversation_id: str
) -> None:
    results = results_of("conv_other")
    results["conversation_id"] = conversation_id
    with pytest.raises(analysis.ForeignConversation):
        analysis.store_results(services, "s1", results, source="webhook")
    assert services.store.require("s1").results == {}


def test_a_poll_answered_with_another_conversation_stores_nothing(services: Services) -> None:
    fake = FakeElevenLabs(Conversation.model_validate(conversation(conversation_id="conv_other")))
    services.__dict__["elevenlabs"] = fake
    with pytest.raises(analysis.ForeignConversation):
        analysis.fetch_analysis(services, {"session_id": "s1"})
    assert fake.asked == ["conv_own"]
    assert services.store.require("s1").results == {}

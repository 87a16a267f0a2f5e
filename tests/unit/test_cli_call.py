"""``callflow call MODULE/ID [--flow NAME]`` posts the Zoho webhook body the API expects."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from callflow_dev import cli


@pytest.fixture(name="posted")
def posted_fixture(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def post(url: str, **kwargs: Any) -> httpx.Response:
        sent.append({"url": url, **kwargs})
        return httpx.Response(202, json={"session_id": "s1"})

    monkeypatch.setenv("CALLFLOW_ZOHO_TRIGGER_SECRET", "trigger-secret")
    monkeypatch.setattr(httpx, "post", post)
    return sent


def test_a_call_names_its_flow_when_asked(posted: list[dict[str, Any]]) -> None:
    from callflow.config import get_settings

    get_settings.cache_clear()
    assert cli.main(["call", "Leads/42", "--api", "http://api.test/", "--flow", "reminder"]) == 0
    assert cli.main(["call", "Leads/43", "--api", "http://api.test"]) == 0
    get_settings.cache_clear()
    assert [p["url"] for p in posted] == ["http://api.test/webhooks/zoho"] * 2
    assert posted[0]["json"] == {"module": "Leads", "record_id": "42", "flow": "reminder"}
    assert posted[1]["json"] == {"module": "Leads", "record_id": "43"}
    assert posted[0]["headers"] == {"X-Callflow-Secret": "trigger-secret"}

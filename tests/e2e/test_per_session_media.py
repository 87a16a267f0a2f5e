"""Per-session media routing on the embedded stack: the stand-in shows the ids nowhere on the
socket, the attempt's own config carries them in its URL path, and the config is gone after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callflow.lifecycle import media_configs
from callflow_dev.local import variants
from callflow_dev.local.demo import Printer, _scenarios, run_scenario
from callflow_dev.local.stack import LocalStack, StackOptions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackOptions(brief_clips_ms=900, retry_delay_seconds=1)) as running:
        yield running


def test_a_per_session_call_reaches_the_agent_through_its_own_config_deleted_after(
    stack: LocalStack,
) -> None:
    (variant,) = variants.lookup(["infobip-ids-nowhere-per-session"])
    with variants.applied(stack, [variant]):
        result = run_scenario(
            stack, _scenarios()["answered"], None, Printer(quiet=True), phone="(415) 555-3999"
        )

    session = result.session
    assert session.conversation_id
    assert session.media_ids_found_in == "path"
    events = [entry.event for entry in session.timeline]
    assert "media config created" in events and "media config deleted" in events
    assert session.media_config_id == ""
    made = [
        r.body
        for r in stack.infobip.requests
        if r.method == "POST" and r.path == "/calls/1/media-stream-configs"
    ]
    assert [str(b["name"]).startswith(media_configs.NAME_PREFIX) for b in made] == [False, True]
    left = [c["name"] for c in stack.infobip.media_stream_configs.values()]
    assert not any(name.startswith(media_configs.NAME_PREFIX) for name in left)

"""The demo's "first words N ms after answer", read from the Infobip stand-in's call log."""

from __future__ import annotations

from callflow_dev.local.demo import first_words_ms
from callflow_dev.sandbox.infobip import LogEntry


def entry(at: str, what: str, call_id: str = "c1") -> LogEntry:
    return LogEntry(f"2026-12-03T10:00:{at}+0000", call_id, what)


def test_first_words_run_from_the_answer_to_the_agent_heard_on_the_phone() -> None:
    log = [
        entry("01.000", "placed"),
        entry("03.250", "answered"),
        entry("03.400", "media connected"),
        entry("03.900", "media agent_audio_started", call_id="c2"),  # another call
        entry("04.095", "media agent_audio_started"),
        entry("06.000", "media agent_audio_started"),  # a later turn
    ]
    assert first_words_ms(log, "c1") == 845


def test_no_first_words_before_the_agent_is_heard() -> None:
    log = [entry("03.250", "answered"), entry("03.400", "media connected")]
    assert first_words_ms(log, "c1") is None
    assert first_words_ms([entry("04.000", "media agent_audio_started")], "c1") is None

"""The doctor's judgements, on sessions shaped as the status route shows them (no stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callflow.config import Settings
from callflow_bridge.frame_stats import MAX_SIZES, FrameStats
from callflow_dev.doctor.assumptions import ASSUMPTIONS, Observed, Verdict, judge_all
from callflow_dev.doctor.checks import (
    DoctorReport,
    bridge_health_url,
    missing_zoho_scopes,
    required_zoho_scopes,
)
from callflow_dev.doctor.trial_call import TrialRefused, check_own_number, the_record

README = Path(__file__).resolve().parents[2] / "README.md"


def entry(event: str, **detail: Any) -> dict[str, Any]:
    return {"at": "2026-12-02T10:00:00+00:00", "event": event, "detail": detail}


def verdicts(
    view: dict[str, Any], *, rate: int = 16000, detection: bool = False
) -> dict[str, Verdict]:
    seen = Observed(view, rate, detection)
    return {assumption.title: verdict for assumption, verdict, _ in judge_all(seen)}


def answered_view(**changes: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "status": "completed",
        "call_id": "call-1",
        "call_answered_at": "2026-12-02T10:00:02+00:00",
        "timeline": [
            entry("call placed", call_id="call-1"),
            entry("infobip CALL_RINGING", call_id="call-1"),
            entry("infobip CALL_ESTABLISHED", call_id="call-1"),
            entry("media stream admitted"),
            entry("infobip CALL_FINISHED", call_id="call-1"),
            entry("results collected", source="webhook"),
        ],
        "bridge": {
            "formats": {
                "phone": "pcm_16000",
                "agent_input": "pcm_16000",
                "agent_output": "pcm_16000",
            },
            "phone_frames": {
                "frames": 100,
                "sizes": {"640": 100},
                "interval_ms": {"p50": 20.0, "p95": 21.0, "max": 30.0},
            },
        },
        "writeback": {"call_log_id": "9", "call_log_sent": True},
    }
    view.update(changes)
    return view


def test_an_answered_call_that_went_as_expected_holds_every_behaviour_it_shows() -> None:
    judged = verdicts(answered_view())
    assert Verdict.NOT_HELD not in judged.values()
    assert judged["The WebSocket leg's events are told apart by call id"] is Verdict.NOT_SEEN


def test_frames_of_another_size_say_which_rate_infobip_sends() -> None:
    view = answered_view()
    view["bridge"]["phone_frames"]["sizes"] = {"320": 100}
    seen = Observed(view, 16000, False)
    ((_, verdict, evidence),) = [j for j in judge_all(seen) if j[0].title.startswith("Media audio")]
    assert verdict is Verdict.NOT_HELD
    assert "320 B would be 20 ms at 8000 Hz" in evidence


def test_a_few_odd_frames_still_count_as_20_ms_frames() -> None:
    view = answered_view()
    view["bridge"]["phone_frames"]["sizes"] = {"640": 97, "1": 3}
    assert (
        verdicts(view)["Media audio is 20 ms frames of 16-bit PCM at the configured rate"]
        is Verdict.HELD
    )


def test_frames_bunched_together_are_not_real_time() -> None:
    view = answered_view()
    view["bridge"]["phone_frames"]["interval_ms"] = {"p50": 2.0, "p95": 80.0, "max": 400.0}
    assert verdicts(view)["Media frames arrive at real time, one every 20 ms"] is Verdict.NOT_HELD


def test_no_event_at_all_for_a_placed_call_is_not_held() -> None:
    view = answered_view(timeline=[entry("call placed", call_id="call-1")])
    judged = verdicts(view)
    assert judged["Infobip delivers the call's events with its customData"] is Verdict.NOT_HELD


def test_an_answered_call_without_its_established_event_is_not_held() -> None:
    view = answered_view()
    view["timeline"] = [e for e in view["timeline"] if e["event"] != "infobip CALL_ESTABLISHED"]
    assert (
        verdicts(view)["Infobip delivers the call's events with its customData"] is Verdict.NOT_HELD
    )


def test_events_of_another_call_id_are_another_leg() -> None:
    view = answered_view()
    view["timeline"].append(entry("infobip CALL_FINISHED", call_id="ws-leg"))
    assert verdicts(view)["The WebSocket leg's events are told apart by call id"] is Verdict.HELD


def test_detection_on_without_a_verdict_event_is_not_held() -> None:
    judged = verdicts(answered_view(), detection=True)
    assert judged["Machine detection answers with a verdict event"] is Verdict.NOT_HELD


def test_results_by_polling_mean_the_webhook_did_not_arrive() -> None:
    view = answered_view()
    view["timeline"][-1] = entry("results collected", source="poll")
    assert verdicts(view)["ElevenLabs delivers the post-call webhook"] is Verdict.NOT_HELD


def test_a_refused_call_log_is_not_held() -> None:
    view = answered_view(writeback={"call_log_sent": True, "error": "INVALID_DATA Call_Duration"})
    assert verdicts(view)["Zoho takes the call log as the writeback sends it"] is Verdict.NOT_HELD


def test_a_first_frame_that_matched_nothing_is_not_held() -> None:
    view = answered_view()
    view["timeline"] = [e for e in view["timeline"] if e["event"] != "media stream admitted"]
    view["media_unmatched_frame"] = {"event": "str"}
    judged = verdicts(view)
    assert judged["The media stream carries the session's identifiers"] is Verdict.NOT_HELD


def test_a_stream_naming_nothing_while_the_call_ran_is_not_held() -> None:
    from callflow_dev.doctor.assumptions import unmatched_during

    view = answered_view()
    view["timeline"] = [e for e in view["timeline"] if e["event"] != "media stream admitted"]
    view["timeline"][-1] = {**view["timeline"][-1], "at": "2026-12-02T10:05:00+00:00"}
    during = {"shape": {"frame": {"event": "string[19]"}}, "at": "2026-12-02T10:01:00+00:00"}
    before = {"shape": {"frame": {}}, "at": "2026-12-01T10:01:00+00:00"}
    assert unmatched_during(view, before) is None
    shape = unmatched_during(view, during)
    assert shape == {"frame": {"event": "string[19]"}}
    seen = Observed(view, 16000, False, unmatched_media=shape)
    judged = {a.title: v for a, v, _ in judge_all(seen)}
    assert judged["The media stream carries the session's identifiers"] is Verdict.NOT_HELD
    assert verdicts(view)["The media stream carries the session's identifiers"] is Verdict.NOT_SEEN


def test_a_call_never_placed_shows_nothing() -> None:
    judged = verdicts({"status": "completed", "timeline": [entry("not called: invalid_number")]})
    assert set(judged.values()) == {Verdict.NOT_SEEN}


def test_readme_lists_every_behaviour_the_doctor_judges() -> None:
    text = README.read_text()
    section = text.split("## Provider behaviour we rely on")[1].split("\n## ")[0]
    for assumption in ASSUMPTIONS:
        assert f"**{assumption.title}**" in section, assumption.title


@pytest.mark.parametrize(
    ("granted", "missing"),
    [
        ("ZohoCRM.modules.ALL ZohoCRM.settings.fields.READ", []),
        ("ZohoCRM.modules.ALL,ZohoCRM.settings.ALL", []),
        ("ZohoCRM.modules.ALL", ["ZohoCRM.settings.fields.READ"]),
        (
            "ZohoCRM.modules.leads.ALL ZohoCRM.modules.notes.CREATE ZohoCRM.settings.fields.READ",
            [
                "ZohoCRM.modules.notes.READ",
                "ZohoCRM.modules.calls.CREATE",
                "ZohoCRM.modules.calls.READ",
                "ZohoCRM.modules.attachments.CREATE",
                "ZohoCRM.modules.attachments.READ",
            ],
        ),
        (
            "ZohoCRM.modules.leads.READ ZohoCRM.modules.notes.ALL ZohoCRM.modules.calls.ALL "
            "ZohoCRM.modules.attachments.ALL ZohoCRM.settings.fields.READ",
            ["ZohoCRM.modules.leads.UPDATE"],
        ),
    ],
)
def test_missing_zoho_scopes(granted: str, missing: list[str]) -> None:
    assert missing_zoho_scopes(granted, required_zoho_scopes(["Leads"])) == missing


def test_callback_tasks_need_the_tasks_scopes() -> None:
    granted = (
        "ZohoCRM.modules.leads.ALL ZohoCRM.modules.notes.ALL ZohoCRM.modules.calls.ALL "
        "ZohoCRM.modules.attachments.ALL ZohoCRM.settings.fields.READ"
    )
    assert missing_zoho_scopes(granted, required_zoho_scopes(["Leads"])) == []
    assert missing_zoho_scopes(granted, required_zoho_scopes(["Leads"], tasks=True)) == [
        "ZohoCRM.modules.tasks.CREATE",
        "ZohoCRM.modules.tasks.READ",
    ]


def test_what_setup_would_still_change_is_a_problem_for_the_doctor() -> None:
    import io

    report = DoctorReport(io.StringIO())
    report.would("create subscription x")
    assert report.exit_code == 1 and "not set up: create subscription x" in report.problems[0]


def test_the_bridge_health_route_sits_beside_the_media_path() -> None:
    assert (
        bridge_health_url("wss://bridge.example.com/s3cret") == "https://bridge.example.com/health"
    )
    assert bridge_health_url("ws://127.0.0.1:8080/s3cret") == "http://127.0.0.1:8080/health"


def test_the_test_call_refuses_a_record_holding_another_number() -> None:
    settings = Settings()
    assert check_own_number(settings, "+1 415 555 0100", "(415) 555-0100") == "+14155550100"
    with pytest.raises(TrialRefused, match="not"):
        check_own_number(settings, "+14155550100", "(415) 555-0199")
    with pytest.raises(TrialRefused, match="empty"):
        check_own_number(settings, "+14155550100", "")
    with pytest.raises(TrialRefused, match="MODULE/ID"):
        the_record("Leads")
    with pytest.raises(TrialRefused) as refused:
        check_own_number(settings, "+14155550100", "+14155550199")
    assert "+14155550199" not in str(refused.value)  # numbers are masked


def test_frame_stats_count_sizes_gaps_and_text_events() -> None:
    stats = FrameStats()
    for index in range(50):
        stats.audio(640, index * 0.02)
    for size in range(MAX_SIZES + 3):
        stats.audio(1000 + size, 1.0 + size * 0.02)
    stats.text("websocket:dtmf")
    stats.text("")
    summary = stats.summary()
    assert summary["frames"] == 50 + MAX_SIZES + 3
    assert summary["sizes"]["640"] == 50  # type: ignore[index]
    assert summary["other_sizes"] == 4
    gaps = summary["interval_ms"]
    assert isinstance(gaps, dict) and gaps["p50"] == 20.0
    assert summary["text_events"] == {"websocket:dtmf": 1, "?": 1}


def test_a_variant_says_what_the_doctor_must_report() -> None:
    from callflow_dev.local.variants import Variant, doctor_problems

    variant = Variant("v", "d", doctor={"A": "not held"})
    assert doctor_problems([("A", "not held", "x"), ("B", "held", "y")], [variant]) == []
    assert doctor_problems([("A", "held", "x")], [variant]) == [
        "doctor: 'A' held (x), expected not held"
    ]
    assert doctor_problems([("A", "not held", "x"), ("B", "not held", "z")], [variant]) == [
        "doctor: 'B' not held (z)"
    ]
    assert doctor_problems([], [variant]) == ["doctor: no behaviour titled 'A'"]


def test_every_title_a_variant_names_is_a_behaviour_the_doctor_judges() -> None:
    from callflow_dev.local.variants import all_variants

    titles = {assumption.title for assumption in ASSUMPTIONS}
    for variant in all_variants().values():
        assert set(variant.doctor) <= titles, variant.name

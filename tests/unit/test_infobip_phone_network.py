"""The simulated phone network: per-number behaviours per attempt, scripts, defaults."""

from __future__ import annotations

import math

import pytest

from callflow_dev.sandbox import phone_network as net


def test_a_number_without_behaviours_gets_the_network_default() -> None:
    network = net.PhoneNetwork(default=net.busy())

    assert network.next_behaviour("+15550100").kind == "busy"
    assert network.calls_to("+15550100") == 1


def test_behaviours_apply_per_call_and_the_last_one_repeats() -> None:
    network = net.PhoneNetwork()
    network.set_behaviour("+41792036727", [net.no_answer(), net.busy(), net.answer(after_s=2)])

    kinds = [network.next_behaviour("41792036727").kind for _ in range(5)]

    assert kinds == ["no_answer", "busy", "answer", "answer", "answer"]


def test_a_number_is_the_same_line_with_or_without_the_plus() -> None:
    network = net.PhoneNetwork()
    script = object()
    network.set_behaviour("41792036727", [net.reject()])
    network.set_script("+41792036727", script)

    assert network.next_behaviour("+41792036727").kind == "reject"
    assert network.script_for("41792036727") is script
    assert network.script_for("+15550100") is None


def test_an_empty_behaviour_list_is_refused_without_the_full_number() -> None:
    with pytest.raises(ValueError, match=r"\*\*\*\*\*\*\*\*727") as caught:
        net.PhoneNetwork().set_behaviour("+41792036727", [])

    assert "41792036727" not in str(caught.value)


@pytest.mark.parametrize(
    "make", [lambda: net.answer(after_s=-1), lambda: net.answer(hangup_after_s=-1)]
)
def test_negative_durations_are_refused(make: object) -> None:
    with pytest.raises(ValueError, match="negative"):
        make()  # type: ignore[operator]


def test_no_answer_rings_until_the_connect_timeout_unless_told_otherwise() -> None:
    assert math.isinf(net.no_answer().after_s)
    assert net.no_answer(after_s=3).after_s == 3


def test_only_answer_and_voicemail_pick_up() -> None:
    behaviours = [net.answer(), net.no_answer(), net.busy(), net.reject(), net.voicemail()]
    behaviours.append(net.unreachable())

    assert [b.picks_up for b in behaviours] == [True, False, False, False, True, False]

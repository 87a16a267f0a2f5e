"""The answered scenario under every stand-in variant of an unverified provider behaviour.

Each variant (see :mod:`callflow_dev.local.variants`) is one way a provider might really behave;
the call must reach the agent and the writeback land under every one (or, for a variant that must
not reach the agent, end as the variant says). One stack serves them all: a variant is applied
for its run and undone after.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from callflow.config import get_settings
from callflow.services import get_services
from callflow_dev.doctor.assumptions import Observed, judge_all, unmatched_during
from callflow_dev.local import variants
from callflow_dev.local.demo import Printer, _scenarios, run_scenario
from callflow_dev.local.stack import LocalStack, StackOptions

pytestmark = pytest.mark.slow

_numbers = itertools.count(3600)


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(StackOptions(brief_clips_ms=900, retry_delay_seconds=1)) as running:
        yield running


@pytest.mark.parametrize("name", list(variants.all_variants()))
def test_the_answered_call_copes_with_the_variant(
    stack: LocalStack, tmp_path: Path, name: str
) -> None:
    (variant,) = variants.lookup([name])
    with variants.applied(stack, [variant]):
        settings = get_settings()
        result = run_scenario(
            stack,
            _scenarios()["answered"],
            None,
            Printer(quiet=True),
            phone=f"(415) 555-{next(_numbers)}",
        )
    assert variants.problems(result.session, [variant]) == []
    # What the doctor's test call would report of this call (it judges the same session).
    view = result.session.model_dump(mode="json")
    seen = Observed(
        view,
        settings.infobip_sample_rate,
        settings.infobip_machine_detection,
        unmatched_during(view, get_services().store.last_unmatched_media()),
    )
    judged = [(a.title, verdict.value, evidence) for a, verdict, evidence in judge_all(seen)]
    assert variants.doctor_problems(judged, [variant]) == []


def test_every_variant_has_a_unique_name_and_a_description() -> None:
    named = variants.all_variants()
    assert all(v.description for v in named.values())
    assert len(named) == sum(
        len(area)
        for area in (
            variants.INFOBIP_MEDIA,
            variants.INFOBIP_EVENTS,
            variants.ZOHO,
            variants.ELEVENLABS,
        )
    )


def test_an_unknown_variant_is_refused_with_the_way_to_list_them() -> None:
    with pytest.raises(variants.UnknownVariant, match="--list-variants"):
        variants.lookup(["no-such-variant"])

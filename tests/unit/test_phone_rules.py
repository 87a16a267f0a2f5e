"""Phone numbers are normalised or refused with a reason; calling hours are local."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callflow.phone import CallingHours, InvalidPhone, mask, normalise, timezone_for


def test_national_number_is_normalised_against_the_default_region() -> None:
    assert normalise("(415) 555-2671", "US").e164 == "+14155552671"


def test_international_number_keeps_its_own_region() -> None:
    phone = normalise("+44 20 7946 0958", "US")
    assert phone.e164 == "+442079460958" and phone.region == "GB"
    assert phone.infobip == "442079460958"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("", "no phone number"), ("call me", "not a phone number"), ("+1 555 0100", "not a valid")],
)
def test_unusable_numbers_are_refused_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhone, match=reason):
        normalise(raw, "US")


def test_mask_keeps_only_the_last_three_digits() -> None:
    assert mask("+14155552671") == "+********671"
    assert "555" not in mask("+14155552671")


def test_time_zone_prefers_the_record_then_the_number_then_the_default() -> None:
    london = normalise("+442079460958", "US")
    assert timezone_for(london, "Asia/Tokyo", "UTC") == "Asia/Tokyo"
    assert timezone_for(london, None, "UTC") == "Europe/London"
    san_francisco = normalise("+14155552671", "US")
    assert timezone_for(san_francisco, "Not/AZone", "UTC") == "America/Los_Angeles"


HOURS = CallingHours.parse("09:00", "20:00", frozenset({0, 1, 2, 3, 4}))


def test_inside_calling_hours_calls_now() -> None:
    noon = datetime(2026, 11, 18, 17, 0, tzinfo=UTC)  # Wed 12:00 in New York
    assert HOURS.next_opening(noon, "America/New_York") == noon


def test_evening_moves_to_next_morning_in_the_persons_zone() -> None:
    late = datetime(2026, 11, 19, 2, 0, tzinfo=UTC)  # Wed 21:00 in New York
    opening = HOURS.next_opening(late, "America/New_York")
    assert opening == datetime(2026, 11, 19, 14, 0, tzinfo=UTC)  # Thu 09:00 EST


def test_weekend_moves_to_monday() -> None:
    saturday = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    opening = HOURS.next_opening(saturday, "Europe/Berlin")
    assert opening.astimezone(UTC) == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

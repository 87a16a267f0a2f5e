"""Agent results -> Zoho field values: each type, each conversion failure, and bad mapping files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callflow.mapping import FieldMapping, MappingError

ALL_TYPES = """
mappings:
  - {item: note, field: Summary_Text, type: text, max_length: 10}
  - {item: story, field: Story, type: textarea}
  - {item: seats, field: Seats, type: number}
  - {item: ratio, field: Ratio, type: decimal}
  - {item: bill, field: Bill, type: currency}
  - {item: keen, field: Keen, type: boolean}
  - {item: visit, field: Visit, type: date}
  - {item: callback, field: Callback_At, type: datetime}
  - item: status
    field: Status
    type: picklist
    choices: [Contacted, Not Qualified]
    aliases: {"no thanks": Not Qualified}
  - {item: topics, field: Topics, type: multiselect, choices: [Solar, Battery, EV Charger]}
  - {item: owner, field: Owner_Note, type: text, modules: [Contacts]}
"""


@pytest.fixture
def mapping() -> FieldMapping:
    return FieldMapping.parse(ALL_TYPES, name="test.yaml")


def one(mapping: FieldMapping, item: str, value: Any, timezone: str = "UTC") -> Any:
    """The converted value, or the problem text when it did not convert."""
    result = mapping.apply(
        {item: {"data_collection_id": item, "value": value, "rationale": "said so"}},
        timezone=timezone,
    )
    if result.problems:
        assert result.fields == {}
        (problem,) = result.problems
        return ("problem", problem)
    (converted,) = result.fields.values()
    return converted


# --- the shipped mapping ------------------------------------------------------------------


def test_shipped_mapping_covers_the_demo_agent_items() -> None:
    mapping = FieldMapping.load()

    assert set(mapping.items()) == {"interested", "monthly_bill", "visit_date", "lead_status"}
    result = mapping.apply(
        {
            "interested": {"value": True},
            "monthly_bill": {"value": 150},
            "visit_date": {"value": "2026-12-03"},
            "lead_status": {"value": "qualified"},
        },
        timezone="America/New_York",
        module="Leads",
    )
    assert result.problems == []
    assert result.fields == {
        "Interested": True,
        "Monthly_Bill": 150.0,
        "Site_Visit_Date": "2026-12-03",
        "Lead_Status": "Qualified",
    }


# --- conversions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "value", "expected"),
    [
        ("note", "  short ", "short"),
        ("note", 42, "42"),
        ("note", True, "Yes"),
        ("story", "a" * 5000, "a" * 5000),
        ("seats", 3, 3),
        ("seats", 3.0, 3),
        ("seats", "1,200", 1200),
        ("ratio", "0.75", 0.75),
        ("ratio", 2, 2.0),
        ("bill", "$1,234.567", 1234.57),
        ("bill", "120 dollars", 120.0),
        ("bill", 99.5, 99.5),
        ("keen", True, True),
        ("keen", "Yes", True),
        ("keen", "no", False),
        ("keen", 0, False),
        ("visit", "2026-12-03", "2026-12-03"),
        ("visit", "2026-12-03T09:30:00", "2026-12-03"),
        ("callback", "2026-12-03T09:30:00+01:00", "2026-12-03T09:30:00+01:00"),
        ("status", "contacted", "Contacted"),
        ("status", "  NOT   qualified ", "Not Qualified"),
        ("status", "No Thanks", "Not Qualified"),
        ("topics", ["solar", "EV charger"], ["Solar", "EV Charger"]),
        ("topics", "Battery, solar; battery", ["Battery", "Solar"]),
    ],
)
def test_value_converts_to_the_zoho_shape(
    mapping: FieldMapping, item: str, value: Any, expected: Any
) -> None:
    converted = one(mapping, item, value)
    assert converted == expected
    assert type(converted) is type(expected)


def test_datetime_without_offset_takes_the_sessions_time_zone(mapping: FieldMapping) -> None:
    assert one(mapping, "callback", "2026-07-01T15:00:00", "America/New_York") == (
        "2026-07-01T15:00:00-04:00"
    )
    assert one(mapping, "callback", "2026-12-01 15:00", "America/New_York") == (
        "2026-12-01T15:00:00-05:00"
    )


def test_aware_datetime_gives_the_date_in_the_sessions_zone(mapping: FieldMapping) -> None:
    assert one(mapping, "visit", "2026-12-03T02:00:00+00:00", "America/New_York") == "2026-12-02"


@pytest.mark.parametrize(
    ("item", "value", "words"),
    [
        ("note", "far too long for ten", "takes 10"),
        ("note", {"a": 1}, "is not text"),
        ("seats", "12.5", "not a whole number"),
        ("seats", "a dozen", "not a whole number"),
        ("seats", True, "not a whole number"),
        ("ratio", "nan", "not a number"),
        ("ratio", float("inf"), "not a number"),
        ("bill", "a lot", "not an amount of money"),
        ("keen", "maybe", "not yes or no"),
        ("keen", 2, "not yes or no"),
        ("visit", "next Tuesday", "not a date"),
        ("visit", "2026-02-30", "not a date"),
        ("visit", 20261203, "not a date"),
        ("callback", "2026-12-03", "no time of day"),
        ("callback", "tomorrow at 5", "not a date and time"),
        ("callback", "2026-12-03T25:00:00", "not a date and time"),
        ("status", "Thrilled", "not one of Contacted, Not Qualified"),
        ("status", True, "not one of"),
        ("topics", ["Solar", "Wind"], "'Wind' is not one of"),
        ("topics", 7, "not a list of choices"),
    ],
)
def test_value_that_does_not_convert_is_reported_not_written(
    mapping: FieldMapping, item: str, value: Any, words: str
) -> None:
    outcome = one(mapping, item, value)
    assert isinstance(outcome, tuple) and outcome[0] == "problem"
    assert words in outcome[1]
    assert outcome[1].startswith(f"{item} -> ")


def test_null_and_blank_values_are_skipped_silently(mapping: FieldMapping) -> None:
    result = mapping.apply(
        {"keen": {"value": None}, "note": {"value": "  "}, "seats": None}, timezone="UTC"
    )
    assert result.fields == {} and result.problems == []


def test_items_the_agent_did_not_return_are_skipped(mapping: FieldMapping) -> None:
    result = mapping.apply({"unrelated": {"value": "x"}}, timezone="UTC")
    assert result.fields == {} and result.problems == []


def test_bare_values_are_accepted_as_well_as_result_entries(mapping: FieldMapping) -> None:
    result = mapping.apply({"keen": "yes", "seats": {"value": 4}}, timezone="UTC")
    assert result.fields == {"Keen": True, "Seats": 4}


def test_module_filter_limits_entries(mapping: FieldMapping) -> None:
    results = {"owner": {"value": "Sam"}, "keen": {"value": True}}
    assert mapping.apply(results, timezone="UTC", module="Leads").fields == {"Keen": True}
    assert mapping.apply(results, timezone="UTC", module="Contacts").fields == {
        "Keen": True,
        "Owner_Note": "Sam",
    }
    assert "owner" not in mapping.items("Leads")
    assert "Owner_Note" in mapping.fields("Contacts")


def test_unknown_time_zone_is_a_clear_error(mapping: FieldMapping) -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        mapping.apply({}, timezone="Mars/Olympus")


# --- bad mapping files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("mappings: [", "line 1"),
        ("fields: []", "top-level 'mappings:' list"),
        ("mappings:\n  - {item: a, field: A, type: colour}", "type 'colour' is not one of"),
        ("mappings:\n  - {item: a, field: A}", "'type' must be a non-empty string"),
        ("mappings:\n  - {item: a, field: A, type: picklist}", "needs a non-empty 'choices'"),
        ("mappings:\n  - {item: a, field: A, type: text, choices: [x]}", "only picklist"),
        (
            "mappings:\n  - {item: a, field: A, type: picklist, choices: [X], aliases: {y: Z}}",
            "alias 'y' must point at one of the choices",
        ),
        ("mappings:\n  - {item: a, field: A, type: text, colour: red}", "unknown key(s) colour"),
        ("mappings:\n  - just a string", "expected a mapping"),
        ("mappings:\n  - {item: a, field: A, type: number, max_length: 3}", "max_length"),
        ("mappings:\n  - {item: a, field: A, type: text, modules: Leads}", "'modules' must"),
    ],
)
def test_invalid_mapping_file_is_a_clear_error(text: str, words: str) -> None:
    with pytest.raises(MappingError) as caught:
        FieldMapping.parse(text, name="bad.yaml")
    assert words in str(caught.value)
    assert str(caught.value).startswith("bad.yaml:")


def test_error_names_the_line_and_entry_of_the_bad_entry() -> None:
    text = (
        "mappings:\n"
        "  - item: a\n"
        "    field: A\n"
        "    type: text\n"
        "  - item: b\n"
        "    field: B\n"
        "    type: integer\n"
    )
    with pytest.raises(MappingError, match=r"bad.yaml: line 5, entry 2: type 'integer'"):
        FieldMapping.parse(text, name="bad.yaml")


def test_a_field_mapped_twice_for_the_same_module_is_refused() -> None:
    text = "mappings:\n  - {item: a, field: A, type: text}\n  - {item: b, field: A, type: text}\n"
    with pytest.raises(MappingError, match="already mapped by entry 1"):
        FieldMapping.parse(text, name="bad.yaml")


def test_the_same_field_may_be_mapped_per_module() -> None:
    text = (
        "mappings:\n"
        "  - {item: a, field: A, type: text, modules: [Leads]}\n"
        "  - {item: b, field: A, type: text, modules: [Contacts]}\n"
    )
    mapping = FieldMapping.parse(text)
    assert mapping.apply({"b": "x"}, timezone="UTC", module="Contacts").fields == {"A": "x"}


def test_missing_file_is_a_mapping_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read"):
        FieldMapping.load(tmp_path / "nope.yaml")

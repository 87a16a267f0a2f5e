"""The schema extractor keeps the facts of what the project uses and nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from callflow_dev import schemas
from callflow_dev.schemas.extract import SOURCES, Extract, ExtractError, extract, strip

SPEC = Extract(
    source="x.json",
    target="x.json",
    origin="example",
    as_of="2026-01-01",
    paths=("/things/{id}",),
    components=("schemas/Extra",),
    keep=("openapi",),
)


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "dropped"},
        "paths": {
            "/things/{id}": {
                "get": {
                    "summary": "dropped",
                    "tags": ["dropped"],
                    "responses": {
                        "200": {
                            "description": "dropped",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Thing"}
                                }
                            },
                        }
                    },
                }
            },
            "/unused": {"get": {"responses": {}}},
        },
        "components": {
            "schemas": {
                "Thing": {
                    "type": "object",
                    "description": "dropped",
                    "required": ["description"],
                    "properties": {
                        "description": {"type": "string", "example": "dropped"},
                        "kind": {"enum": ["a", "b"], "x-vendor": 1},
                        "pet": {
                            "discriminator": {
                                "propertyName": "type",
                                "mapping": {"cat": "#/components/schemas/Cat"},
                            }
                        },
                    },
                },
                "Cat": {"type": "object", "properties": {"type": {"const": "cat"}}},
                "Extra": {"type": "string", "format": "date-time"},
                "Unused": {"type": "integer"},
            }
        },
    }


def test_keeps_named_paths_and_the_components_they_reach() -> None:
    out = extract(SPEC, _document())
    assert list(out["paths"]) == ["/things/{id}"]
    assert set(out["components"]["schemas"]) == {"Thing", "Cat", "Extra"}
    assert "info" not in out and out["openapi"] == "3.1.0"


def test_drops_descriptions_and_examples_but_not_properties_of_those_names() -> None:
    thing = extract(SPEC, _document())["components"]["schemas"]["Thing"]
    assert "description" not in thing
    assert thing["required"] == ["description"]
    assert thing["properties"]["description"] == {"type": "string"}
    assert thing["properties"]["kind"] == {"enum": ["a", "b"]}
    response = extract(SPEC, _document())["paths"]["/things/{id}"]["get"]
    assert "summary" not in response and "tags" not in response


def test_records_its_source_and_date() -> None:
    provenance = extract(SPEC, _document())["x-callflow-extract"]
    assert provenance["source"] == "example" and provenance["as_of"] == "2026-01-01"


def test_a_path_the_project_uses_that_the_description_lacks_is_an_error() -> None:
    document = _document()
    del document["paths"]["/things/{id}"]
    with pytest.raises(ExtractError, match="/things/"):
        extract(SPEC, document)


def test_a_dangling_reference_of_the_description_is_kept_and_listed() -> None:
    document = _document()
    document["components"]["schemas"]["Thing"]["properties"]["owner"] = {
        "$ref": "#/components/schemas/Missing"
    }
    out = extract(SPEC, document)
    assert out["x-callflow-extract"]["dangling_references"] == ["#/components/schemas/Missing"]


def test_literal_values_are_copied_untouched() -> None:
    assert strip({"default": {"description": "kept"}}) == {"default": {"description": "kept"}}


@pytest.mark.parametrize("spec", SOURCES, ids=[s.target for s in SOURCES])
def test_every_extracted_file_is_in_the_package_with_its_provenance(spec: Extract) -> None:
    provider, name = spec.target.split("/")
    document = schemas.load(provider, name)
    assert document["x-callflow-extract"]["as_of"] == spec.as_of
    assert "description" not in str(document.get("info", ""))

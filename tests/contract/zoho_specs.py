"""Zoho's OpenAPI files (``callflow_dev/schemas/zoho``) as JSON Schema validators.

The files are extracted from Zoho's ``zoho/crm-oas`` v8.0. Three things about them shape how they
are used here, each kept as narrow as possible:

- They point at sibling files that are not in ``specs/`` (``users.json``, ``modules.json``,
  ``tags.json``, ``attachments.json``), by https URL. Nothing is fetched: such a reference
  resolves to "an object", so its shape is checked as far as the files we have describe it.
- They reuse the *record* schema for request bodies, so its ``required`` list names fields the
  server fills in (``id``, ``Created_Time``, ``Owner``, ``$state``...). For a request those are
  dropped from ``required``; everything else, including the required ``Note_Content`` and
  ``Parent_Id`` of a note, stays.
- Their response alternatives overlap (a ``{"data": [...]}`` answer also satisfies the
  all-optional ``API_Exception``), so ``oneOf`` is read as ``anyOf`` for responses.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from callflow_dev import schemas

SPEC_FILES = ("record.json", "notes.json", "common.json")
SERVER_FILLED = frozenset(
    {"id", "Created_Time", "Created_By", "Modified_Time", "Modified_By", "Owner"}
)


class SpecNotFound(LookupError):
    """No operation in the Zoho specs matches a request."""


def load(name: str) -> dict[str, Any]:
    """One of the extracted Zoho files (``callflow_dev.schemas``)."""
    return schemas.load("zoho", name)


def _external_refs(node: Any, found: dict[str, set[str]]) -> dict[str, set[str]]:
    """Sibling-file references (``https://...users.json#/components/schemas/X``) by file."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("http"):
            base, _, fragment = ref.partition("#")
            found.setdefault(base, set()).add(fragment.rsplit("/", 1)[-1])
        for value in node.values():
            _external_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _external_refs(value, found)
    return found


def _stand_ins() -> list[tuple[str, Resource[Any]]]:
    """A sibling file we do not have: each schema it is asked for is checked as "an object"."""
    found: dict[str, set[str]] = {}
    for name in SPEC_FILES:
        _external_refs(load(name), found)
    return [
        (
            base,
            Resource.from_contents(
                {"components": {"schemas": {n: {"type": "object"} for n in sorted(names)}}},
                default_specification=DRAFT202012,
            ),
        )
        for base, names in found.items()
    ]


def _for_requests(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _for_requests(v) for k, v in node.items()}
        if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
            out["required"] = [
                name
                for name in out["required"]
                if name not in SERVER_FILLED and not name.startswith("$")
            ]
        return out
    if isinstance(node, list):
        return [_for_requests(v) for v in node]
    return node


def _for_responses(node: Any) -> Any:
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _for_responses(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_for_responses(v) for v in node]
    return node


def _uri(name: str, view: str) -> str:
    return f"urn:zoho-spec:{view}:{name}"


@cache
def _registry(view: str) -> Registry[Any]:
    transform = _for_requests if view == "request" else _for_responses
    resources = [
        (
            _uri(name, view),
            Resource.from_contents(
                transform(copy.deepcopy(load(name))), default_specification=DRAFT202012
            ),
        )
        for name in SPEC_FILES
    ]
    return Registry().with_resources([*resources, *_stand_ins()])


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def find_operation(method: str, path: str) -> tuple[str, str, dict[str, Any]]:
    """(spec file, path template, operation) for a concrete request path.

    A literal template segment (``Notes``, ``settings``) beats a parameter, so
    ``POST /crm/v8/Notes`` is the notes operation and ``POST /crm/v8/Calls`` the records one.
    """
    segments = path.strip("/").split("/")
    best: tuple[int, str, str, dict[str, Any]] | None = None
    for name in SPEC_FILES:
        for template, operations in load(name).get("paths", {}).items():
            parts = template.strip("/").split("/")
            if len(parts) != len(segments):
                continue
            literal = 0
            for part, segment in zip(parts, segments, strict=True):
                if part.startswith("{"):
                    continue
                if part != segment:
                    break
                literal += 1
            else:
                operation = operations.get(method.lower())
                if operation is not None and (best is None or literal > best[0]):
                    best = (literal, name, template, operation)
    if best is None:
        raise SpecNotFound(f"no {method} {path} in the Zoho specs")
    return best[1], best[2], best[3]


def request_validator(method: str, path: str) -> tuple[Draft202012Validator, dict[str, Any]]:
    """The validator of the operation's JSON request body, and that body's schema."""
    name, template, operation = find_operation(method, path)
    if "application/json" not in operation.get("requestBody", {}).get("content", {}):
        raise SpecNotFound(f"{method} {template} takes no JSON body")
    pointer = _pointer(
        "paths", template, method.lower(), "requestBody", "content", "application/json", "schema"
    )
    uri = f"{_uri(name, 'request')}#/{pointer}"
    validator = Draft202012Validator({"$ref": uri}, registry=_registry("request"))
    resolved = _registry("request").resolver().lookup(uri)
    while isinstance(resolved.contents, dict) and "$ref" in resolved.contents:
        resolved = resolved.resolver.lookup(resolved.contents["$ref"])
    return validator, dict(resolved.contents)


def response_errors(method: str, path: str, status: int, body: Any) -> list[str]:
    """Violations of the answer's body for ``status`` (the 200 schema when the spec lists no
    such status: Zoho answers a creation with 201 and the same body).

    A top-level ``oneOf`` is decided by shape before validating: a body with ``data`` is checked
    against the wrapper alternatives, one without against the error alternatives (the spec's
    ``API_Exception`` would otherwise accept any object).
    """
    name, template, operation = find_operation(method, path)
    responses = operation.get("responses", {})
    key = str(status) if str(status) in responses else "200"
    pointer = _pointer(
        "paths", template, method.lower(), "responses", key, "content", "application/json", "schema"
    )
    uri = f"{_uri(name, 'response')}#/{pointer}"
    registry = _registry("response")
    resolved = registry.resolver().lookup(uri)
    schema = resolved.contents
    alternatives = schema.get("anyOf") if isinstance(schema, dict) else None
    if not alternatives:
        return errors(Draft202012Validator({"$ref": uri}, registry=registry), body)
    has_data = isinstance(body, dict) and "data" in body
    chosen = []
    for index, alternative in enumerate(alternatives):
        target = alternative
        while isinstance(target, dict) and "$ref" in target:
            target = resolved.resolver.lookup(target["$ref"]).contents
        if ("data" in target.get("properties", {})) == has_data:
            chosen.append({"$ref": f"{uri}/anyOf/{index}"})
    if not chosen:
        return [f"<body>: no alternative of {method} {template} {key} has this shape"]
    return errors(Draft202012Validator({"anyOf": chosen}, registry=registry), body)


def errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    """Every violation, as ``path: message`` lines (empty when valid)."""
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message}"
        for e in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    ]

"""Extract from the providers' published API descriptions the schemas this project uses.

Run ``python -m callflow_dev.schemas.extract --from DIR`` with ``DIR`` holding the full
descriptions laid out as :data:`SOURCES` names them (``infobip/voice-openapi.json``, ...); it
rewrites ``tools/callflow_dev/schemas/``. ``--check`` compares instead and exits 1 on drift.

What is kept, per source: the operations (path templates) listed in its :class:`Extract`, the
named extra components, and every component they reference, transitively. Within them the facts
stay: names, types, enums, ``required``, formats, defaults, patterns, discriminators. What goes:
descriptions, summaries, titles, examples, external docs, tags and vendor ``x-`` extensions.
References to other files (Zoho's sibling files by URL) are kept as they are. The output is
deterministic, so the drift check is a byte comparison.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent

#: Keywords that describe rather than constrain.
DROPPED = frozenset(
    {"description", "summary", "title", "example", "examples", "externalDocs", "tags"}
)
#: Keywords whose value is a map from names (of properties, paths, components...) to objects:
#: its keys are data, not keywords, and are never dropped.
NAME_MAPS = frozenset(
    {
        "properties",
        "patternProperties",
        "definitions",
        "$defs",
        "paths",
        "components",
        "schemas",
        "responses",
        "content",
        "headers",
        "mapping",
        "securitySchemes",
        "messages",
        "channels",
        "requestBodies",
        "callbacks",
        "variables",
        "links",
        "encoding",
        "servers",
        "parameters",
        "dependentSchemas",
    }
)
#: Keywords whose value is literal data, copied untouched.
LITERALS = frozenset({"enum", "const", "default", "required"})


@dataclass(frozen=True)
class Extract:
    """One published description and what this project takes from it."""

    source: str
    """Path under the descriptions' directory."""
    target: str
    """Path under ``tools/callflow_dev/schemas``."""
    origin: str
    """Where the description is published."""
    as_of: str
    """The date of the copy it was extracted from."""
    paths: tuple[str, ...] = ()
    """Path templates kept with all their operations (OpenAPI)."""
    components: tuple[str, ...] = ()
    """Extra ``<kind>/<name>`` components kept (``schemas/Event``), with their references."""
    whole: bool = False
    """Keep every component and path (a small shared file, an AsyncAPI contract)."""
    keep: tuple[str, ...] = field(default=())
    """Top-level keys kept besides ``paths`` and ``components``."""


_INFOBIP_EVENTS = "4527871876f1b326359cd9e5dcf777f0ecc3c5fde89b1e88f0c154b298b67611."
SOURCES: tuple[Extract, ...] = (
    Extract(
        source="infobip/voice-openapi.json",
        target="infobip/voice.json",
        origin="github.com/api-evangelist/infobip openapi/infobip-voice-openapi.json (3.210.0)",
        as_of="2026-08-07",
        paths=(
            "/calls/1/calls",
            "/calls/1/calls/{callId}",
            "/calls/1/calls/{callId}/hangup",
            "/calls/1/dialogs",
            "/calls/1/dialogs/{dialogId}",
            "/calls/1/dialogs/{dialogId}/hangup",
            "/calls/1/media-stream-configs",
            "/calls/1/media-stream-configs/{mediaStreamConfigId}",
        ),
        components=(f"schemas/{_INFOBIP_EVENTS}Event", f"schemas/{_INFOBIP_EVENTS}EventType"),
        keep=("openapi",),
    ),
    Extract(
        source="infobip/subscriptions-openapi.json",
        target="infobip/subscriptions.json",
        origin="github.com/api-evangelist/infobip openapi/infobip-subscriptions-openapi.json",
        as_of="2026-08-07",
        paths=(
            "/subscriptions/1/subscription/{channel}",
            "/subscriptions/1/subscription/{channel}/{subscriptionId}",
            "/subscriptions/1/profiles",
            "/subscriptions/1/profiles/{profileId}",
            "/subscriptions/1/security",
            "/subscriptions/1/security/{authId}",
        ),
        keep=("openapi",),
    ),
    Extract(
        source="elevenlabs/openapi.json",
        target="elevenlabs/openapi.json",
        origin="github.com/elevenlabs/elevenlabs-docs fern/apis/api/openapi.json",
        as_of="2025-08-25",
        paths=(
            "/v1/convai/conversation/get-signed-url",
            "/v1/convai/conversations/{conversation_id}",
            "/v1/convai/agents/{agent_id}",
            "/v1/convai/settings",
            "/v1/workspace/webhooks",
        ),
        components=("schemas/WorkspaceWebhookResponseModel", "schemas/HTTPValidationError"),
        keep=("openapi",),
    ),
    Extract(
        source="elevenlabs/agent.asyncapi.yaml",
        target="elevenlabs/agent.asyncapi.json",
        origin="github.com/elevenlabs/packages packages/types/schemas/agent.asyncapi.yaml",
        as_of="2026-08-22",
        whole=True,
        keep=("asyncapi",),
    ),
    Extract(
        source="zoho/record.json",
        target="zoho/record.json",
        origin="github.com/zoho/crm-oas v8.0/record.json",
        as_of="2025-06-27",
        paths=("/crm/v8/{module_api_name}/{id}", "/crm/v8/{module_api_name}"),
        keep=("openapi",),
    ),
    Extract(
        source="zoho/notes.json",
        target="zoho/notes.json",
        origin="github.com/zoho/crm-oas v8.0/notes.json",
        as_of="2025-06-27",
        paths=("/crm/v8/Notes", "/crm/v8/Notes/{id}"),
        keep=("openapi",),
    ),
    Extract(
        source="zoho/common.json",
        target="zoho/common.json",
        origin="github.com/zoho/crm-oas v8.0/common.json",
        as_of="2025-06-27",
        whole=True,
        keep=("openapi",),
    ),
)


class ExtractError(ValueError):
    """A description lacks something the project uses (a path or component it names)."""


def read_description(path: Path) -> dict[str, Any]:
    """A published description, JSON or YAML (YAML 1.2 booleans: ``no`` stays a string)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        document: dict[str, Any] = json.loads(text)
        return document
    loaded = yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(loaded, dict):
        raise ExtractError(f"{path}: not a mapping")
    return loaded


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``no`` / ``yes`` / ``on`` as booleans; in YAML 1.2 only true/false are."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def strip(node: Any, *, names: bool = False) -> Any:
    """``node`` without descriptive keywords; ``names``: its keys are names, not keywords."""
    if isinstance(node, list):
        return [strip(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: strip(value) for key, value in node.items()}
    kept: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED or key.startswith("x-"):
            continue
        if key in LITERALS:
            kept[key] = value
        elif key in NAME_MAPS and isinstance(value, dict):
            kept[key] = strip(value, names=True)
        else:
            kept[key] = strip(value)
    return kept


def _references(node: Any, found: set[str]) -> None:
    """Every local reference (``#/components/...``) inside ``node``, discriminator maps too."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            found.add(ref)
        mapping = node.get("mapping")
        if isinstance(node.get("propertyName"), str) and isinstance(mapping, dict):
            found.update(v for v in mapping.values() if isinstance(v, str) and v.startswith("#/"))
        for value in node.values():
            _references(value, found)
    elif isinstance(node, list):
        for value in node:
            _references(value, found)


def _pointer_parts(ref: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]


def extract(spec: Extract, document: dict[str, Any]) -> dict[str, Any]:
    """The trimmed document for ``spec`` (see the module docstring)."""
    out: dict[str, Any] = {key: document[key] for key in spec.keep if key in document}
    if spec.whole:
        for key, value in document.items():
            if key not in out and not key.startswith("x-") and key not in ("info", "servers"):
                out[key] = strip(value, names=key in NAME_MAPS)
        out["x-callflow-extract"] = _provenance(spec)
        return out
    paths = document.get("paths", {})
    missing = [p for p in spec.paths if p not in paths]
    if missing:
        raise ExtractError(f"{spec.source}: no path {', '.join(missing)}")
    kept_paths = {p: strip(paths[p], names=False) for p in spec.paths}
    components: dict[str, dict[str, Any]] = {}
    pending: set[str] = set()
    _references(kept_paths, pending)
    pending.update(f"#/components/{c}" for c in spec.components)
    seen: set[str] = set()
    dangling: list[str] = []
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        parts = _pointer_parts(ref)
        if len(parts) < 3 or parts[0] != "components":
            raise ExtractError(f"{spec.source}: unsupported reference {ref}")
        kind, name = parts[1], parts[2]
        try:
            target = document["components"][kind][name]
        except KeyError:
            # The description points at a component it does not define (Zoho's notes.json does):
            # kept as it is, and listed, so the copy is as broken as the original and no more.
            dangling.append(ref)
            continue
        stripped = strip(target)
        components.setdefault(kind, {})[name] = stripped
        _references(stripped, pending)
    out["paths"] = kept_paths
    out["components"] = {
        kind: dict(sorted(items.items())) for kind, items in sorted(components.items())
    }
    out["x-callflow-extract"] = _provenance(spec, sorted(dangling))
    return out


def _provenance(spec: Extract, dangling: list[str] | None = None) -> dict[str, Any]:
    provenance: dict[str, Any] = {
        "source": spec.origin,
        "as_of": spec.as_of,
        "extracted_by": "python -m callflow_dev.schemas.extract",
        "kept_paths": list(spec.paths),
        "kept_components": list(spec.components),
    }
    if dangling:
        provenance["dangling_references"] = dangling
    return provenance


def render(document: dict[str, Any]) -> str:
    """The file's text: stable, one key per line, so a drift shows as a readable diff."""
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def extracted_text(spec: Extract, descriptions: Path) -> str:
    """What ``spec.target`` must hold for the descriptions in ``descriptions``."""
    return render(extract(spec, read_description(descriptions / spec.source)))


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` compare) every extracted file."""
    parser = argparse.ArgumentParser(prog="python -m callflow_dev.schemas.extract")
    parser.add_argument("--from", dest="descriptions", type=Path, required=True)
    parser.add_argument("--check", action="store_true", help="compare, exit 1 on drift")
    args = parser.parse_args(argv)
    drifted = []
    for spec in SOURCES:
        text = extracted_text(spec, args.descriptions)
        target = HERE / spec.target
        if args.check:
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                drifted.append(spec.target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    for name in drifted:
        print(f"{name} differs from {args.descriptions}: rerun the extraction", file=sys.stderr)
    return 1 if drifted else 0


if __name__ == "__main__":
    raise SystemExit(main())

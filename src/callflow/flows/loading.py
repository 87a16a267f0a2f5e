"""Reading the flow files, and the default flow built from the settings.

``CALLFLOW_FLOWS_DIR`` names a directory of ``*.yaml`` / ``*.yml`` files, one flow each. With no
directory set there is one flow, ``default``, built from the settings exactly as the deployment
ran before flows existed. A flow file inherits every key it leaves out from that same settings
flow (hours, retry policy, caller id...), except the agent, which each file must name.

A file that does not validate stops the load with :class:`FlowConfigError`: its message names the
file, the line (the pydantic error's location walked through the YAML node tree) and what is
wrong, for every mistake the file has.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from callflow.callbacks.rules import CallbackRules
from callflow.config import Settings
from callflow.consent.rules import ContactRules
from callflow.flows.errors import FlowConfigError, UnknownFlow
from callflow.flows.model import BUILTIN, FlowFile
from callflow.mapping import FieldMapping, MappingError
from callflow.models import Outcome, Session

DEFAULT_FLOW = "default"


@dataclass(frozen=True)
class Flow:
    """A validated flow and its compiled field mapping; ``source`` is its file (or
    ``settings`` for the flow built from them)."""

    spec: FlowFile
    mapping: FieldMapping
    source: str

    @property
    def name(self) -> str:
        """The flow's name, as triggers and sessions carry it."""
        return self.spec.name

    @property
    def contact_rules(self) -> ContactRules:
        """The flow's opt-out field and item and its frequency caps."""
        spec = self.spec
        return ContactRules(
            optout_field=spec.optout.field,
            optout_item=spec.optout.item,
            record_cap=spec.caps.per_record,
            number_cap=spec.caps.per_number,
            cap_window_seconds=spec.caps.window_seconds,
        )

    def callback_rules(self, deployment: CallbackRules) -> CallbackRules:
        """The flow's callback item, horizon and Task over the deployment's rules (the wait
        cap, the owner field and the Task's tries stay the deployment's)."""
        spec = self.spec.callback
        return replace(
            deployment,
            item=spec.item,
            max_days=spec.max_days,
            task=spec.task,
            task_subject=spec.task_subject or deployment.task_subject,
        )

    def status_value(self, outcome: Outcome | None, default: str) -> str:
        """The value written to the status field for ``outcome``: the flow's, else ``default``."""
        if outcome is not None and outcome in self.spec.outcomes:
            return self.spec.outcomes[outcome]
        return default


class FlowSet:
    """Every flow of the deployment, by name, and the one a trigger gets when it names none."""

    def __init__(self, flows: Mapping[str, Flow], default: str) -> None:
        self.flows = dict(flows)
        self.default_name = default

    @property
    def default(self) -> Flow:
        """The flow of a trigger that names none."""
        return self.flows[self.default_name]

    def get(self, name: str) -> Flow:
        """The flow called ``name`` (the default for ``""``); :class:`UnknownFlow` if none is."""
        flow = self.flows.get(name or self.default_name)
        if flow is None:
            known = ", ".join(sorted(self.flows))
            raise UnknownFlow(f"no flow named {name!r} (known: {known})")
        return flow

    def of(self, session: Session) -> Flow:
        """The session's flow. A session from before flows (no name) has the default; one whose
        flow was removed from the files since its trigger falls back to the default too, rather
        than stranding a call half-way: its agent, caller id and variables are on the session."""
        try:
            return self.get(session.flow)
        except UnknownFlow:
            from callflow.observability import logger

            logger.warning(
                "the session's flow is gone from the flow files; using the default",
                extra={"session_id": session.session_id, "flow": session.flow},
            )
            return self.default


def settings_document(settings: Settings) -> dict[str, Any]:
    """The default flow as a flow file would say it, from the settings."""
    mapping = settings.field_mapping_path
    rule = {"attempts": settings.max_attempts, "delay_seconds": settings.retry_delay_seconds}
    once = {"attempts": 1, "delay_seconds": settings.retry_delay_seconds}
    return {
        "name": DEFAULT_FLOW,
        "agent": {"agent_id": settings.elevenlabs_agent_id, "overrides": settings.overrides},
        "variables": settings.variable_fields,
        "phone_field": settings.zoho_phone_field,
        "timezone_field": settings.zoho_timezone_field,
        "mapping": str(Path(mapping).resolve()) if mapping else "",
        "status_field": settings.zoho_call_status_field,
        "outcomes": {},
        "hours": {
            "start": settings.calling_hours_start,
            "end": settings.calling_hours_end,
            "days": sorted(settings.weekday_set),
            "outside": settings.outside_hours_policy,
        },
        "retry": {
            "no_answer": rule,
            "busy": rule,
            "agent_unavailable": rule,
            "voicemail": once,
            "failed": once,
        },
        "machine": {
            "detection": settings.infobip_machine_detection,
            "policy": settings.machine_policy,
            "detection_failed": settings.machine_detection_failed,
        },
        "caller_id": settings.infobip_from_number,
        "optout": {"field": settings.optout_field, "item": settings.optout_item},
        "caps": {
            "per_record": settings.cap_attempts_per_record,
            "per_number": settings.cap_attempts_per_number,
            "window_seconds": settings.cap_window_seconds,
        },
        "callback": {
            "item": settings.callback_item,
            "max_days": settings.callback_max_days,
            "task": settings.callback_task,
            "task_subject": settings.callback_task_subject,
        },
        "recording": {
            "enabled": settings.recording_enabled,
            "max_seconds": settings.recording_max_seconds,
        },
    }


def settings_flow(settings: Settings) -> Flow:
    """The flow built from the settings: what every call used before flows."""
    document = settings_document(settings)
    try:
        spec = FlowFile.model_validate(document, context={BUILTIN: True})
    except ValidationError as error:
        raise FlowConfigError(
            [f"settings: {_loc(e['loc'])}: {e['msg']}" for e in error.errors()]
        ) from None
    return Flow(spec=spec, mapping=_mapping(spec, Path.cwd(), "settings", None), source="settings")


def load_flows(settings: Settings) -> FlowSet:
    """The deployment's flows: the files in ``settings.flows_dir`` over the settings flow."""
    base = settings_flow(settings)
    flows: dict[str, Flow] = {base.name: base}
    problems: list[str] = []
    if settings.flows_dir:
        directory = Path(settings.flows_dir)
        if not directory.is_dir():
            raise FlowConfigError([f"{directory}: CALLFLOW_FLOWS_DIR is not a directory"])
        origin: dict[str, str] = {}
        for path in _flow_files(directory):
            try:
                flow = load_file(path, settings)
            except FlowConfigError as error:
                problems += error.problems
                continue
            if flow.name in origin:
                first = origin[flow.name]
                problems.append(
                    f"{path}: line 1: flow name {flow.name!r} is already used by {first}"
                )
                continue
            origin[flow.name] = str(path)
            flows[flow.name] = flow
    if settings.default_flow not in flows and not problems:
        problems.append(
            f"CALLFLOW_DEFAULT_FLOW: no flow named {settings.default_flow!r} "
            f"(known: {', '.join(sorted(flows))})"
        )
    if problems:
        raise FlowConfigError(problems)
    return FlowSet(flows, settings.default_flow)


def _flow_files(directory: Path) -> Iterable[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_file(path: Path, settings: Settings) -> Flow:
    """One flow file, its omitted keys taken from the settings flow."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FlowConfigError([f"{path}: cannot read the flow file ({error})"]) from None
    return parse_flow(text, path, settings)


def parse_flow(text: str, path: Path, settings: Settings) -> Flow:
    """The flow in YAML ``text`` (from ``path``, which names it in errors and anchors a relative
    mapping path)."""
    try:
        document = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else "line ?"
        problem = getattr(error, "problem", None) or str(error)
        raise FlowConfigError([f"{path}: {line}: not valid YAML ({problem})"]) from None
    if not isinstance(document, dict):
        raise FlowConfigError([f"{path}: line 1: a flow file is a mapping of keys (agent: ...)"])
    merged = _merge(settings_document(settings), document)
    merged.pop("agent", None)
    if "agent" in document:
        merged["agent"] = document["agent"]
    merged["name"] = document.get("name", path.stem)
    try:
        spec = FlowFile.model_validate(merged)
    except ValidationError as error:
        raise FlowConfigError(
            [
                f"{path}: line {_line_of(node, e['loc'])}: {_loc(e['loc'])}: {e['msg']}"
                for e in error.errors()
            ]
        ) from None
    return Flow(spec=spec, mapping=_mapping(spec, path.parent, str(path), node), source=str(path))


def _mapping(spec: FlowFile, base: Path, name: str, node: yaml.Node | None) -> FieldMapping:
    """The flow's compiled mapping: inline entries, a file relative to ``base``, or the default."""
    try:
        if isinstance(spec.mapping, list):
            lines = _child(node, "mapping")
            return FieldMapping.from_entries(
                spec.mapping,
                lambda i: f"{name}: line {_line_of(lines, (i,))}, mapping entry {i + 1}",
            )
        if not spec.mapping:
            return FieldMapping.load("")
        return FieldMapping.load(base / spec.mapping)
    except MappingError as error:
        raise FlowConfigError([str(error)]) from None


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, nested mappings merged key by key, everything else replaced
    (so the file's mistakes stay where the file put them)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict) and key != "outcomes":
            merged[key] = _merge(below, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _loc(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as a dotted path (``hours.start``, ``outcomes.bogus``)."""
    parts = [str(p) for p in loc if p != "[key]" and not _is_type_tag(p)]
    return ".".join(parts) or "(top level)"


def _is_type_tag(part: int | str) -> bool:
    """The member of a union pydantic names in a location (``list[dict[str,any]]``, ``str``)."""
    return isinstance(part, str) and (part in ("str", "int") or "[" in part)


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                child: yaml.Node = value
                return child
    return None


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the YAML node at ``loc``, or of the deepest node of it the file has
    (a key the settings supplied, or a required key the file lacks, points at its parent)."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        if part == "[key]":
            break  # the key's own node was already reached below
        found: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    found = value
                    line = key_node.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            found = node.value[part]
            line = found.start_mark.line + 1
        if found is None:
            if _is_type_tag(part):
                continue
            break
        node = found
    return line

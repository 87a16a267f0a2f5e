"""What the agent collected -> CRM field values, as a YAML file says.

The ElevenLabs agent reports ``analysis.data_collection_results`` as ``{item_id: {"value": ...,
"rationale": ...}}`` with string, boolean, integer, number or null values. Language models say
"yes", "$120", "1,200" or "next Tuesday"; Zoho takes only exact types. Each mapping entry names
an item, a target field and the field's type, and :meth:`FieldMapping.apply` converts what it
can. A value that does not convert is *reported* in plain words (it ends up in the CRM note) and
never written in a wrong shape; a null value means the agent did not find it and is skipped.

File format (the default is ``callflow/defaults/mapping.yaml``)::

    mappings:
      - item: lead_status          # data-collection id on the agent
        field: Lead_Status         # Zoho API name
        type: picklist             # text textarea number decimal currency boolean date
                                   # datetime picklist multiselect
        choices: [Contacted, Qualified]
        aliases: {"call back later": Contacted}   # optional, picklists only
        modules: [Leads]           # optional: only for these modules
        max_length: 255            # optional, text fields
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

FIELD_TYPES = (
    "text",
    "textarea",
    "number",
    "decimal",
    "currency",
    "boolean",
    "date",
    "datetime",
    "picklist",
    "multiselect",
)
_CHOICE_TYPES = frozenset({"picklist", "multiselect"})
_DEFAULT_LENGTH = {"text": 255, "textarea": 32000}
_KEYS = frozenset({"item", "field", "type", "choices", "aliases", "modules", "max_length"})
_TRUE = frozenset({"true", "yes", "y", "1", "on", "checked"})
_FALSE = frozenset({"false", "no", "n", "0", "off", "unchecked"})
_CURRENCY_MARKS = re.compile(r"[$€£¥₹]|\b(?:usd|eur|gbp|inr|dollars?|euros?|pounds?)\b", re.I)


class MappingError(ValueError):
    """The mapping file is unusable; the message names the file, line and entry."""


class InvalidValue(ValueError):
    """One collected value does not convert; the message is the plain-words problem."""


@dataclass(frozen=True)
class FieldRule:
    """One mapping entry."""

    item: str
    field: str
    type: str
    choices: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    modules: tuple[str, ...] = ()
    max_length: int = 0

    def applies_to(self, module: str | None) -> bool:
        """Whether the entry maps for ``module``: entries without modules, or any module when
        ``None``."""
        return not self.modules or module is None or module in self.modules


@dataclass(frozen=True)
class MappedFields:
    """What :meth:`FieldMapping.apply` made of the agent's results."""

    fields: dict[str, Any] = field(default_factory=dict)
    """Zoho-ready values by field API name."""
    problems: list[str] = field(default_factory=list)
    """Values that were not written, in plain words."""


DEFAULT_MAPPING_NAME = "callflow/defaults/mapping.yaml"


def default_mapping_text() -> str:
    """The default mapping file's text, from the installed package."""
    return resources.files("callflow").joinpath("defaults", "mapping.yaml").read_text("utf-8")


class FieldMapping:
    """The mapping file's rules: which collected item goes to which CRM field, as what type."""

    def __init__(self, rules: list[FieldRule]) -> None:
        self.rules = rules

    # --- loading --------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path = "") -> FieldMapping:
        """The mapping in ``path``; with no path, the default shipped inside the package
        (``callflow/defaults/mapping.yaml``), read as package data so an installed wheel finds it
        wherever it runs."""
        if not path:
            return cls.parse(default_mapping_text(), name=DEFAULT_MAPPING_NAME)
        source = Path(path)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as error:
            raise MappingError(f"{source}: cannot read the mapping file ({error})") from error
        return cls.parse(text, name=str(source))

    @classmethod
    def parse(cls, text: str, *, name: str = "mapping") -> FieldMapping:
        """The mapping in YAML ``text``; :class:`MappingError`, naming ``name`` and the line and
        entry, when it is malformed or maps one field twice for a module."""
        try:
            document = yaml.safe_load(text)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise MappingError(f"{name}:{where} not valid YAML ({error})") from error
        if not isinstance(document, dict) or not isinstance(document.get("mappings"), list):
            raise MappingError(f"{name}: expected a top-level 'mappings:' list")
        lines = _entry_lines(node)
        return cls.from_entries(
            document["mappings"],
            lambda index: f"{name}: line {lines.get(index, '?')}, entry {index + 1}",
        )

    @classmethod
    def from_entries(cls, entries: list[Any], where_of: Callable[[int], str]) -> FieldMapping:
        """The mapping of already-parsed ``entries`` (a ``mappings:`` list, e.g. inline in a
        flow file); ``where_of(index)`` names an entry's place in :class:`MappingError`."""
        rules: list[FieldRule] = []
        seen: dict[tuple[str, str], int] = {}
        for index, entry in enumerate(entries):
            where = where_of(index)
            rule = _rule(entry, where)
            for module in rule.modules or ("*",):
                key = (rule.field, module)
                if key in seen:
                    raise MappingError(
                        f"{where}: field {rule.field} is already mapped by entry {seen[key] + 1}"
                    )
                seen[key] = index
            rules.append(rule)
        return cls(rules)

    # --- reading --------------------------------------------------------------------------

    def items(self, module: str | None = None) -> list[str]:
        """The data-collection ids the agent must define (the setup check compares them)."""
        return list(dict.fromkeys(r.item for r in self.rules if r.applies_to(module)))

    def fields(self, module: str | None = None) -> list[str]:
        """The CRM fields the mapping may write."""
        return list(dict.fromkeys(r.field for r in self.rules if r.applies_to(module)))

    def apply(
        self, results: dict[str, Any], *, timezone: str, module: str | None = None
    ) -> MappedFields:
        """Convert the agent's results for ``module`` (all modules when ``None``).

        ``timezone`` (IANA) places a datetime that the agent gave without an offset.
        """
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {timezone!r}") from error
        fields: dict[str, Any] = {}
        problems: list[str] = []
        for rule in self.rules:
            if not rule.applies_to(module) or rule.item not in results:
                continue
            value = _value_of(results[rule.item])
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            try:
                fields[rule.field] = convert(rule, value, zone)
            except InvalidValue as error:
                problems.append(f"{rule.item} -> {rule.field}: {error}")
        return MappedFields(fields=fields, problems=problems)


# --- conversion ---------------------------------------------------------------------------


def convert(rule: FieldRule, value: Any, zone: ZoneInfo) -> Any:
    """``value`` in the shape Zoho takes for ``rule.type``, or :class:`InvalidValue`."""
    return _CONVERTERS[rule.type](rule, value, zone)


def _text(rule: FieldRule, value: Any, _zone: ZoneInfo) -> str:
    if isinstance(value, bool):
        text = "Yes" if value else "No"
    elif isinstance(value, int | float | str):
        text = str(value).strip()
    else:
        raise InvalidValue(f"{_show(value)} is not text")
    limit = rule.max_length or _DEFAULT_LENGTH[rule.type]
    if len(text) > limit:
        raise InvalidValue(f"the text is {len(text)} characters, the field takes {limit}")
    return text


def _number(_rule: FieldRule, value: Any, _zone: ZoneInfo) -> int:
    amount = _decimal(value, "a whole number")
    if amount != amount.to_integral_value():
        raise InvalidValue(f"{_show(value)} is not a whole number")
    return int(amount)


def _decimal_value(_rule: FieldRule, value: Any, _zone: ZoneInfo) -> float:
    return float(_decimal(value, "a number"))


def _currency(_rule: FieldRule, value: Any, _zone: ZoneInfo) -> float:
    if isinstance(value, str):
        value = _CURRENCY_MARKS.sub("", value)
    amount = _decimal(value, "an amount of money")
    return float(amount.quantize(Decimal("0.01")))


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool):
        raise InvalidValue(f"{_show(value)} is not {what}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(f"{_show(value)} is not {what}")
        return Decimal(repr(value))
    if isinstance(value, str):
        cleaned = value.strip().replace(",", "").replace(" ", "")
        try:
            amount = Decimal(cleaned)
        except InvalidOperation:
            raise InvalidValue(f"{_show(value)} is not {what}") from None
        if not amount.is_finite():
            raise InvalidValue(f"{_show(value)} is not {what}")
        return amount
    raise InvalidValue(f"{_show(value)} is not {what}")


def _boolean(_rule: FieldRule, value: Any, _zone: ZoneInfo) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise InvalidValue(f"{_show(value)} is not yes or no")


def _date(_rule: FieldRule, value: Any, zone: ZoneInfo) -> str:
    if not isinstance(value, str):
        raise InvalidValue(f"{_show(value)} is not a date (expected yyyy-MM-dd)")
    text = value.strip()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(f"{_show(value)} is not a date (expected yyyy-MM-dd)") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(zone)
    return moment.date().isoformat()


def _datetime(_rule: FieldRule, value: Any, zone: ZoneInfo) -> str:
    expected = "(expected yyyy-MM-ddTHH:mm:ss with an optional offset)"
    if not isinstance(value, str):
        raise InvalidValue(f"{_show(value)} is not a date and time {expected}")
    text = value.strip()
    if "T" not in text and " " not in text:
        raise InvalidValue(f"{_show(value)} has no time of day {expected}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(f"{_show(value)} is not a date and time {expected}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.replace(microsecond=0).isoformat()


def _picklist(rule: FieldRule, value: Any, _zone: ZoneInfo) -> str:
    return _choice(rule, value)


def _multiselect(rule: FieldRule, value: Any, _zone: ZoneInfo) -> list[str]:
    if isinstance(value, str):
        parts: list[Any] = [p for p in re.split(r"[,;]", value) if p.strip()]
    elif isinstance(value, list):
        parts = list(value)
    else:
        raise InvalidValue(f"{_show(value)} is not a list of choices")
    chosen = [_choice(rule, part) for part in parts]
    return list(dict.fromkeys(chosen))


def _choice(rule: FieldRule, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidValue(f"{_show(value)} is not one of {_list(rule.choices)}")
    wanted = _fold(str(value))
    for choice in rule.choices:
        if _fold(choice) == wanted:
            return choice
    for alias, choice in rule.aliases:
        if _fold(alias) == wanted:
            return choice
    raise InvalidValue(f"{_show(value)} is not one of {_list(rule.choices)}")


_CONVERTERS: dict[str, Callable[[FieldRule, Any, ZoneInfo], Any]] = {
    "text": _text,
    "textarea": _text,
    "number": _number,
    "decimal": _decimal_value,
    "currency": _currency,
    "boolean": _boolean,
    "date": _date,
    "datetime": _datetime,
    "picklist": _picklist,
    "multiselect": _multiselect,
}


# --- helpers ------------------------------------------------------------------------------


def _value_of(entry: Any) -> Any:
    """A results entry is ``{"value": ..., "rationale": ...}``; a bare value is accepted too."""
    if isinstance(entry, dict):
        return entry.get("value")
    return entry


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 80 else text[:77] + "..."


def _list(choices: tuple[str, ...]) -> str:
    return ", ".join(choices)


def _entry_lines(node: yaml.Node | None) -> dict[int, int]:
    """1-based line of each entry of the ``mappings`` list, for error messages."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    for key, value in node.value:
        is_list = isinstance(value, yaml.SequenceNode)
        if isinstance(key, yaml.ScalarNode) and key.value == "mappings" and is_list:
            return {i: item.start_mark.line + 1 for i, item in enumerate(value.value)}
    return {}


def _rule(entry: Any, where: str) -> FieldRule:
    if not isinstance(entry, dict):
        raise MappingError(f"{where}: expected a mapping with item, field and type")
    unknown = sorted(set(map(str, entry)) - _KEYS)
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {', '.join(unknown)}")
    item = _text_key(entry, "item", where)
    target = _text_key(entry, "field", where)
    kind = _text_key(entry, "type", where)
    if kind not in FIELD_TYPES:
        raise MappingError(f"{where}: type '{kind}' is not one of {', '.join(FIELD_TYPES)}")
    choices = _strings(entry.get("choices"), "choices", where)
    if kind in _CHOICE_TYPES and not choices:
        raise MappingError(f"{where}: a {kind} needs a non-empty 'choices' list")
    if kind not in _CHOICE_TYPES and (choices or entry.get("aliases")):
        raise MappingError(f"{where}: only picklist and multiselect take choices/aliases")
    aliases = _aliases(entry.get("aliases"), choices, where)
    modules = _strings(entry.get("modules"), "modules", where)
    max_length = entry.get("max_length", 0)
    if max_length and (kind not in _DEFAULT_LENGTH or not isinstance(max_length, int)):
        raise MappingError(f"{where}: max_length must be an integer on a text or textarea field")
    if isinstance(max_length, bool) or (isinstance(max_length, int) and max_length < 0):
        raise MappingError(f"{where}: max_length must be a positive integer")
    return FieldRule(
        item=item,
        field=target,
        type=kind,
        choices=choices,
        aliases=aliases,
        modules=modules,
        max_length=int(max_length or 0),
    )


def _text_key(entry: dict[Any, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise MappingError(f"{where}: '{key}' must be a list of non-empty strings")
    return tuple(value)


def _aliases(value: Any, choices: tuple[str, ...], where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise MappingError(f"{where}: 'aliases' must map spoken words to choices")
    pairs: list[tuple[str, str]] = []
    for alias, choice in value.items():
        if not isinstance(alias, str) or choice not in choices:
            raise MappingError(f"{where}: alias {alias!r} must point at one of the choices")
        pairs.append((alias, str(choice)))
    return tuple(pairs)

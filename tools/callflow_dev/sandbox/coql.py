"""COQL, Zoho CRM's query language, as far as the Zoho stand-in answers it.

``select <fields> from <module> where <criteria> [order by <field> [asc|desc]] limit [<offset>,]
<count>`` (or ``limit <count> offset <offset>``), with Zoho's rules: the WHERE clause is
mandatory, at most 50 fields, a LIMIT of at most 2,000 rows and OFFSET plus LIMIT within 100,000.
Criteria are comparisons (``=``, ``!=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``, ``like``,
``not like``, ``in``, ``not in``, ``is null``, ``is not null``) joined by ``and`` / ``or`` with
parentheses. What the stand-in does not understand (functions, aggregates, lookups' dotted
fields) is refused as a syntax error, never guessed at: a stricter stand-in fails a test that the
real API would pass, never the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_FIELDS = 50
MAX_LIMIT = 2000
MAX_ROWS = 100_000


class CoqlError(Exception):
    """A query Zoho refuses: ``code`` and ``message`` are what its error body says."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


Predicate = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Query:
    """A parsed ``select_query``."""

    fields: tuple[str, ...]
    module: str
    where: Predicate
    order_by: str
    descending: bool
    offset: int
    limit: int


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<op><>|!=|<=|>=|=|<|>)|(?P<punct>[(),])|(?P<word>[A-Za-z_$][A-Za-z0-9_$.]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise CoqlError(
                "SYNTAX_ERROR", f"unexpected text at {position}: {text[position:][:20]}"
            )
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], known: Callable[[str], bool]) -> None:
        self.tokens = tokens
        self.at = 0
        self.known = known

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.at += 1
        return token

    def keyword(self, *words: str) -> bool:
        """Consume the keywords if they come next (case-insensitive)."""
        for i, word in enumerate(words):
            kind, value = self.peek(i)
            if kind != "word" or value.lower() != word:
                return False
        self.at += len(words)
        return True

    def expect(self, *words: str) -> None:
        if not self.keyword(*words):
            raise CoqlError("SYNTAX_ERROR", f"expected {' '.join(words)} near {self.peek()[1]!r}")

    def field(self) -> str:
        kind, value = self.take()
        if kind != "word" or "." in value:
            raise CoqlError("SYNTAX_ERROR", f"expected a field name, found {value!r}")
        if not self.known(value):
            raise CoqlError("INVALID_QUERY", "invalid column given", {"column_name": value})
        return value

    def value(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return value[1:-1].replace("\\'", "'")
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise CoqlError("SYNTAX_ERROR", f"expected a value, found {value!r}")

    def values(self) -> list[Any]:
        if self.take() != ("punct", "("):
            raise CoqlError("SYNTAX_ERROR", "expected ( after in")
        items = [self.value()]
        while self.peek() == ("punct", ","):
            self.take()
            items.append(self.value())
        if self.take() != ("punct", ")"):
            raise CoqlError("SYNTAX_ERROR", "expected ) to close the list")
        return items

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.keyword("or"):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else (lambda row: any(t(row) for t in terms))

    def conjunction(self) -> Predicate:
        terms = [self.comparison()]
        while self.keyword("and"):
            terms.append(self.comparison())
        return terms[0] if len(terms) == 1 else (lambda row: all(t(row) for t in terms))

    def comparison(self) -> Predicate:
        if self.peek() == ("punct", "("):
            self.take()
            inner = self.expression()
            if self.take() != ("punct", ")"):
                raise CoqlError("SYNTAX_ERROR", "unbalanced parentheses")
            return inner
        name = self.field()
        if self.keyword("is", "not", "null"):
            return lambda row: row.get(name) not in (None, "")
        if self.keyword("is", "null"):
            return lambda row: row.get(name) in (None, "")
        if self.keyword("not", "in"):
            excluded = self.values()
            return lambda row: row.get(name) not in excluded
        if self.keyword("in"):
            included = self.values()
            return lambda row: row.get(name) in included
        if self.keyword("not", "like"):
            pattern = _like(self.value())
            return lambda row: not pattern(row.get(name))
        if self.keyword("like"):
            pattern = _like(self.value())
            return lambda row: pattern(row.get(name))
        kind, op = self.take()
        if kind != "op":
            raise CoqlError("SYNTAX_ERROR", f"expected an operator after {name}, found {op!r}")
        return _compare(name, op, self.value())


def _like(value: Any) -> Callable[[Any], bool]:
    if not isinstance(value, str):
        raise CoqlError("SYNTAX_ERROR", "like takes a string")
    pattern = re.compile(
        "^" + ".*".join(re.escape(part) for part in value.split("%")) + "$", re.IGNORECASE
    )
    return lambda field: isinstance(field, str) and pattern.match(field) is not None


def _compare(name: str, op: str, value: Any) -> Predicate:
    def check(row: dict[str, Any]) -> bool:
        field = row.get(name)
        if op in ("=", "!=", "<>"):
            equal = field == value or (name == "id" and str(field) == str(value))
            return equal if op == "=" else not equal
        if field is None:
            return False
        left, right = (int(field), int(value)) if name == "id" else (field, value)
        try:
            return bool(
                {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
            )
        except TypeError:
            return False

    return check


def parse(text: str, module_fields: Callable[[str], set[str] | None]) -> Query:
    """The query, or :class:`CoqlError` as Zoho would answer it; ``module_fields`` gives a
    module's field names (``None`` for no such module)."""
    tokens = _tokens(text)
    fields_of: set[str] = set()
    parser = _Parser(tokens, lambda name: name == "id" or name in fields_of)
    parser.expect("select")
    names: list[str] = []
    while True:
        kind, value = parser.take()
        if kind != "word" or value.lower() == "from":
            raise CoqlError("SYNTAX_ERROR", f"expected a field name, found {value!r}")
        names.append(value)
        if parser.peek() != ("punct", ","):
            break
        parser.take()
    if len(names) > MAX_FIELDS:
        raise CoqlError("LIMIT_EXCEEDED", f"select more than {MAX_FIELDS} fields")
    parser.expect("from")
    kind, module = parser.take()
    known = module_fields(module) if kind == "word" else None
    if known is None:
        raise CoqlError("INVALID_QUERY", "invalid module given", {"module": module})
    fields_of.update(known)
    for name in names:
        if name != "id" and name not in known:
            raise CoqlError("INVALID_QUERY", "invalid column given", {"column_name": name})
    if not parser.keyword("where"):
        raise CoqlError("SYNTAX_ERROR", "where clause is mandatory")
    where = parser.expression()
    order_by, descending = "id", False
    if parser.keyword("order", "by"):
        order_by = parser.field()
        descending = parser.keyword("desc")
        if not descending:
            parser.keyword("asc")
    offset, limit = 0, 200
    if parser.keyword("limit"):
        first = parser.value()
        if parser.peek() == ("punct", ","):
            parser.take()
            offset, limit = first, parser.value()
        else:
            limit = first
            if parser.keyword("offset"):
                offset = parser.value()
    if parser.peek()[0] != "end":
        raise CoqlError("SYNTAX_ERROR", f"unexpected {parser.peek()[1]!r} at the end")
    if not (isinstance(offset, int) and isinstance(limit, int)) or offset < 0 or limit < 1:
        raise CoqlError("SYNTAX_ERROR", "limit and offset must be whole numbers")
    if limit > MAX_LIMIT:
        raise CoqlError("LIMIT_EXCEEDED", f"limit must be at most {MAX_LIMIT}", {"limit": limit})
    if offset + limit > MAX_ROWS:
        raise CoqlError(
            "LIMIT_EXCEEDED", f"offset plus limit must be at most {MAX_ROWS}", {"offset": offset}
        )
    return Query(tuple(names), module, where, order_by, descending, offset, limit)

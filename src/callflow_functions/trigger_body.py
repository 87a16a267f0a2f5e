"""What a Zoho workflow webhook sends: the trigger's fields, whatever the body's encoding.

A Zoho webhook action can send its parameters as URL parameters, as a form
(``application/x-www-form-urlencoded``), as ``multipart/form-data``, or as a raw body (a JSON
template with merge fields), depending on how the user set it up; the same record can be
triggered by webhooks set up differently. All four are read into one flat ``{name: value}`` map;
body fields win over URL parameters of the same name. Sizes are bounded: the whole body by the
API's body limit (:class:`callflow_functions.api.BodyLimit`), and here the number of fields and
each part's size, and no file parts at all (a trigger names a record, it uploads nothing).

Every malformed body is a :class:`TriggerBodyError` with the reason in words (answered 400), so a
misconfigured webhook is diagnosable from Zoho's webhook failure log.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final
from urllib.parse import parse_qs

import python_multipart  # noqa: F401 - see below
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException, MultiPartParser

# Starlette's MultiPartParser drives python-multipart, but imports it only if it is installed
# and fails at the first multipart body when it is not. Importing it here makes a package built
# without it fail at cold start (and the packaging test see the dependency), not on a trigger.

MAX_FIELDS: Final = 50
"""Fields a trigger body may carry: Zoho's webhook takes at most a few dozen parameters, and a
trigger only needs two."""
MAX_PART_BYTES: Final = 16 * 1024
"""Bytes one multipart field may have: a module name or a record id is tiny."""


class TriggerBodyError(ValueError):
    """The trigger's body cannot be read; ``reason`` says why, for the 400 answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def trigger_fields(content_type: str, raw: bytes, query: Mapping[str, str]) -> dict[str, Any]:
    """The trigger's fields from ``raw`` (read per ``content_type``) over the URL ``query``.

    An empty body is fine when the URL parameters carry the fields (Zoho's "URL parameters"
    webhook); with neither there is nothing to act on.
    """
    fields: dict[str, Any] = dict(query)
    if not raw.strip():
        if not fields:
            raise TriggerBodyError("empty body and no URL parameters: send module and record_id")
        return fields
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        fields.update(_form(raw))
    elif kind == "multipart/form-data":
        fields.update(await _multipart(content_type, raw))
    else:
        fields.update(_json_object(raw))
    return fields


def _form(raw: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(raw.decode(), strict_parsing=True, max_num_fields=MAX_FIELDS)
    except (ValueError, UnicodeDecodeError):
        raise TriggerBodyError("malformed form body") from None
    return {key: values[-1] for key, values in parsed.items()}


async def _multipart(content_type: str, raw: bytes) -> dict[str, str]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield raw

    parser = MultiPartParser(
        Headers({"content-type": content_type}),
        stream(),
        max_files=0,
        max_fields=MAX_FIELDS,
        max_part_size=MAX_PART_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise TriggerBodyError(f"malformed multipart body: {error.message}") from None
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if not isinstance(value, str):  # max_files=0 refuses files; this is belt and braces
            raise TriggerBodyError(f"multipart field {key!r} is a file")
        fields[key] = value
    return fields


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TriggerBodyError("body is not valid JSON") from None
    except RecursionError:  # the parser recurses once per nested array or object
        raise TriggerBodyError("body nested too deep") from None
    if not isinstance(body, dict):
        raise TriggerBodyError("body must be a JSON object")
    return body

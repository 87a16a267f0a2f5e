"""The Zoho trigger webhook's fields, read from each encoding a Zoho webhook can send."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from callflow_functions.trigger_body import MAX_FIELDS, TriggerBodyError, trigger_fields

WANTED = {"module": "Leads", "record_id": "5725767000000524001"}


def _read(content_type: str, raw: bytes, query: dict[str, str] | None = None) -> dict[str, Any]:
    return asyncio.run(trigger_fields(content_type, raw, query or {}))


def _multipart(fields: dict[str, str], files: dict[str, bytes] | None = None) -> tuple[str, bytes]:
    request = httpx.Request(
        "POST",
        "http://x/",
        data=fields,
        files={k: (k + ".txt", v) for k, v in (files or {}).items()} or None,
    )
    if not files:  # httpx sends a plain form without files; force multipart with a boundary
        boundary = "callflowtestboundary"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        ]
        body = ("".join(parts) + f"--{boundary}--\r\n").encode()
        return f"multipart/form-data; boundary={boundary}", body
    return request.headers["content-type"], request.read()


def test_a_json_body_is_read() -> None:
    assert _read("application/json", b'{"module":"Leads","record_id":"5725767000000524001"}') == (
        WANTED
    )


def test_a_form_body_is_read() -> None:
    raw = b"module=Leads&record_id=5725767000000524001"
    assert _read("application/x-www-form-urlencoded; charset=UTF-8", raw) == WANTED


def test_a_multipart_body_is_read() -> None:
    content_type, raw = _multipart(WANTED)
    assert _read(content_type, raw) == WANTED


def test_url_parameters_alone_are_read() -> None:
    assert _read("", b"", WANTED) == WANTED


def test_body_fields_win_over_url_parameters() -> None:
    fields = _read(
        "application/json", b'{"record_id": "42"}', {"module": "Leads", "record_id": "1"}
    )
    assert fields == {"module": "Leads", "record_id": "42"}


def test_a_multipart_file_part_is_refused() -> None:
    content_type, raw = _multipart({"module": "Leads"}, files={"record_id": b"1"})
    with pytest.raises(TriggerBodyError, match="multipart"):
        _read(content_type, raw)


def test_a_multipart_body_without_a_boundary_is_refused() -> None:
    with pytest.raises(TriggerBodyError, match="boundary"):
        _read("multipart/form-data", b"--x\r\n\r\n")


def test_an_oversized_multipart_field_is_refused() -> None:
    content_type, raw = _multipart({"module": "Leads", "record_id": "1" * 20000})
    with pytest.raises(TriggerBodyError, match="maximum size"):
        _read(content_type, raw)


def test_too_many_form_fields_are_refused() -> None:
    raw = "&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1)).encode()
    with pytest.raises(TriggerBodyError, match="malformed form"):
        _read("application/x-www-form-urlencoded", raw)


def test_nothing_at_all_is_refused() -> None:
    with pytest.raises(TriggerBodyError, match="empty body"):
        _read("application/json", b"  ")

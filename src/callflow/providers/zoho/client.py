"""Zoho CRM API v8 client: read a record, write results back, add a note, log the call, attach a
file.

Plain synchronous httpx with timeouts. It does not loop on throttling: 429 and 5xx become
:class:`RetryableProviderError` and the state machine's Retry backs off (Zoho sends no
Retry-After). The one retry inside is after ``INVALID_TOKEN`` or ``INVALID_OAUTHTOKEN``: the
shared token is marked stale and the request is sent once more with a fresh one, because an
expired or evicted token is not the caller's problem.

Writes answer per record (``data[0].code``), with HTTP 200, 201, 202, 207 or 400, so every write
checks the element rather than the status. Every request is counted in :attr:`ZohoClient.calls_made`
and its API credits in :attr:`ZohoClient.credits_spent` (one per request, except a COQL query,
which Zoho charges by its LIMIT: see :func:`coql_credits`).

Listings for campaigns (:meth:`ZohoClient.list_page`, :meth:`ZohoClient.get_records`,
:meth:`ZohoClient.coql`) answer one page at a time; the caller (``callflow.campaigns.enumeration``)
keeps the cursor, so an enumeration can stop when its credit budget is spent and resume later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import httpx

from callflow.config import Settings
from callflow.observability import logger
from callflow.providers.errors import (
    ProviderAuthError,
    ProviderRejected,
    RecordNotFound,
    UnknownModule,
    error_for_status,
)
from callflow.providers.http import HttpTransport
from callflow.providers.zoho.token import ZohoTokenProvider

PROVIDER = "zoho"
API_PREFIX = "/crm/v8"
MAX_READ_FIELDS = 50
"""Zoho reads at most 50 fields per request."""
MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024
"""Zoho's largest upload request (``uploadAttachment``: 100 MB, 413 beyond)."""
MAX_FILE_NAME_CHARS = 250
"""An attachment's ``File_Name`` holds at most 250 characters."""
RECENT_PAGE = 200
"""Records per page of a listing, Zoho's maximum: how far back a lost note or call is looked for."""
MAX_PER_PAGE = 200
"""Records per page of ``GET /crm/v8/{module}``, Zoho's maximum."""
PAGE_PARAM_LIMIT = 2000
"""Records a listing reaches with ``page``; past them only ``page_token`` pages on."""
MAX_IDS_PER_READ = 100
"""Record ids one ``GET /crm/v8/{module}?ids=`` reads at most."""
COQL_MAX_LIMIT = 2000
"""Rows one COQL query answers at most (its LIMIT)."""
COQL_MAX_OFFSET = 100_000
"""COQL's OFFSET plus LIMIT reaches at most this many rows of one query."""

_WHO_MODULES = frozenset({"Contacts"})
"""Modules a call links to with ``Who_Id``; every other module uses ``What_Id`` + ``$se_module``."""

_UNKNOWN_MODULE_CODES = frozenset({"INVALID_MODULE", "INVALID_URL_PATTERN"})
"""Zoho's answers to a path whose module segment names no module (``/Leeds/{id}``): 400
``INVALID_MODULE``, or ``INVALID_URL_PATTERN`` when the path matches no API at all."""

_STALE_TOKEN_CODES = frozenset({"INVALID_TOKEN", "INVALID_OAUTHTOKEN"})
"""401 codes that mean "this access token is no longer good": expired (``INVALID_TOKEN``), or
evicted because the refresh token has more than 15 live access tokens (``INVALID_OAUTHTOKEN``;
another user of the same refresh token can evict ours). Both are answered by one refresh."""

_ELEMENT_STATUSES = frozenset({200, 201, 202, 207, 400})
"""Statuses whose body may carry per-record results in ``data``."""


FIELDS_TTL_SECONDS = 3600.0
"""How long a module's field metadata is reused. Fields change when an admin edits the layout,
rarely; an hour bounds both the credits spent reading it (one per module per process per hour)
and how long a newly added field goes unread."""


@dataclass(frozen=True)
class ZohoField:
    """One field of a module, from ``GET /crm/v8/settings/fields?module=X``."""

    api_name: str
    data_type: str
    """Zoho's type: text, textarea, email, phone, integer, bigint, double, currency, boolean,
    date, datetime, picklist, multiselectpicklist, lookup, ownerlookup, ..."""
    choices: tuple[str, ...] = ()
    """A picklist's ``actual_value``s."""
    length: int = 0


class FieldCache:
    """Field metadata per (org, module), shared by the clients of one process, each entry kept
    for ``ttl`` seconds. Per process is enough: a Lambda container reads a module's fields once
    an hour at most, and a stale entry only means a new field is not read yet."""

    def __init__(
        self, ttl: float = FIELDS_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], tuple[float, dict[str, ZohoField]]] = {}

    def get(self, key: tuple[str, str]) -> dict[str, ZohoField] | None:
        """The fresh entry for ``key``, or ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self.clock():
                return None
            return entry[1]

    def put(self, key: tuple[str, str], fields: dict[str, ZohoField]) -> None:
        """Keep ``fields`` for ``key`` for :attr:`ttl` seconds."""
        with self._lock:
            self._entries[key] = (self.clock() + self.ttl, fields)

    def forget(self, key: tuple[str, str]) -> None:
        """Drop the entry for ``key`` (it is read again on next use)."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


FIELD_CACHE = FieldCache()
"""The process's field metadata."""


class ZohoRequestError(ValueError):
    """The caller asked for something Zoho cannot be asked (too many fields, naive time...)."""


@dataclass(frozen=True)
class FieldProblem:
    """One field Zoho refused, as ``details.api_name`` and the element's code and message."""

    api_name: str
    code: str
    message: str
    expected_type: str = ""

    def __str__(self) -> str:
        detail = f", expected {self.expected_type}" if self.expected_type else ""
        return f"{self.api_name or 'record'}: {self.message} ({self.code}{detail})"


@dataclass(frozen=True)
class Page:
    """One page of a listing: its records (each with ``id``), whether Zoho has more, and the
    token of the next page when Zoho gave one (``GET /crm/v8/{module}`` past its first pages)."""

    records: list[dict[str, Any]]
    more: bool
    next_page_token: str = ""
    credits: int = 1


def coql_credits(limit: int) -> int:
    """Zoho's charge for one COQL query by its LIMIT: 1 credit up to 200 rows, 2 up to 1,000,
    3 up to 2,000."""
    if limit <= 200:
        return 1
    return 2 if limit <= 1000 else 3


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one record write.

    ``refused_fields`` lists the fields that were *not* written: the dropped ones after a
    successful retry, or every field when the record refused the write.
    """

    ok: bool
    record_id: str
    code: str
    message: str = ""
    problems: tuple[FieldProblem, ...] = ()
    refused_fields: tuple[str, ...] = field(default=())


class ZohoClient:
    """The CRM API calls the workflow makes, with the access token of :class:`ZohoTokenProvider`
    (shared across instances)."""

    def __init__(
        self,
        settings: Settings,
        tokens: ZohoTokenProvider,
        http: httpx.Client | None = None,
        fields: FieldCache | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.field_cache = FIELD_CACHE if fields is None else fields
        self._transport = HttpTransport(
            PROVIDER, timeout=httpx.Timeout(15.0, connect=5.0), http=http
        )
        self._extra_credits = 0
        """Credits past one per request (COQL queries over 200 rows)."""

    @property
    def calls_made(self) -> int:
        """API requests sent (each costs at least one Zoho credit)."""
        return self._transport.requests_sent

    @property
    def credits_spent(self) -> int:
        """API credits the requests sent cost: one each, more for a COQL query past 200 rows."""
        return self._transport.requests_sent + self._extra_credits

    # --- metadata -------------------------------------------------------------------------

    def module_fields(self, module: str) -> dict[str, ZohoField]:
        """The module's fields by API name, from the field metadata API (cached, see
        :class:`FieldCache`); :class:`UnknownModule` when Zoho has no such module."""
        _check_segment("module", module)
        key = (self.tokens.access_token().api_domain, module)  # the org's API domain
        cached = self.field_cache.get(key)
        if cached is not None:
            return cached
        try:
            response = self._send("GET", "/settings/fields", params={"module": module})
        except ProviderRejected as error:
            if error.code in _UNKNOWN_MODULE_CODES:
                raise UnknownModule(
                    PROVIDER, module, error.message, status=error.status or 400, code=error.code
                ) from error
            raise
        fields = fields_from_listing(_body(response).get("fields"))
        self.field_cache.put(key, fields)
        return fields

    # --- records --------------------------------------------------------------------------

    def get_record(self, module: str, record_id: str, fields: list[str]) -> dict[str, Any]:
        """The record's ``fields`` (plus ``id``); :class:`RecordNotFound` when there is none,
        :class:`UnknownModule` when Zoho has no such module."""
        _check_segment("module", module)
        _check_segment("record id", record_id)
        if len(fields) > MAX_READ_FIELDS:
            raise ZohoRequestError(
                f"Zoho reads at most {MAX_READ_FIELDS} fields per request, {len(fields)} asked"
            )
        params = {"fields": ",".join(fields)} if fields else None
        try:
            response = self._send("GET", f"/{module}/{record_id}", params=params)
        except ProviderRejected as error:
            if error.code in _UNKNOWN_MODULE_CODES:
                raise UnknownModule(
                    PROVIDER, module, error.message, status=error.status or 400, code=error.code
                ) from error
            if error.code == "INVALID_DATA" and fields:
                # Zoho answers INVALID_DATA both for a bad id and for a field the module lacks:
                # metadata read before a field was deleted is read again next time.
                self.field_cache.forget((self.tokens.access_token().api_domain, module))
            if error.status == 404 or error.code in {"INVALID_DATA", "NO_CONTENT", "NOT_FOUND"}:
                raise _not_found(module, record_id) from error
            raise
        if response.status_code == 204:
            raise _not_found(module, record_id)
        data = _body(response).get("data")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict):
            raise _not_found(module, record_id)
        return dict(data[0])

    def update_record(self, module: str, record_id: str, data: dict[str, Any]) -> WriteResult:
        """Write ``data`` to the record without firing workflow rules (``"trigger": []``)."""
        _check_segment("module", module)
        _check_segment("record id", record_id)
        body = {"data": [dict(data)], "trigger": []}
        response = self._send("PUT", f"/{module}/{record_id}", json=body)
        element = _element(response)
        if element.get("code") == "SUCCESS":
            details = _details(element)
            return WriteResult(True, str(details.get("id") or record_id), "SUCCESS")
        problem = _problem(element)
        if problem.code == "INVALID_DATA" and not problem.api_name and "id" in _details(element):
            raise _not_found(module, record_id)
        return WriteResult(
            ok=False,
            record_id=record_id,
            code=problem.code,
            message=problem.message,
            problems=(problem,),
            refused_fields=tuple(data),
        )

    def update_record_dropping_invalid(
        self, module: str, record_id: str, data: dict[str, Any]
    ) -> WriteResult:
        """Write ``data``; when Zoho refuses fields as ``INVALID_DATA``, write the rest once more.

        Zoho reports the first bad field of a record, so the retry drops every field named in the
        first answer and reports them. A second refusal is reported as is (nothing written).
        """
        first = self.update_record(module, record_id, data)
        refused = {
            p.api_name for p in first.problems if p.code == "INVALID_DATA" and p.api_name in data
        }
        if first.ok or not refused:
            return first
        rest = {k: v for k, v in data.items() if k not in refused}
        if not rest:
            return first
        logger.warning(
            "zoho refused fields; writing the others",
            extra={"crm_module": module, "refused": sorted(refused)},
        )
        second = self.update_record(module, record_id, rest)
        if not second.ok:
            return WriteResult(
                ok=False,
                record_id=record_id,
                code=second.code,
                message=second.message,
                problems=first.problems + second.problems,
                refused_fields=tuple(data),
            )
        return WriteResult(
            ok=True,
            record_id=second.record_id,
            code="SUCCESS",
            problems=first.problems,
            refused_fields=tuple(k for k in data if k in refused),
        )

    # --- listings (campaigns) -------------------------------------------------------------

    def list_page(
        self,
        module: str,
        fields: list[str],
        *,
        cvid: str = "",
        page: int = 1,
        page_token: str = "",
        per_page: int = MAX_PER_PAGE,
    ) -> Page:
        """One page of the module's records (of custom view ``cvid`` when given), oldest first.

        ``page`` reaches the first :data:`PAGE_PARAM_LIMIT` records; past them the page is
        asked by ``page_token`` (the previous page's :attr:`Page.next_page_token`), which Zoho
        lets expire (a day): the caller then starts again from page 1. An empty listing is an
        empty page (Zoho answers 204)."""
        _check_segment("module", module)
        self._check_fields(fields)
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ZohoRequestError(f"per_page must be 1 to {MAX_PER_PAGE}, not {per_page}")
        params = {
            "fields": ",".join(fields),
            "per_page": str(per_page),
            "sort_by": "id",
            "sort_order": "asc",
        }
        if cvid:
            params["cvid"] = cvid
        if page_token:
            params["page_token"] = page_token
        else:
            if page < 1 or page * per_page > PAGE_PARAM_LIMIT:
                raise ZohoRequestError(
                    f"page {page} of {per_page} passes the {PAGE_PARAM_LIMIT} records the page"
                    " parameter reaches; ask with the previous page's page_token"
                )
            params["page"] = str(page)
        response = self._listing(module, params)
        if response is None:
            return Page([], more=False)
        body = _body(response)
        info = body.get("info") if isinstance(body.get("info"), dict) else {}
        assert isinstance(info, dict)
        return Page(
            _rows(body),
            more=bool(info.get("more_records")),
            next_page_token=str(info.get("next_page_token") or ""),
        )

    def get_records(self, module: str, ids: list[str], fields: list[str]) -> list[dict[str, Any]]:
        """The records among ``ids`` (at most :data:`MAX_IDS_PER_READ`) that exist, in one read;
        an id with no record is simply not in the answer."""
        _check_segment("module", module)
        self._check_fields(fields)
        if not 1 <= len(ids) <= MAX_IDS_PER_READ:
            raise ZohoRequestError(f"one read takes 1 to {MAX_IDS_PER_READ} ids, not {len(ids)}")
        for record_id in ids:
            if not record_id.isdigit():
                raise ZohoRequestError(f"invalid record id: {record_id!r}")
        params = {"ids": ",".join(ids), "fields": ",".join(fields)}
        response = self._listing(module, params)
        return [] if response is None else _rows(_body(response))

    def coql(self, query: str, limit: int) -> Page:
        """The rows of a COQL ``select_query`` (``POST /crm/v8/coql``) that ends in
        ``limit <offset>, <limit>``; ``limit`` is that LIMIT, for the credit count. No rows is
        an empty page (204)."""
        if not 1 <= limit <= COQL_MAX_LIMIT:
            raise ZohoRequestError(f"a COQL LIMIT is 1 to {COQL_MAX_LIMIT}, not {limit}")
        self._extra_credits += coql_credits(limit) - 1
        response = self._send("POST", "/coql", json={"select_query": query})
        if response.status_code == 204:
            return Page([], more=False, credits=coql_credits(limit))
        body = _body(response)
        info = body.get("info") if isinstance(body.get("info"), dict) else {}
        assert isinstance(info, dict)
        return Page(_rows(body), more=bool(info.get("more_records")), credits=coql_credits(limit))

    def _listing(self, module: str, params: dict[str, str]) -> httpx.Response | None:
        """``GET /crm/v8/{module}`` with ``params``; ``None`` for an empty listing (204)."""
        try:
            response = self._send("GET", f"/{module}", params=params)
        except ProviderRejected as error:
            if error.code in _UNKNOWN_MODULE_CODES:
                raise UnknownModule(
                    PROVIDER, module, error.message, status=error.status or 400, code=error.code
                ) from error
            raise
        return None if response.status_code == 204 else response

    @staticmethod
    def _check_fields(fields: list[str]) -> None:
        if not fields:
            raise ZohoRequestError("a Zoho listing needs at least one field")
        if len(fields) > MAX_READ_FIELDS:
            raise ZohoRequestError(
                f"Zoho reads at most {MAX_READ_FIELDS} fields per request, {len(fields)} asked"
            )

    # --- activities -----------------------------------------------------------------------

    def add_note(self, module: str, record_id: str, title: str, content: str) -> str:
        """Attach a note to the record; returns the note id."""
        _check_segment("module", module)
        _check_segment("record id", record_id)
        if not content:
            raise ZohoRequestError("a Zoho note needs content")
        note = {
            "Note_Title": title,
            "Note_Content": content,
            "Parent_Id": {"module": {"api_name": module}, "id": record_id},
        }
        response = self._send("POST", "/Notes", json={"data": [note]})
        return _created_id(response, "note")

    def log_call(
        self,
        module: str,
        record_id: str,
        *,
        subject: str,
        start: datetime,
        duration_seconds: int,
        description: str,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Log an outbound call on the record; returns the call activity id.

        ``Call_Duration`` is ``mm:ss`` and Zoho refuses zero for an Outbound call, so a call that
        connected for under a second is logged as one second. ``Outgoing_Call_Status`` is
        ``Completed`` (the picklist is Scheduled | Completed | Overdue | Cancelled): without it a
        logged call may show as scheduled or overdue in the CRM's activities.
        """
        _check_segment("module", module)
        _check_segment("record id", record_id)
        if start.tzinfo is None or start.utcoffset() is None:
            raise ZohoRequestError("the call's start time must carry a time zone")
        if duration_seconds < 0:
            raise ZohoRequestError(f"negative call duration {duration_seconds}")
        call: dict[str, Any] = {
            "Subject": subject,
            "Call_Type": "Outbound",
            "Call_Start_Time": format_datetime(start),
            "Call_Duration": format_duration(duration_seconds),
            "Outgoing_Call_Status": "Completed",
            "Description": description,
        }
        call.update(_linked_to(module, record_id))
        clash = sorted(set(extra or {}) & set(call))
        if clash:
            raise ZohoRequestError(f"extra call fields may not replace {', '.join(clash)}")
        call.update(extra or {})
        response = self._send("POST", "/Calls", json={"data": [call], "trigger": []})
        return _created_id(response, "call")

    def create_task(
        self,
        module: str,
        record_id: str,
        *,
        subject: str,
        due: date,
        description: str,
        owner_id: str = "",
    ) -> str:
        """Create a Task on the record (``POST /Tasks``, status ``Not Started``); returns its id.

        Linked as a call is: ``Who_Id`` for a Contact, ``What_Id`` + ``$se_module`` otherwise.
        ``Owner`` is set only when ``owner_id`` is given; without it Zoho makes the connection's
        user the owner.
        """
        _check_segment("module", module)
        _check_segment("record id", record_id)
        if not subject.strip():
            raise ZohoRequestError("a Zoho task needs a subject")
        task: dict[str, Any] = {
            "Subject": subject,
            "Due_Date": due.isoformat(),
            "Status": "Not Started",
            "Description": description,
        }
        task.update(_linked_to(module, record_id))
        if owner_id:
            _check_segment("owner id", owner_id)
            task["Owner"] = {"id": owner_id}
        response = self._send("POST", "/Tasks", json={"data": [task], "trigger": []})
        return _created_id(response, "task")

    # --- attachments ----------------------------------------------------------------------

    def upload_attachment(
        self,
        module: str,
        record_id: str,
        file_name: str,
        content: bytes,
        content_type: str = "text/plain; charset=utf-8",
    ) -> str:
        """Attach a file to the record (``POST /{module}/{id}/Attachments``, multipart form-data
        with the file in ``file``); returns the attachment id. Zoho takes at most
        :data:`MAX_ATTACHMENT_BYTES` per request (413 beyond)."""
        _check_segment("module", module)
        _check_segment("record id", record_id)
        if not content:
            raise ZohoRequestError("an attachment needs content")
        if len(content) > MAX_ATTACHMENT_BYTES:
            raise ZohoRequestError(
                f"Zoho takes attachments of at most {MAX_ATTACHMENT_BYTES} bytes,"
                f" {len(content)} given"
            )
        if not file_name or "/" in file_name or len(file_name) > MAX_FILE_NAME_CHARS:
            raise ZohoRequestError(f"invalid attachment file name {file_name!r}")
        response = self._send(
            "POST",
            f"/{module}/{record_id}/Attachments",
            files={"file": (file_name, content, content_type)},
        )
        return _created_id(response, "attachment")

    def find_attachment(self, module: str, record_id: str, file_name: str) -> str | None:
        """The id of the record's attachment named ``file_name`` (the newest page of its
        attachments); ``None`` when there is none."""
        _check_segment("module", module)
        _check_segment("record id", record_id)
        params = {"fields": "id,File_Name", "per_page": str(RECENT_PAGE)}
        response = self._send("GET", f"/{module}/{record_id}/Attachments", params=params)
        if response.status_code == 204:
            return None
        data = _body(response).get("data")
        for attachment in data if isinstance(data, list) else []:
            if isinstance(attachment, dict) and attachment.get("File_Name") == file_name:
                return str(attachment["id"])
        return None

    # --- finding what an earlier try created -----------------------------------------------

    def find_note(self, module: str, record_id: str, marker: str) -> str | None:
        """The id of a note on the record whose content carries ``marker``, among the newest
        :data:`RECENT_PAGE` notes of the org (the writeback looks only for notes it made moments
        ago); ``None`` when there is none."""
        for note in self._recent("/Notes", "Note_Content,Parent_Id"):
            parent = note.get("Parent_Id")
            parent_id = parent.get("id") if isinstance(parent, dict) else None
            if str(parent_id) == record_id and marker in str(note.get("Note_Content") or ""):
                return str(note["id"])
        return None

    def find_call(self, module: str, record_id: str, marker: str) -> str | None:
        """The id of a call logged on the record whose description carries ``marker``, among
        the newest :data:`RECENT_PAGE` calls; ``None`` when there is none."""
        return self._find_linked("/Calls", module, record_id, marker)

    def find_task(self, module: str, record_id: str, marker: str) -> str | None:
        """The id of a Task on the record whose description carries ``marker``, among the
        newest :data:`RECENT_PAGE` tasks; ``None`` when there is none."""
        return self._find_linked("/Tasks", module, record_id, marker)

    def _find_linked(self, path: str, module: str, record_id: str, marker: str) -> str | None:
        """A Call or Task (``path``) linked to the record as :func:`_linked_to` links it,
        whose description carries ``marker``."""
        link = "Who_Id" if module in _WHO_MODULES else "What_Id"
        for item in self._recent(path, f"Description,{link}"):
            linked = item.get(link)
            linked_id = linked.get("id") if isinstance(linked, dict) else None
            if str(linked_id) == record_id and marker in str(item.get("Description") or ""):
                return str(item["id"])
        return None

    def _recent(self, path: str, fields: str) -> list[dict[str, Any]]:
        """The newest records of a listing (one page, newest first; Zoho answers 204 when the
        listing is empty). A read from the records themselves, not from the search index, which
        lags behind a record just created."""
        params = {
            "fields": fields,
            "sort_by": "id",
            "sort_order": "desc",
            "per_page": str(RECENT_PAGE),
        }
        response = self._send("GET", path, params=params)
        if response.status_code == 204:
            return []
        data = _body(response).get("data")
        return (
            [r for r in data if isinstance(r, dict) and r.get("id")]
            if isinstance(data, list)
            else []
        )

    # --- transport ------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> httpx.Response:
        """Send with the shared token; refresh once on a stale token; type every failure."""
        for attempt in (1, 2):
            token = self.tokens.access_token()
            response = self._exchange(
                method,
                token.api_domain + API_PREFIX + path,
                params,
                json,
                token.access_token,
                files=files,
            )
            if response.status_code == 401 and _body(response).get("code") in _STALE_TOKEN_CODES:
                if attempt == 1:
                    logger.info("zoho token refused; refreshing once", extra={"path": path})
                    self.tokens.invalidate(token.access_token)
                    continue
                raise ProviderAuthError(
                    PROVIDER,
                    "a freshly refreshed token was refused",
                    status=401,
                    code="INVALID_TOKEN",
                )
            return self._checked(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _exchange(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None,
        json: dict[str, Any] | None,
        access_token: str,
        *,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Zoho-oauthtoken {access_token}"}
        # Every status comes back: Zoho answers per record, and _checked reads the body.
        return self._transport.request(
            method,
            url,
            what=f"{method} {url}",
            params=params,
            json=json,
            headers=headers,
            accept=lambda _: True,
            files=files,
        )

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        status = response.status_code
        body = _body(response)
        if status in _ELEMENT_STATUSES and isinstance(body.get("data"), list):
            return response
        if status < 400:
            return response
        code = str(body.get("code") or "")
        message = str(body.get("message") or f"HTTP {status}")
        if status != 429 and status < 500 and code == "TOO_MANY_REQUESTS":
            status = 429
        raise error_for_status(PROVIDER, status, f"{code or status}: {message}", code)


def fields_from_listing(listing: Any) -> dict[str, ZohoField]:
    """The fields API's ``fields`` list as :class:`ZohoField` by API name (entries without an
    ``api_name`` are skipped)."""
    fields: dict[str, ZohoField] = {}
    for entry in listing if isinstance(listing, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("api_name"), str):
            continue
        values = entry.get("pick_list_values")
        choices = tuple(
            str(v.get("actual_value"))
            for v in (values if isinstance(values, list) else [])
            if isinstance(v, dict) and v.get("actual_value") is not None
        )
        length = entry.get("length")
        fields[entry["api_name"]] = ZohoField(
            api_name=entry["api_name"],
            data_type=str(entry.get("data_type") or ""),
            choices=choices,
            length=length if isinstance(length, int) and not isinstance(length, bool) else 0,
        )
    return fields


def format_datetime(moment: datetime) -> str:
    """Zoho's datetime: ``yyyy-MM-ddTHH:mm:ss±HH:mm``."""
    return moment.replace(microsecond=0).isoformat()


def format_duration(seconds: int) -> str:
    """Zoho's call duration: ``mm:ss`` (minutes may pass 59), at least one second."""
    seconds = max(1, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _check_segment(what: str, value: str) -> None:
    if not value or "/" in value or "?" in value or "#" in value:
        raise ZohoRequestError(f"invalid {what}: {value!r}")


def _not_found(module: str, record_id: str) -> RecordNotFound:
    return RecordNotFound(PROVIDER, f"no {module} record {record_id}", status=404, code="NOT_FOUND")


def _body(response: httpx.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body.get("data")
    if not isinstance(data, list):
        return []
    return [dict(row) for row in data if isinstance(row, dict) and row.get("id")]


def _element(response: httpx.Response) -> dict[str, Any]:
    data = _body(response).get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise ProviderRejected(
            PROVIDER,
            f"unexpected write answer (HTTP {response.status_code})",
            status=response.status_code,
        )
    return dict(data[0])


def _details(element: dict[str, Any]) -> dict[str, Any]:
    details = element.get("details")
    return dict(details) if isinstance(details, dict) else {}


def _problem(element: dict[str, Any]) -> FieldProblem:
    details = _details(element)
    return FieldProblem(
        api_name=str(details.get("api_name") or ""),
        code=str(element.get("code") or "UNKNOWN"),
        message=str(element.get("message") or ""),
        expected_type=str(details.get("expected_data_type") or ""),
    )


def _created_id(response: httpx.Response, what: str) -> str:
    element = _element(response)
    if element.get("code") == "SUCCESS":
        created = _details(element).get("id")
        if created:
            return str(created)
    problem = _problem(element)
    raise ProviderRejected(
        PROVIDER,
        f"{what} not created: {problem}",
        status=response.status_code,
        code=problem.code,
    )


def _linked_to(module: str, record_id: str) -> dict[str, Any]:
    """How a Call or a Task names its record: ``Who_Id`` for a person module (a Contact),
    ``What_Id`` with ``$se_module`` for the others."""
    if module in _WHO_MODULES:
        return {"Who_Id": {"id": record_id}}
    return {"What_Id": {"id": record_id}, "$se_module": module}

"""A Zoho CRM stand-in: the OAuth token endpoint and the v8 record, note, call and attachment
APIs.

It exists so the demo and the tests meet Zoho's real behaviour rather than a friendly imitation:
the token endpoint answers errors as HTTP 200 with an ``error`` key and enforces the ten tokens
per refresh token per ten minutes; access tokens expire (401 ``INVALID_TOKEN``); writes are
checked field by field against a field metadata table (unknown field, wrong type, picklist value,
mandatory field) and answer per record in ``data[]`` with ``code``/``details``/``message``/
``status`` as in ``callflow_dev/schemas/zoho``; an Outbound call of zero duration is refused; a
note's content is at most 65535 characters and its title 120; an attachment is a multipart
upload of at most 100 MB, and listing attachments needs ``fields``.
Knobs make writes fail with 429 or 5xx. One app serves both the accounts server and the API domain.
Listings page as Zoho's do: ``page`` reaches the first 2,000 records and ``page_token`` (which
expires) the rest; custom views (:meth:`ZohoSandbox.add_view`) filter a listing by ``cvid``;
``ids=`` reads up to 100 records; COQL queries are answered by :mod:`callflow_dev.sandbox.coql`.

Every request is logged in :attr:`ZohoSandbox.requests` (secrets in token requests redacted) so
tests can assert on exactly what was sent.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from callflow_dev.sandbox.coql import CoqlError
from callflow_dev.sandbox.coql import parse as parse_coql

TOKENS_PER_WINDOW = 10
NOTE_CONTENT_MAX = 65535
"""``Note_Content``'s maxLength in Zoho's v8 notes description (``zoho/crm-oas``)."""
NOTE_TITLE_MAX = 120
ATTACHMENT_MAX_BYTES = 100 * 1024 * 1024
"""``uploadAttachment``'s largest request body (100 MB; 413 beyond)."""
PAGE_TOKEN_LIFETIME = 86400.0
"""How long a listing's ``next_page_token`` can be used (Zoho: a day)."""
PAGE_PARAM_LIMIT = 2000
MAX_IDS = 100
TOKEN_WINDOW_SECONDS = 600.0
_ID_PREFIX = 5725767
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
_DURATION = re.compile(r"^(\d{1,4}):([0-5]\d)$")
_SANDBOX_USER = {"name": "Sandbox Admin", "id": "5725767000000411001", "email": "admin@example.com"}


_JSON_TYPES = {
    "integer": "integer",
    "double": "double",
    "currency": "double",
    "boolean": "boolean",
    "multiselectpicklist": "jsonarray",
    "lookup": "jsonobject",
    "ownerlookup": "jsonobject",
}
"""The fields API's ``json_type`` per ``data_type``; every other type is a ``string``."""


@dataclass(frozen=True)
class FieldMeta:
    """One field of a module, as ``GET /crm/v8/settings/fields`` describes it."""

    api_name: str
    data_type: str
    """Zoho's data types: text, textarea, email, phone, integer, double, currency, boolean, date,
    datetime, picklist, multiselectpicklist, lookup, ownerlookup (a user: the record's owner)."""
    mandatory: bool = False
    choices: tuple[str, ...] = ()
    length: int = 255

    def describe(self, index: int) -> dict[str, Any]:
        """The field as the fields API lists it; ``index`` (its position) makes its id."""
        return {
            "api_name": self.api_name,
            "field_label": self.api_name.replace("_", " "),
            "data_type": self.data_type,
            "json_type": _JSON_TYPES.get(self.data_type, "string"),
            "system_mandatory": self.mandatory,
            "length": self.length,
            "id": str(_ID_PREFIX * 10**12 + 300000 + index),
            "pick_list_values": [
                {"display_value": c, "actual_value": c, "id": str(_ID_PREFIX * 10**12 + 400000 + i)}
                for i, c in enumerate(self.choices)
            ],
        }


LEAD_STATUSES = (
    "Attempted to Contact",
    "Contact in Future",
    "Contacted",
    "Junk Lead",
    "Lost Lead",
    "Not Contacted",
    "Pre-Qualified",
    "Not Qualified",
    "Qualified",
)


REMINDER_STATUSES = ("Not Reminded", "Reminded", "Message Left", "Unreachable")
"""The demo's custom ``Reminder_Status`` picklist on Leads (the reminder flow's status field)."""


DEAL_STAGES = (
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
OUTGOING_CALL_STATUSES = ("Scheduled", "Completed", "Overdue", "Cancelled")
"""The Calls module's ``Outgoing_Call_Status`` picklist: a logged past call is ``Completed``,
one planned for later ``Scheduled``."""
TASK_STATUSES = ("Not Started", "Deferred", "In Progress", "Completed", "Waiting for input")
TASK_PRIORITIES = ("High", "Highest", "Low", "Lowest", "Normal")
_ACTIVITY_MODULES = frozenset({"Calls", "Tasks"})
"""Modules whose records link to another record with ``Who_Id`` (a Contact) or ``What_Id`` and
``$se_module`` (the module of the record named)."""


def default_modules() -> dict[str, dict[str, FieldMeta]]:
    """Leads, Contacts, Deals, Calls and Tasks as a fresh org has them (the layout's fields, not
    every system field), plus the demo's custom Lead fields."""

    def table(*fields: FieldMeta) -> dict[str, FieldMeta]:
        return {f.api_name: f for f in fields}

    return {
        "Leads": table(
            FieldMeta("First_Name", "text", length=40),
            FieldMeta("Last_Name", "text", mandatory=True, length=80),
            FieldMeta("Company", "text", length=200),
            FieldMeta("Phone", "phone", length=30),
            FieldMeta("Email", "email", length=100),
            FieldMeta("Lead_Status", "picklist", choices=LEAD_STATUSES),
            FieldMeta("Interested", "boolean"),
            FieldMeta("Do_Not_Call", "boolean"),
            FieldMeta("Monthly_Bill", "currency", length=16),
            FieldMeta("Site_Visit_Date", "date"),
            FieldMeta("Amount_Due", "currency", length=16),
            FieldMeta("Paid", "boolean"),
            FieldMeta("Reminder_Status", "picklist", choices=REMINDER_STATUSES),
            FieldMeta("Description", "textarea", length=32000),
            FieldMeta("Owner", "ownerlookup"),
        ),
        "Contacts": table(
            FieldMeta("First_Name", "text", length=40),
            FieldMeta("Last_Name", "text", mandatory=True, length=80),
            FieldMeta("Phone", "phone", length=30),
            FieldMeta("Mobile", "phone", length=30),
            FieldMeta("Email", "email", length=100),
            FieldMeta("Description", "textarea", length=32000),
            FieldMeta("Owner", "ownerlookup"),
        ),
        "Deals": table(
            FieldMeta("Deal_Name", "text", mandatory=True, length=120),
            FieldMeta("Stage", "picklist", mandatory=True, choices=DEAL_STAGES),
            FieldMeta("Amount", "currency", length=16),
            FieldMeta("Closing_Date", "date"),
            FieldMeta("Description", "textarea", length=32000),
            FieldMeta("Owner", "ownerlookup"),
        ),
        "Calls": table(
            FieldMeta("Subject", "text", mandatory=True),
            FieldMeta("Call_Type", "picklist", mandatory=True, choices=("Outbound", "Inbound")),
            FieldMeta("Call_Start_Time", "datetime", mandatory=True),
            FieldMeta("Call_Duration", "text", length=10),
            FieldMeta("Outgoing_Call_Status", "picklist", choices=OUTGOING_CALL_STATUSES),
            FieldMeta("Description", "textarea", length=32000),
            FieldMeta("Call_Result", "picklist", choices=("Interested", "Not interested", "")),
            FieldMeta("Who_Id", "lookup"),
            FieldMeta("What_Id", "lookup"),
            FieldMeta("$se_module", "text"),
        ),
        "Tasks": table(
            FieldMeta("Subject", "text", mandatory=True),
            FieldMeta("Due_Date", "date"),
            FieldMeta("Status", "picklist", choices=TASK_STATUSES),
            FieldMeta("Priority", "picklist", choices=TASK_PRIORITIES),
            FieldMeta("Description", "textarea", length=32000),
            FieldMeta("Who_Id", "lookup"),
            FieldMeta("What_Id", "lookup"),
            FieldMeta("$se_module", "text"),
            FieldMeta("Owner", "ownerlookup"),
        ),
    }


@dataclass(frozen=True)
class SandboxRequest:
    """A request as received; a form's ``client_secret`` and ``refresh_token`` are masked."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    form: dict[str, str] = field(default_factory=dict)


class _Refused(Exception):
    """A record element that fails validation, already in Zoho's element shape."""

    def __init__(self, element: dict[str, Any]) -> None:
        super().__init__(element.get("code"))
        self.element = element


DEFAULT_SCOPE = "ZohoCRM.modules.ALL ZohoCRM.settings.fields.READ"


class ZohoSandbox:
    """State and knobs of the stand-in; :attr:`app` is the ASGI app to serve."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        *,
        base_url: str | None = None,
        token_lifetime: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.base_url = base_url.rstrip("/") if base_url else None
        self._default_lifetime = token_lifetime
        self.token_lifetime = token_lifetime
        self._default_clock = clock
        self.clock = clock
        self._lock = threading.RLock()
        self.reset()
        self.app = self._build_app()

    def reset(self) -> None:
        """Forget every record, note, token, request and knob (a fresh org)."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self.granted_scope = DEFAULT_SCOPE
        """What the token endpoint says it granted (``callflow doctor`` reads it)."""
        self.token_lifetime = self._default_lifetime
        self.clock = self._default_clock
        self.modules = default_modules()
        self.records: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in self.modules}
        self.users: dict[str, dict[str, str]] = {_SANDBOX_USER["id"]: dict(_SANDBOX_USER)}
        """The org's users by id (a record's ``Owner`` must name one)."""
        self.notes: list[dict[str, Any]] = []
        self.attachments: list[dict[str, Any]] = []
        """Uploaded files: id, module, record_id, File_Name, Size, content, content_type."""
        self.requests: list[SandboxRequest] = []
        self.workflow_runs: list[tuple[str, str]] = []
        """(module, id) of writes that would have fired workflow rules (no ``"trigger": []``)."""
        self.tokens: dict[str, float] = {}
        self._evicted: set[str] = set()
        """Issued access token -> expiry (unix time)."""
        self._issued: deque[float] = deque()
        self._failing: dict[str, int] = {}
        """Path prefix -> writes still to fail there."""
        self._fail_forever = False
        self._fail_status = 429
        self._lose_answers = 0
        self._lose_path = ""
        self._next_id = 0
        self.webhook_format = "json"
        """How :meth:`webhook_request` encodes a workflow rule's webhook: ``json`` (a raw JSON
        body), ``form`` (x-www-form-urlencoded), ``multipart`` (form-data) or ``query`` (URL
        parameters, empty body); a Zoho webhook can be set up to send any of them."""
        self.evict_tokens_every = 0
        """When positive, every issued access token is evicted before every n-th API request,
        as when another user of the same refresh token has 15 more issued (401
        ``INVALID_OAUTHTOKEN`` until a new token is fetched)."""
        self._api_requests = 0
        self.views: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {}
        """Custom view id -> (module, which records it shows)."""
        self.page_tokens: dict[str, tuple[str, str, int, float]] = {}
        """Issued page token -> (module, cvid, offset of the page it asks for, expiry)."""
        self.page_token_lifetime = PAGE_TOKEN_LIFETIME

    # --- knobs ----------------------------------------------------------------------------

    def fail_next_writes(self, n: int, status: int = 429, path: str = "") -> None:
        """The next ``n`` writes (PUT/POST under /crm/v8) fail with ``status``; with ``path``,
        only writes to paths that start with it (``/crm/v8/Notes``) count, and each path keeps
        its own count (call once per path)."""
        with self._lock:
            self._failing[path] = n
            self._fail_status, self._fail_forever = status, False

    def fail_writes_forever(self, status: int = 429) -> None:
        """Every write fails with ``status`` until :meth:`heal` (a lasting outage)."""
        with self._lock:
            self._fail_forever, self._fail_status = True, status

    def lose_answers(self, n: int, path: str = "") -> None:
        """The next ``n`` writes (to paths starting with ``path``) are carried out, then answered
        with a 500: the write happened and the caller cannot know it (a 5xx or a broken
        connection after the work)."""
        with self._lock:
            self._lose_answers, self._lose_path = n, path

    def heal(self) -> None:
        """Let writes succeed again, whichever knob made them fail."""
        with self._lock:
            self._failing, self._fail_forever, self._lose_answers = {}, False, 0

    def add_view(self, module: str, shows: Callable[[dict[str, Any]], bool]) -> str:
        """A custom view of ``module`` showing the records ``shows`` accepts; its ``cvid``."""
        with self._lock:
            cvid = self._new_id()
            self.views[cvid] = (module, shows)
            return cvid

    def expire_page_tokens(self) -> None:
        """Every page token issued so far stops working (as a day later)."""
        with self._lock:
            self.page_tokens = {
                t: (*v[:3], min(v[3], self.clock())) for t, v in self.page_tokens.items()
            }

    def evict_tokens(self) -> None:
        """Every issued access token is evicted now, as when a 16th token is issued for the same
        refresh token: using one answers 401 ``INVALID_OAUTHTOKEN``."""
        with self._lock:
            self._evicted.update(self.tokens)
            self.tokens = {}

    def expire_tokens(self) -> None:
        """Every issued access token stops working now (as after an hour)."""
        with self._lock:
            now = self.clock()
            self.tokens = {t: min(exp, now) for t, exp in self.tokens.items()}

    def webhook_request(
        self, module: str, record_id: str, secret: str, flow: str = ""
    ) -> dict[str, Any]:
        """What a workflow rule's webhook sends for the record, as ``httpx.request`` keyword
        arguments (``params``, ``content``, ``headers``), encoded as :attr:`webhook_format`
        says; ``secret`` goes into the custom header the rule is set up with, and ``flow``
        (when given) is one more parameter of the rule's webhook."""
        fields = {"module": module, "record_id": record_id}
        if flow:
            fields["flow"] = flow
        headers = {"X-Callflow-Secret": secret}
        if self.webhook_format == "query":
            return {"params": fields, "content": b"", "headers": headers}
        if self.webhook_format == "form":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return {"content": urlencode(fields).encode(), "headers": headers}
        if self.webhook_format == "multipart":
            boundary = f"----zohowebhook{secrets.token_hex(8)}"
            parts = "".join(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                for k, v in fields.items()
            )
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
            return {"content": f"{parts}--{boundary}--\r\n".encode(), "headers": headers}
        if self.webhook_format == "json":
            headers["Content-Type"] = "application/json"
            return {"content": json.dumps(fields).encode(), "headers": headers}
        raise ValueError(f"unknown webhook_format {self.webhook_format!r}")

    # --- data -----------------------------------------------------------------------------

    def add_user(self, name: str, email: str) -> str:
        """Add a user to the org (one who can own records); returns the user's id."""
        with self._lock:
            user_id = self._new_id()
            self.users[user_id] = {"name": name, "id": user_id, "email": email}
            return user_id

    @property
    def tasks(self) -> list[dict[str, Any]]:
        """The records of the Tasks module, as a list."""
        return list(self.records["Tasks"].values())

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The records of the Calls module (calls logged on records), as a list."""
        return list(self.records["Calls"].values())

    def token_requests(self) -> list[SandboxRequest]:
        """The requests made to the OAuth token endpoint, in order."""
        return [r for r in self.requests if r.path == "/oauth/v2/token"]

    def seed_record(self, module: str, fields: dict[str, Any]) -> str:
        """Create a record directly (no request logged); invalid data raises ``ValueError``."""
        with self._lock:
            meta = self._module(module)
            if meta is None:
                raise ValueError(f"unknown module {module}")
            try:
                self._validate(module, meta, fields, creating=True, index=0)
            except _Refused as refused:
                raise ValueError(f"invalid seed record: {refused.element}") from None
            record_id = self._new_id()
            self.records[module][record_id] = {"id": record_id, **self._owned(meta, fields)}
            return record_id

    # --- app ------------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="Zoho CRM sandbox")

        @app.middleware("http")
        async def log_request(request: Request, call_next: Any) -> Response:
            raw = await request.body()
            self._log(request, raw)
            response: Response = await call_next(request)
            return response

        @app.post("/oauth/v2/token")
        async def token(request: Request) -> JSONResponse:
            form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            return self._token(form, self._api_domain(request))

        @app.get("/crm/v8/settings/fields")
        async def fields(request: Request) -> Response:
            return self._guarded(request, lambda: self._fields(request.query_params.get("module")))

        @app.get("/crm/v8/Notes")
        async def list_notes(request: Request) -> Response:
            query = request.query_params
            return self._guarded(request, lambda: self._list_notes(query))

        @app.post("/crm/v8/Notes")
        async def create_notes(request: Request) -> Response:
            body = await _json(request)
            return self._guarded(request, lambda: self._create_notes(body), write=True)

        @app.post("/crm/v8/{module}/{record_id}/Attachments")
        async def upload_attachment(module: str, record_id: str, request: Request) -> Response:
            upload = await _upload(request)
            return self._guarded(
                request, lambda: self._attach(module, record_id, upload), write=True
            )

        @app.get("/crm/v8/{module}/{record_id}/Attachments")
        async def list_attachments(module: str, record_id: str, request: Request) -> Response:
            query = request.query_params
            return self._guarded(request, lambda: self._attachments(module, record_id, query))

        @app.post("/crm/v8/coql")
        async def coql(request: Request) -> Response:
            body = await _json(request)
            return self._guarded(request, lambda: self._coql(body))

        @app.get("/crm/v8/{module}/{record_id}")
        async def get_record(module: str, record_id: str, request: Request) -> Response:
            wanted = request.query_params.get("fields")
            return self._guarded(request, lambda: self._get(module, record_id, wanted))

        @app.put("/crm/v8/{module}/{record_id}")
        async def update_record(module: str, record_id: str, request: Request) -> Response:
            body = await _json(request)
            return self._guarded(request, lambda: self._update(module, record_id, body), write=True)

        @app.get("/crm/v8/{module}")
        async def list_records(module: str, request: Request) -> Response:
            query = request.query_params
            return self._guarded(request, lambda: self._list(module, query))

        @app.post("/crm/v8/{module}")
        async def create_records(module: str, request: Request) -> Response:
            body = await _json(request)
            return self._guarded(request, lambda: self._create(module, body), write=True)

        return app

    def _log(self, request: Request, raw: bytes) -> None:
        content_type = request.headers.get("content-type", "")
        body: Any = None
        form: dict[str, str] = {}
        if raw and "json" in content_type:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        elif raw and "form" in content_type:
            form = dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
            for secret in ("client_secret", "refresh_token"):
                if secret in form:
                    form[secret] = "***"
        with self._lock:
            self.requests.append(
                SandboxRequest(
                    request.method, request.url.path, dict(request.query_params), body, form
                )
            )

    def _api_domain(self, request: Request) -> str:
        return self.base_url or str(request.base_url).rstrip("/")

    # --- OAuth ----------------------------------------------------------------------------

    def _token(self, form: dict[str, str], api_domain: str) -> JSONResponse:
        if form.get("grant_type") != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type"})
        if form.get("client_id") != self.client_id or not secrets.compare_digest(
            form.get("client_secret", ""), self.client_secret
        ):
            return JSONResponse({"error": "invalid_client"})
        if not secrets.compare_digest(form.get("refresh_token", ""), self.refresh_token):
            return JSONResponse({"error": "invalid_code"})
        with self._lock:
            now = self.clock()
            while self._issued and self._issued[0] <= now - TOKEN_WINDOW_SECONDS:
                self._issued.popleft()
            if len(self._issued) >= TOKENS_PER_WINDOW:
                return JSONResponse(
                    {
                        "error_description": "You have made too many requests continuously. "
                        "Please try again after some time.",
                        "error": "Access Denied",
                        "status": "failure",
                    }
                )
            self._issued.append(now)
            token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self.tokens[token] = now + self.token_lifetime
        return JSONResponse(
            {
                "access_token": token,
                "scope": self.granted_scope,
                "api_domain": api_domain,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
            }
        )

    # --- request guard --------------------------------------------------------------------

    def _guarded(
        self, request: Request, handle: Callable[[], Response], *, write: bool = False
    ) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Zoho-oauthtoken" or not token:
            return _error(401, "AUTHENTICATION_FAILURE", "Authentication failed")
        with self._lock:
            self._api_requests += 1
            every = self.evict_tokens_every
            if every > 0 and self._api_requests % every == 0:
                self._evicted.update(self.tokens)
                self.tokens = {}
            if token in self._evicted:
                return _error(401, "INVALID_OAUTHTOKEN", "invalid oauth token")
            expiry = self.tokens.get(token)
            if expiry is None or expiry <= self.clock():
                return _error(401, "INVALID_TOKEN", "invalid oauth token")
            path = request.url.path
            prefix = next(
                (p for p, left in self._failing.items() if left > 0 and path.startswith(p)), None
            )
            if write and (self._fail_forever or prefix is not None):
                if prefix is not None and not self._fail_forever:
                    self._failing[prefix] -= 1
                status = self._fail_status
                if status == 429:
                    return _error(429, "TOO_MANY_REQUESTS", "too many requests continuously")
                return _error(status, "INTERNAL_ERROR", "Internal server error occurred.")
            answer = handle()
            losing = self._lose_answers > 0 and path.startswith(self._lose_path)
            if write and losing and answer.status_code < 400:
                self._lose_answers -= 1
                return _error(500, "INTERNAL_ERROR", "Internal server error occurred.")
            return answer

    # --- handlers (called under the lock) -------------------------------------------------

    def _module(self, module: str) -> dict[str, FieldMeta] | None:
        return self.modules.get(module)

    def _fields(self, module: str | None) -> Response:
        if not module:
            return _error(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param": "module"},
            )
        meta = self._module(module)
        if meta is None:
            return _invalid_module()
        return JSONResponse({"fields": [f.describe(i) for i, f in enumerate(meta.values())]})

    def _get(self, module: str, record_id: str, wanted: str | None) -> Response:
        meta = self._module(module)
        if meta is None:
            return _invalid_module()
        if not record_id.isdigit():
            return _error(400, "INVALID_DATA", "the id given seems to be invalid", {})
        names = [n for n in (wanted or "").split(",") if n]
        if len(names) > 50:
            return _error(
                400,
                "LIMIT_EXCEEDED",
                "Max field limit exceeded",
                {"limit": 50, "param": "fields"},
            )
        unknown = [n for n in names if n not in meta]
        if unknown:
            # Zoho refuses a read naming a field the module lacks, naming the first one.
            return _error(400, "INVALID_DATA", "invalid data", {"api_name": unknown[0]})
        record = self.records[module].get(record_id)
        if record is None:
            return Response(status_code=204)
        shown = names or list(meta)
        data = {"id": record_id, **{n: record.get(n) for n in shown if n in meta}}
        return JSONResponse({"data": [data]})

    def _update(self, module: str, record_id: str, body: Any) -> Response:
        meta = self._module(module)
        if meta is None:
            return _invalid_module()
        rows = _rows(body)
        if rows is None:
            return _not_a_data_array()
        record = self.records[module].get(record_id)
        if record is None:
            return _element_answer(
                [
                    _element_error(
                        "INVALID_DATA", "the id given seems to be invalid", {"id": record_id}
                    )
                ]
            )
        row = rows[0]
        try:
            self._validate(module, meta, row, creating=False, index=0)
        except _Refused as refused:
            return _element_answer([refused.element])
        changes = self._owned(meta, row) if "Owner" in row else row
        record.update({k: v for k, v in changes.items() if k != "id"})
        if _fires_workflow(body):
            self.workflow_runs.append((module, record_id))
        return _element_answer([_success(record_id, "record updated")])

    def _create(self, module: str, body: Any) -> Response:
        meta = self._module(module)
        if meta is None:
            return _invalid_module()
        rows = _rows(body)
        if rows is None:
            return _not_a_data_array()

        def validate(row: dict[str, Any], index: int) -> None:
            self._validate(module, meta, row, creating=True, index=index)
            if module == "Calls":
                self._validate_call(row, index)

        def store(row: dict[str, Any]) -> str:
            record_id = self._new_id()
            self.records[module][record_id] = {"id": record_id, **self._owned(meta, row)}
            if _fires_workflow(body):
                self.workflow_runs.append((module, record_id))
            return record_id

        return self._add_each(rows, validate, store)

    def _owned(self, meta: dict[str, FieldMeta], row: dict[str, Any]) -> dict[str, Any]:
        """The row as Zoho stores it: an ``Owner`` given as ``{"id"}`` reads back as the user
        (name, id, email); none given, the connection's user owns the record."""
        if "Owner" not in meta:
            return dict(row)
        owner = row.get("Owner")
        user_id = str(owner.get("id")) if isinstance(owner, dict) else _SANDBOX_USER["id"]
        return {**row, "Owner": dict(self.users[user_id])}

    def _list(self, module: str, query: Mapping[str, str]) -> Response:
        meta = self._module(module)
        if meta is None:
            return _invalid_module()
        rows = list(self.records[module].values())
        if "ids" in query:
            return self._list_ids(module, rows, query)
        cvid = query.get("cvid", "")
        if cvid:
            view = self.views.get(cvid)
            if view is None or view[0] != module:
                return _error(400, "INVALID_DATA", "invalid data", {"param": "cvid"})
            rows = [r for r in rows if view[1](r)]
        token = query.get("page_token", "")
        offset = None
        if token:
            if "page" in query:
                return _error(
                    400, "INVALID_DATA", "page and page_token cannot be given together", {}
                )
            issued = self.page_tokens.get(token)
            if issued is None or issued[:2] != (module, cvid) or issued[3] <= self.clock():
                return _error(
                    400, "INVALID_DATA", "invalid or expired page_token", {"param": "page_token"}
                )
            offset = issued[2]
        else:
            per_page, page = query.get("per_page", "200"), query.get("page", "1")
            if (
                per_page.isdigit()
                and page.isdigit()
                and int(page) * int(per_page) > (PAGE_PARAM_LIMIT)
            ):
                return _error(
                    400,
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    f"cannot fetch more than {PAGE_PARAM_LIMIT} records with the page"
                    " parameter; use page_token",
                    {},
                )
        return _listing(
            rows,
            query,
            offset=offset,
            issue_token=lambda next_offset: self._issue_page_token(module, cvid, next_offset),
        )

    def _issue_page_token(self, module: str, cvid: str, offset: int) -> tuple[str, str]:
        token = secrets.token_hex(24)
        expiry = self.clock() + self.page_token_lifetime
        self.page_tokens[token] = (module, cvid, offset, expiry)
        stamp = datetime.fromtimestamp(expiry, UTC).replace(microsecond=0).isoformat()
        return token, stamp

    def _list_ids(
        self, module: str, rows: list[dict[str, Any]], query: Mapping[str, str]
    ) -> Response:
        ids = [i for i in query.get("ids", "").split(",") if i]
        if not ids or len(ids) > MAX_IDS:
            return _error(
                400,
                "LIMIT_EXCEEDED",
                f"ids takes 1 to {MAX_IDS} ids",
                {"limit": MAX_IDS, "param": "ids"},
            )
        if any(not i.isdigit() for i in ids):
            return _error(400, "INVALID_DATA", "the id given seems to be invalid", {"param": "ids"})
        if "page" in query or "page_token" in query or "cvid" in query:
            return _error(
                400, "INVALID_DATA", "ids cannot be combined with paging", {"param": "ids"}
            )
        wanted = set(ids)
        return _listing([r for r in rows if r["id"] in wanted], {**query, "per_page": str(MAX_IDS)})

    def _coql(self, body: Any) -> Response:
        query_text = body.get("select_query") if isinstance(body, dict) else None
        if not isinstance(query_text, str) or not query_text.strip():
            return _error(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param": "select_query"},
            )
        try:
            query = parse_coql(
                query_text, lambda m: set(self.modules[m]) if m in self.modules else None
            )
        except CoqlError as error:
            return _error(400, error.code, error.message, error.details)
        rows = [r for r in self.records[query.module].values() if query.where(r)]
        key = (
            (lambda r: int(r["id"]))
            if query.order_by == "id"
            else (lambda r: (r.get(query.order_by) is None, str(r.get(query.order_by) or "")))
        )
        rows.sort(key=key, reverse=query.descending)
        chunk = rows[query.offset : query.offset + query.limit]
        if not chunk:
            return Response(status_code=204)
        data = [{"id": r["id"], **{f: r.get(f) for f in query.fields if f != "id"}} for r in chunk]
        more = query.offset + query.limit < len(rows)
        return JSONResponse({"data": data, "info": {"count": len(data), "more_records": more}})

    def _list_notes(self, query: Mapping[str, str]) -> Response:
        return _listing(self.notes, query, always=tuple(_note_system_fields()))

    def _attach(self, module: str, record_id: str, upload: _Upload | Response) -> Response:
        """``uploadAttachment``: multipart form-data with the file in ``file`` (100 MB at most,
        413 beyond); an unknown module or record is refused as Zoho does, the answer is one
        element with the attachment's id."""
        if isinstance(upload, Response):
            return upload
        if self._module(module) is None:
            return _invalid_module()
        if not record_id.isdigit() or record_id not in self.records[module]:
            return _error(
                400,
                "INVALID_DATA",
                "the related id given seems to be invalid",
                {"resource_path_index": 1},
            )
        attachment_id = self._new_id()
        self.attachments.append(
            {
                "id": attachment_id,
                "module": module,
                "record_id": record_id,
                "File_Name": upload.file_name,
                "Size": str(len(upload.content)),
                "content": upload.content,
                "content_type": upload.content_type,
            }
        )
        element = _success(attachment_id, "attachment uploaded successfully")
        return JSONResponse({"data": [element]}, status_code=200)

    def _attachments(self, module: str, record_id: str, query: Mapping[str, str]) -> Response:
        """``getAttachments``: ``fields`` is required; the record's attachments, newest first,
        with the listing's ``info`` (an empty list is 200 with ``data: []``)."""
        if self._module(module) is None:
            return _invalid_module()
        if not record_id.isdigit() or record_id not in self.records[module]:
            return _error(
                400,
                "INVALID_DATA",
                "the related id given seems to be invalid",
                {"resource_path_index": 1},
            )
        fields = [f for f in query.get("fields", "").split(",") if f]
        if not fields:
            return _error(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param_name": "fields"},
            )
        raw_per_page = query.get("per_page", "200")
        if not raw_per_page.isdigit() or not 1 <= int(raw_per_page) <= MAX_PER_PAGE:
            return _error(400, "INVALID_DATA", "invalid data", {"param_name": "per_page"})
        mine = [
            a
            for a in reversed(self.attachments)
            if (a["module"], a["record_id"]) == (module, record_id)
        ][: int(raw_per_page)]
        data = [
            {"id": a["id"], **{f: a[f] for f in fields if f in a and f != "content"}} for a in mine
        ]
        info = {
            "per_page": int(raw_per_page),
            "next_page_token": None,
            "count": len(data),
            "page": 1,
            "previous_page_token": None,
            "page_token_expiry": None,
            "more_records": False,
        }
        return JSONResponse({"data": data, "info": info})

    def _create_notes(self, body: Any) -> Response:
        rows = _rows(body)
        if rows is None:
            return _not_a_data_array()

        def store(row: dict[str, Any]) -> str:
            note_id = self._new_id()
            self.notes.append({"id": note_id, **_note_system_fields(), **row})
            return note_id

        return self._add_each(rows, self._validate_note, store)

    @staticmethod
    def _add_each(
        rows: list[dict[str, Any]],
        validate: Callable[[dict[str, Any], int], None],
        store: Callable[[dict[str, Any]], str],
    ) -> Response:
        """Zoho's insert semantics: each row is validated and stored on its own, and the answer
        lists a success or an error per row (refused rows do not stop the others)."""
        elements = []
        for index, row in enumerate(rows):
            try:
                validate(row, index)
            except _Refused as refused:
                elements.append(refused.element)
                continue
            elements.append(_success(store(row), "record added"))
        return _element_answer(elements, created=True)

    # --- validation -----------------------------------------------------------------------

    def _validate(
        self,
        module: str,
        meta: dict[str, FieldMeta],
        row: dict[str, Any],
        *,
        creating: bool,
        index: int,
    ) -> None:
        for name, value in row.items():
            if name == "id":
                continue
            spec = meta.get(name)
            path = f"$.data[{index}].{name}"
            if spec is None:
                raise _Refused(_invalid(name, path, "invalid data"))
            if value is None or value == "":
                if spec.mandatory:
                    raise _Refused(_mandatory(name, path))
                continue
            problem = _type_problem(spec, value)
            if problem:
                raise _Refused(_invalid(name, path, "invalid data", expected=problem))
            if spec.data_type == "lookup":
                self._check_lookup(module, name, value, row, path)
            if spec.data_type == "ownerlookup" and str(value.get("id")) not in self.users:
                raise _Refused(_invalid(name, path, "invalid data", expected="ownerlookup"))
        if creating:
            for spec in meta.values():
                if spec.mandatory and row.get(spec.api_name) in (None, ""):
                    raise _Refused(_mandatory(spec.api_name, f"$.data[{index}].{spec.api_name}"))

    def _check_lookup(
        self, module: str, name: str, value: dict[str, Any], row: dict[str, Any], path: str
    ) -> None:
        if module not in _ACTIVITY_MODULES:
            return
        if name == "Who_Id":
            target = "Contacts"
        else:
            target = str(row.get("$se_module") or "")
            if not target:
                raise _Refused(_mandatory("$se_module", path.rsplit(".", 1)[0] + ".$se_module"))
        if str(value.get("id")) not in self.records.get(target, {}):
            raise _Refused(_invalid(name, path, "invalid data", expected="lookup"))

    def _validate_call(self, row: dict[str, Any], index: int) -> None:
        duration = str(row.get("Call_Duration") or "")
        path = f"$.data[{index}].Call_Duration"
        if row.get("Call_Type") == "Outbound":
            match = _DURATION.match(duration)
            if not duration:
                raise _Refused(_mandatory("Call_Duration", path))
            if not match:
                raise _Refused(_invalid("Call_Duration", path, "invalid data", expected="mm:ss"))
            if int(match.group(1)) * 60 + int(match.group(2)) == 0:
                raise _Refused(_invalid("Call_Duration", path, "invalid data"))

    def _validate_note(self, row: dict[str, Any], index: int) -> None:
        base = f"$.data[{index}]"
        allowed = {"Note_Title", "Note_Content", "Parent_Id"}
        for name in row:
            if name not in allowed:
                raise _Refused(_invalid(name, f"{base}.{name}", "invalid data"))
        if not isinstance(row.get("Note_Content"), str) or not row["Note_Content"]:
            raise _Refused(_mandatory("Note_Content", f"{base}.Note_Content"))
        if len(row["Note_Content"]) > NOTE_CONTENT_MAX:
            raise _Refused(_too_long("Note_Content", f"{base}.Note_Content", NOTE_CONTENT_MAX))
        title = row.get("Note_Title")
        if title is not None and not isinstance(title, str):
            raise _Refused(_invalid("Note_Title", f"{base}.Note_Title", "invalid data", "string"))
        if isinstance(title, str) and len(title) > NOTE_TITLE_MAX:
            raise _Refused(_too_long("Note_Title", f"{base}.Note_Title", NOTE_TITLE_MAX))
        parent = row.get("Parent_Id")
        if not isinstance(parent, dict):
            raise _Refused(_mandatory("Parent_Id", f"{base}.Parent_Id"))
        module = parent.get("module")
        api_name = module.get("api_name") if isinstance(module, dict) else None
        if not isinstance(api_name, str) or not api_name:
            raise _Refused(_mandatory("module", f"{base}.Parent_Id.module"))
        if api_name not in self.records:
            raise _Refused(
                _invalid("module", f"{base}.Parent_Id.module", "invalid data", expected="module")
            )
        if str(parent.get("id")) not in self.records[api_name]:
            raise _Refused(_invalid("Parent_Id", f"{base}.Parent_Id", "invalid data", "jsonobject"))

    def _new_id(self) -> str:
        self._next_id += 1
        return str(_ID_PREFIX * 10**12 + 524000 + self._next_id)


# --- field type checks --------------------------------------------------------------------


def _type_problem(spec: FieldMeta, value: Any) -> str:
    """The expected type's name when ``value`` does not fit the field, else ``""``."""
    kind = spec.data_type
    if kind in {"text", "textarea", "phone"}:
        ok = isinstance(value, str) and len(value) <= spec.length
        return "" if ok else "string"
    if kind == "email":
        return "" if isinstance(value, str) and re.fullmatch(r"[^@\s]+@[^@\s]+", value) else "email"
    if kind == "integer":
        return "" if isinstance(value, int) and not isinstance(value, bool) else "integer"
    if kind in {"double", "currency"}:
        return "" if isinstance(value, int | float) and not isinstance(value, bool) else "double"
    if kind == "boolean":
        return "" if isinstance(value, bool) else "boolean"
    if kind == "date":
        return "" if isinstance(value, str) and _is_date(value) else "date"
    if kind == "datetime":
        return "" if isinstance(value, str) and _is_datetime(value) else "datetime"
    if kind == "picklist":
        return "" if isinstance(value, str) and value in spec.choices else "picklist"
    if kind == "multiselectpicklist":
        ok = isinstance(value, list) and all(v in spec.choices for v in value)
        return "" if ok else "jsonarray"
    if kind in {"lookup", "ownerlookup"}:
        return "" if isinstance(value, dict) and isinstance(value.get("id"), str) else "jsonobject"
    return ""


def _is_date(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    if not _DATETIME.match(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


# --- response shapes ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Upload:
    """The ``file`` part of an upload request."""

    file_name: str
    content: bytes
    content_type: str


async def _upload(request: Request) -> _Upload | Response:
    """The uploaded file, or Zoho's refusal: not multipart form-data or no ``file`` part (400),
    a body past 100 MB (413)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > ATTACHMENT_MAX_BYTES:
        return _error(413, "FILE_SIZE_MORE_THAN_ALLOWED_SIZE", "file size exceeds the limit", {})
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return _error(400, "INVALID_DATA", "invalid data provided", {})
    try:
        form = await request.form()
    except Exception:  # a malformed multipart body: Zoho refuses it as data
        return _error(400, "INVALID_DATA", "invalid data provided", {})
    part = form.get("file")
    if part is None or isinstance(part, str):
        return _error(
            400,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param_name": "file"},
        )
    content = await part.read()
    if len(content) > ATTACHMENT_MAX_BYTES:
        return _error(413, "FILE_SIZE_MORE_THAN_ALLOWED_SIZE", "file size exceeds the limit", {})
    if not content or not part.filename:
        return _error(400, "INVALID_DATA", "invalid data provided", {})
    if part.filename.lower().endswith(".exe"):
        return _error(400, "INVALID_DATA", "invalid data provided", {})
    return _Upload(part.filename, content, part.content_type or "application/octet-stream")


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _rows(body: Any) -> list[dict[str, Any]] | None:
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    if not isinstance(data, list) or not data or not all(isinstance(r, dict) for r in data):
        return None
    return data


def _fires_workflow(body: dict[str, Any]) -> bool:
    """Zoho runs workflow rules unless ``trigger`` is given without ``workflow`` in it."""
    trigger = body.get("trigger")
    return not isinstance(trigger, list) or "workflow" in trigger


def _error(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    body = {"code": code, "details": details or {}, "message": message, "status": "error"}
    return JSONResponse(body, status_code=status)


def _invalid_module() -> JSONResponse:
    """Zoho's answer to a path naming no module. The live API writes the message in lower case,
    as the notes spec's ``Invalid_Module_API_Exception`` does (record.json's error enum lists only
    a capitalised variant)."""
    return _error(
        400,
        "INVALID_MODULE",
        "the module name given seems to be invalid",
        {"resource_path_index": 0},
    )


def _not_a_data_array() -> JSONResponse:
    return _error(
        400, "INVALID_DATA", "body", {"expected_data_type": "jsonarray", "api_name": "data"}
    )


def _element_error(code: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"code": code, "details": details, "message": message, "status": "error"}


def _invalid(name: str, path: str, message: str, expected: str = "") -> dict[str, Any]:
    details: dict[str, Any] = {"api_name": name, "json_path": path}
    if expected:
        details["expected_data_type"] = expected
    return _element_error("INVALID_DATA", message, details)


def _too_long(name: str, path: str, maximum: int) -> dict[str, Any]:
    """Zoho's refusal of a value past the field's length (``INVALID_DATA`` with the limit)."""
    details = {"api_name": name, "json_path": path, "maximum_length": maximum}
    return _element_error("INVALID_DATA", "invalid data", details)


def _mandatory(name: str, path: str) -> dict[str, Any]:
    return _element_error(
        "MANDATORY_NOT_FOUND", "required field not found", {"api_name": name, "json_path": path}
    )


def _note_system_fields() -> dict[str, Any]:
    """What Zoho keeps on every note beside its content: a listing answers with these (the notes
    spec's ``Note`` marks them required) whichever ``fields`` were asked for."""
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    return {
        "Created_Time": now,
        "Modified_Time": now,
        "Owner": dict(_SANDBOX_USER),
        "Created_By": dict(_SANDBOX_USER),
        "Modified_By": dict(_SANDBOX_USER),
        "$attachments": [],
        "$editable": True,
        "$is_shared_to_client": False,
        "$size": "",
        "$state": "save",
        "$voice_note": False,
        "Note_Title": "",
    }


def _success(record_id: str, message: str) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    return {
        "code": "SUCCESS",
        "details": {
            "Modified_Time": now,
            "Modified_By": dict(_SANDBOX_USER),
            "Created_Time": now,
            "id": record_id,
            "Created_By": dict(_SANDBOX_USER),
        },
        "message": message,
        "status": "success",
    }


def _element_answer(elements: list[dict[str, Any]], *, created: bool = False) -> JSONResponse:
    """200/201 when every record succeeded, 207 when some did, 202 when none did (as the
    notes spec answers a refused note)."""
    ok = [e for e in elements if e["code"] == "SUCCESS"]
    if len(ok) == len(elements):
        status = 201 if created else 200
    elif ok:
        status = 207
    else:
        status = 202
    return JSONResponse({"data": elements}, status_code=status)


_SORTABLE = frozenset({"id", "Created_Time", "Modified_Time"})
MAX_PER_PAGE = 200


def _listing(
    rows: list[dict[str, Any]],
    query: Mapping[str, str],
    always: tuple[str, ...] = (),
    *,
    offset: int | None = None,
    issue_token: Callable[[int], tuple[str, str]] | None = None,
) -> Response:
    """Zoho's record listing (``GET /crm/v8/{module}``, ``GET /crm/v8/Notes``): ``fields`` is
    required (at most 50), ``per_page`` at most 200, ``sort_by`` one of id / Created_Time /
    Modified_Time (ids grow with creation here, so all three sort by id); an empty page answers
    204. Rows carry the asked ``fields`` and the ``always`` ones (a note's system fields).
    ``offset`` (a page token's) replaces ``page``; ``issue_token`` makes the next page's token,
    given while more records follow."""
    fields = [f for f in query.get("fields", "").split(",") if f]
    if len(fields) > 50:
        return _error(
            400, "LIMIT_EXCEEDED", "Max field limit exceeded", {"limit": 50, "param": "fields"}
        )
    if not fields:
        return _error(
            400,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param": "fields"},
        )
    sort_by = query.get("sort_by", "id")
    order = query.get("sort_order", "desc")
    raw_per_page, raw_page = query.get("per_page", "200"), query.get("page", "1")
    if not raw_per_page.isdigit() or not 1 <= int(raw_per_page) <= MAX_PER_PAGE:
        return _error(400, "INVALID_DATA", "invalid data", {"param": "per_page"})
    if not raw_page.isdigit() or int(raw_page) < 1:
        return _error(400, "INVALID_DATA", "invalid data", {"param": "page"})
    if sort_by not in _SORTABLE or order not in ("asc", "desc"):
        return _error(400, "INVALID_DATA", "invalid data", {"param": "sort_by"})
    per_page, page = int(raw_per_page), int(raw_page)
    ordered = sorted(rows, key=lambda r: int(r["id"]), reverse=order == "desc")
    start = (page - 1) * per_page if offset is None else offset
    chunk = ordered[start : start + per_page]
    if not chunk:
        return Response(status_code=204)
    shown = [*always, *fields]
    data = [{"id": r["id"], **{f: r[f] for f in shown if f in r}} for r in chunk]
    info = {
        "per_page": per_page,
        "count": len(data),
        "page": page,
        "sort_by": sort_by,
        "sort_order": order,
        "more_records": start + per_page < len(ordered),
    }
    if info["more_records"] and issue_token is not None:
        info["next_page_token"], info["page_token_expiry"] = issue_token(start + per_page)
    return JSONResponse({"data": data, "info": info})

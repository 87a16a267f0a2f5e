"""The Infobip stand-in: the Calls and Subscriptions APIs over a simulated phone network.

It speaks Infobip's wire format (``callflow_dev/schemas/infobip/voice.json`` and
``subscriptions-openapi.json``): ``Authorization: App <key>`` on every request, the documented
``requestError.serviceException`` error bodies, request validation where the real API refuses
(a numeric ``sampleRate`` is refused with an error that names no field, as Infobip does), and call
events in the ``Event`` webhook shape, POSTed with HTTP Basic auth to the webhook of a VOICE_VIDEO
subscription (or to ``events_url`` given at construction).

A placed call follows the dialled number's :class:`~callflow_dev.sandbox.phone_network.Behaviour`:
CALL_RINGING, then CALL_PRE_ESTABLISHED + CALL_ESTABLISHED when someone picks up (and
MACHINE_DETECTION_FINISHED when detection was asked for), or CALL_FAILED with a ``callLog`` naming
the cause. A dialog to a WEBSOCKET endpoint makes the child call connect to the media-stream
config's URL as the callee (:func:`callflow_dev.sandbox.media_leg.run_media_leg`); when that leg
ends, or on a hangup through the API, the call finishes with CALL_FINISHED.

Everything happens on the running event loop (uvicorn's): API calls change state synchronously and
answer at once, events go out from per-call background tasks, in order per call (unless
``reorder_events``), each twice with ``duplicate_events``. Where Infobip's behaviour is not
documented the stand-in picks the plausible answer and says so: hanging up a call that is already
over answers 404, error code ids are the stand-in's own (only names are relied on).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import json
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from callflow.phone import mask
from callflow_dev.sandbox.phone_network import Behaviour, PhoneNetwork

logger = logging.getLogger(__name__)

MediaLegRunner = Callable[..., Awaitable[Any]]

#: name -> (id, description). Names as Infobip uses them; the ids are this stand-in's own.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "NORMAL_HANGUP": (10000, "The call has ended with hangup initiated by caller, callee or API."),
    "NO_ANSWER": (10001, "The call was not answered within the connect timeout."),
    "BUSY": (10002, "The called party is busy."),
    "REJECTED": (10003, "The called party rejected the call."),
    "CANCELLED": (10004, "The call was cancelled before it was answered."),
    "MACHINE_DETECTED": (10005, "An answering machine answered the call."),
    "DESTINATION_UNAVAILABLE": (10006, "The destination is unavailable."),
    "DESTINATION_NOT_FOUND": (10007, "The destination was not found."),
    "FORBIDDEN": (10008, "The call is forbidden."),
    "INVALID_DESTINATION": (10009, "The destination is invalid."),
    "INVALID_REQUEST": (10011, "The request is invalid."),
    "REQUEST_TIMEOUT": (10012, "The request timed out."),
    "SERVICE_UNAVAILABLE": (10013, "The service is unavailable."),
}
#: ``PublicHangupRequest.errorCode`` values allowed on an established call (the spec's rules:
#: NORMAL_HANGUP and MACHINE_DETECTED need an established call; every other one needs a call
#: that is not established yet).
ESTABLISHED_HANGUP_CODES = frozenset({"NORMAL_HANGUP", "MACHINE_DETECTED"})
HANGUP_CODES = frozenset(ERROR_CODES)
#: The call state an unanswered call ends in when hung up with that cause.
_UNANSWERED_STATE = {"NO_ANSWER": "NO_ANSWER", "BUSY": "BUSY", "CANCELLED": "CANCELLED"}
DIALOG_STATES = ("CREATED", "PRE_ESTABLISHED", "ESTABLISHED", "FINISHED", "FAILED", "TRANSFERRING")
SAMPLE_RATES = ("8000", "16000", "24000", "32000")
END_EVENTS = frozenset({"CALL_FINISHED", "CALL_FAILED"})
SETUP_DELAY_S = 0.2
"""Simulated time from the API call to the phone ringing (or failing)."""
DETECTION_DELAY_S = 1.5
"""Simulated answering-machine detection time after the call is answered."""


class ApiError(Exception):
    """An error answered in Infobip's ``requestError.serviceException`` shape."""

    def __init__(
        self,
        status: int,
        message_id: str,
        text: str,
        validation_errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(text)
        self.status = status
        self.message_id = message_id
        self.text = text
        self.validation_errors = validation_errors

    def body(self) -> dict[str, Any]:
        """The error body; ``validationErrors`` appears only when there are some."""
        exception: dict[str, Any] = {"messageId": self.message_id, "text": self.text}
        if self.validation_errors:
            exception["validationErrors"] = self.validation_errors
        return {"requestError": {"serviceException": exception}}


def _bad_request(field_name: str, problem: str) -> ApiError:
    return ApiError(400, "BAD_REQUEST", "Bad request", {field_name: [problem]})


def _not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} not found.")


@dataclass(frozen=True)
class RecordedRequest:
    """A request the stand-in received, and whether it carried the right ``App`` key."""

    method: str
    path: str
    body: Any
    authorized: bool


@dataclass(frozen=True)
class LogEntry:
    """One line of the stand-in's timeline: what happened to which call, when."""

    at: str
    call_id: str
    what: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """One webhook POST: the event, where it went, the HTTP status (0: no connection)."""

    event_type: str
    call_id: str
    url: str
    status: int
    attempt: int


@dataclass(frozen=True)
class WebhookTarget:
    """Where events are POSTed (a subscription's webhook or one added directly), with its auth."""

    url: str
    username: str = ""
    password: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    events: frozenset[str] = frozenset()
    """Event types subscribed to; empty means all."""
    calls_configuration_ids: frozenset[str] = frozenset()
    """Criteria of the subscription; empty means every calls configuration."""

    def wants(self, event_type: str, calls_configuration_id: str) -> bool:
        """Whether an event of this type, on this calls configuration, goes to this target."""
        if self.events and event_type not in self.events:
            return False
        return (
            not self.calls_configuration_ids
            or calls_configuration_id in self.calls_configuration_ids
        )


@dataclass
class SimDialog:
    """A dialog joining a placed call to a WEBSOCKET leg; setting ``stop`` hangs the leg up."""

    id: str
    parent_call_id: str
    child_call_id: str
    config: dict[str, Any]
    custom_data: dict[str, str]
    start_time: datetime
    state: str = "CREATED"
    establish_time: datetime | None = None
    end_time: datetime | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    media_result: Any = None
    """What :func:`run_media_leg` returned (a ``MediaLegResult``): the call's audio."""
    error: str = ""
    identifier: str = ""
    """The WEBSOCKET endpoint's optional ``identifier``."""

    def child_view(self) -> dict[str, Any]:
        """The WebSocket leg as a ``Call`` (the call GET, the dialog's ``childCall``)."""
        view: dict[str, Any] = {
            "id": self.child_call_id,
            "endpoint": {
                "type": "WEBSOCKET",
                "websocketEndpointConfigId": self.config["id"],
                **({"identifier": self.identifier} if self.identifier else {}),
            },
            "direction": "OUTBOUND",
            "state": {"CREATED": "CALLING", "ESTABLISHED": "ESTABLISHED", "FAILED": "FAILED"}.get(
                self.state, "FINISHED"
            ),
            "startTime": _ts(self.start_time),
            "customData": dict(self.custom_data),
            "parentCallId": self.parent_call_id,
            "dialogId": self.id,
        }
        if self.establish_time:
            view["answerTime"] = _ts(self.establish_time)
        if self.end_time:
            view["endTime"] = _ts(self.end_time)
        return view

    def child_log(self, calls_configuration_id: str, source: str) -> dict[str, Any]:
        """The WebSocket leg as a ``CallLog``, once it has ended."""
        end = self.end_time or _now()
        start = self.establish_time or end
        code, description = ERROR_CODES["NORMAL_HANGUP"]
        log: dict[str, Any] = {
            "callId": self.child_call_id,
            "endpoint": self.child_view()["endpoint"],
            "direction": "OUTBOUND",
            "state": "FINISHED",
            "startTime": _ts(self.start_time),
            "answerTime": _ts(start),
            "endTime": _ts(end),
            "duration": round((end - start).total_seconds()),
            "parentCallId": self.parent_call_id,
            "callsConfigurationIds": [calls_configuration_id],
            "hasCameraVideo": False,
            "hasScreenshareVideo": False,
            "errorCode": {"id": code, "name": "NORMAL_HANGUP", "description": description},
            "customData": dict(self.custom_data),
            "dialogId": self.id,
            "hangupSource": source,
        }
        return log


@dataclass
class SimCall:
    """A call placed through the API, with its dialled number's behaviour and its event queue."""

    id: str
    number: str
    sender: str
    calls_configuration_id: str
    custom_data: dict[str, str]
    external_id: str
    connect_timeout: int
    max_duration: int
    machine_detection: bool
    behaviour: Behaviour
    start_time: datetime
    state: str = "CALLING"
    answer_time: datetime | None = None
    answered_at: float = 0.0
    end_time: datetime | None = None
    duration: int = 0
    error_name: str = ""
    hangup_source: str = ""
    detection: str = ""
    dialog: SimDialog | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    delivered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the call's last event has gone out."""
    outbox: asyncio.Queue[list[dict[str, Any]]] = field(default_factory=asyncio.Queue)

    def view(self) -> dict[str, Any]:
        """The call as the ``Call`` schema describes it (API answers, live-call events)."""
        view: dict[str, Any] = {
            "id": self.id,
            **self._shared_fields(),
            "callsConfigurationId": self.calls_configuration_id,
        }
        if self.end_time:
            view["endTime"] = _ts(self.end_time)
        return self._with_optional_fields(view)

    def log(self) -> dict[str, Any]:
        """The finished call as the ``CallLog`` schema describes it (CALL_FINISHED/FAILED)."""
        code, description = ERROR_CODES[self.error_name]
        log: dict[str, Any] = {
            "callId": self.id,
            **self._shared_fields(),
            "endTime": _ts(self.end_time or _now()),
            "duration": self.duration,
            "callsConfigurationIds": [self.calls_configuration_id],
            "hasCameraVideo": False,
            "hasScreenshareVideo": False,
            "errorCode": {"id": code, "name": self.error_name, "description": description},
            "hangupSource": self.hangup_source,
        }
        return self._with_optional_fields(log)

    def _shared_fields(self) -> dict[str, Any]:
        """The fields ``Call`` and ``CallLog`` both carry, with the same names."""
        return {
            "endpoint": {"type": "PHONE", "phoneNumber": self.number},
            "from": self.sender,
            "to": self.number,
            "direction": "OUTBOUND",
            "state": self.state,
            "startTime": _ts(self.start_time),
            "customData": dict(self.custom_data),
        }

    def _with_optional_fields(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` plus the shared fields a call has only once it got that far."""
        if self.answer_time:
            body["answerTime"] = _ts(self.answer_time)
        if self.external_id:
            body["externalId"] = self.external_id
        if self.dialog:
            body["dialogId"] = self.dialog.id
        if self.detection:
            body["machineDetection"] = {"detectionResult": self.detection}
        return body


class _RateLimit:
    """A sliding-window limit like Infobip's (create call 6/s, dialog 20/s, configs 100/min)."""

    def __init__(self, limit: int, per_s: float) -> None:
        self.limit = limit
        self.per_s = per_s
        self._times: deque[float] = deque()
        self.accepted: list[float] = []
        """When each request the limit let through came (``time.monotonic``), for tests."""
        self.refused = 0

    def check(self) -> None:
        now = time.monotonic()
        while self._times and now - self._times[0] >= self.per_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            self.refused += 1
            raise ApiError(429, "TOO_MANY_REQUESTS", "Too many requests")
        self._times.append(now)
        self.accepted.append(now)


class InfobipSandbox:
    """State and FastAPI app of the stand-in. Create it, serve ``.app``, point the client at it.

    ``time_scale`` multiplies every simulated delay (ringing, connect timeout, detection, max
    duration); the media leg itself always runs at real time. ``child_call_events`` (on, as
    Infobip does) also sends the WebSocket leg's own CALL_ESTABLISHED / CALL_FINISHED (its
    ``callId`` is the child's, ``parentCallId`` the phone call's, its customData the dialog's), as
    a subscription on the calls configuration receives them; the leg that ended first reports
    first, unless ``websocket_leg_finishes_first`` puts the WebSocket leg's end first always.

    Event-side faults and orders (attributes, so a variant can set them on a running stand-in):
    ``detection_before_established`` sends MACHINE_DETECTION_FINISHED ahead of CALL_ESTABLISHED;
    ``machine_detection_fails`` (a reason) sends MACHINE_DETECTION_FAILED instead of a result;
    ``fail_dialogs`` (a reason) makes every dialog fail with DIALOG_FAILED before its WebSocket
    leg connects (the phone call stays up, as nothing propagates a failed dialog);
    ``lose_dialog_answers`` answers that many dialog creations with a 500 after making the
    dialog, as when Infobip did the work and the answer was lost.
    """

    def __init__(
        self,
        api_key: str,
        *,
        public_base_url: str = "http://127.0.0.1",
        network: PhoneNetwork | None = None,
        events_url: str = "",
        events_username: str = "",
        events_password: str = "",
        duplicate_events: bool = False,
        reorder_events: bool = False,
        time_scale: float = 1.0,
        media_leg: MediaLegRunner | None = None,
        child_call_events: bool = True,
        rate_limits: bool = True,
        webhook_attempts: int = 3,
    ) -> None:
        if not api_key:
            raise ValueError("the stand-in needs an API key to check")
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._api_key = api_key
        self.public_base_url = public_base_url
        self.network = network or PhoneNetwork()
        self.duplicate_events = duplicate_events
        self.reorder_events = reorder_events
        self.child_call_events = child_call_events
        self.time_scale = time_scale
        self.webhook_attempts = max(1, webhook_attempts)
        self._media_leg = media_leg or _run_media_leg
        self._rate_limits = rate_limits
        self._targets: list[WebhookTarget] = []
        if events_url:
            self._targets.append(WebhookTarget(events_url, events_username, events_password))

        self.requests: list[RecordedRequest] = []
        self.call_log: list[LogEntry] = []
        self.deliveries: list[Delivery] = []
        self.events_sent: list[dict[str, Any]] = []
        self.media_ids_in = "top-level"
        """Where the media leg shows the dialog's identifiers (one of
        :data:`callflow_dev.sandbox.media_leg.ID_PLACEMENTS`); unconfirmed on the real one."""
        self.lost_event_types: set[str] = set()
        """Event types never delivered, as if Infobip gave up on them (tests of reconciliation)."""
        self.websocket_leg_finishes_first = False
        self.detection_before_established = False
        self.machine_detection_fails = ""
        self.fail_dialogs = ""
        self.lose_dialog_answers = 0
        self.calls: dict[str, SimCall] = {}
        self.dialogs: dict[str, SimDialog] = {}
        self.media_stream_configs: dict[str, dict[str, Any]] = {}
        self.calls_configurations: dict[str, dict[str, Any]] = {}
        """By id, as ``GET /calls/1/configurations/{id}`` answers (``id``, ``name``)."""
        self.security: dict[str, dict[str, Any]] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}

        self._limits = {
            "call": _RateLimit(6, 1.0),
            "dialog": _RateLimit(20, 1.0),
            "config": _RateLimit(100, 60.0),
        }
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: httpx.AsyncClient | None = None
        self.app = self._build_app()

    def creations(self, kind: str) -> tuple[list[float], int]:
        """The accepted creations of ``kind`` (``call``, ``dialog``, ``config``) as monotonic
        times, and how many were refused with 429."""
        limit = self._limits[kind]
        return list(limit.accepted), limit.refused

    # --- the phone network ------------------------------------------------------------------

    def set_behaviour(self, number: str, behaviours: Sequence[Behaviour]) -> None:
        """What calls to ``number`` do, one behaviour per call (see :class:`PhoneNetwork`)."""
        self.network.set_behaviour(number, behaviours)

    def set_script(self, number: str, script: object) -> None:
        """The callee script the media leg follows when a call to ``number`` reaches the bridge."""
        self.network.set_script(number, script)

    def add_webhook(self, url: str, username: str = "", password: str = "") -> None:
        """Send events to ``url`` too (as a subscription would, without creating one)."""
        self._targets.append(WebhookTarget(url, username, password))

    def drop_webhooks(self) -> None:
        """Forget the URLs :meth:`add_webhook` added: a subscription carries the events now."""
        self._targets.clear()

    def events_for(self, call_id: str) -> list[str]:
        """Types of the events sent for ``call_id``, in sending order."""
        return [e["type"] for e in self.events_sent if e.get("callId") == call_id]

    async def wait_finished(self, call_id: str, timeout_s: float = 10.0) -> SimCall:
        """Until the call has ended and its events have gone out (tests, demo)."""
        call = self._call(call_id)
        async with asyncio.timeout(timeout_s):
            await call.ended.wait()
            await call.delivered.wait()
        return call

    async def aclose(self) -> None:
        """Cancel the calls', deliveries' and media legs' tasks; close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- the app ----------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            yield
            await self.aclose()

        app = FastAPI(title="Infobip stand-in", lifespan=lifespan)

        @app.exception_handler(ApiError)
        async def api_error(_: Request, error: ApiError) -> JSONResponse:
            return JSONResponse(error.body(), status_code=error.status)

        @app.post("/calls/1/calls", status_code=201)
        async def create_call(request: Request) -> dict[str, Any]:
            return self._create_call(await self._enter(request))

        @app.get("/calls/1/calls/{call_id}")
        async def get_call(call_id: str, request: Request) -> dict[str, Any]:
            await self._enter(request)
            if call_id in self.calls:
                return self.calls[call_id].view()
            for dialog in self.dialogs.values():
                if dialog.child_call_id == call_id:
                    return dialog.child_view()
            raise _not_found("Call")

        @app.post("/calls/1/calls/{call_id}/hangup")
        async def hangup_call(call_id: str, request: Request) -> dict[str, Any]:
            body = await self._enter(request)
            if body is not None and not isinstance(body, dict):
                raise _bad_request("body", "must be an object")
            call = self.calls.get(call_id)
            if call is None or call.ended.is_set():
                raise _not_found("Call")
            code = _hangup_code(body or {}, established=call.answer_time is not None)
            if call.answer_time is None:
                self._fail(call, _UNANSWERED_STATE.get(code, "FAILED"), code, "API")
            else:
                self._finish(call, "API", code)
            return call.view()

        @app.post("/calls/1/dialogs", status_code=201)
        async def create_dialog(request: Request) -> dict[str, Any]:
            return self._create_dialog(await self._enter(request))

        @app.get("/calls/1/dialogs")
        async def list_dialogs(request: Request, page: int = 0, size: int = 20) -> dict[str, Any]:
            """``get-dialogs``: the live dialogs, filtered as the spec's query parameters say. A
            parameter the spec does not name filters nothing (an HTTP API ignores it), so a
            filter under the wrong name lists every dialog."""
            await self._enter(request)
            if page < 0 or not 1 <= size <= 100:
                raise _bad_request("size", "must be between 1 and 100")
            query = request.query_params
            state = query.get("state")
            if state is not None and state not in DIALOG_STATES:
                raise _bad_request("state", f"must be one of {', '.join(DIALOG_STATES)}")
            found = []
            for dialog in self.dialogs.values():
                view = self._dialog_view(dialog)
                if dialog.end_time is not None or dialog.state == "FAILED":
                    continue  # ended dialogs are in the history (/calls/1/dialogs/history)
                wanted = {
                    "parentCallId": dialog.parent_call_id,
                    "childCallId": dialog.child_call_id,
                    "callsConfigurationId": view["callsConfigurationId"],
                    "state": dialog.state,
                }
                if all(query.get(k) in (None, v) for k, v in wanted.items()):
                    found.append(view)
            return {"results": found[page * size : (page + 1) * size], **_paging(page, size, found)}

        @app.post("/calls/1/dialogs/{dialog_id}/hangup")
        async def hangup_dialog(dialog_id: str, request: Request) -> dict[str, Any]:
            await self._enter(request)
            dialog = self.dialogs.get(dialog_id)
            if dialog is None or dialog.end_time is not None:
                raise _not_found("Dialog")
            self._finish(self.calls[dialog.parent_call_id], "API")
            return self._dialog_view(dialog)

        @app.get("/calls/1/configurations/{configuration_id}")
        async def get_calls_configuration(
            configuration_id: str, request: Request
        ) -> dict[str, Any]:
            await self._enter(request)
            if configuration_id not in self.calls_configurations:
                raise _not_found("Calls configuration")
            return self.calls_configurations[configuration_id]

        @app.post("/calls/1/media-stream-configs", status_code=201)
        async def create_config(request: Request) -> dict[str, Any]:
            return self._create_media_stream_config(await self._enter(request))

        @app.get("/calls/1/media-stream-configs")
        async def list_configs(request: Request, page: int = 0, size: int = 20) -> dict[str, Any]:
            await self._enter(request)
            if page < 0 or not 1 <= size <= 100:
                raise _bad_request("size", "must be between 1 and 100")
            configs = list(self.media_stream_configs.values())
            return {
                "results": configs[page * size : (page + 1) * size],
                **_paging(page, size, configs),
            }

        @app.delete("/calls/1/media-stream-configs/{config_id}")
        async def delete_config(config_id: str, request: Request) -> dict[str, Any]:
            # A dialog to a deleted config is refused from then on (it is no longer known).
            await self._enter(request)
            config = self.media_stream_configs.pop(config_id, None)
            if config is None:
                raise _not_found("Media-stream configuration")
            return config

        @app.post("/subscriptions/1/security", status_code=201)
        async def create_security(request: Request) -> dict[str, Any]:
            return {"authId": self._security(await self._enter(request), "")}

        @app.post("/subscriptions/1/profiles", status_code=201)
        async def create_profile(request: Request) -> dict[str, Any]:
            return self._profile_id_only(self._profile(await self._enter(request), ""))

        @app.get("/subscriptions/1/profiles/{profile_id}")
        async def get_profile(profile_id: str, request: Request) -> dict[str, Any]:
            await self._enter(request)
            if profile_id not in self.profiles:
                raise _not_found("Profile")
            return self._profile_view(self.profiles[profile_id])

        @app.put("/subscriptions/1/profiles/{profile_id}")
        async def update_profile(profile_id: str, request: Request) -> dict[str, Any]:
            body = await self._enter(request)
            if profile_id not in self.profiles:
                raise _not_found("Profile")
            return self._profile_id_only(self._profile(body, "", profile_id))

        @app.post("/subscriptions/1/subscription/{channel}", status_code=201)
        async def create_subscription(channel: str, request: Request) -> dict[str, Any]:
            return self._create_subscription(channel, await self._enter(request))

        @app.put("/subscriptions/1/subscription/{channel}/{subscription_id}")
        async def update_subscription(
            channel: str, subscription_id: str, request: Request
        ) -> dict[str, Any]:
            body = await self._enter(request)
            subscription = self.subscriptions.get(subscription_id)
            if subscription is None or subscription["channel"] != channel:
                raise _not_found("Subscription")
            return self._update_subscription(subscription, body)

        @app.get("/subscriptions/1/subscription/{channel}")
        async def list_subscriptions(
            channel: str, request: Request, page: int = 0, size: int = 20
        ) -> dict[str, Any]:
            await self._enter(request)
            if page < 0 or not 1 <= size <= 100:
                raise _bad_request("size", "must be between 1 and 100")
            found = [
                self._subscription_view(s)
                for s in self.subscriptions.values()
                if s["channel"] == channel
            ]
            return {"results": found[page * size : (page + 1) * size], **_paging(page, size, found)}

        return app

    async def _enter(self, request: Request) -> Any:
        """Record the request, check App auth, parse the JSON body (None when empty)."""
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
            parsed = True
        except ValueError:
            body, parsed = raw.decode(errors="replace"), False
        header = request.headers.get("authorization", "")
        authorized = header == f"App {self._api_key}"
        self.requests.append(RecordedRequest(request.method, request.url.path, body, authorized))
        if not authorized:
            raise ApiError(401, "UNAUTHORIZED", "Unauthorized")
        if not parsed:
            raise ApiError(400, "BAD_REQUEST", "Request is invalid.")
        return body

    # --- calls ------------------------------------------------------------------------------

    def _create_call(self, body: Any) -> dict[str, Any]:
        body = _object(body, "body")
        endpoint = _object(body.get("endpoint"), "endpoint")
        if endpoint.get("type") != "PHONE":
            raise _bad_request("endpoint.type", "the stand-in dials PHONE endpoints only")
        number = endpoint.get("phoneNumber")
        if not isinstance(number, str) or not number.isdigit():
            raise _bad_request("endpoint.phoneNumber", "must be digits, without a plus")
        configuration = body.get("callsConfigurationId")
        if not isinstance(configuration, str) or not configuration:
            raise _bad_request("callsConfigurationId", "must not be blank")
        connect_timeout = _int(body, "connectTimeout", 60, maximum=60)
        max_duration = _int(body, "maxDuration", 28800, maximum=28800)
        custom_data = _string_map(body.get("customData"), "customData")
        external_id = body.get("externalId", "")
        if not isinstance(external_id, str):
            raise _bad_request("externalId", "must be a string")
        sender = body.get("from", "")
        if not isinstance(sender, str):
            raise _bad_request("from", "must be a string")
        detection = body.get("machineDetection")
        if detection is not None:
            detection = _object(detection, "machineDetection")
            if not isinstance(detection.get("enabled"), bool):
                raise _bad_request("machineDetection.enabled", "must not be null")
        recording = body.get("recording")
        if recording is not None and _object(recording, "recording").get("recordingType") not in (
            "AUDIO",
            "AUDIO_AND_VIDEO",
        ):
            raise _bad_request("recording.recordingType", "must be AUDIO or AUDIO_AND_VIDEO")
        if self._rate_limits:
            self._limits["call"].check()

        call = SimCall(
            id=str(uuid.uuid4()),
            number=number,
            sender=sender,
            calls_configuration_id=configuration,
            custom_data=custom_data,
            external_id=external_id,
            connect_timeout=connect_timeout,
            max_duration=max_duration,
            machine_detection=bool(detection and detection["enabled"]),
            behaviour=self.network.next_behaviour(number),
            start_time=_now(),
        )
        self.calls[call.id] = call
        self._log(call.id, "placed", to=mask(number), behaviour=call.behaviour.kind)
        self._spawn(self._deliver_events(call), f"deliver:{call.id}")
        self._spawn(self._run_call(call), f"call:{call.id}")
        return call.view()

    async def _run_call(self, call: SimCall) -> None:
        """Play the dialled number's behaviour out in simulated time."""
        behaviour = call.behaviour
        if await self._wait_ended(call, SETUP_DELAY_S):
            return
        if behaviour.kind == "busy":
            self._fail(call, "BUSY", "BUSY", "ENDPOINT")
            return
        if behaviour.kind == "unreachable":
            self._fail(call, "FAILED", "DESTINATION_UNAVAILABLE", "PLATFORM")
            return
        call.state = "RINGING"
        self._emit(call, "CALL_RINGING")
        ring_s = min(behaviour.after_s, float(call.connect_timeout))
        if await self._wait_ended(call, ring_s):
            return
        if behaviour.kind == "no_answer" or behaviour.after_s >= call.connect_timeout:
            self._fail(call, "NO_ANSWER", "NO_ANSWER", "PLATFORM")
            return
        if behaviour.kind == "reject":
            self._fail(call, "FAILED", "REJECTED", "ENDPOINT")
            return

        call.answer_time = _now()
        call.answered_at = time.monotonic()
        call.state = "PRE_ESTABLISHED"
        pre = self._event(call, "CALL_PRE_ESTABLISHED")
        call.state = "ESTABLISHED"
        answered = [pre, self._event(call, "CALL_ESTABLISHED")]
        early = call.machine_detection and self.detection_before_established
        if early:
            # Detection's event overtakes the answer's (the order is undocumented).
            answered.insert(0, self._detection_event(call))
        call.outbox.put_nowait(answered)
        self._log(call.id, "answered")
        started = time.monotonic()
        if call.machine_detection and not early:
            if await self._wait_ended(call, DETECTION_DELAY_S):
                return
            call.outbox.put_nowait([self._detection_event(call)])
        limit_s = float(call.max_duration)
        source = "PLATFORM"
        if behaviour.hangup_after_s is not None and behaviour.hangup_after_s < limit_s:
            limit_s, source = behaviour.hangup_after_s, "ENDPOINT"
        elapsed_s = (time.monotonic() - started) / self.time_scale
        if not await self._wait_ended(call, max(0.0, limit_s - elapsed_s)):
            self._finish(call, source)

    def _detection_event(self, call: SimCall) -> dict[str, Any]:
        """Detection's verdict on the answered call, or its failure when the stand-in is set to
        fail detection."""
        if self.machine_detection_fails:
            return self._event(call, "MACHINE_DETECTION_FAILED")
        call.detection = "MACHINE" if call.behaviour.kind == "voicemail" else "HUMAN"
        return self._event(call, "MACHINE_DETECTION_FINISHED")

    async def _wait_ended(self, call: SimCall, simulated_s: float) -> bool:
        """Sleep ``simulated_s`` (scaled), waking early if the call ends; True if it ended."""
        if call.ended.is_set():
            return True
        if math.isinf(simulated_s):
            await call.ended.wait()
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(simulated_s * self.time_scale):
                await call.ended.wait()
        return call.ended.is_set()

    def _fail(self, call: SimCall, state: str, error: str, source: str) -> None:
        """The call ends without having been answered: CALL_FAILED."""
        if call.ended.is_set():
            return
        call.ended.set()
        call.state, call.error_name, call.hangup_source = state, error, source
        call.end_time = _now()
        self._log(call.id, "failed", error=error)
        self._emit(call, "CALL_FAILED")

    def _finish(
        self, call: SimCall, source: str, error: str = "NORMAL_HANGUP", *, by_leg: bool = False
    ) -> None:
        """End the call now (hangup, the media leg ended, the person hung up, max duration);
        ``error`` is the cause its CALL_FINISHED names (a hangup request's ``errorCode``),
        ``by_leg`` that the WebSocket leg ended first (its end then reports first)."""
        if call.ended.is_set():
            return
        if call.answer_time is None:
            self._fail(call, "CANCELLED", "CANCELLED", source)
            return
        call.ended.set()
        call.end_time = _now()
        call.duration = round(time.monotonic() - call.answered_at)
        call.state = "FINISHED"
        call.hangup_source = source
        call.error_name = error
        dialog = call.dialog
        child_end: list[dict[str, Any]] = []
        if dialog is not None and dialog.end_time is None:
            dialog.stop.set()
            dialog.end_time = call.end_time
            dialog.state = "FINISHED"
            if self.child_call_events and dialog.establish_time is not None:
                child_end = [self._child_event(call, dialog, "CALL_FINISHED", source)]
        self._log(call.id, "finished", by=source, duration=call.duration, error=call.error_name)
        end = self._event(call, "CALL_FINISHED")
        if by_leg or self.websocket_leg_finishes_first:
            call.outbox.put_nowait([*child_end, end])
        else:
            call.outbox.put_nowait([end, *child_end])

    # --- dialogs ----------------------------------------------------------------------------

    def _create_dialog(self, body: Any) -> dict[str, Any]:
        body = _object(body, "body")
        parent_id = body.get("parentCallId")
        if not isinstance(parent_id, str) or not parent_id:
            raise _bad_request("parentCallId", "must not be blank")
        child = _object(body.get("childCallRequest"), "childCallRequest")
        endpoint = _object(child.get("endpoint"), "childCallRequest.endpoint")
        if endpoint.get("type") != "WEBSOCKET":
            raise _bad_request(
                "childCallRequest.endpoint.type", "the stand-in connects WEBSOCKET endpoints only"
            )
        config = self.media_stream_configs.get(str(endpoint.get("websocketEndpointConfigId")))
        if config is None or config["type"] != "WEBSOCKET_ENDPOINT":
            raise _bad_request(
                "childCallRequest.endpoint.websocketEndpointConfigId",
                "no WEBSOCKET_ENDPOINT media-stream config has this id",
            )
        custom_data = _string_map(child.get("customData"), "childCallRequest.customData")
        identifier = endpoint.get("identifier", "")
        if not isinstance(identifier, str):
            raise _bad_request("childCallRequest.endpoint.identifier", "must be a string")
        parent = self.calls.get(parent_id)
        if parent is None:
            raise _not_found("Parent call")
        if parent.state != "ESTABLISHED" or parent.ended.is_set():
            raise ApiError(400, "BAD_REQUEST", "Parent call is not in ESTABLISHED state.")
        if parent.dialog is not None:
            raise ApiError(400, "BAD_REQUEST", "Parent call is already in a dialog.")
        if self._rate_limits:
            self._limits["dialog"].check()
        dialog = SimDialog(
            id=str(uuid.uuid4()),
            parent_call_id=parent.id,
            child_call_id=str(uuid.uuid4()),
            config=config,
            custom_data=custom_data,
            start_time=_now(),
            identifier=identifier,
        )
        parent.dialog = dialog
        self.dialogs[dialog.id] = dialog
        self._log(parent.id, "dialog created", dialog_id=dialog.id, url=config["url"])
        if self.fail_dialogs:
            self._spawn(self._fail_dialog(parent, dialog), f"dialog-fails:{dialog.id}")
        else:
            self._spawn(self._run_media(parent, dialog), f"media:{dialog.id}")
        if self.lose_dialog_answers > 0:
            self.lose_dialog_answers -= 1
            self._log(parent.id, "dialog answer lost", dialog_id=dialog.id)
            raise ApiError(500, "GENERAL_ERROR", "Something went wrong. Please contact support.")
        return self._dialog_view(dialog)

    async def _fail_dialog(self, call: SimCall, dialog: SimDialog) -> None:
        """The WebSocket leg cannot be connected: DIALOG_FAILED, and the phone call stays up
        (nothing propagates a dialog that never established) until someone hangs it up."""
        await asyncio.sleep(SETUP_DELAY_S * self.time_scale)
        if call.ended.is_set():
            return
        dialog.state, dialog.error = "FAILED", self.fail_dialogs
        self._log(call.id, "dialog failed", dialog_id=dialog.id, reason=dialog.error)
        call.outbox.put_nowait([self._event(call, "DIALOG_FAILED")])
        dialog.end_time = _now()
        call.dialog = None

    def _dialog_view(self, dialog: SimDialog) -> dict[str, Any]:
        parent = self.calls[dialog.parent_call_id]
        view: dict[str, Any] = {
            "id": dialog.id,
            "callsConfigurationId": parent.calls_configuration_id,
            "state": dialog.state,
            "startTime": _ts(dialog.start_time),
            "parentCall": parent.view(),
            "childCall": dialog.child_view(),
        }
        if dialog.establish_time:
            view["establishTime"] = _ts(dialog.establish_time)
        if dialog.end_time:
            view["endTime"] = _ts(dialog.end_time)
        return view

    async def _run_media(self, call: SimCall, dialog: SimDialog) -> None:
        """The child call: connect to the bridge as the callee, then end the call with it."""

        def on_event(name: str, data: dict[str, Any]) -> None:
            if name == "connected" and dialog.establish_time is None:
                dialog.state, dialog.establish_time = "ESTABLISHED", _now()
                if self.child_call_events and not call.ended.is_set():
                    established = self._child_event(call, dialog, "CALL_ESTABLISHED", "")
                    call.outbox.put_nowait([established])
            self._log(call.id, f"media {name}", **data)

        try:
            dialog.media_result = await self._media_leg(
                url=dialog.config["url"],
                custom_data=dict(dialog.custom_data),
                sample_rate=int(dialog.config["sampleRate"]),
                script=self.network.script_for(call.number),
                stop=dialog.stop,
                on_event=on_event,
                placement=self.media_ids_in,
                identifier=dialog.identifier,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the bridge refused or broke the socket: the call ends
            dialog.error = f"{type(error).__name__}: {error}"
            self._log(call.id, "media leg failed", error=dialog.error)
        # childCallHangup propagation (the default): the phone call ends with the WebSocket leg.
        self._finish(call, "API" if dialog.stop.is_set() else "PLATFORM", by_leg=True)

    # --- media-stream configs ---------------------------------------------------------------

    def _create_media_stream_config(self, body: Any) -> dict[str, Any]:
        body = _object(body, "body")
        kind = body.get("type")
        if kind not in ("WEBSOCKET_ENDPOINT", "MEDIA_STREAMING"):
            raise _bad_request("type", "must be WEBSOCKET_ENDPOINT or MEDIA_STREAMING")
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > 128:
            raise _bad_request("name", "size must be between 1 and 128")
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise _bad_request("url", "must be a ws:// or wss:// URL")
        config: dict[str, Any] = {"id": uuid.uuid4().hex[:24], "type": kind, "name": name}
        config["url"] = url
        if kind == "WEBSOCKET_ENDPOINT":
            rate = body.get("sampleRate", "8000")
            if not isinstance(rate, str):
                # What Infobip does with a number: a bare "Bad request", no field named.
                raise ApiError(400, "BAD_REQUEST", "Bad request")
            if rate not in SAMPLE_RATES:
                raise _bad_request("sampleRate", f"must be one of {', '.join(SAMPLE_RATES)}")
            config["sampleRate"] = rate
        if self._rate_limits:
            self._limits["config"].check()
        self.media_stream_configs[config["id"]] = config
        return config

    # --- subscriptions ----------------------------------------------------------------------

    def _security(self, body: Any, where: str) -> str:
        """A security setting, new (authId + type + credentials) or, inside a profile, a
        reference to one created before; returns its authId."""
        body = _object(body, where or "body")
        prefix = f"{where}." if where else ""
        auth_id = body.get("authId")
        if not isinstance(auth_id, str) or not auth_id:
            raise _bad_request(f"{prefix}authId", "must not be blank")
        if "type" not in body and where:
            if auth_id not in self.security:
                raise _not_found("Security settings")
            return auth_id
        if body.get("type") != "BASIC":
            raise _bad_request(f"{prefix}type", "the stand-in supports BASIC credentials only")
        credentials = _object(body.get("credentials"), f"{prefix}credentials")
        for key in ("username", "password"):
            value = credentials.get(key)
            if not isinstance(value, str) or not value:
                raise _bad_request(f"{prefix}credentials.{key}", "must not be blank")
        self.security[auth_id] = {"authId": auth_id, "type": "BASIC", "credentials": credentials}
        return auth_id

    def _profile(self, body: Any, where: str, profile_id: str = "") -> dict[str, Any]:
        """A notification profile: new (profileId + webhook), replaced (PUT, ``profile_id``
        given), or, inside a subscription, a reference by profileId."""
        body = _object(body, where or "body")
        prefix = f"{where}." if where else ""
        if not profile_id:
            given = body.get("profileId")
            if not isinstance(given, str) or not given:
                raise _bad_request(f"{prefix}profileId", "must not be blank")
            if "webhook" not in body and where:
                if given not in self.profiles:
                    raise _not_found("Profile")
                return self.profiles[given]
            profile_id = given
        webhook = _object(body.get("webhook"), f"{prefix}webhook")
        url = webhook.get("notifyUrl")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _bad_request(f"{prefix}webhook.notifyUrl", "must be an http(s) URL")
        content_type = webhook.get("contentType", "application/json")
        if not isinstance(content_type, str):
            raise _bad_request(f"{prefix}webhook.contentType", "must be a string")
        security = body.get("security")
        profile: dict[str, Any] = {
            "profileId": profile_id,
            "webhook": {"notifyUrl": url, "contentType": content_type},
            "authId": self._security(security, f"{prefix}security") if security else None,
            "headers": _string_map(body.get("headers"), f"{prefix}headers"),
        }
        self.profiles[profile_id] = profile
        return profile

    @staticmethod
    def _profile_id_only(profile: dict[str, Any]) -> dict[str, Any]:
        """``IdOnlyProfileResponse``."""
        answer: dict[str, Any] = {"profileId": profile["profileId"]}
        if profile["authId"]:
            answer["security"] = {"authId": profile["authId"]}
        return answer

    def _profile_view(self, profile: dict[str, Any]) -> dict[str, Any]:
        """``ProfileResponse``."""
        view = {**self._profile_id_only(profile), "webhook": dict(profile["webhook"])}
        if profile["headers"]:
            view["headers"] = dict(profile["headers"])
        return view

    def _subscription_view(self, subscription: dict[str, Any]) -> dict[str, Any]:
        return {
            "subscriptionId": subscription["subscriptionId"],
            "name": subscription["name"],
            "profile": self._profile_id_only(self.profiles[subscription["profileId"]]),
            "events": list(subscription["events"]),
            "criteria": [dict(c) for c in subscription["criteria"]],
        }

    def _create_subscription(self, channel: str, body: Any) -> dict[str, Any]:
        body = _object(body, "body")
        subscription_id = body.get("subscriptionId")
        if not isinstance(subscription_id, str) or not subscription_id:
            raise _bad_request("subscriptionId", "must not be blank")
        name = body.get("name", subscription_id)
        if not isinstance(name, str):
            raise _bad_request("name", "must be a string")
        events = body.get("events")
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise _bad_request("events", "must not be null")
        criteria = body.get("criteria", [])
        if not isinstance(criteria, list) or not all(isinstance(c, dict) for c in criteria):
            raise _bad_request("criteria", "must be a list of objects")
        profile = self._profile(body.get("profile"), "profile")
        self.subscriptions[subscription_id] = {
            "subscriptionId": subscription_id,
            "name": name,
            "channel": channel,
            "events": events,
            "criteria": criteria,
            "profileId": profile["profileId"],
        }
        return {"subscriptionId": subscription_id, "profile": self._profile_id_only(profile)}

    def _update_subscription(self, subscription: dict[str, Any], body: Any) -> dict[str, Any]:
        """``update-subscription`` (``VoiceVideoNoIdSubscriptionRequest``): ``events`` and
        ``profile`` (an existing profile, by id) are required; criteria and name replace the
        old ones when given. Answers ``IdOnlySubscriptionResponse``."""
        body = _object(body, "body")
        events = body.get("events")
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise _bad_request("events", "must not be null")
        profile = _object(body.get("profile"), "profile")
        profile_id = profile.get("profileId")
        if not isinstance(profile_id, str) or not profile_id:
            raise _bad_request("profile.profileId", "must not be blank")
        if profile_id not in self.profiles:
            raise _not_found("Profile")
        criteria = body.get("criteria", subscription["criteria"])
        if not isinstance(criteria, list) or not all(isinstance(c, dict) for c in criteria):
            raise _bad_request("criteria", "must be a list of objects")
        name = body.get("name", subscription["name"])
        if not isinstance(name, str) or not name:
            raise _bad_request("name", "size must be between 1 and 255")
        subscription.update(
            {"events": events, "criteria": criteria, "name": name, "profileId": profile_id}
        )
        return {"subscriptionId": subscription["subscriptionId"]}

    def _webhook_targets(self) -> list[WebhookTarget]:
        """Where call events go: the fixed webhooks, then every VOICE_VIDEO subscription as its
        profile and security settings stand now (a PUT on the profile moves its events)."""
        targets = list(self._targets)
        for subscription in self.subscriptions.values():
            if subscription["channel"] != "VOICE_VIDEO":
                continue
            profile = self.profiles[subscription["profileId"]]
            security = self.security.get(profile["authId"] or "", {})
            credentials = security.get("credentials", {})
            targets.append(
                WebhookTarget(
                    url=profile["webhook"]["notifyUrl"],
                    username=credentials.get("username", ""),
                    password=credentials.get("password", ""),
                    headers=tuple(profile["headers"].items()),
                    events=frozenset(subscription["events"]),
                    calls_configuration_ids=frozenset(
                        str(c["callsConfigurationId"])
                        for c in subscription["criteria"]
                        if c.get("callsConfigurationId")
                    ),
                )
            )
        return targets

    # --- events -----------------------------------------------------------------------------

    def _event(self, call: SimCall, kind: str) -> dict[str, Any]:
        """One event in the ``Event`` webhook shape, ``properties`` as its type defines them."""
        event: dict[str, Any] = {
            "type": kind,
            "callId": call.id,
            "timestamp": _ts(_now()),
            "callsConfigurationId": call.calls_configuration_id,
        }
        if call.dialog is not None:
            event["dialogId"] = call.dialog.id
        if kind in END_EVENTS:
            event["properties"] = {"callLog": call.log()}
        elif kind == "MACHINE_DETECTION_FAILED":
            event["properties"] = {
                "reason": self.machine_detection_fails,
                "customData": dict(call.custom_data),
            }
        elif kind == "DIALOG_FAILED" and call.dialog is not None:
            code, description = ERROR_CODES["DESTINATION_UNAVAILABLE"]
            event["properties"] = {
                "dialog": {
                    key: value
                    for key, value in self._dialog_view(call.dialog).items()
                    if key != "endTime"
                },
                "errorCode": {
                    "id": code,
                    "name": "DESTINATION_UNAVAILABLE",
                    "description": call.dialog.error or description,
                },
                "hangupSource": "PLATFORM",
            }
        elif kind.startswith("MACHINE_DETECTION"):
            event["properties"] = {
                "detectionResult": call.detection,
                "confidenceRating": {call.detection: 0.93},
                "customData": dict(call.custom_data),
            }
        else:
            event["properties"] = {"call": call.view(), "apiBaseUrl": self.public_base_url}
        return event

    def _child_event(
        self, call: SimCall, dialog: SimDialog, kind: str, source: str
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": kind,
            "callId": dialog.child_call_id,
            "dialogId": dialog.id,
            "timestamp": _ts(_now()),
            "callsConfigurationId": call.calls_configuration_id,
        }
        if kind in END_EVENTS:
            log = dialog.child_log(call.calls_configuration_id, source)
            event["properties"] = {"callLog": log}
        else:
            view = {**dialog.child_view(), "callsConfigurationId": call.calls_configuration_id}
            event["properties"] = {"call": view, "apiBaseUrl": self.public_base_url}
        return event

    def _emit(self, call: SimCall, kind: str) -> None:
        call.outbox.put_nowait([self._event(call, kind)])

    async def _deliver_events(self, call: SimCall) -> None:
        """Send the call's events in order (or reordered), until its last one has gone out."""
        held: list[dict[str, Any]] = []
        while True:
            batch = await call.outbox.get()
            final = any(e["type"] in END_EVENTS and e["callId"] == call.id for e in batch)
            if self.reorder_events:
                if not final and [e["type"] for e in batch] == ["CALL_RINGING"]:
                    held.extend(batch)  # a late CALL_RINGING, after the next event(s)
                    continue
                batch, held = [*reversed(batch), *held], []
            for event in batch:
                for _ in range(2 if self.duplicate_events else 1):
                    await self._post_event(call, event)
            if final:
                call.delivered.set()
                return

    async def _post_event(self, call: SimCall, event: dict[str, Any]) -> None:
        if event["type"] in self.lost_event_types:
            self._log(event["callId"], f"event {event['type']} lost")
            return
        self.events_sent.append(event)
        self._log(event["callId"], f"event {event['type']}")
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=2.0))
        for target in self._webhook_targets():
            if not target.wants(event["type"], call.calls_configuration_id):
                continue
            auth: httpx.Auth | httpx._client.UseClientDefault = httpx.USE_CLIENT_DEFAULT
            if target.username:
                auth = httpx.BasicAuth(target.username, target.password)
            for attempt in itertools.count(1):
                try:
                    response = await self._http.post(
                        target.url, json=event, auth=auth, headers=dict(target.headers)
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                self.deliveries.append(
                    Delivery(event["type"], call.id, target.url, status, attempt)
                )
                retry = status == 0 or status == 429 or status >= 500
                if not retry or attempt >= self.webhook_attempts:
                    break
                await asyncio.sleep(0.2 * attempt)

    # --- helpers ----------------------------------------------------------------------------

    def _spawn(self, coroutine: Awaitable[Any], name: str) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("stand-in task %s failed", name)

        task = asyncio.get_running_loop().create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _call(self, call_id: str) -> SimCall:
        try:
            return self.calls[call_id]
        except KeyError:
            raise KeyError(f"no call {call_id} in the stand-in") from None

    def _log(self, call_id: str, what: str, **detail: Any) -> None:
        self.call_log.append(LogEntry(_ts(_now()), call_id, what, detail))


async def _run_media_leg(**kwargs: Any) -> Any:
    """The callee of :mod:`callflow_dev.sandbox.media_leg`, with its default script when the number
    has none (imported late: it needs the bridge extra's audio libraries)."""
    media_leg = importlib.import_module("callflow_dev.sandbox.media_leg")
    if kwargs.get("script") is None:
        kwargs["script"] = media_leg.CalleeScript.default()
    return await media_leg.run_media_leg(**kwargs)


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(moment: datetime) -> str:
    """Infobip's timestamp style: ``2026-01-15T11:59:30.000+0000``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}+0000"
    )


def _paging(page: int, size: int, items: Sequence[Any]) -> dict[str, Any]:
    """Infobip's ``PageInfo``."""
    pages = max(1, math.ceil(len(items) / size))
    return {"paging": {"page": page, "size": size, "totalPages": pages, "totalResults": len(items)}}


def _hangup_code(body: Any, *, established: bool) -> str:
    """The cause a hangup request names (``PublicHangupRequest.errorCode``), checked against
    the spec's enum and its rules; NORMAL_HANGUP, or CANCELLED before the answer, when none."""
    if not isinstance(body, dict):
        raise _bad_request("body", "must be an object")
    code = body.get("errorCode")
    if code is None:
        return "NORMAL_HANGUP" if established else "CANCELLED"
    if not isinstance(code, str) or code not in HANGUP_CODES:
        raise _bad_request("errorCode", f"must be one of {', '.join(sorted(HANGUP_CODES))}")
    if established != (code in ESTABLISHED_HANGUP_CODES):
        need = "an established" if code in ESTABLISHED_HANGUP_CODES else "a not established"
        raise ApiError(400, "BAD_REQUEST", f"Error code {code} needs {need} call.")
    return code


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad_request(where, "must not be null" if value is None else "must be an object")
    return value


def _int(body: dict[str, Any], key: str, default: int, *, maximum: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise _bad_request(key, f"must be an integer between 1 and {maximum}")
    return value


def _string_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise _bad_request(where, "must be an object of strings")
    return dict(value)

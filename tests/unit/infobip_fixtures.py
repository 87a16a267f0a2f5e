"""Shared by the Infobip tests: example events, a webhook and bridge receiver, and the spec checker.

Infobip's OpenAPI file has no example bodies for the ``Event`` webhook, so the examples here are
written field by field from its schemas (``CallRingingEvent``, ``CallFinishedEvent``, ...); the
contract test validates each of them against the spec, strictly (no field the spec does not
name), so they cannot drift from it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from callflow.models import Outcome
from callflow_dev import schemas

VOICE_SPEC = ("infobip", "voice.json")
SUBSCRIPTIONS_SPEC = ("infobip", "subscriptions.json")
VOICE_PREFIX = "4527871876f1b326359cd9e5dcf777f0ecc3c5fde89b1e88f0c154b298b67611."

API_KEY = "test-infobip-key-0123456789"
WEBHOOK_USER = "infobip"
WEBHOOK_PASSWORD = "hook-password-42"
CALLS_CONFIGURATION_ID = "dc5942707c704551a00cd2ea"

# --- example events --------------------------------------------------------------------------

_CALL = {
    "id": "d8d84155-3831-43fb-91c9-10b5a8d628a0",
    "endpoint": {"type": "PHONE", "phoneNumber": "41792036727"},
    "from": "41793026834",
    "to": "41792036727",
    "direction": "OUTBOUND",
    "state": "RINGING",
    "startTime": "2026-01-15T11:59:30.000+0000",
    "callsConfigurationId": CALLS_CONFIGURATION_ID,
    "customData": {"session_id": "s-1", "attempt": "2"},
    "externalId": "s-1-2",
}
_CALL_LOG = {
    "callId": _CALL["id"],
    "endpoint": {"type": "PHONE", "phoneNumber": "41792036727"},
    "from": "41793026834",
    "to": "41792036727",
    "direction": "OUTBOUND",
    "state": "FINISHED",
    "startTime": "2026-01-15T11:59:30.000+0000",
    "answerTime": "2026-01-15T11:59:35.000+0000",
    "endTime": "2026-01-15T12:00:00.000+0000",
    "duration": 25,
    "ringDuration": 5,
    "callsConfigurationIds": [CALLS_CONFIGURATION_ID],
    "hasCameraVideo": False,
    "hasScreenshareVideo": False,
    "errorCode": {
        "id": 10000,
        "name": "NORMAL_HANGUP",
        "description": "The call has ended with hangup initiated by caller, callee or API.",
    },
    "customData": {"session_id": "s-1", "attempt": "2"},
    "hangupSource": "ENDPOINT",
    "externalId": "s-1-2",
}


def _live(kind: str, state: str) -> dict[str, Any]:
    call = {**copy.deepcopy(_CALL), "state": state}
    if state == "ESTABLISHED":
        call["answerTime"] = "2026-01-15T11:59:35.000+0000"
    return {
        "type": kind,
        "callId": _CALL["id"],
        "timestamp": "2026-01-15T11:59:35.000+0000",
        "callsConfigurationId": CALLS_CONFIGURATION_ID,
        "properties": {"call": call, "apiBaseUrl": "https://xyz.api.infobip.com"},
    }


def _ended(kind: str, **log: Any) -> dict[str, Any]:
    call_log = {**copy.deepcopy(_CALL_LOG), **log}
    for key in [k for k, v in call_log.items() if v is None]:
        del call_log[key]
    return {
        "type": kind,
        "callId": _CALL["id"],
        "timestamp": "2026-01-15T12:00:00.000+0000",
        "callsConfigurationId": CALLS_CONFIGURATION_ID,
        "properties": {"callLog": call_log},
    }


def _unanswered(kind: str, state: str, name: str, source: str) -> dict[str, Any]:
    return _ended(
        kind,
        state=state,
        answerTime=None,
        duration=0,
        errorCode={"id": 10001, "name": name, "description": f"{name} (example)"},
        hangupSource=source,
    )


def _machine(result: str) -> dict[str, Any]:
    return {
        "type": "MACHINE_DETECTION_FINISHED",
        "callId": _CALL["id"],
        "timestamp": "2026-01-15T11:59:39.000+0000",
        "callsConfigurationId": CALLS_CONFIGURATION_ID,
        "properties": {
            "detectionResult": result,
            "confidenceRating": {result: 0.91},
            "customData": {"session_id": "s-1", "attempt": "2"},
        },
    }


PHONE_CALL_ID = _CALL["id"]
CHILD_CALL_ID = "ae024ad1-52e7-45d5-a5d2-cd7c809e03f8"
DIALOG_ID = "034e622a-cc7e-456d-8a10-0ba43b11aa5e"
_WEBSOCKET = {"type": "WEBSOCKET", "websocketEndpointConfigId": "63467c6e2885a5389ba11d80"}
_DIALOG_DATA = {"session_id": "s-1", "attempt": "2", "bridge_token": "t0ken"}


def _websocket_leg_finished() -> dict[str, Any]:
    """The dialog's child call ends: a CallLog of its own, the dialog's customData in it."""
    body = _ended(
        "CALL_FINISHED",
        callId=CHILD_CALL_ID,
        endpoint=dict(_WEBSOCKET),
        to=None,
        duration=7,
        parentCallId=_CALL["id"],
        dialogId=DIALOG_ID,
        customData=dict(_DIALOG_DATA),
        hangupSource="API",
        externalId=None,
        ringDuration=None,
    )
    body["callId"] = CHILD_CALL_ID
    body["dialogId"] = DIALOG_ID
    del body["properties"]["callLog"]["from"]
    return body


def _dialog_failed() -> dict[str, Any]:
    parent = {**copy.deepcopy(_CALL), "state": "ESTABLISHED", "dialogId": DIALOG_ID}
    child = {
        "id": CHILD_CALL_ID,
        "endpoint": dict(_WEBSOCKET),
        "direction": "OUTBOUND",
        "state": "FAILED",
        "startTime": "2026-01-15T11:59:36.000+0000",
        "parentCallId": _CALL["id"],
        "dialogId": DIALOG_ID,
        "customData": dict(_DIALOG_DATA),
    }
    return {
        "type": "DIALOG_FAILED",
        "callId": _CALL["id"],
        "dialogId": DIALOG_ID,
        "timestamp": "2026-01-15T11:59:37.000+0000",
        "callsConfigurationId": CALLS_CONFIGURATION_ID,
        "properties": {
            "dialog": {
                "id": DIALOG_ID,
                "callsConfigurationId": CALLS_CONFIGURATION_ID,
                "state": "FAILED",
                "startTime": "2026-01-15T11:59:36.000+0000",
                "parentCall": parent,
                "childCall": child,
            },
            "errorCode": {
                "id": 10006,
                "name": "DESTINATION_UNAVAILABLE",
                "description": "The WebSocket endpoint could not be reached.",
            },
            "hangupSource": "PLATFORM",
        },
    }


@dataclass(frozen=True)
class ExampleEvent:
    name: str
    body: dict[str, Any]
    outcome: Outcome | None
    custom_data: dict[str, str] = field(
        default_factory=lambda: {"session_id": "s-1", "attempt": "2"}
    )
    """What the parser finds: the call's customData, the dialog's on its WebSocket leg, none on
    the event types whose properties have no place for it."""


EXAMPLE_EVENTS = [
    ExampleEvent("ringing", _live("CALL_RINGING", "RINGING"), None),
    ExampleEvent("pre-established", _live("CALL_PRE_ESTABLISHED", "PRE_ESTABLISHED"), None),
    ExampleEvent("established", _live("CALL_ESTABLISHED", "ESTABLISHED"), None),
    ExampleEvent("finished after a conversation", _ended("CALL_FINISHED"), Outcome.ANSWERED),
    ExampleEvent(
        "dropped after a conversation",
        _ended(
            "CALL_FINISHED",
            errorCode={"id": 10010, "name": "NETWORK_ERROR", "description": "Network error."},
            hangupSource="PLATFORM",
        ),
        Outcome.ANSWERED,
    ),
    ExampleEvent(
        "no answer",
        _unanswered("CALL_FAILED", "NO_ANSWER", "NO_ANSWER", "PLATFORM"),
        Outcome.NO_ANSWER,
    ),
    ExampleEvent("busy", _unanswered("CALL_FAILED", "BUSY", "BUSY", "ENDPOINT"), Outcome.BUSY),
    ExampleEvent(
        "rejected", _unanswered("CALL_FAILED", "FAILED", "REJECTED", "ENDPOINT"), Outcome.REJECTED
    ),
    ExampleEvent(
        "not found",
        _unanswered("CALL_FAILED", "FAILED", "DESTINATION_NOT_FOUND", "PLATFORM"),
        Outcome.FAILED,
    ),
    ExampleEvent(
        "service unavailable",
        _unanswered("CALL_FAILED", "FAILED", "SERVICE_UNAVAILABLE", "PLATFORM"),
        Outcome.FAILED,
    ),
    ExampleEvent(
        "cancelled before answer",
        _unanswered("CALL_FINISHED", "CANCELLED", "CANCELLED", "API"),
        Outcome.FAILED,
    ),
    ExampleEvent(
        "machine hung up",
        _ended(
            "CALL_FINISHED",
            errorCode={"id": 10005, "name": "MACHINE_DETECTED", "description": "Machine."},
            machineDetection={"detectionResult": "MACHINE"},
            hangupSource="API",
        ),
        Outcome.MACHINE,
    ),
    ExampleEvent("machine detected", _machine("MACHINE"), None),
    ExampleEvent("human detected", _machine("HUMAN"), None),
    ExampleEvent(
        "machine detection failed",
        {
            "type": "MACHINE_DETECTION_FAILED",
            "callId": _CALL["id"],
            "timestamp": "2026-01-15T11:59:39.000+0000",
            "properties": {
                "reason": "TIMEOUT",
                "customData": {"session_id": "s-1", "attempt": "2"},
            },
        },
        None,
    ),
    ExampleEvent(
        "websocket leg finished", _websocket_leg_finished(), Outcome.ANSWERED, dict(_DIALOG_DATA)
    ),
    ExampleEvent("dialog failed", _dialog_failed(), None),
    ExampleEvent(
        "error",
        {
            "type": "ERROR",
            "callId": _CALL["id"],
            "timestamp": "2026-01-15T11:59:37.000+0000",
            "callsConfigurationId": CALLS_CONFIGURATION_ID,
            "properties": {"errorCode": "MEDIA_ERROR", "errorDetails": "Media failed."},
        },
        None,
        {},
    ),
    ExampleEvent(
        "media stream failed",
        {
            "type": "MEDIA_STREAM_FAILED",
            "callId": _CALL["id"],
            "timestamp": "2026-01-15T11:59:37.000+0000",
            "callsConfigurationId": CALLS_CONFIGURATION_ID,
            "properties": {
                "configId": "63467c6e2885a5389ba11d80",
                "streamId": "b7bc6b5c-b1a9-4e6b-8f3b-4b1a6f0c1d2e",
                "reason": "Connection to the endpoint was refused.",
            },
        },
        None,
        {},
    ),
]


def example(name: str) -> dict[str, Any]:
    """A deep copy of the named example's body, to mutate freely."""
    for item in EXAMPLE_EVENTS:
        if item.name == name:
            return copy.deepcopy(item.body)
    raise KeyError(name)


# --- the receiver (tests serve it with callflow_dev.local.servers.AsgiServer) --------------------


@dataclass
class Receiver:
    """A webhook receiver that checks Basic auth like the project's API, and a tiny bridge
    WebSocket that records what the child call sends first and hangs up after ``hold_s`` (or
    the ``hold_s`` the call's customData brings in that first frame)."""

    username: str = WEBHOOK_USER
    password: str = WEBHOOK_PASSWORD
    hold_s: float = 0.3
    events: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    unavailable_for: int = 0
    """Answer 503 to this many authorised event POSTs first (as the API does when it wants
    Infobip to redeliver)."""
    first_frames: list[dict[str, Any]] = field(default_factory=list)
    closed_by_caller: dict[str, bool] = field(default_factory=dict)
    """Per ``session_id`` of the first frame: did the child call close the socket first?"""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        import base64

        app = FastAPI()
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

        @app.post("/events")
        async def events(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != expected:
                with self.lock:
                    self.refused += 1
                return JSONResponse({"detail": "unauthorized"}, status_code=401)
            body = await request.json()
            with self.lock:
                if self.unavailable_for > 0:
                    self.unavailable_for -= 1
                    return JSONResponse({"detail": "try again"}, status_code=503)
                self.events.append(body)
            return JSONResponse({"result": "ok"})

        @app.websocket("/bridge")
        async def bridge(ws: WebSocket) -> None:
            await ws.accept()
            first = json.loads(await ws.receive_text())
            with self.lock:
                self.first_frames.append(first)
            hold_s = float(first.get("hold_s", self.hold_s))
            try:
                async with asyncio.timeout(hold_s):
                    while True:
                        await ws.receive_bytes()
            except TimeoutError:
                await ws.close(1000)
                self.closed_by_caller[str(first.get("session_id"))] = False
            except WebSocketDisconnect:
                self.closed_by_caller[str(first.get("session_id"))] = True

        return app

    def types_for(self, call_id: str) -> list[str]:
        with self.lock:
            return [e["type"] for e in self.events if e.get("callId") == call_id]

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; events so far: {self.events!r}")
            time.sleep(0.01)

    def wait_for_end(self, call_id: str, timeout_s: float = 5.0) -> list[str]:
        """The call's event types once its CALL_FINISHED or CALL_FAILED has arrived (and a
        moment more, for reordered late events)."""
        self.wait_for(
            lambda: any(t in ("CALL_FINISHED", "CALL_FAILED") for t in self.types_for(call_id)),
            timeout_s,
        )
        time.sleep(0.05)
        return self.types_for(call_id)


# --- the spec checker ------------------------------------------------------------------------


class SpecChecker:
    """Validate bodies against an OpenAPI 3.1 file: JSON Schema (refs resolved), plus the two
    things plain JSON Schema does not do with these files: follow ``discriminator`` mappings, and
    flag fields the schema does not name (none of Infobip's schemas forbid extra fields, so a
    misspelt field would otherwise pass)."""

    URI = "urn:openapi"

    def __init__(self, spec: tuple[str, str]) -> None:
        self.spec = schemas.load(*spec)
        resource = Resource.from_contents(self.spec, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(self.URI, resource)

    def schema(self, pointer: str) -> dict[str, Any]:
        node: Any = self.spec
        for part in pointer.lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return dict(node)

    def request_schema_pointer(self, method: str, path: str) -> str:
        escaped = path.replace("~", "~0").replace("/", "~1")
        return f"#/paths/{escaped}/{method.lower()}/requestBody/content/application~1json/schema"

    def response_schema_pointer(self, method: str, path: str, status: int) -> str:
        escaped = path.replace("~", "~0").replace("/", "~1")
        return (
            f"#/paths/{escaped}/{method.lower()}/responses/{status}"
            "/content/application~1json/schema"
        )

    def problems(self, instance: Any, pointer: str) -> list[str]:
        found = [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in Draft202012Validator(
                {"$ref": self.URI + pointer}, registry=self.registry
            ).iter_errors(instance)
        ]
        self._walk(instance, self.schema(pointer), "", found, follow_discriminator=True)
        return found

    def _deref(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schema(schema["$ref"])
        return schema

    def _parts(self, schema: dict[str, Any], follow: bool, instance: Any) -> list[dict[str, Any]]:
        """The schema with its allOf parts and, for a discriminated object, the mapped schema."""
        schema = self._deref(schema)
        parts = [schema]
        for part in schema.get("allOf", []):
            parts.extend(self._parts(part, False, instance))
        for part in schema.get("oneOf", []) + schema.get("anyOf", []):
            parts.extend(self._parts(part, follow, instance))
        discriminator = schema.get("discriminator")
        if follow and discriminator and isinstance(instance, dict):
            target = discriminator.get("mapping", {}).get(
                instance.get(discriminator["propertyName"])
            )
            if target:
                parts.extend(self._parts({"$ref": target}, False, instance))
        return parts

    def _walk(
        self,
        instance: Any,
        schema: dict[str, Any],
        where: str,
        found: list[str],
        follow_discriminator: bool,
    ) -> None:
        parts = self._parts(schema, follow_discriminator, instance)
        if isinstance(instance, dict):
            properties: dict[str, dict[str, Any]] = {}
            free: dict[str, Any] | None = None
            for part in parts:
                properties.update(part.get("properties", {}))
                if isinstance(part.get("additionalProperties"), dict):
                    free = part["additionalProperties"]
            discriminator_targets = [p for p in parts if p.get("discriminator")]
            for part in discriminator_targets:
                target = (
                    part["discriminator"]
                    .get("mapping", {})
                    .get(instance.get(part["discriminator"]["propertyName"]))
                )
                if target and follow_discriminator:
                    for error in Draft202012Validator(
                        {"$ref": self.URI + target}, registry=self.registry
                    ).iter_errors(instance):
                        found.append(f"{where or '<root>'}: {error.message}")
            for key, value in instance.items():
                if key in properties:
                    self._walk(value, properties[key], f"{where}.{key}", found, True)
                elif free is not None:
                    self._walk(value, free, f"{where}.{key}", found, True)
                elif properties or any(p.get("type") == "object" for p in parts):
                    found.append(f"{where}.{key}: not a field of the schema")
        elif isinstance(instance, list):
            for part in parts:
                if isinstance(part.get("items"), dict):
                    for index, item in enumerate(instance):
                        self._walk(item, part["items"], f"{where}[{index}]", found, True)
                    break


@lru_cache(maxsize=1)
def voice_spec() -> SpecChecker:
    return SpecChecker(VOICE_SPEC)


@lru_cache(maxsize=1)
def subscriptions_spec() -> SpecChecker:
    return SpecChecker(SUBSCRIPTIONS_SPEC)


def event_pointer(event_type: str) -> str:
    """The spec's schema for an event of this type (the ``Event`` discriminator mapping)."""
    mapping = voice_spec().schema(f"#/components/schemas/{VOICE_PREFIX}Event")["discriminator"]
    return str(mapping["mapping"][event_type])

"""The two wire formats the bridge speaks, parsed and built in one place.

Infobip's media stream (no official description; see PROVIDERS.md): a first text frame
``{"event":"websocket:connected","content-type":"audio/l16;rate=16000", ...}``, then
binary 16-bit PCM frames, DTMF as ``{"event":"websocket:dtmf","digit":"3",...}``, and ``{"action":
"clear"}`` as the one control frame we send back. Where in all that Infobip puts the session's
identifiers is unconfirmed, so :func:`parse_connected` looks in every plausible place
(:data:`PLACES`) and, when none has them, describes what did arrive (:func:`describe`).

ElevenLabs' agent socket (its AsyncAPI contract, extracted in
``callflow_dev/schemas/elevenlabs/agent.asyncapi.json``): JSON text frames, the caller's audio as
``{"user_audio_chunk": <base64>}`` without a ``type``. That message is built by concatenating
bytes (base64 needs no JSON escaping), because it is sent fifty times a second per call.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from callflow.models import (
    MEDIA_IDENTIFIER_SEPARATOR,
    DynamicValue,
    is_session_id,
)

CLEAR_FRAME = '{"action":"clear"}'
CONNECTED_EVENT = "websocket:connected"
DTMF_EVENT = "websocket:dtmf"
#: The connected frame carries customData; anything larger is not Infobip talking to us.
MAX_CONNECTED_FRAME = 16 * 1024
MAX_TOKEN = 128
_NOT_CUSTOM = frozenset({"event", "content-type", "bridge_token", "identifier", "customData"})
#: Where the identifiers may arrive, in the order they are looked for: the places we choose
#: (the URL) before the places Infobip fills in (headers, the frame).
PLACES = ("path", "query", "headers", "identifier", "top-level", "customData")
_HEADER_NAMES = {
    "session_id": ("x-callflow-session-id", "x-session-id", "session-id", "session_id"),
    "bridge_token": ("x-callflow-bridge-token", "x-bridge-token", "bridge-token", "bridge_token"),
    "identifier": ("x-callflow-identifier", "x-identifier", "identifier"),
}
_SHAPE_DEPTH = 3
_SHAPE_KEYS = 32


class BadFrame(ValueError):
    """A phone-leg frame that does not follow the protocol; the message says how."""


class Unmatched(BadFrame):
    """The stream named no session with a token anywhere we look. ``shape`` is what arrived,
    values redacted, for the operator: it is how a wrong guess about Infobip shows itself."""

    def __init__(self, message: str, shape: dict[str, Any], session_hint: str = "") -> None:
        super().__init__(message)
        self.shape = shape
        self.session_hint = session_hint
        """A well-formed session id that arrived without a usable token (unauthenticated:
        good for a diagnostic note on that session, nothing more)."""


@dataclass(frozen=True)
class Upgrade:
    """The parts of the WebSocket upgrade request that may carry the identifiers: the path
    after the bridge's secret segment, the query string and the headers."""

    path: str = ""
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    """Names lower-cased."""

    @classmethod
    def from_request(cls, target: str, prefix: str, headers: Iterable[tuple[str, str]]) -> Upgrade:
        """Split a request target (``/secret/rest?query``) under the secret ``prefix``."""
        parts = urlsplit(target)
        path = parts.path.removeprefix(prefix)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        return cls(path, query, {name.lower(): value for name, value in headers})


@dataclass(frozen=True)
class Connected:
    """What the first Infobip frame tells: the session, its token and the audio format, and
    where the identifiers were found (one of :data:`PLACES`)."""

    session_id: str
    token: str
    content_type: str
    custom: dict[str, str]
    found_in: str = "top-level"


def parse_connected(message: str | bytes, upgrade: Upgrade | None = None) -> Connected:
    """The first phone-leg frame as :class:`Connected`, the identifiers taken from the first of
    :data:`PLACES` that has both; :class:`BadFrame` when it is not a ``websocket:connected``
    event of sane size, :class:`Unmatched` (with the shape of what arrived) when no place names
    a session and a token. Nothing here checks the token: that is the session store's claim,
    the same whatever the place."""
    upgrade = upgrade or Upgrade()
    if not isinstance(message, str):
        raise Unmatched(
            "the first frame must be the text websocket:connected event",
            describe(None, upgrade, binary=len(message)),
        )
    if len(message) > MAX_CONNECTED_FRAME:
        raise BadFrame("the websocket:connected frame is too large")
    try:
        data = json.loads(message)
    except ValueError:
        raise Unmatched("the first frame is not JSON", describe(None, upgrade)) from None
    if not isinstance(data, dict) or data.get("event") != CONNECTED_EVENT:
        raise Unmatched(
            "the first frame is not a websocket:connected event", describe(data, upgrade)
        )
    content_type = data.get("content-type", "")
    if not isinstance(content_type, str):
        raise BadFrame("content-type must be a string")
    problem = hint = ""
    for place in PLACES:
        found = _candidates(place, data, upgrade)
        if found is None:
            continue
        session_id, token = found
        problem = problem or _problem(session_id, token)
        if not hint and isinstance(session_id, str) and is_session_id(session_id):
            hint = session_id
        if not _problem(session_id, token):
            # The rest of customData, without the token: this dict may end up in logs.
            custom = {k: str(v) for k, v in data.items() if k not in _NOT_CUSTOM}
            return Connected(session_id, token, content_type, custom, place)
    raise Unmatched(
        problem
        or "no session_id and bridge_token in the frame, customData, an identifier, "
        "the path, the query or the headers",
        describe(data, upgrade),
        hint,
    )


def _problem(session_id: Any, token: Any) -> str:
    if not isinstance(session_id, str) or not session_id:
        return "the connected frame carries no session_id"
    if not is_session_id(session_id):
        return "the session_id is not a session id"
    if not isinstance(token, str) or not token:
        return "the connected frame carries no bridge_token"
    if len(token) > MAX_TOKEN or not token.isprintable():
        return "the bridge_token is not a token"
    return ""


def _candidates(place: str, data: dict[str, Any], upgrade: Upgrade) -> tuple[Any, Any] | None:
    """The (session id, token) a place offers; ``None`` when it offers neither."""
    if place == "path":
        segments = [segment for segment in upgrade.path.split("/") if segment]
        if len(segments) == 2:
            return segments[0], segments[1]
        return _split(segments[0]) if len(segments) == 1 else None
    if place == "query":
        return _pair(upgrade.query)
    if place == "headers":
        named = {
            key: next((upgrade.headers[n] for n in names if n in upgrade.headers), None)
            for key, names in _HEADER_NAMES.items()
        }
        return _pair(named)
    if place == "identifier":
        for holder in (data, data.get("customData")):
            if isinstance(holder, dict) and "identifier" in holder:
                return _split(holder["identifier"])
        return None
    if place == "top-level":
        return _pair(data, identifier=False)
    nested = data.get("customData")
    return _pair(nested, identifier=False) if isinstance(nested, dict) else None


def _pair(values: Mapping[str, Any], *, identifier: bool = True) -> tuple[Any, Any] | None:
    session_id, token = values.get("session_id"), values.get("bridge_token")
    if session_id is None and token is None:
        return _split(values.get("identifier")) if identifier else None
    return session_id, token


def _split(value: Any) -> tuple[Any, Any] | None:
    """A :func:`callflow.models.media_identifier` value as (session id, token)."""
    if not isinstance(value, str) or not value:
        return None
    session_id, _, token = value.partition(MEDIA_IDENTIFIER_SEPARATOR)
    return session_id, token


def shape_of(value: Any, depth: int = 0) -> Any:
    """``value`` with every value replaced by its type (strings with their length), objects
    kept by their keys: what arrived, with nothing in it that could be a secret or a number."""
    if isinstance(value, dict):
        if depth >= _SHAPE_DEPTH:
            return f"object[{len(value)}]"
        keys = list(value)[:_SHAPE_KEYS]
        shape = {str(k)[:64]: shape_of(value[k], depth + 1) for k in keys}
        if len(value) > len(keys):
            shape["..."] = f"{len(value) - len(keys)} more keys"
        return shape
    if isinstance(value, list):
        return f"array[{len(value)}]"
    if isinstance(value, str):
        return f"string[{len(value)}]"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def describe(data: Any, upgrade: Upgrade, *, binary: int | None = None) -> dict[str, Any]:
    """The shape of a first frame and of the upgrade request around it (see :func:`shape_of`):
    the frame, the number of path segments after the secret, the query's keys and the header
    names."""
    if binary is not None:
        frame: Any = f"binary[{binary}]"
    elif data is None:
        frame = "text (not JSON)"
    else:
        frame = shape_of(data)
    return {
        "frame": frame,
        "path_segments": len([s for s in upgrade.path.split("/") if s]),
        "query": sorted(upgrade.query)[:_SHAPE_KEYS],
        "headers": sorted(upgrade.headers)[:_SHAPE_KEYS],
    }


def parse_phone_text(message: str) -> dict[str, Any] | None:
    """A later text frame from Infobip as a dict, or ``None`` when it is not a JSON object."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# --- agent leg ------------------------------------------------------------------------------


_AUDIO_CHUNK_HEAD = b'{"user_audio_chunk":"'
_AUDIO_CHUNK_TAIL = b'"}'


def user_audio_chunk(audio: bytes) -> bytes:
    """The agent message carrying a chunk of the caller's audio, base64-encoded, as the UTF-8
    bytes of a text message (sent with :meth:`~callflow_bridge.sockets.MessageSocket.send_text`,
    so it is never decoded to ``str`` and encoded back)."""
    return _AUDIO_CHUNK_HEAD + binascii.b2a_base64(audio, newline=False) + _AUDIO_CHUNK_TAIL


def initiation(
    variables: dict[str, DynamicValue], overrides: dict[str, Any] | None
) -> dict[str, Any]:
    """``conversation_initiation_client_data``; only string, number and boolean variables."""
    message: dict[str, Any] = {
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {
            k: v for k, v in variables.items() if isinstance(v, str | int | float | bool)
        },
    }
    if overrides:
        message["conversation_config_override"] = overrides
    return message


def pong(event_id: int) -> str:
    """The answer to the agent's ``ping`` number ``event_id``."""
    return json.dumps({"type": "pong", "event_id": event_id})


def client_tool_result(tool_call_id: str, result: str, is_error: bool) -> str:
    """The answer to the agent's client tool call ``tool_call_id``."""
    return json.dumps(
        {
            "type": "client_tool_result",
            "tool_call_id": tool_call_id,
            "result": result,
            "is_error": is_error,
        }
    )


def dtmf_message(digit: str, mode: str) -> str | None:
    """The agent message that tells it about a key press; ``None`` when DTMF is ignored."""
    if mode == "contextual_update":
        return json.dumps(
            {"type": "contextual_update", "text": f"The caller pressed the key {digit} (DTMF)."}
        )
    if mode == "user_message":
        return json.dumps({"type": "user_message", "text": digit})
    return None


def event_body(message: dict[str, Any], key: str) -> dict[str, Any]:
    """The object under ``key`` in an agent message; empty when it is missing or not an object."""
    body = message.get(key)
    return body if isinstance(body, dict) else {}

"""The two wire formats the bridge speaks, parsed and built in one place.

Infobip's media stream (no official description; see PROVIDERS.md): a first text frame
``{"event":"websocket:connected","content-type":"audio/l16;rate=16000", ...customData}``, then
binary 16-bit PCM frames, DTMF as ``{"event":"websocket:dtmf","digit":"3",...}``, and ``{"action":
"clear"}`` as the one control frame we send back.

ElevenLabs' agent socket (its AsyncAPI contract, extracted in
``callflow_dev/schemas/elevenlabs/agent.asyncapi.json``): JSON text frames, the caller's audio as
``{"user_audio_chunk": <base64>}`` without a ``type``. That message is built by string
concatenation (base64 needs no JSON escaping), because it is sent fifty times a second per call.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from callflow.models import DynamicValue

CLEAR_FRAME = '{"action":"clear"}'
CONNECTED_EVENT = "websocket:connected"
DTMF_EVENT = "websocket:dtmf"
#: The connected frame carries customData; anything larger is not Infobip talking to us.
MAX_CONNECTED_FRAME = 16 * 1024
MAX_SESSION_ID = 128
_NOT_CUSTOM = frozenset({"event", "content-type", "bridge_token"})


class BadFrame(ValueError):
    """A phone-leg frame that does not follow the protocol; the message says how."""


@dataclass(frozen=True)
class Connected:
    """What the first Infobip frame tells: the session, its token and the audio format."""

    session_id: str
    token: str
    content_type: str
    custom: dict[str, str]


def parse_connected(message: str | bytes) -> Connected:
    """The first phone-leg frame as :class:`Connected`; :class:`BadFrame` when it is not a
    ``websocket:connected`` event of sane size with a session id and a token."""
    if not isinstance(message, str):
        raise BadFrame("the first frame must be the text websocket:connected event")
    if len(message) > MAX_CONNECTED_FRAME:
        raise BadFrame("the websocket:connected frame is too large")
    try:
        data = json.loads(message)
    except ValueError as error:
        raise BadFrame("the first frame is not JSON") from error
    if not isinstance(data, dict) or data.get("event") != CONNECTED_EVENT:
        raise BadFrame("the first frame is not a websocket:connected event")
    session_id = data.get("session_id")
    token = data.get("bridge_token")
    if not isinstance(session_id, str) or not session_id:
        raise BadFrame("the connected frame carries no session_id")
    if len(session_id) > MAX_SESSION_ID or not session_id.isprintable():
        raise BadFrame("the session_id is not a session id")
    if not isinstance(token, str) or not token:
        raise BadFrame("the connected frame carries no bridge_token")
    content_type = data.get("content-type", "")
    if not isinstance(content_type, str):
        raise BadFrame("content-type must be a string")
    # The rest of customData, without the token: this dict may end up in logs.
    custom = {k: str(v) for k, v in data.items() if k not in _NOT_CUSTOM}
    return Connected(session_id, token, content_type, custom)


def parse_phone_text(message: str) -> dict[str, Any] | None:
    """A later text frame from Infobip as a dict, or ``None`` when it is not a JSON object."""
    try:
        data = json.loads(message)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


# --- agent leg ------------------------------------------------------------------------------


def user_audio_chunk(audio: bytes) -> str:
    """The agent message carrying a chunk of the caller's audio, base64-encoded."""
    return '{"user_audio_chunk":"' + base64.b64encode(audio).decode("ascii") + '"}'


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

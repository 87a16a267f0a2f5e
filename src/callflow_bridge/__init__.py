"""The audio bridge: Infobip's media-stream WebSocket ⇄ the ElevenLabs agent, at real time.

``python -m bridge`` runs it as a service (see :mod:`bridge.__main__`); the local stack and tests
build a :class:`BridgeServer` in-process with their own :class:`BridgeDeps`.
"""

from .deps import BridgeDeps, SessionAccess
from .relay import CallRelay, EndReason
from .server import BridgeServer

__all__ = ["BridgeDeps", "BridgeServer", "CallRelay", "EndReason", "SessionAccess"]

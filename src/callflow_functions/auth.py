"""Authentication of the webhooks and the status route, done before anything else is read.

Each provider authenticates differently: Zoho workflow webhooks carry no signature, so a shared
secret header; Infobip's notification profile sends HTTP Basic auth, and the events URL also holds a
secret path segment; ElevenLabs signs its post-call webhook (checked in the ElevenLabs client);
the status route takes a bearer token. Every comparison is constant-time, and a server whose secret
is not configured refuses everything rather than accepting anything.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from pydantic import SecretStr


class AuthError(Exception):
    """A request refused before its body is read: ``status_code`` (401, 403 or 503), ``reason``,
    and ``basic`` when the answer should ask for Basic credentials."""

    def __init__(self, status_code: int, reason: str, *, basic: bool = False) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason
        self.basic = basic


def _equal(given: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def _configured(secret: SecretStr, what: str) -> None:
    if not secret.get_secret_value():
        raise AuthError(503, f"{what} is not configured on this server")


def check_shared_secret(header: str | None, expected: SecretStr) -> None:
    """Check the Zoho trigger's ``X-Callflow-Secret`` header; raises :class:`AuthError` (401
    missing, 403 wrong, 503 no secret configured)."""
    _configured(expected, "the trigger secret")
    if not header:
        raise AuthError(401, "missing X-Callflow-Secret header")
    if not _equal(header, expected):
        raise AuthError(403, "wrong X-Callflow-Secret")


def check_basic(authorization: str | None, username: str, password: SecretStr) -> None:
    """Check Infobip's HTTP Basic credentials; raises :class:`AuthError` (401 missing or
    malformed, 403 wrong, 503 no password configured)."""
    _configured(password, "the Infobip webhook password")
    if not authorization or not authorization.lower().startswith("basic "):
        raise AuthError(401, "missing Basic authorization", basic=True)
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError(401, "malformed Basic authorization", basic=True) from None
    user, sep, secret = decoded.partition(":")
    user_ok = hmac.compare_digest(user.encode(), username.encode())
    if not sep or not (_equal(secret, password) and user_ok):
        raise AuthError(403, "wrong Basic credentials")


def check_path_secret(given: str, expected: SecretStr) -> None:
    """Check the secret segment of the Infobip events URL; raises :class:`AuthError` (403 wrong,
    503 none configured)."""
    _configured(expected, "the Infobip webhook path secret")
    if not _equal(given, expected):
        raise AuthError(403, "wrong path")


def check_bearer(authorization: str | None, expected: SecretStr) -> None:
    """Check the status route's bearer token; raises :class:`AuthError` (401 missing, 403
    wrong, 503 none configured)."""
    _configured(expected, "the status API token")
    if not authorization or not authorization.lower().startswith("bearer "):
        raise AuthError(401, "missing bearer token")
    if not _equal(authorization[7:].strip(), expected):
        raise AuthError(403, "wrong bearer token")

"""One Zoho access token, shared by every function instance.

Zoho issues at most ten access tokens per refresh token in ten minutes; past that the token
endpoint answers "Access Denied" and the whole org's integration stalls. A Lambda fleet that
refreshed per container would hit the limit during any burst, so the token lives in the shared
DynamoDB table (item ``token#zoho``) and is refreshed by exactly one instance at a time:

- an instance whose cached token is missing, stale or within five minutes of expiry takes a short
  lease (a conditional put on ``lock#zoho-token``; an expired lease may be taken over, so a crashed
  refresher blocks the others for at most the lease);
- the lease holder reads the token again (another instance may have refreshed in between), then
  refreshes and stores it;
- everyone else polls the token item for a bounded time and uses the holder's token.

A warm container also keeps the token in memory, so most calls cost no DynamoDB read at all.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from botocore.exceptions import ClientError

from callflow.aws import CONDITION_FAILED, error_code
from callflow.config import Settings
from callflow.observability import logger
from callflow.providers.errors import (
    ProviderAuthError,
    ProviderRejected,
    RetryableProviderError,
    error_for_status,
)
from callflow.providers.http import HttpTransport

PROVIDER = "zoho"
TOKEN_KEY = {"pk": "token#zoho"}
LOCK_KEY = {"pk": "lock#zoho-token"}
REFRESH_MARGIN_SECONDS = 300.0
"""A token is replaced this long before it expires, so a request never carries a dying token."""

_AUTH_ERRORS = frozenset({"invalid_client", "invalid_code", "invalid_client_secret"})
_RETRYABLE_ERRORS = frozenset({"access denied", "too many requests"})


@dataclass(frozen=True)
class ZohoToken:
    """An access token and the API domain it is valid for, as the token endpoint issued them."""

    access_token: str
    api_domain: str
    expires_at: float
    """Unix time at which Zoho stops accepting the token."""
    scope: str = ""
    """The scopes Zoho granted, space-separated as its token endpoint lists them (``callflow
    doctor`` checks them); empty when it listed none."""

    def usable(self, now: float) -> bool:
        """Whether the token is good at ``now`` with :data:`REFRESH_MARGIN_SECONDS` to spare."""
        return now < self.expires_at - REFRESH_MARGIN_SECONDS


class ZohoTokenProvider:
    """Hands out a valid access token, refreshing it at most once per lifetime fleet-wide."""

    def __init__(
        self,
        settings: Settings,
        table: Any,
        http: httpx.Client | None = None,
        *,
        lease_seconds: float = 10.0,
        wait_seconds: float = 15.0,
        poll_seconds: float = 0.1,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.table = table
        self._transport = HttpTransport(
            PROVIDER, timeout=httpx.Timeout(10.0, connect=5.0), http=http
        )
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.sleep = sleep
        self.refreshes = 0
        """How many refresh requests this instance sent (benchmarks, tests)."""
        self._memo: ZohoToken | None = None
        self._local = threading.Lock()
        self._owner = uuid.uuid4().hex

    # --- public ---------------------------------------------------------------------------

    def access_token(self) -> ZohoToken:
        """A token valid for at least five more minutes."""
        memo = self._memo
        if memo is not None and memo.usable(self.clock()):
            return memo
        # Threads of one process queue here, so one container sends one refresh at most; the
        # DynamoDB lease does the same across containers.
        with self._local:
            memo = self._memo
            if memo is not None and memo.usable(self.clock()):
                return memo
            token = self._shared_token()
            self._memo = token
            return token

    def invalidate(self, token: str) -> None:
        """Zoho said ``INVALID_TOKEN`` for ``token``: make the next caller refresh.

        The stale mark is conditional on ``token`` still being the cached one, so when many
        instances see the same 401 only the first mark counts and the one refresh that follows
        serves all of them.
        """
        with self._local:
            if self._memo is not None and self._memo.access_token == token:
                self._memo = None
        try:
            self.table.update_item(
                Key=TOKEN_KEY,
                UpdateExpression="SET stale = :true",
                ConditionExpression="#token = :token",
                ExpressionAttributeNames={"#token": "token"},
                ExpressionAttributeValues={":true": True, ":token": token},
            )
        except ClientError as error:
            if error_code(error) != CONDITION_FAILED:
                raise

    # --- the shared cache -----------------------------------------------------------------

    def _shared_token(self) -> ZohoToken:
        deadline = self.clock() + self.wait_seconds
        while True:
            cached = self._read()
            if cached is not None:
                return cached
            if self._acquire_lease():
                try:
                    # Another instance may have stored a token between our read and our lease.
                    cached = self._read()
                    if cached is not None:
                        return cached
                    token = self._refresh()
                    self._store(token)
                    return token
                finally:
                    self._release_lease()
            if self.clock() >= deadline:
                raise RetryableProviderError(
                    PROVIDER, "timed out waiting for another instance to refresh the access token"
                )
            self.sleep(self.poll_seconds)

    def _read(self) -> ZohoToken | None:
        """The cached token when it is usable and not marked stale."""
        item = self.table.get_item(Key=TOKEN_KEY, ConsistentRead=True).get("Item")
        if not item or item.get("stale"):
            return None
        token = ZohoToken(
            access_token=str(item["token"]),
            api_domain=self.settings.zoho_api_domain or str(item["api_domain"]),
            expires_at=float(item["expires_at"]),
            scope=str(item.get("scope") or ""),
        )
        return token if token.usable(self.clock()) else None

    def _store(self, token: ZohoToken) -> None:
        self.table.put_item(
            Item={
                **TOKEN_KEY,
                "token": token.access_token,
                "api_domain": token.api_domain,
                # Also the table's TTL attribute: an expired token item disappears by itself.
                "expires_at": int(token.expires_at),
                "scope": token.scope,
                "stale": False,
            }
        )

    def _acquire_lease(self) -> bool:
        now = self.clock()
        try:
            self.table.put_item(
                Item={
                    **LOCK_KEY,
                    "owner": self._owner,
                    "lease_until": Decimal(repr(now + self.lease_seconds)),
                    "expires_at": int(now + self.lease_seconds + 3600),
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now",
                ExpressionAttributeValues={":now": Decimal(repr(now))},
            )
        except ClientError as error:
            if error_code(error) == CONDITION_FAILED:
                return False
            raise
        return True

    def _release_lease(self) -> None:
        try:
            self.table.delete_item(
                Key=LOCK_KEY,
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": self._owner},
            )
        except ClientError as error:
            if error_code(error) != CONDITION_FAILED:
                raise

    # --- the token endpoint ---------------------------------------------------------------

    def _refresh(self) -> ZohoToken:
        settings = self.settings
        url = f"{settings.zoho_accounts_url.rstrip('/')}/oauth/v2/token"
        form = {
            "grant_type": "refresh_token",
            "client_id": settings.zoho_client_id,
            "client_secret": settings.zoho_client_secret.get_secret_value(),
            "refresh_token": settings.zoho_refresh_token.get_secret_value(),
        }
        self.refreshes += 1
        # Every status is read here: Zoho reports token errors as HTTP 200 with an ``error`` key.
        response = self._transport.request(
            "POST", url, what="token endpoint", data=form, accept=lambda _: True
        )
        body = _json_object(response)
        if "error" in body:
            raise _token_error(str(body["error"]), str(body.get("error_description", "")))
        if response.status_code >= 400:
            raise error_for_status(
                PROVIDER, response.status_code, f"token endpoint answered {response.status_code}"
            )
        try:
            access_token = str(body["access_token"])
            expires_in = float(body["expires_in"])
            api_domain = str(body.get("api_domain") or "")
        except (KeyError, TypeError, ValueError) as error:
            raise ProviderRejected(
                PROVIDER, "token response lacks access_token/expires_in"
            ) from error
        api_domain = settings.zoho_api_domain or api_domain
        if not api_domain:
            raise ProviderRejected(PROVIDER, "token response has no api_domain")
        logger.info("zoho access token refreshed", extra={"expires_in": expires_in})
        return ZohoToken(
            access_token=access_token,
            api_domain=api_domain.rstrip("/"),
            # Whole seconds, as stored (the table's TTL attribute is an integer).
            expires_at=float(int(self.clock() + expires_in)),
            scope=str(body.get("scope") or "")[:2000],
        )


def _token_error(error: str, description: str) -> Exception:
    text = f"token refresh refused: {error}" + (f" ({description})" if description else "")
    if error.lower() in _RETRYABLE_ERRORS:
        return RetryableProviderError(PROVIDER, text, code=error)
    if error in _AUTH_ERRORS:
        return ProviderAuthError(PROVIDER, text, code=error)
    return ProviderRejected(PROVIDER, text, code=error)


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}

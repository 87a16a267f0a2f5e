"""The shared Zoho access token: one refresh per lifetime across instances, on moto DynamoDB,
against the stand-in's token endpoint (which enforces Zoho's ten-per-ten-minutes limit)."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest

from callflow.providers.errors import ProviderAuthError, RetryableProviderError
from callflow.providers.zoho.token import LOCK_KEY, TOKEN_KEY, ZohoToken, ZohoTokenProvider
from tests.unit.zoho_fixtures import (  # noqa: F401 - fixtures
    ZohoEnv,
    zoho_env_fixture,
    zoho_server_fixture,
    zoho_table_fixture,
)


class CountingTable:
    """The boto3 table with its reads counted (to see what the in-process memo saves)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.reads = 0

    def get_item(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self.table.get_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


class AtomicTable:
    """The boto3 table with each call serialised.

    DynamoDB evaluates a conditional write atomically; moto, running in this process, checks the
    condition and writes in two steps that threads can interleave. Serialising each call (not
    whole ``access_token()`` runs) restores the service's guarantee and nothing more.
    """

    lock = threading.Lock()

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.table, name)

        def serialised(**kwargs: Any) -> Any:
            with self.lock:
                return method(**kwargs)

        return serialised


def test_first_call_refreshes_and_stores_the_token_for_every_instance(zoho_env: ZohoEnv) -> None:
    first = zoho_env.tokens().access_token()
    second = zoho_env.tokens().access_token()  # another instance, empty memo

    assert second == first
    assert first.api_domain == zoho_env.base_url
    assert len(zoho_env.sandbox.token_requests()) == 1
    item = zoho_env.table.get_item(Key=TOKEN_KEY)["Item"]
    assert item["token"] == first.access_token and item["api_domain"] == zoho_env.base_url
    assert not zoho_env.table.get_item(Key=LOCK_KEY).get("Item"), "the lease was released"


def test_refresh_sends_the_refresh_token_grant(zoho_env: ZohoEnv) -> None:
    zoho_env.tokens().access_token()

    (request,) = zoho_env.sandbox.token_requests()
    assert request.method == "POST"
    assert request.form == {
        "grant_type": "refresh_token",
        "client_id": zoho_env.settings.zoho_client_id,
        "client_secret": "***",  # the stand-in redacts secrets in its log
        "refresh_token": "***",
    }


def test_warm_instance_answers_from_memory(zoho_env: ZohoEnv) -> None:
    table = CountingTable(zoho_env.table)
    tokens = ZohoTokenProvider(zoho_env.settings, table)
    tokens.access_token()
    reads = table.reads

    for _ in range(5):
        tokens.access_token()

    assert table.reads == reads


def test_token_is_replaced_five_minutes_before_expiry(zoho_env: ZohoEnv) -> None:
    now = [1_000_000.0]
    tokens = zoho_env.tokens(clock=lambda: now[0])
    first = tokens.access_token()
    assert first.expires_at == now[0] + 3600

    now[0] += 3600 - 301
    assert tokens.access_token() == first
    now[0] += 2  # now inside the five-minute margin
    second = tokens.access_token()

    assert second.access_token != first.access_token
    assert len(zoho_env.sandbox.token_requests()) == 2


def test_twenty_instances_at_once_send_exactly_one_refresh(zoho_env: ZohoEnv) -> None:
    table = AtomicTable(zoho_env.table)
    instances = [ZohoTokenProvider(zoho_env.settings, table, poll_seconds=0.02) for _ in range(20)]
    start = threading.Barrier(len(instances))
    got: list[ZohoToken] = []
    errors: list[BaseException] = []

    def run(tokens: ZohoTokenProvider) -> None:
        start.wait()
        try:
            got.append(tokens.access_token())
        except BaseException as error:  # reported below, not swallowed
            errors.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert errors == []
    assert len(got) == 20
    assert len({t.access_token for t in got}) == 1
    assert len(zoho_env.sandbox.token_requests()) == 1
    assert sum(t.refreshes for t in instances) == 1


def test_threads_of_one_instance_share_one_refresh(zoho_env: ZohoEnv) -> None:
    tokens = zoho_env.tokens()
    start = threading.Barrier(8)
    got: list[str] = []

    def run() -> None:
        start.wait()
        got.append(tokens.access_token().access_token)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert len(got) == 8 and len(set(got)) == 1
    assert len(zoho_env.sandbox.token_requests()) == 1


def test_invalidated_token_is_refreshed_once_for_all_instances(zoho_env: ZohoEnv) -> None:
    a, b = zoho_env.tokens(), zoho_env.tokens()
    old = a.access_token()
    assert b.access_token() == old

    a.invalidate(old.access_token)
    b.invalidate(old.access_token)  # the same 401 seen by another instance
    new_a = a.access_token()
    b.invalidate(old.access_token)  # a late report about the old token changes nothing
    new_b = b.access_token()

    assert new_a.access_token != old.access_token
    assert new_b == new_a
    assert len(zoho_env.sandbox.token_requests()) == 2


def test_invalidating_a_token_that_is_no_longer_cached_keeps_the_current_one(
    zoho_env: ZohoEnv,
) -> None:
    tokens = zoho_env.tokens()
    current = tokens.access_token()

    tokens.invalidate("1000.some-older-token")

    assert tokens.access_token() == current
    assert zoho_env.table.get_item(Key=TOKEN_KEY)["Item"]["stale"] is False
    assert len(zoho_env.sandbox.token_requests()) == 1


def test_an_expired_lease_is_taken_over(zoho_env: ZohoEnv) -> None:
    zoho_env.table.put_item(
        Item={**LOCK_KEY, "owner": "crashed-instance", "lease_until": Decimal("1.0")}
    )

    token = zoho_env.tokens().access_token()

    assert token.access_token
    assert len(zoho_env.sandbox.token_requests()) == 1


def test_waiting_for_a_live_lease_is_bounded_and_retryable(zoho_env: ZohoEnv) -> None:
    zoho_env.table.put_item(
        Item={**LOCK_KEY, "owner": "busy-instance", "lease_until": Decimal("9999999999")}
    )
    tokens = zoho_env.tokens(wait_seconds=0.2, poll_seconds=0.05)

    with pytest.raises(RetryableProviderError, match="waiting for another instance"):
        tokens.access_token()
    assert zoho_env.sandbox.token_requests() == []


def test_api_domain_setting_overrides_the_token_response(zoho_env: ZohoEnv) -> None:
    settings = zoho_env.settings.model_copy(update={"zoho_api_domain": "https://proxy.example"})

    token = ZohoTokenProvider(settings, zoho_env.table).access_token()

    assert token.api_domain == "https://proxy.example"


def test_wrong_client_secret_is_an_auth_error(zoho_env: ZohoEnv) -> None:
    settings = zoho_env.settings.model_copy(update={"zoho_client_secret": _secret("nope")})

    with pytest.raises(ProviderAuthError) as caught:
        ZohoTokenProvider(settings, zoho_env.table).access_token()
    assert caught.value.code == "invalid_client"
    assert "nope" not in str(caught.value)


def test_revoked_refresh_token_is_an_auth_error(zoho_env: ZohoEnv) -> None:
    settings = zoho_env.settings.model_copy(update={"zoho_refresh_token": _secret("1000.old")})

    with pytest.raises(ProviderAuthError) as caught:
        ZohoTokenProvider(settings, zoho_env.table).access_token()
    assert caught.value.code == "invalid_code"


def test_stand_in_enforces_ten_tokens_per_ten_minutes(zoho_env: ZohoEnv) -> None:
    now = [5_000_000.0]
    zoho_env.sandbox.clock = lambda: now[0]
    tokens = zoho_env.tokens()
    for _ in range(10):
        tokens.access_token()
        tokens.invalidate(tokens.access_token().access_token)

    with pytest.raises(RetryableProviderError) as caught:
        tokens.access_token()
    assert caught.value.code == "Access Denied"
    assert len(zoho_env.sandbox.tokens) == 10

    now[0] += 601  # the window has passed
    assert tokens.access_token().access_token


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)

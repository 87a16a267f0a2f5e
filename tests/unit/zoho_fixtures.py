"""Fixtures for the Zoho tests: the stand-in served by uvicorn on a free loopback port, a moto
DynamoDB table for the shared token cache, and clients wired to both.

Import the three ``*_fixture`` functions into a test module (pytest finds fixtures by module
namespace; the ``name=`` keeps the parameter names clear of the imports); there is deliberately no
shared conftest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws
from pydantic import SecretStr

from callflow.config import Settings
from callflow.providers.zoho.client import ZohoClient
from callflow.providers.zoho.token import ZohoTokenProvider
from callflow_dev.local.aws import create_table
from callflow_dev.local.servers import AsgiServer
from callflow_dev.sandbox.zoho import ZohoSandbox

CLIENT_ID = "1000.SANDBOXCLIENT"
CLIENT_SECRET = "sandbox-client-secret"
REFRESH_TOKEN = "1000.sandbox-refresh-token"
TABLE = "callflow-zoho-test"
REGION = "us-east-1"


@dataclass
class ZohoEnv:
    sandbox: ZohoSandbox
    base_url: str
    settings: Settings
    table: Any

    def tokens(self, **kwargs: Any) -> ZohoTokenProvider:
        """A token provider as one function instance would have it (own memo, own HTTP)."""
        http = httpx.Client(timeout=httpx.Timeout(5.0))
        return ZohoTokenProvider(self.settings, self.table, http, **kwargs)

    def client(self, tokens: ZohoTokenProvider | None = None) -> ZohoClient:
        return ZohoClient(
            self.settings, tokens or self.tokens(), httpx.Client(timeout=httpx.Timeout(5.0))
        )


@pytest.fixture(scope="module", name="zoho_server")
def zoho_server_fixture() -> Iterator[tuple[ZohoSandbox, str]]:
    """One served sandbox per test module (starting uvicorn costs more than a test)."""
    sandbox = ZohoSandbox(CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN)
    with AsgiServer(sandbox.app, name="zoho") as server:
        yield sandbox, server.url


@pytest.fixture(scope="module", name="zoho_table")
def zoho_table_fixture() -> Iterator[Any]:
    """One moto DynamoDB table per test module (creating it costs more than a test)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            patch.setenv(name, "testing")
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        with mock_aws():
            create_table(TABLE, REGION)
            yield boto3.resource("dynamodb", region_name=REGION).Table(TABLE)


@pytest.fixture(name="zoho_env")
def zoho_env_fixture(zoho_server: tuple[ZohoSandbox, str], zoho_table: Any) -> ZohoEnv:
    """A fresh sandbox state and an empty token cache for each test."""
    served, base_url = zoho_server
    served.reset()
    for item in zoho_table.scan(ConsistentRead=True)["Items"]:
        zoho_table.delete_item(Key={"pk": item["pk"]})
    settings = Settings(
        zoho_accounts_url=base_url,
        zoho_client_id=CLIENT_ID,
        zoho_client_secret=SecretStr(CLIENT_SECRET),
        zoho_refresh_token=SecretStr(REFRESH_TOKEN),
        table_name=TABLE,
    )
    return ZohoEnv(served, base_url, settings, zoho_table)

"""The API as the Lambda serves it, for tests: settings from the environment they set."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from callflow.config import reset_settings
from callflow.services import reset_services


@contextmanager
def api_client(
    monkeypatch: pytest.MonkeyPatch, environment: Mapping[str, str]
) -> Iterator[TestClient]:
    """A client of the FastAPI app with ``environment`` set; settings and clients are built
    afresh on entry and forgotten on exit, so no test sees another's."""
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    reset_services()
    from callflow_functions.api import app

    try:
        yield TestClient(app, raise_server_exceptions=False)
    finally:
        reset_settings()
        reset_services()

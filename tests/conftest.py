"""Suite-wide collection rules.

The providers' full API descriptions are not part of this repository (the extracted schemas in
``callflow_dev/schemas`` are). Where the full ones are laid out beside the checkout, as CI does
(``../shared/specs``, or ``$CALLFLOW_SPECS_DIR``), the drift check compares the two; a clone on its
own does not collect it, and says so in the header, so it runs every test it collects.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_SPECS = Path(os.environ.get("CALLFLOW_SPECS_DIR", REPO_ROOT.parent / "shared" / "specs"))

collect_ignore = [] if PUBLISHED_SPECS.is_dir() else ["contract/test_schema_drift.py"]


def pytest_report_header() -> str:
    if PUBLISHED_SPECS.is_dir():
        return f"schema drift check: against {PUBLISHED_SPECS}"
    return f"schema drift check: not collected ({PUBLISHED_SPECS} is absent)"


@pytest.fixture(autouse=True)
def _fresh_zoho_field_metadata() -> Iterator[None]:
    """Zoho field metadata is cached per process; each test starts without it (stand-ins are
    re-created and re-shaped between tests)."""
    from callflow.providers.zoho.client import FIELD_CACHE

    FIELD_CACHE.clear()
    yield
    FIELD_CACHE.clear()

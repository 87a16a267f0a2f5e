"""The extracted schemas still say what the providers' published descriptions say.

Collected only where the full descriptions are present (see ``tests/conftest.py``). A failure
means a provider's description changed: rerun
``python -m callflow_dev.schemas.extract --from <descriptions>`` and read the diff.
"""

from __future__ import annotations

import pytest

from callflow_dev.schemas.extract import HERE, SOURCES, Extract, extracted_text
from tests.conftest import PUBLISHED_SPECS


@pytest.mark.parametrize("spec", SOURCES, ids=[s.target for s in SOURCES])
def test_extracted_schema_matches_the_published_description(spec: Extract) -> None:
    committed = (HERE / spec.target).read_text(encoding="utf-8")
    assert committed == extracted_text(spec, PUBLISHED_SPECS), (
        f"{spec.target} drifted from {PUBLISHED_SPECS / spec.source}"
    )

"""The providers' API schemas the project relies on, extracted from their published descriptions.

Each file here is produced by :mod:`callflow_dev.schemas.extract` from one official description
(Infobip's and ElevenLabs' OpenAPI files, ElevenLabs' AsyncAPI file, Zoho's CRM v8 OpenAPI files):
only the operations and schemas the project uses, with their facts (names, types, enums, required,
formats, defaults) and without descriptions and examples. Each carries its source and date under
``x-callflow-extract``. The contract tests and the stand-ins check against these files, so a clone
of the repository is complete on its own; a drift test compares them with the full descriptions
where those are present.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def load(provider: str, name: str) -> dict[str, Any]:
    """The extracted schema document ``<provider>/<name>`` (e.g. ``infobip``, ``voice.json``)."""
    text = resources.files(__name__).joinpath(provider, name).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document

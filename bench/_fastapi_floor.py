"""The bare Powertools handler of ``bench/_bare_api.py`` with FastAPI imported first: the floor.

The API stays FastAPI on Mangum (the architecture names it), and ``import fastapi`` alone costs
several times the bare handler's whole cold start. This entry point pays exactly that on top of the
bare one, so ``bench/api_cold_start.py`` can report the lowest ratio any FastAPI version of the API
could reach (``fastapi_import_floor_ratio``) next to the measured one.
"""

from __future__ import annotations

import fastapi  # noqa: F401 - imported for its cost alone

from bench._bare_api import handler

__all__ = ["handler"]

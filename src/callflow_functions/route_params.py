"""Path parameters the routes read themselves, and the OpenAPI entries that declare them.

FastAPI builds a pydantic field for every typed route parameter and for every route's return
annotation (its response model), and each build imports ``pydantic.v1`` to refuse v1 models:
about 0.1 s of every cold start (``bench/api_cold_start.py``), for fields that would validate
nothing here (each route authenticates before it looks at its input, and checks the input
itself). So the routes take only the ``Request``, are declared with ``response_model=None``, read
their path parameters with :func:`path_param`, and declare them in the OpenAPI document with
:func:`path_parameters` (clients and the fuzz test read them there).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request


def path_param(request: Request, name: str) -> str:
    """The path segment ``name`` of the route's path (always present once the route matched)."""
    return str(request.path_params[name])


def path_parameters(*names: str) -> dict[str, Any]:
    """``openapi_extra`` for a route whose path has ``names`` (required strings)."""
    return {
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in names
        ]
    }

"""The campaign routes of the HTTP API: start, status, pause, resume, cancel, export.

Every route checks the operator's bearer token first (the same token as the session status
route), then the request. A client's mistake is a 4xx with a reason (422 for a request that
cannot run, 404 for no such campaign, 409 for an action the campaign's state does not allow);
AWS or Zoho unavailable is the app's 503.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from callflow.services import get_services
from callflow_functions.auth import check_bearer
from callflow_functions.route_params import path_param, path_parameters

router = APIRouter(tags=["campaigns"])

ACTIONS = ("pause", "resume", "cancel")


def _authorized(request: Request) -> None:
    from callflow.config import get_settings  # not at import (see callflow_functions.api)

    check_bearer(request.headers.get("authorization"), get_settings().status_api_token)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise HTTPException(400, "body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "body must be a JSON object")
    return body


def _source(raw: Any) -> Any:
    """``{"view": cvid}``, ``{"coql": criteria}`` or ``{"ids": [...] or "1,2,3"}`` as a
    :class:`callflow.campaigns.model.CampaignSource`."""
    from callflow.campaigns.model import CampaignSource

    if not isinstance(raw, dict) or len(raw) != 1:
        raise HTTPException(
            422, "source must be one of {view: cvid}, {coql: criteria}, {ids: [...]}"
        )
    [(kind, value)] = raw.items()
    if kind == "view":
        return CampaignSource(kind="view", cvid=str(value))
    if kind == "coql":
        return CampaignSource(kind="coql", criteria=str(value))
    if kind == "ids":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise HTTPException(422, "ids must be a list of record ids or a comma-separated string")
        return CampaignSource(kind="ids", ids=[str(v) for v in value])
    raise HTTPException(422, f"unknown source {kind!r}: view, coql or ids")


@router.post("/campaigns", status_code=202, response_model=None)
async def start(request: Request) -> JSONResponse:
    """Start a campaign: ``module``, ``source``, optional ``window``, ``max_concurrency`` (10),
    ``name`` and ``flow`` (the default flow without one). 202 with the campaign's id and status
    URL."""
    from callflow.campaigns.control import CampaignRefused, start_campaign
    from callflow.campaigns.model import CampaignWindow

    _authorized(request)
    body = await _body(request)
    concurrency = body.get("max_concurrency", 10)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool):
        raise HTTPException(422, "max_concurrency must be a whole number")
    name = body.get("name", "")
    flow = body.get("flow", "")
    if not isinstance(flow, str):
        raise HTTPException(422, "flow must be a flow's name")
    try:
        source = _source(body.get("source"))
        window = CampaignWindow.model_validate(body.get("window") or {})
    except ValidationError as error:
        raise HTTPException(422, _reason(error)) from None
    from callflow_functions.api import _in_thread

    try:
        campaign = await _in_thread(
            start_campaign,
            get_services(),
            str(body.get("module") or ""),
            source,
            window,
            concurrency,
            str(name) if isinstance(name, str) else "",
            flow,
        )
    except CampaignRefused as refused:
        raise HTTPException(422, refused.reason) from None
    return JSONResponse(
        {"campaign_id": campaign.campaign_id, "status_url": f"/campaigns/{campaign.campaign_id}"},
        status_code=202,
    )


@router.get(
    "/campaigns/{campaign_id}", response_model=None, openapi_extra=path_parameters("campaign_id")
)
async def status(request: Request) -> dict[str, Any]:
    """The campaign: definition, state, counters, enumeration progress."""
    from callflow.campaigns.control import view

    _authorized(request)
    return view(await _campaign(path_param(request, "campaign_id")))


@router.post(
    "/campaigns/{campaign_id}/{action}",
    response_model=None,
    openapi_extra=path_parameters("campaign_id", "action"),
)
async def act(request: Request) -> dict[str, Any]:
    """Pause, resume or cancel; 409 when the campaign's state does not allow it."""
    from callflow.campaigns import control
    from callflow.campaigns.store import CampaignNotFound, StateConflict
    from callflow_functions.api import _in_thread

    _authorized(request)
    campaign_id, action = path_param(request, "campaign_id"), path_param(request, "action")
    if action not in ACTIONS:
        raise HTTPException(404, f"no such action {action!r}: pause, resume or cancel")
    _check_id(campaign_id)
    try:
        campaign = await _in_thread(control.act, get_services(), campaign_id, action)
    except CampaignNotFound:
        raise HTTPException(404, "no such campaign") from None
    except StateConflict as conflict:
        raise HTTPException(409, str(conflict)) from None
    return control.view(campaign)


@router.get(
    "/campaigns/{campaign_id}/export",
    response_model=None,
    openapi_extra=path_parameters("campaign_id"),
)
async def export(request: Request) -> Response:
    """Each record's session, status, outcome, attempts, duration and fields written, as CSV."""
    from callflow.campaigns.report import export_csv
    from callflow_functions.api import _in_thread

    _authorized(request)
    campaign = await _campaign(path_param(request, "campaign_id"))
    text = await _in_thread(export_csv, get_services(), campaign.campaign_id)
    return Response(
        text,
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{campaign.campaign_id}.csv"'},
    )


def _check_id(campaign_id: str) -> None:
    from callflow.campaigns.model import CAMPAIGN_ID

    if not CAMPAIGN_ID.match(campaign_id):
        raise HTTPException(422, "malformed campaign id")


async def _campaign(campaign_id: str) -> Any:
    from callflow_functions.api import _in_thread

    _check_id(campaign_id)
    campaign = await _in_thread(get_services().campaigns.get, campaign_id)
    if campaign is None:
        raise HTTPException(404, "no such campaign")
    return campaign


def _reason(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid"))
    return f"{where}: {message}" if where else message

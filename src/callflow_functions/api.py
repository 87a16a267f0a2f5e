"""The HTTP API: the three provider webhooks, session status, campaigns and health.

One FastAPI app, served by Mangum on Lambda (behind an HTTP API) and by uvicorn locally. Routes stay
thin: authenticate first, parse and validate, call the library, shape the answer. Anything long is
the workflow's job, so every webhook answers well inside its provider's timeout. A client's mistake
is a 4xx with a reason, never a 500; a dependency that fails (AWS, a provider) is a 503 (or a 502
for a provider's refusal) with a reason, also never a 500.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mangum import Mangum
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callflow.aws import SecretsUnavailable, failure_reason
from callflow.flows.errors import FlowConfigError
from callflow.masking import mask
from callflow.models import is_session_id
from callflow.observability import bind_session, logger
from callflow.providers.errors import (
    ProviderError,
    RecordNotFound,
    RetryableProviderError,
    UnknownModule,
)
from callflow.services import get_services
from callflow.store import UnstorableValue
from callflow_functions.auth import (
    AuthError,
    check_basic,
    check_bearer,
    check_path_secret,
    check_shared_secret,
)
from callflow_functions.route_params import path_param, path_parameters

if TYPE_CHECKING:
    from callflow.config import Settings
    from callflow.providers.elevenlabs.client import (
        Conversation,
        SignedDelivery,
        VerifiedDelivery,
    )
    from callflow.providers.infobip.events import InfobipEvent


def get_settings() -> Settings:
    """The process's settings (:func:`callflow.config.get_settings`), the module imported by the
    first request that needs them: pydantic-settings costs ~0.1 s of imports on top of FastAPI's
    pydantic, and the health route needs no settings."""
    from callflow.config import get_settings as settings

    return settings()


app = FastAPI(
    title="callflow",
    version="0.1.0",
    description="Webhooks that connect Zoho CRM, Infobip and ElevenLabs to the call workflow.",
)


class BodyTooLarge(Exception):
    """Raised by :class:`BodyLimit` when the body read so far passes the limit."""

    pass


ELEVENLABS_WEBHOOK_PATH = "/webhooks/elevenlabs"
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods whose routes never read a body: no limit to apply, so no settings to read (health)."""


class BodyLimit:
    """Refuse bodies over ``max_body_bytes`` (413) without reading them whole into memory.

    The post-call webhook has its own, larger limit (``elevenlabs_max_body_bytes``): a long
    transcription passes 256 KB, and the limit is applied before the signature check, so a body
    cut by it could never be authenticated at all. Requests of a bodiless method pass untouched.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass HTTP requests through, answering 413 when the declared length or the body read so
        far exceeds the limit."""
        if scope["type"] != "http" or scope.get("method") in _BODILESS:
            await self.inner(scope, receive, send)
            return
        try:
            settings = get_settings()
        except SecretsUnavailable as error:  # outside the app: its exception handlers miss it
            response = await _secrets_unavailable(None, error)
            await response(scope, receive, send)
            return
        limit = (
            settings.elevenlabs_max_body_bytes
            if scope.get("path") == ELEVENLABS_WEBHOOK_PATH
            else settings.max_body_bytes
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(scope, receive, send, limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
            return message

        try:
            await self.inner(scope, limited, send)
        except BodyTooLarge:
            await _too_large(scope, receive, send, limit)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = JSONResponse({"detail": f"body larger than {limit} bytes"}, status_code=413)
    await response(scope, receive, send)


app.add_middleware(BodyLimit)


@app.exception_handler(AuthError)
async def _auth_error(request: Request, error: AuthError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="callflow"'} if error.basic else None
    return JSONResponse({"detail": error.reason}, status_code=error.status_code, headers=headers)


class BadRequest(Exception):
    """A request refused with ``status_code``, answered as ``{"detail": reason}``."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


@app.exception_handler(BadRequest)
async def _bad_request(request: Request, error: BadRequest) -> JSONResponse:
    return JSONResponse({"detail": error.reason}, status_code=error.status_code)


@app.exception_handler(UnstorableValue)
async def _unstorable(request: Request, error: UnstorableValue) -> JSONResponse:
    """A value in the request that the table cannot hold: the sender's mistake, not ours."""
    return JSONResponse({"detail": f"a value in the body cannot be stored: {error.reason}"}, 400)


@app.exception_handler(ClientError)
@app.exception_handler(BotoCoreError)
async def _aws_error(request: Request, error: Exception) -> JSONResponse:
    """AWS (DynamoDB, Step Functions) failed or could not be reached: 503, try again later.

    Routes handle the AWS error codes they expect (a failed condition, a stale task token) before
    this; everything else lands here. The reason names the operation and the error code, or the
    kind of connection failure, never the endpoint or the request."""
    reason = failure_reason(error)
    route = getattr(request.scope.get("route"), "path", "")  # the template: the Infobip path
    logger.warning("aws error", extra={"reason": reason, "route": route})  # has a secret in it
    return JSONResponse({"detail": f"AWS is unavailable: {reason}"}, status_code=503)


@app.exception_handler(SecretsUnavailable)
async def _secrets_unavailable(request: Request | None, error: SecretsUnavailable) -> JSONResponse:
    """The settings' secrets could not be read from Secrets Manager: 503, try again later."""
    logger.warning("secrets unavailable", extra={"reason": error.reason})
    return JSONResponse({"detail": f"Secrets Manager is unavailable: {error.reason}"}, 503)


@app.exception_handler(FlowConfigError)
async def _flow_config_error(request: Request | None, error: FlowConfigError) -> JSONResponse:
    """A flow file does not validate: nothing is served until it is fixed (503). The file, the
    line and the mistake go to the log, not to the caller."""
    logger.error("invalid flow configuration", extra={"problems": error.problems})
    return JSONResponse({"detail": "the flow configuration is invalid (see the logs)"}, 503)


@app.exception_handler(ProviderError)
async def _provider_error(request: Request, error: ProviderError) -> JSONResponse:
    """A provider we depend on failed: tell the caller to try again later (503) when it might
    help, else that the upstream refused (502). Never the client's fault, never a bare 500."""
    logger.warning("provider error", extra={"provider": error.provider, "status": error.status})
    status = 503 if isinstance(error, RetryableProviderError) else 502
    return JSONResponse({"detail": f"{error.provider} is unavailable: {error.message}"}, status)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(400, "body is not valid JSON") from None
    except RecursionError:  # the parser recurses once per nested array or object
        raise BadRequest(400, "body nested too deep") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "body must be a JSON object")
    return body


# --- Zoho trigger ---------------------------------------------------------------------------


@app.post("/webhooks/zoho", status_code=202, tags=["webhooks"], response_model=None)
async def zoho_trigger(request: Request) -> JSONResponse:
    """Called by a Zoho CRM workflow rule: call the person on this record.

    Takes ``module`` and ``record_id`` (``id`` also works) from a JSON body, a form, a multipart
    form or URL parameters, as a Zoho webhook may send any of them (see
    :mod:`callflow_functions.trigger_body`); the shared secret is checked before any of it is read.
    ``flow`` (or the ``X-Callflow-Flow`` header) names the flow; without one the default flow
    runs. 202 with the session; 404 for an unknown record, 422 for an unknown module or flow, 409
    while another session holds the record; 503 when AWS or Zoho is unavailable (502 when Zoho
    refuses). A trigger that fails undoes its claim and session first (see
    :func:`callflow.lifecycle.trigger.start_session`), so sending it again later is safe.
    """
    settings = get_settings()
    check_shared_secret(request.headers.get("x-callflow-secret"), settings.zoho_trigger_secret)
    from callflow_functions.trigger_body import TriggerBodyError, trigger_fields

    try:
        fields = await trigger_fields(
            request.headers.get("content-type", ""), await request.body(), request.query_params
        )
    except TriggerBodyError as error:
        raise BadRequest(400, error.reason) from None
    module, record_id = _validated_trigger(fields)
    flow = _trigger_flow(fields, request.headers.get("x-callflow-flow"))

    from callflow.lifecycle.trigger import TriggerRefused, start_session

    try:
        session = await _in_thread(start_session, get_services(), module, record_id, flow)
    except RecordNotFound:
        raise BadRequest(404, f"no {module} record with id {record_id}") from None
    except UnknownModule:
        raise BadRequest(422, f"no such Zoho module: {module}") from None
    except TriggerRefused as refused:
        return JSONResponse(
            {"detail": refused.reason, "session_id": refused.session_id},
            status_code=refused.status_code,
        )
    return JSONResponse(
        {"session_id": session.session_id, "status_url": f"/sessions/{session.session_id}"},
        status_code=202,
    )


def _trigger_flow(fields: dict[str, Any], header: str | None) -> str:
    """The flow the trigger names: its ``flow`` field, else the ``X-Callflow-Flow`` header, else
    none (the default flow). Whether such a flow exists is the trigger's check (422)."""
    from callflow.flows.model import FLOW_NAME

    flow = fields.get("flow", header or "")
    if not isinstance(flow, str) or (flow and not FLOW_NAME.match(flow)):
        raise BadRequest(422, "flow must be a flow name (lower-case letters, digits, _ and -)")
    return flow


def _validated_trigger(fields: dict[str, Any]) -> tuple[str, str]:
    from callflow.lifecycle.trigger import MODULE_PATTERN, RECORD_ID_PATTERN

    module = fields.get("module")
    record_id = fields.get("record_id", fields.get("id"))
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        record_id = str(record_id)
    if not isinstance(module, str) or not MODULE_PATTERN.match(module):
        raise BadRequest(422, "module must be a Zoho module API name such as Leads")
    if not isinstance(record_id, str) or not RECORD_ID_PATTERN.match(record_id):
        raise BadRequest(422, "record_id must be a Zoho record id (digits)")
    return module, record_id


# --- Infobip events -------------------------------------------------------------------------


@app.post(
    "/webhooks/infobip/{secret}",
    tags=["webhooks"],
    response_model=None,
    openapi_extra=path_parameters("secret"),
)
async def infobip_events(request: Request) -> dict[str, str]:
    """Call events from the Infobip subscription (Basic auth + secret path segment).

    200 when the event was applied, was a duplicate, or is not for a callflow call; 400 when the
    body is not an Infobip call event. A 503 (AWS or Infobip unavailable; 502 when Infobip refused
    a request the event needed) means the event was not applied, or only partly, and the caller
    must deliver it again; Infobip may redeliver it (the stand-in makes up to three attempts when
    it gets a 5xx or 429). Applying an event twice is harmless, and a redelivery finishes the
    steps a failed one can leave half done (the dialog after CALL_ESTABLISHED, resuming the
    workflow after CALL_FINISHED / CALL_FAILED). Each failure is logged at error level with the
    event's type, call id, session and attempt, so an event never redelivered is still on record.
    """
    settings = get_settings()
    check_basic(
        request.headers.get("authorization"),
        settings.infobip_webhook_username,
        settings.infobip_webhook_password,
    )
    check_path_secret(path_param(request, "secret"), settings.infobip_webhook_path_secret)
    body = _json_object(await request.body())

    from callflow.lifecycle.call_events import handle
    from callflow.providers.infobip.events import InvalidEvent, parse_event

    try:
        event = parse_event(body)
    except InvalidEvent as error:
        raise BadRequest(400, f"not an Infobip call event: {error}") from None
    if event.session_id:
        bind_session(event.session_id)
    try:
        result = await _in_thread(handle, get_services(), event)
    except (ClientError, BotoCoreError, ProviderError) as error:
        logger.error(
            "infobip event not applied; it must be delivered again",
            extra={
                "type": event.type,
                "call_id": event.call_id,
                "attempt": event.attempt,
                "error": type(error).__name__,
            },
        )
        raise
    logger.info("infobip event", extra={"type": event.type, "result": result})
    if event.session_id and event.attempt is not None:
        await _in_thread(_keep_event, event, result)
    return {"result": result}


def _keep_event(event: InfobipEvent, result: str) -> None:
    """Put the event as received on the session's timeline, after it was applied: what
    ``callflow doctor --test-call`` reports (the order, the legs, Infobip's own timestamps).

    Best effort: the event is applied already, so a failed write is logged, not redelivered.
    """
    detail = {
        "call_id": event.call_id,
        "parent_call_id": event.parent_call_id,
        "dialog_id": event.dialog_id,
        "state": event.state,
        "error": event.error_name,
        "reason": event.reason[:200],
        "timestamp": event.timestamp,
        "attempt": event.attempt,
        "result": result[:120],
    }
    from callflow.providers.infobip.events import TIMELINE_PREFIX

    try:
        get_services().store.log(
            event.session_id,
            f"{TIMELINE_PREFIX}{event.type}"[:80],
            {key: value for key, value in detail.items() if value not in ("", None)},
        )
    except (ClientError, BotoCoreError) as error:
        logger.warning(
            "infobip event not kept on the timeline",
            extra={"type": event.type, "error": type(error).__name__},
        )


# --- ElevenLabs post-call webhook -----------------------------------------------------------


@app.post(ELEVENLABS_WEBHOOK_PATH, tags=["webhooks"], response_model=None)
async def elevenlabs_post_call(request: Request) -> dict[str, str]:
    """The post-call webhook (HMAC-signed). Unknown conversations are other agents' calls in the
    same workspace: acknowledged and ignored. A delivery already accepted (same signature, within
    its freshness window) is acknowledged as a duplicate and not acted on again; not with a 4xx,
    as ElevenLabs disables a webhook whose deliveries keep failing.

    Only ``post_call_transcription`` is acted on. Every other type (``post_call_audio``, whose
    body is the whole call's audio; ``call_initiation_failure``; a type added later) is answered
    200 once the signature checks out, read from the start of the body without parsing the rest.

    503 when AWS is unavailable: the results are not stored, and the workflow, which polls the
    conversation when no webhook came in time, fetches them itself."""
    from callflow.providers.elevenlabs.client import leading_type, parse_post_call

    raw = await request.body()
    signed = _verified_signature(request.headers.get("elevenlabs-signature"), raw)
    peeked = leading_type(raw)
    if peeked is not None and peeked != "post_call_transcription":
        return {"result": f"ignored: {peeked}"}
    delivery = _verified_delivery(signed, raw)
    try:
        event = parse_post_call(delivery.payload)
    except ValueError as error:
        raise BadRequest(400, f"not an ElevenLabs post-call event: {error}") from None
    if event.type != "post_call_transcription":
        return {"result": f"ignored: {event.type}"}
    store = get_services().store
    expires_at = delivery.timestamp + get_settings().elevenlabs_webhook_max_age_seconds
    if not await _in_thread(store.first_delivery, delivery.signature, expires_at):
        logger.info("post-call delivery seen before; not acted on again")
        return {"result": "duplicate delivery"}
    try:
        return await _store_post_call(event.conversation)
    except Exception:
        # Not handled: a resend of this delivery must be handled, not answered as a duplicate.
        await _in_thread(store.forget_delivery, delivery.signature)
        raise


def _verified_signature(signature: str | None, raw: bytes) -> SignedDelivery:
    """The delivery's timestamp and signature once its HMAC and freshness are checked
    (401/503 otherwise); the body is not parsed."""
    from callflow.providers.elevenlabs.client import WebhookSignatureError, verify_signature

    settings = get_settings()
    secret = settings.elevenlabs_webhook_secret.get_secret_value()
    if not secret:
        raise AuthError(503, "the ElevenLabs webhook secret is not configured on this server")
    try:
        return verify_signature(
            raw, signature, secret, max_age_s=settings.elevenlabs_webhook_max_age_seconds
        )
    except WebhookSignatureError as error:
        raise AuthError(401, f"signature rejected: {error}") from None


def _verified_delivery(signed: SignedDelivery, raw: bytes) -> VerifiedDelivery:
    """The signed delivery with its body parsed (400 when it is not a JSON object)."""
    from callflow.providers.elevenlabs.client import WebhookPayloadError, parse_signed

    try:
        return parse_signed(signed, raw)
    except WebhookPayloadError as error:
        raise BadRequest(400, f"signed body is not a JSON object: {error}") from None


async def _store_post_call(conversation: Conversation) -> dict[str, str]:
    """Keep the conversation's results on its session, if it is one of ours and its own."""
    from callflow.lifecycle.analysis import ForeignConversation, store_results

    services = get_services()
    session_id = await _in_thread(
        services.store.session_for_conversation, conversation.conversation_id
    )
    if session_id is None:
        return {"result": "ignored: unknown conversation"}
    bind_session(session_id)
    try:
        stored = await _in_thread(
            store_results, services, session_id, conversation.results(), source="webhook"
        )
    except ForeignConversation:
        return {"result": "ignored: not the session's conversation"}
    return {"result": "stored" if stored else "duplicate"}


# --- status and health ----------------------------------------------------------------------

_PRIVATE_FIELDS = {
    "task_token",
    "analysis_task_token",
    "bridge_token_hash",
    "media_claimed_hash",
    "agent_signed_url",
}


@app.get(
    "/sessions/{session_id}",
    tags=["sessions"],
    response_model=None,
    openapi_extra=path_parameters("session_id"),
)
async def session_status(request: Request) -> dict[str, Any]:
    """A call session's state, timeline and results (bearer token)."""
    check_bearer(request.headers.get("authorization"), get_settings().status_api_token)
    session_id = path_param(request, "session_id")
    if not is_session_id(session_id):
        raise BadRequest(422, "malformed session id")
    session = await _in_thread(get_services().store.get, session_id)
    if session is None:
        raise BadRequest(404, "no such session")
    view: dict[str, Any] = session.model_dump(mode="json", exclude=_PRIVATE_FIELDS)
    view["phone"] = mask(session.phone)
    view["phone_raw"] = mask(session.phone_raw)
    view["phone_numbers"] = [
        {**entry, "raw": mask(entry.get("raw", ""))} for entry in session.phone_numbers
    ]
    # Every number the record gave: the configured field and the flow's phone fields.
    phone_fields = {
        get_settings().zoho_phone_field,
        *(n.get("field") for n in session.phone_numbers),
    }
    for phone_field in phone_fields:
        if phone_field and view["record"].get(phone_field):
            view["record"][phone_field] = mask(str(view["record"][phone_field]))
    return view


@app.get("/health", tags=["health"], response_model=None)
async def health() -> dict[str, str]:
    """Liveness: answers ``ok`` without touching any dependency."""
    return {"status": "ok"}


async def _in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Blocking provider and DynamoDB calls leave the event loop free (uvicorn); on Lambda one
    request runs at a time, so the thread costs nothing that matters."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args, **kwargs)


from callflow_functions.campaign_routes import router as campaign_router  # noqa: E402

app.include_router(campaign_router)

#: What the routes import on first use. Under SnapStart (``api_snap_start`` in the stage) they are
#: imported during initialisation instead, so the snapshot holds them and a restored container
#: does not pay for them again. Nothing here builds a client or reads a secret: a connection made
#: before the snapshot is dead after a restore, and a secret read then would be frozen into every
#: container restored from it (docs/operations.md, "Cold starts and SnapStart").
ROUTE_MODULES = (
    "boto3",
    "callflow.config",
    "callflow.store",
    "callflow.lifecycle.call_events",
    "callflow.lifecycle.media_configs",
    "callflow.lifecycle.trigger",
    "callflow.lifecycle.analysis",
    "callflow.providers.infobip.events",
    "callflow.providers.elevenlabs.client",
    "callflow.campaigns.control",
    "callflow.campaigns.report",
    "callflow_functions.trigger_body",
    "starlette.concurrency",
)


def import_route_modules() -> None:
    """Import :data:`ROUTE_MODULES` (for the snapshot: see there)."""
    import importlib

    for name in ROUTE_MODULES:
        importlib.import_module(name)


if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
    import_route_modules()

handler = Mangum(app, lifespan="off")

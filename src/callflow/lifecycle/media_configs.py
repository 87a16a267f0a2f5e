"""Per-session media routing: a media-stream config per call attempt whose URL carries the ids.

In the ``shared`` routing (the default) every dialog goes to one WEBSOCKET_ENDPOINT config and the
bridge finds the session in whatever Infobip shows on the socket, which nothing documents. In the
``per-session`` routing (``CALLFLOW_INFOBIP_MEDIA_ROUTING=per-session``) the attempt gets its own
config when the call is placed, its URL the bridge's public URL plus ``/<session id>/<token>``:
the upgrade request's path, which the bridge reads (``callflow_bridge.protocol``), carries the
identifiers whatever Infobip does with the frames. Creating it at placing keeps a round trip to
Infobip off the path from "answered" to the agent's first words.

A config lives as long as its attempt: it is deleted on every path that ends one (the call-end
event, a failed dialog, a call that could not be placed, reconciliation, and the writeback as a
last, idempotent sweep). A deletion that fails, or a config whose creation answer was lost, is not
tracked in the table: config names carry the session and the creation time
(``callflow-s-<session>-<unix>``), and :func:`sweep`, run on a schedule, deletes every such config
older than a call can live.

Infobip allows 100 config creations a minute per account. Every Lambda takes a slot of a shared
counter (:meth:`callflow.store.SessionStore.take_slot`) before creating one; with none left (or
when Infobip answers 429 all the same: the account's other users count too) the attempt uses the
shared config when one is configured, or fails with a retryable error the workflow's retry policy
handles.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from callflow.config import Settings
from callflow.models import hash_token, new_bridge_token
from callflow.observability import logger
from callflow.providers.errors import ProviderError, RetryableProviderError
from callflow.providers.infobip.http import PROVIDER, InvalidInfobipRequest
from callflow.services import Services

NAME_PREFIX = "callflow-s-"
"""What every per-session config's name starts with; the sweeper touches no other config."""
LIMIT_NAME = "infobip-media-configs"
"""The shared counter's name in the table."""
LIMIT_WINDOW_SECONDS = 60
BUDGET_EXHAUSTED = "MEDIA_CONFIG_BUDGET_EXHAUSTED"
"""The error code of an attempt that found no config creation left and no shared config."""


def per_session(settings: Settings) -> bool:
    """Whether the deployment routes each attempt's media through its own config."""
    return settings.infobip_media_routing == "per-session"


def config_name(session_id: str, created: int) -> str:
    """The config's name: the prefix, the session and the unix time it was made (at most 86
    characters, inside Infobip's 128)."""
    return f"{NAME_PREFIX}{session_id}-{created}"


def created_at(name: str) -> int | None:
    """The creation time a per-session config's name carries; ``None`` for any other name."""
    if not name.startswith(NAME_PREFIX):
        return None
    _, _, stamp = name.rpartition("-")
    return int(stamp) if stamp.isdigit() else None


def media_url(settings: Settings, session_id: str, token: str) -> str:
    """The bridge's public URL (its secret path kept) plus ``/<session id>/<token>``."""
    base = settings.bridge_public_url.strip().rstrip("/")
    if not base:
        raise InvalidInfobipRequest(
            "CALLFLOW_BRIDGE_PUBLIC_URL is not set (per-session media routing needs it)"
        )
    return f"{base}/{session_id}/{token}"


@dataclass(frozen=True)
class AttemptMedia:
    """The attempt's own config and the hash of the token its URL carries."""

    config_id: str
    token_hash: str


def open_for_attempt(services: Services, session_id: str) -> AttemptMedia | None:
    """Create the attempt's config with a fresh bridge token in its URL.

    ``None`` when the minute's creations are used up and a shared config is configured: the
    attempt then goes the shared way (the token is made with the dialog, as there). With no
    shared config to fall back on, a :class:`RetryableProviderError` (429) fails the placing, and
    the workflow retries it with backoff.
    """
    settings = services.settings
    limit = settings.infobip_config_creations_per_minute
    shared = bool(settings.infobip_media_stream_config_id)
    if not services.store.take_slot(LIMIT_NAME, limit, LIMIT_WINDOW_SECONDS):
        if shared:
            logger.warning(
                "per-session media-stream configs used up for this minute; "
                "this attempt uses the shared config",
                extra={"limit_per_minute": limit},
            )
            return None
        raise RetryableProviderError(
            PROVIDER,
            f"the {limit} per-session media-stream config creations of this minute are used up "
            "and CALLFLOW_INFOBIP_MEDIA_STREAM_CONFIG_ID names no shared config to fall back on",
            status=429,
            code=BUDGET_EXHAUSTED,
        )
    token = new_bridge_token()
    try:
        config_id = services.infobip.create_media_stream_config(
            config_name(session_id, int(time.time())),
            media_url(settings, session_id, token),
            settings.infobip_sample_rate,
        )
    except RetryableProviderError as error:
        # Infobip's own limit (the account's other users count too): the same way out as ours.
        if error.status != 429 or not shared:
            raise
        logger.warning(
            "Infobip refused a media-stream config (429); this attempt uses the shared config"
        )
        return None
    return AttemptMedia(config_id, hash_token(token))


def close(services: Services, session_id: str, config_id: str) -> bool:
    """Delete the attempt's config (idempotent: one Infobip no longer knows counts as deleted)
    and clear it from the session; True when it is gone.

    A deletion that fails is logged and left on the session, so a later end path tries again,
    and :func:`sweep` deletes it in the end: a call's ending never fails over a config."""
    if not config_id:
        return False
    try:
        services.infobip.delete_media_stream_config(config_id)
    except (ProviderError, InvalidInfobipRequest) as error:
        logger.warning(
            "could not delete the attempt's media-stream config; the sweeper will",
            extra={"config_id": config_id, "error": str(error)},
        )
        return False
    services.store.set_fields(
        session_id,
        {"media_config_id": ""},
        only_if_equal={"media_config_id": config_id},
        event="media config deleted",
        detail={"config_id": config_id},
    )
    return True


def max_age_seconds(settings: Settings) -> int:
    """How old a per-session config can be while its call may still use it: the call's connect
    timeout and max duration, plus the configured margin."""
    return (
        settings.infobip_connect_timeout
        + settings.infobip_max_duration
        + settings.infobip_config_sweep_margin_seconds
    )


def sweep(services: Services, now: float | None = None) -> dict[str, int]:
    """Delete every per-session config of the account older than :func:`max_age_seconds`.

    Only names made by :func:`config_name` are considered, so configs of other deployments'
    shared routing and of other applications on the account are never touched. A deletion that
    fails is counted and left for the next run."""
    cutoff = (time.time() if now is None else now) - max_age_seconds(services.settings)
    deleted = failed = kept = 0
    for config in services.infobip.list_media_stream_configs():
        created = created_at(str(config.get("name", "")))
        config_id = config.get("id")
        if created is None or not isinstance(config_id, str):
            continue
        if created >= cutoff:
            kept += 1
            continue
        try:
            services.infobip.delete_media_stream_config(config_id)
        except (ProviderError, InvalidInfobipRequest) as error:
            failed += 1
            logger.warning(
                "could not sweep a media-stream config",
                extra={"config_id": config_id, "error": str(error)},
            )
            continue
        deleted += 1
    logger.info(
        "media-stream configs swept", extra={"deleted": deleted, "failed": failed, "kept": kept}
    )
    return {"deleted": deleted, "failed": failed, "kept": kept}

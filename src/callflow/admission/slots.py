"""Which pools a call needs, and giving a session's slots back.

Every path on which a call attempt ends releases its slots: the call-end event, the retry
planner, the error path, the writeback, and (for an execution stopped outside the workflow's own
Catch) the execution-status rule. Releases are idempotent, so the paths need not know about
each other; a release lost on all of them still ends with the lease.
"""

from __future__ import annotations

from callflow.admission.pools import Pool, holder_id
from callflow.config import Settings
from callflow.models import Session
from callflow.observability import logger
from callflow.services import Services

#: The bridge's pool, one per deployment.
BRIDGE_POOL = "bridge"


def configured_pools(settings: Settings) -> list[Pool]:
    """The pools every call takes a slot in: the agent plan's and the bridge's (a pool whose
    capacity is 0 is left out)."""
    pools = [
        Pool(f"agent#{settings.agent_pool_name}", settings.agent_concurrency),
        Pool(BRIDGE_POOL, settings.bridge_capacity),
    ]
    return [pool for pool in pools if pool.capacity > 0]


def release(services: Services, session: Session) -> None:
    """Give back the slots of the session's current attempt: the configured pools, and any
    other pool the session recorded taking (a pool renamed since)."""
    pools = {pool.name: pool for pool in configured_pools(services.settings)}
    for name in session.slots:
        pools.setdefault(name, Pool(name, 0))
    if not pools or session.attempt < 1:
        return
    services.pools.release(list(pools.values()), holder_id(session.session_id, session.attempt))


def release_quietly(services: Services, session: Session) -> None:
    """:func:`release` where a failure must not fail the caller (a provider's webhook): it is
    logged, and the workflow's own end paths release again."""
    try:
        release(services, session)
    except Exception:
        logger.exception("could not release the call's admission slots; the workflow will")

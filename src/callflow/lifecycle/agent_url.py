"""The agent conversation's signed URL, fetched when the call is placed, not when it is answered.

Once the person answers, every round trip before the agent's first words is time they spend in
silence. ElevenLabs accepts a signed URL for 15 minutes to *start* a conversation, and a call rings
for well under that, so the place-call task fetches one and stores it on the session
(``agent_signed_url``, with the time it was fetched); the bridge uses it while it is fresh enough
(``bridge_signed_url_max_age_seconds``) and fetches a new one otherwise, or when ElevenLabs refuses
the stored one (:func:`callflow_bridge.agent_leg.usable_signed_url`).

Prefetching is an optimisation, never a reason for a call not to be placed: any failure leaves
the fields empty and the bridge fetches one as it did before. The URL is a secret (it starts a
conversation on the account): it is neither logged nor shown by the status route.
"""

from __future__ import annotations

import time
from typing import Any

from callflow.observability import logger
from callflow.providers.elevenlabs.client import ElevenLabsConfigError
from callflow.providers.errors import ProviderError
from callflow.services import Services


def prefetched_fields(services: Services, agent_id: str = "") -> dict[str, Any]:
    """The session fields that carry a freshly fetched signed URL for ``agent_id`` (the session's
    flow's agent; empty: the configured one), empty ones when ElevenLabs could not give one (so a
    previous attempt's URL is not used for this one)."""
    try:
        url = services.elevenlabs.get_signed_url(
            agent_id or services.settings.elevenlabs_agent_id or None
        )
    except (ProviderError, ElevenLabsConfigError) as error:
        logger.warning(
            "signed URL not prefetched; the bridge will fetch one when the call is answered",
            extra={"error": type(error).__name__},
        )
        return {"agent_signed_url": "", "agent_signed_url_at": 0}
    return {"agent_signed_url": url, "agent_signed_url_at": int(time.time())}

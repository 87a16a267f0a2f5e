"""Stand-in variants: one named way each unverified provider behaviour could really be.

The project has never met the real providers, so where a behaviour cannot be checked from here
(where Infobip puts the session's identifiers on the media socket, the order of its events, an
unknown ElevenLabs enum value, ...) the stand-ins can play each plausible version of it, and the
project must cope with every one. A :class:`Variant` names one version: the stand-in attributes
it sets, the settings it needs (for a behaviour the project handles by a setting), and what the
call must end as under it.

``callflow demo --list-variants`` prints the names; ``callflow demo --variant NAME`` (repeatable)
runs a scenario under them; the end-to-end suite runs the answered scenario under each one.

Variants apply to a running stack and are undone after the run, so one stack serves them all.
Each area keeps its own list below.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callflow.models import Outcome, Session, SessionStatus

if TYPE_CHECKING:
    from callflow_dev.local.stack import LocalStack


@dataclass(frozen=True)
class Variant:
    """One version of an unverified provider behaviour, as the stand-ins play it."""

    name: str
    description: str
    stand_ins: Mapping[str, Any] = field(default_factory=dict)
    """Attributes set on the running stack, by dotted path from it (``"infobip.x": value``),
    restored after the run."""
    env: Mapping[str, str] = field(default_factory=dict)
    """``CALLFLOW_*`` settings the project needs under this behaviour, set for the run (read by
    the API and the workflow tasks; the bridge accepts every mode without a setting)."""
    reaches_agent: bool = True
    """Whether the person must end up talking to the agent under this variant."""
    outcome: Outcome | None = None
    """The outcome the session must end with; ``None``: answered when it reaches the agent."""
    doctor: Mapping[str, str] = field(default_factory=dict)
    """What ``callflow doctor --test-call`` must say of a relied-on behaviour under this variant:
    its title (see :mod:`callflow_dev.doctor.assumptions`) -> ``held``, ``not held`` or ``not
    seen``. A behaviour not listed must not be judged ``not held``."""

    def expected_outcome(self) -> Outcome | None:
        """The outcome the session must have; ``None`` when any is acceptable."""
        if self.outcome is not None:
            return self.outcome
        return Outcome.ANSWERED if self.reaches_agent else None


# --- Infobip's media WebSocket: where the session's identifiers arrive -----------------------
INFOBIP_MEDIA: list[Variant] = [
    Variant(
        "infobip-ids-top-level",
        "Infobip flattens the child call's customData into the websocket:connected frame "
        "(what integrators report)",
        stand_ins={"infobip.media_ids_in": "top-level"},
    ),
    Variant(
        "infobip-ids-nested-customdata",
        "the websocket:connected frame carries customData as a nested object",
        stand_ins={"infobip.media_ids_in": "customData"},
    ),
    Variant(
        "infobip-ids-identifier",
        "only the WEBSOCKET endpoint's identifier reaches the socket, as a key of the "
        "websocket:connected frame",
        stand_ins={"infobip.media_ids_in": "identifier"},
    ),
    Variant(
        "infobip-ids-query",
        "customData arrives as the upgrade request's query string",
        stand_ins={"infobip.media_ids_in": "query"},
    ),
    Variant(
        "infobip-ids-headers",
        "customData arrives as headers of the upgrade request",
        stand_ins={"infobip.media_ids_in": "headers"},
    ),
    Variant(
        "infobip-ids-nowhere",
        "nothing on the socket names the session (Pipecat's and Infobip's samples read "
        "nothing): the bridge refuses the stream, keeping its shape; the person hears nobody",
        stand_ins={"infobip.media_ids_in": "nowhere"},
        reaches_agent=False,
        outcome=Outcome.AGENT_UNAVAILABLE,
        doctor={"The media stream carries the session's identifiers": "not held"},
    ),
    Variant(
        "infobip-ids-nowhere-per-session",
        "nothing on the socket names the session, and per-session routing makes that moot: "
        "each attempt's own media-stream config carries the ids in its URL path",
        stand_ins={"infobip.media_ids_in": "nowhere"},
        env={"CALLFLOW_INFOBIP_MEDIA_ROUTING": "per-session"},
        doctor={"The media stream carries the session's identifiers": "held"},
    ),
]

# --- Infobip events: orders, legs, failures ------------------------------------------------
_DETECTION = {"CALLFLOW_INFOBIP_MACHINE_DETECTION": "true"}
INFOBIP_EVENTS: list[Variant] = [
    Variant(
        "infobip-detection-before-established",
        "MACHINE_DETECTION_FINISHED (HUMAN) arrives before CALL_ESTABLISHED; the dialog is "
        "created once both are known",
        stand_ins={"infobip.detection_before_established": True},
        env=_DETECTION,
    ),
    Variant(
        "infobip-websocket-leg-finishes-first",
        "the WebSocket leg's CALL_FINISHED (same customData, its own call id and duration) "
        "arrives before the phone call's; only the phone leg decides",
        stand_ins={"infobip.websocket_leg_finishes_first": True},
    ),
    Variant(
        "infobip-detection-failed",
        "answering-machine detection fails (MACHINE_DETECTION_FAILED); the policy 'connect' "
        "treats the call as a person's",
        stand_ins={"infobip.machine_detection_fails": "TIMEOUT"},
        env={**_DETECTION, "CALLFLOW_MACHINE_DETECTION_FAILED": "connect"},
    ),
    Variant(
        "infobip-dialog-failed",
        "every dialog to the bridge fails (DIALOG_FAILED): hung up, retried, and written back "
        "as answered-but-nobody-spoke with the reason",
        stand_ins={"infobip.fail_dialogs": "the WebSocket endpoint refused the connection"},
        reaches_agent=False,
        outcome=Outcome.AGENT_UNAVAILABLE,
    ),
    Variant(
        "infobip-dialog-create-answer-lost",
        "Infobip creates the dialog but its answer is lost (500 after the work); the dialog is "
        "found, not created twice",
        stand_ins={"infobip.lose_dialog_answers": 1},
    ),
]

# --- Zoho --------------------------------------------------------------------------------
ZOHO: list[Variant] = [
    Variant(
        "zoho-webhook-form",
        "the workflow rule's webhook sends its parameters as an x-www-form-urlencoded body",
        stand_ins={"zoho.webhook_format": "form"},
    ),
    Variant(
        "zoho-webhook-multipart",
        "the workflow rule's webhook sends its parameters as multipart/form-data",
        stand_ins={"zoho.webhook_format": "multipart"},
    ),
    Variant(
        "zoho-webhook-query",
        "the workflow rule's webhook sends its parameters as URL parameters, with no body",
        stand_ins={"zoho.webhook_format": "query"},
    ),
    Variant(
        "zoho-token-evicted",
        "another user of the refresh token evicts our access token every few requests "
        "(401 INVALID_OAUTHTOKEN)",
        stand_ins={"zoho.evict_tokens_every": 3},
    ),
]

# --- ElevenLabs ------------------------------------------------------------------------------
ELEVENLABS: list[Variant] = [
    Variant(
        "elevenlabs-unknown-enums",
        "ElevenLabs adds enum values: a transcript role 'tool', call_successful 'partial', an "
        "evaluation result 'inconclusive' (webhook and poll), a 'post_call_summary' webhook",
        stand_ins={"elevenlabs.new_enum_values": True},
    ),
]


def all_variants() -> dict[str, Variant]:
    """Every variant by name, in the order the areas list them."""
    variants = [*INFOBIP_MEDIA, *INFOBIP_EVENTS, *ZOHO, *ELEVENLABS]
    named = {variant.name: variant for variant in variants}
    if len(named) != len(variants):
        raise RuntimeError("two variants share a name")
    return named


class UnknownVariant(KeyError):
    """A name that is not a variant; the message lists the known ones."""


def lookup(names: Iterable[str]) -> list[Variant]:
    """The named variants; :class:`UnknownVariant` for a name that is none of them."""
    known = all_variants()
    chosen = []
    for name in names:
        if name not in known:
            raise UnknownVariant(f"no variant {name!r}; `callflow demo --list-variants` lists them")
        chosen.append(known[name])
    return chosen


@contextlib.contextmanager
def applied(stack: LocalStack, variants: Iterable[Variant]) -> Iterator[None]:
    """Run the block with ``variants`` in force on ``stack``; everything is restored after."""
    restore: list[tuple[Any, str, Any]] = []
    saved_env: dict[str, str | None] = {}
    try:
        for variant in variants:
            for path, value in variant.stand_ins.items():
                holder, attribute = _resolve(stack, path)
                restore.append((holder, attribute, getattr(holder, attribute)))
                setattr(holder, attribute, value)
            for key, value in variant.env.items():
                saved_env.setdefault(key, os.environ.get(key))
                os.environ[key] = value
        if saved_env:
            stack.refresh_settings()
        yield
    finally:
        for holder, attribute, value in reversed(restore):
            setattr(holder, attribute, value)
        for key, old in saved_env.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
        if saved_env:
            stack.refresh_settings()


def _resolve(stack: LocalStack, path: str) -> tuple[Any, str]:
    *parents, attribute = path.split(".")
    holder: Any = stack
    for parent in parents:
        holder = getattr(holder, parent)
    if not hasattr(holder, attribute):
        raise AttributeError(f"variant path {path!r}: {type(holder).__name__} has no {attribute!r}")
    return holder, attribute


def doctor_problems(
    judged: Iterable[tuple[str, str, str]], variants: Iterable[Variant]
) -> list[str]:
    """Where the doctor's judgements (title, verdict, evidence) of a call under ``variants``
    contradict what the variants say it must report (empty: it reported them correctly)."""
    expected: dict[str, str] = {}
    for variant in variants:
        expected.update(variant.doctor)
    found = []
    for title, verdict, evidence in judged:
        wanted = expected.pop(title, None)
        if wanted is not None and verdict != wanted:
            found.append(f"doctor: {title!r} {verdict} ({evidence}), expected {wanted}")
        elif wanted is None and verdict == "not held":
            found.append(f"doctor: {title!r} not held ({evidence})")
    found += [f"doctor: no behaviour titled {title!r}" for title in expected]
    return found


def problems(session: Session, variants: Iterable[Variant]) -> list[str]:
    """What about the ended session contradicts ``variants``' expectations (empty: it ended as it
    should). The writeback must always land; the agent must have been reached when every variant
    says so, and the outcome must be the one a variant names."""
    found = []
    chosen = list(variants)
    if session.status is not SessionStatus.COMPLETED:
        found.append(f"the writeback did not land (status {session.status.value})")
    if all(variant.reaches_agent for variant in chosen) and not session.conversation_id:
        found.append("the call never reached the agent")
    for variant in chosen:
        expected = variant.expected_outcome()
        if expected is not None and session.outcome is not expected:
            got = session.outcome.value if session.outcome else "none"
            found.append(f"{variant.name}: outcome {got}, expected {expected.value}")
    return found

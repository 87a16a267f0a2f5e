"""Session state on one DynamoDB table.

The table has a single string partition key ``pk`` and a TTL attribute ``expires_at``. It holds:

- ``session#<id>``: the call session (:class:`callflow.models.Session`);
- ``record#<module>#<id>``: which session last claimed a CRM record (trigger de-duplication);
- ``conversation#<id>``: which session an ElevenLabs conversation belongs to (written by
  :meth:`SessionStore.index_conversation`);
- ``webhook#<sha256 of a signature>``: a post-call webhook delivery already accepted (the replay
  cache, :meth:`SessionStore.first_delivery`), expiring when its signature would be refused anyway;
- ``bridge#unmatched-media``: the shape of the latest media stream that named no session
  (:meth:`SessionStore.note_unmatched_media`);
- ``limit#<name>#<window start>``: a fixed-window counter shared by every Lambda
  (:meth:`SessionStore.take_slot`), TTL'd after its window;
- ``token#<name>``: shared provider access tokens (see :mod:`callflow.providers.zoho.token`);
- ``suppress#<E.164>``: a number that is never dialled (:mod:`callflow.consent.suppression`);
- ``cap#record#<module>#<id>``, ``cap#number#<E.164>``: the dials counted against a frequency cap
  (:mod:`callflow.consent.caps`), TTL'd a day after their window;
- ``campaign#<id>``: a campaign's definition, state and counters (:mod:`callflow.campaigns`);
- Powertools idempotency records (their own ``pk`` values).

The table itself is created by the CDK stack (``infra/cdk/callflow_infra/state.py``) and, for the
embedded default, by ``callflow_dev.local.aws``: the runtime only reads and writes it.

Every status change is a conditional update on ``progress`` so that a duplicate or late event can
never move a session backwards or act twice; the caller learns from the ``None`` return value that
its event was stale and does nothing more. A session of a campaign has each status change counted
on its campaign (:func:`callflow.campaigns.counters.count_transition`), once, after the write.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Collection
from decimal import Decimal, DecimalException
from typing import Any

from callflow.aws import CONDITION_FAILED, error_code
from callflow.config import Settings
from callflow.models import (
    Session,
    SessionStatus,
    TimelineEntry,
    iso,
    progress_of,
    utcnow,
)

MAX_NESTING = 32
"""DynamoDB stores maps and lists nested at most 32 levels deep."""

PENDING_CLAIM_SECONDS = 60
"""How long a record claim whose session does not exist yet still blocks the record: its trigger
is reading the record and creating the session (the API's Lambda runs at most 29 s). Past that,
the trigger that made the claim died before it could create the session or undo the claim."""


class SessionNotFound(LookupError):
    """No session with that id."""


class UnstorableValue(ValueError):
    """A value DynamoDB cannot hold (a number out of its range, nesting too deep), refused before
    the write is sent; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def to_dynamo(value: Any, depth: int = 0) -> Any:
    """DynamoDB takes no floats: numbers become Decimal, recursively.

    Raises :class:`UnstorableValue` for what DynamoDB would refuse: a number it cannot hold
    exactly (more than 38 significant digits, beyond 1E+125, NaN, infinity) and maps or lists
    nested deeper than :data:`MAX_NESTING`. ``depth`` is the level of ``value`` itself: 0 for a
    whole item, 1 for an attribute's value.
    """
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return _storable_number(value)
    if isinstance(value, dict | list | tuple):
        if depth > MAX_NESTING:
            raise UnstorableValue(f"nested deeper than {MAX_NESTING} levels")
        if isinstance(value, dict):
            return {str(k): to_dynamo(v, depth + 1) for k, v in value.items()}
        return [to_dynamo(v, depth + 1) for v in value]
    return value


def _storable_number(value: int | float) -> int | Decimal:
    """The number as boto3 will serialise it, checked first with boto3's own DynamoDB context
    (which traps rounding, overflow and underflow), so the refusal is ours and says why."""
    from boto3.dynamodb.types import DYNAMODB_CONTEXT

    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise UnstorableValue(f"{number} is not a number DynamoDB stores")
    try:
        DYNAMODB_CONTEXT.create_decimal(number)
    except DecimalException:
        raise UnstorableValue(
            f"{number:.3E} is outside the numbers DynamoDB stores"
            " (38 significant digits, magnitude 1E-130 to 9.99E+125)"
        ) from None
    return number if isinstance(value, float) else value


def from_dynamo(value: Any) -> Any:
    """Decimals back to int or float, recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


UNMATCHED_MEDIA_KEY = "bridge#unmatched-media"


def session_key(session_id: str) -> dict[str, str]:
    """The table key of a session's item."""
    return {"pk": f"session#{session_id}"}


class SessionStore:
    """Reads and conditionally advances sessions."""

    def __init__(
        self,
        table_name: str,
        region: str | None = None,
        ttl_days: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import boto3  # here, not at import: the API's health route and cold start skip it

        self.table_name = table_name
        self.ttl_days = ttl_days
        self.clock = clock
        """Unix time for record claims (tests move it)."""
        self.table = boto3.resource("dynamodb", region_name=region).Table(table_name)

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionStore:
        """The store on the configured table, region and session TTL."""
        return cls(settings.table_name, settings.aws_region, settings.session_ttl_days)

    # --- reading --------------------------------------------------------------------------

    def get(self, session_id: str) -> Session | None:
        """The session, read consistently; ``None`` when there is none."""
        item = self.table.get_item(Key=session_key(session_id), ConsistentRead=True).get("Item")
        return _session(item) if item else None

    def require(self, session_id: str) -> Session:
        """The session; :class:`SessionNotFound` when there is none."""
        session = self.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    # --- writing --------------------------------------------------------------------------

    def create(self, session: Session) -> Session:
        """Store a new session with its timestamps, expiry, progress and a first timeline entry.

        The put is conditional on the key being new, so an existing session is never overwritten
        (the write fails instead). Returns the session as stored.
        """
        now = utcnow()
        session = session.model_copy(
            update={
                "created_at": iso(now),
                "updated_at": iso(now),
                "expires_at": int(now.timestamp()) + self.ttl_days * 86400,
                "progress": progress_of(session.status, session.attempt),
                "timeline": [*session.timeline, _entry("session created")],
            }
        )
        item = {**session_key(session.session_id), **to_dynamo(session.model_dump(mode="json"))}
        self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        if session.campaign_id:
            from callflow.campaigns import counters

            counters.count_transition(
                self.table, session.campaign_id, (None, None), (session.status, session.outcome)
            )
        return session

    def advance(
        self,
        session_id: str,
        status: SessionStatus,
        *,
        attempt: int | None = None,
        fields: dict[str, Any] | None = None,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
        same_attempt: bool = False,
    ) -> Session | None:
        """Move the session forward to ``status``; ``None`` when it is already there or past it.

        ``attempt`` places call phases on the right attempt; omitted, the session's current
        attempt is not checked, so give it for every provider event. ``same_attempt`` also
        requires the session to be on that attempt already (and to exist): a provider event can
        then move it with this one write, no read first.
        """
        updates: dict[str, Any] = dict(fields or {})
        updates["status"] = status.value
        if attempt is not None and status in _CALL_PHASES:
            updates["attempt"] = attempt
            new_progress = progress_of(status, attempt)
        elif status in _CALL_PHASES:
            current = self.require(session_id)
            new_progress = progress_of(status, current.attempt)
        else:
            new_progress = progress_of(status)
        updates["progress"] = new_progress
        condition = "attribute_exists(pk) AND progress < :new_progress"
        values: dict[str, Any] = {":new_progress": new_progress}
        if same_attempt and attempt is not None:
            condition += " AND attempt = :attempt"
            values[":attempt"] = attempt
        return self._update(
            session_id,
            updates,
            condition=condition,
            values=values,
            event=event or status.value,
            detail=detail,
        )

    def set_fields(
        self,
        session_id: str,
        fields: dict[str, Any],
        *,
        only_if_absent: str | None = None,
        only_if_equal: dict[str, Any] | None = None,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Session | None:
        """Set fields without moving the status.

        ``only_if_absent`` names a field that must be empty (missing, "" or false) for the write
        to happen: the way to claim an action so that one caller does it ("request the dialog",
        "store the results"); what the claimed action then does outside the table is the
        caller's to make safe.
        ``only_if_equal`` requires fields to hold given values. ``None`` when a condition failed.
        """
        condition = "attribute_exists(pk)"
        values: dict[str, Any] = {}
        names: dict[str, str] = {}
        if only_if_absent:
            names["#absent"] = only_if_absent
            values[":empty_s"] = ""
            values[":false"] = False
            values[":empty_m"] = {}
            condition += (
                " AND (attribute_not_exists(#absent) OR #absent = :empty_s"
                " OR #absent = :false OR #absent = :empty_m)"
            )
        for i, (key, value) in enumerate((only_if_equal or {}).items()):
            names[f"#eq{i}"] = key
            values[f":eq{i}"] = to_dynamo(value)
            condition += f" AND #eq{i} = :eq{i}"
        return self._update(
            session_id,
            fields,
            condition=condition,
            values=values,
            names=names,
            event=event,
            detail=detail,
        )

    def session_for_conversation(self, conversation_id: str) -> str | None:
        """The session an ElevenLabs conversation belongs to (the post-call webhook names only
        the conversation, and is sent for every agent of the workspace)."""
        key = {"pk": f"conversation#{conversation_id}"}
        item = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        return str(item["session_id"]) if item else None

    def index_conversation(self, conversation_id: str, session_id: str) -> bool:
        """Remember which session a conversation belongs to (for :meth:`session_for_conversation`).

        Whoever learns a session's conversation id (the bridge) calls this after
        :meth:`set_conversation`. The put is conditional: an entry is never re-pointed to another
        session (``False`` then), and writing the same pair again is harmless."""
        try:
            self.table.put_item(
                Item={
                    "pk": f"conversation#{conversation_id}",
                    "session_id": session_id,
                    "expires_at": int(self.clock()) + self.ttl_days * 86400,
                },
                ConditionExpression="attribute_not_exists(pk) OR session_id = :session",
                ExpressionAttributeValues={":session": session_id},
            )
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise
            return False
        return True

    def set_conversation(self, session_id: str, conversation_id: str) -> Session | None:
        """Store the session's own conversation: the first one set stays.

        Setting the same id again is harmless; ``None`` when the session has another
        conversation already (or does not exist), so a second conversation cannot take its
        place and have its results written back."""
        return self._update(
            session_id,
            {"conversation_id": conversation_id},
            condition=(
                "attribute_exists(pk) AND (attribute_not_exists(#conversation)"
                " OR #conversation = :empty OR #conversation = :conversation)"
            ),
            values={":empty": "", ":conversation": conversation_id},
            names={"#conversation": "conversation_id"},
        )

    def claim_media_stream(
        self,
        session_id: str,
        token_hash: str,
        statuses: Collection[SessionStatus],
        *,
        found_in: str = "",
        first_frame: dict[str, Any] | None = None,
    ) -> Session | None:
        """Admit one media stream for the bridge token hashing to ``token_hash``, once.

        One conditional write: the session exists, its current token hashes to ``token_hash``,
        its status is one of ``statuses``, and no stream was admitted with that token before.
        Returns the session as claimed; ``None`` when any of that does not hold (the write
        changes nothing then). Every dialog request makes a new token
        (:func:`callflow.lifecycle.call_events.connect_bridge`), so a later attempt's stream is
        admitted with its own. ``found_in`` (where the stream carried the identifiers) is
        stored with the claim, in the same write, and so is ``first_frame``, the shape of the
        stream's first frame (values redacted), for the operator's doctor."""
        if not statuses:
            raise ValueError("claim_media_stream needs at least one status")
        values: dict[str, Any] = {":hash": token_hash}
        for i, status in enumerate(statuses):
            values[f":live{i}"] = status.value
        live = ", ".join(f":live{i}" for i in range(len(statuses)))
        return self._update(
            session_id,
            {
                "media_claimed_hash": token_hash,
                "media_ids_found_in": found_in,
                "media_first_frame": first_frame or {},
            },
            condition=(
                "attribute_exists(pk) AND #token = :hash AND #status IN (" + live + ")"
                " AND (attribute_not_exists(#claimed) OR #claimed <> :hash)"
            ),
            values=values,
            names={
                "#token": "bridge_token_hash",
                "#status": "status",
                "#claimed": "media_claimed_hash",
            },
            event="media stream admitted",
            detail={"ids_found_in": found_in} if found_in else None,
        )

    def note_unmatched_media(self, shape: dict[str, Any], ttl_seconds: int = 7 * 86400) -> None:
        """Keep the shape of the latest media stream that named no session (one item,
        ``pk = bridge#unmatched-media``, TTL'd): such a stream belongs to no session, and the
        operator's first question after a dropped call is what Infobip sent."""
        now = utcnow()
        self.table.put_item(
            Item={
                "pk": UNMATCHED_MEDIA_KEY,
                "shape": to_dynamo(shape, depth=1),
                "at": iso(now),
                "expires_at": int(now.timestamp()) + ttl_seconds,
            }
        )

    def last_unmatched_media(self) -> dict[str, Any] | None:
        """The item :meth:`note_unmatched_media` wrote last (``shape`` and ``at``), if any."""
        item = self.table.get_item(Key={"pk": UNMATCHED_MEDIA_KEY}, ConsistentRead=True).get("Item")
        return None if item is None else {"shape": from_dynamo(item["shape"]), "at": item["at"]}

    def reopen_writeback(self, session_id: str) -> Session | None:
        """Let an operator replay a failed writeback: WRITEBACK_FAILED back to WRITING_BACK."""
        return self._update(
            session_id,
            {
                "status": SessionStatus.WRITING_BACK.value,
                "progress": progress_of(SessionStatus.WRITING_BACK),
            },
            condition="#status = :failed",
            values={":failed": SessionStatus.WRITEBACK_FAILED.value},
            names={"#status": "status"},
            event="writeback replay",
        )

    def log(self, session_id: str, event: str, detail: dict[str, Any] | None = None) -> None:
        """Add a timeline entry (what the demo and the status route show)."""
        self._update(session_id, {}, condition="attribute_exists(pk)", event=event, detail=detail)

    # --- record claims (trigger de-duplication) -------------------------------------------

    def claim_record(
        self, module: str, record_id: str, session_id: str, window_seconds: int
    ) -> str | None:
        """Claim the record for a new session; the blocking session's id when refused.

        A record is blocked while its last session is active, and for ``window_seconds`` after
        that session was triggered, whichever is longer. A claim whose session was never created
        blocks only for :data:`PENDING_CLAIM_SECONDS` (its trigger is still at work, or died).
        """
        now = int(self.clock())
        key = _claim_key(module, record_id)
        claim = {
            **key,
            "session_id": session_id,
            "until": now + window_seconds,
            "pending_until": now + PENDING_CLAIM_SECONDS,
            "expires_at": now + max(window_seconds, 86400) + self.ttl_days * 86400,
        }
        # Most records have never been claimed: try that first, one write and no read.
        item: dict[str, Any] | None = None
        for _ in range(4):
            if item:
                holder = str(item["session_id"])
                if _claim_blocks(item, self.get(holder), now):
                    return holder
            try:
                condition = "attribute_not_exists(pk)" if not item else "session_id = :previous"
                values = {":previous": item["session_id"]} if item else None
                self.table.put_item(
                    Item=claim,
                    ConditionExpression=condition,
                    **({"ExpressionAttributeValues": values} if values else {}),
                )
                return None
            except Exception as error:
                if error_code(error) != CONDITION_FAILED:
                    raise
            item = self.table.get_item(Key=key, ConsistentRead=True).get("Item")
        # Lost the race every time: someone else is claiming it right now.
        return str((item or {}).get("session_id", "unknown"))

    # --- webhook replay cache -------------------------------------------------------------

    def first_delivery(self, signature: str, expires_at: int) -> bool:
        """Record a webhook delivery by its verified signature; ``False`` when it was seen before.

        One conditional put of ``webhook#<sha256 of the signature>``. ``expires_at`` should be
        when the signature's freshness check would refuse it anyway, so DynamoDB's TTL removes the
        entry once it can no longer matter (TTL deletes late, never early)."""
        try:
            self.table.put_item(
                Item={"pk": _delivery_key(signature), "expires_at": expires_at},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise
            return False
        return True

    def forget_delivery(self, signature: str) -> None:
        """Drop a delivery from the replay cache: handling it failed, so a resend must be handled
        rather than answered as a duplicate."""
        self.table.delete_item(Key={"pk": _delivery_key(signature)})

    # --- account-wide rate limits ---------------------------------------------------------

    def take_slot(self, name: str, limit: int, window_seconds: int) -> bool:
        """Take one of ``limit`` slots of the current fixed window of ``window_seconds``;
        ``False`` when the window's slots are all taken.

        One conditional ``ADD`` on ``limit#<name>#<window start>``: every Lambda counts on the
        same item, and DynamoDB's condition makes the count exact under concurrency. A refused
        take changes nothing. The item expires (TTL) a window after its window ends."""
        now = int(self.clock())
        start = now - now % window_seconds
        try:
            self.table.update_item(
                Key={"pk": f"limit#{name}#{start}"},
                UpdateExpression="ADD #taken :one SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(#taken) OR #taken < :limit",
                ExpressionAttributeNames={"#taken": "taken"},
                ExpressionAttributeValues={
                    ":one": 1,
                    ":limit": limit,
                    ":expires": start + 2 * window_seconds,
                },
            )
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise
            return False
        return True

    # --- undoing a failed trigger -----------------------------------------------------------

    def release_claim(self, module: str, record_id: str, session_id: str) -> bool:
        """Give the record up, if ``session_id`` still holds its claim; ``True`` when released.

        For a trigger that failed after claiming: the record can be triggered again at once
        instead of being blocked for the window. The delete is conditional on the holder, so a
        claim another session has taken since is never removed.
        """
        try:
            self.table.delete_item(
                Key=_claim_key(module, record_id),
                ConditionExpression="session_id = :mine",
                ExpressionAttributeValues={":mine": session_id},
            )
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise
            return False
        return True

    def delete_created(self, session_id: str) -> bool:
        """Delete the session while it is still ``created``; ``True`` when no such session remains.

        For a trigger that failed after creating its session. The delete is conditional on the
        status, so a session that something has moved past ``created`` (its workflow started after
        all) is kept, and ``False`` says so. A session that was never written counts as gone.
        """
        try:
            self.table.delete_item(
                Key=session_key(session_id),
                ConditionExpression="attribute_not_exists(pk) OR #status = :created",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":created": SessionStatus.CREATED.value},
            )
        except Exception as error:
            if error_code(error) != CONDITION_FAILED:
                raise
            return False
        return True

    # --- internals ------------------------------------------------------------------------

    def _update(
        self,
        session_id: str,
        fields: dict[str, Any],
        *,
        condition: str,
        values: dict[str, Any] | None = None,
        names: dict[str, str] | None = None,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Session | None:
        names = dict(names or {})
        values = dict(values or {})
        now = utcnow()
        fields = {**fields, "updated_at": iso(now)}
        sets = []
        for i, (key, value) in enumerate(fields.items()):
            names[f"#f{i}"] = key
            values[f":f{i}"] = to_dynamo(value, depth=1)
            sets.append(f"#f{i} = :f{i}")
        if "status" in fields:
            # DynamoDB evaluates every SET's right-hand side on the item before the update, so
            # the new item also carries what the session moved from: its campaign counts it.
            names.update({"#before": "status_before", "#obefore": "outcome_before"})
            names.update({"#ostatus": "status", "#ooutcome": "outcome"})
            values[":nothing"] = None
            sets.insert(0, "#obefore = if_not_exists(#ooutcome, :nothing)")
            sets.insert(0, "#before = if_not_exists(#ostatus, :nothing)")
        if event:
            names["#timeline"] = "timeline"
            values[":entry"] = [to_dynamo(_entry(event, detail).model_dump(), depth=2)]
            values[":nil"] = []
            sets.append("#timeline = list_append(if_not_exists(#timeline, :nil), :entry)")
        try:
            response = self.table.update_item(
                Key=session_key(session_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except Exception as error:
            if error_code(error) == CONDITION_FAILED:
                return None
            raise
        attributes = response["Attributes"]
        session = _session(attributes)
        if session.campaign_id and "status" in fields:
            _count_on_campaign(self.table, session, attributes)
        return session


def _count_on_campaign(table: Any, session: Session, attributes: dict[str, Any]) -> None:
    """Count the status change just written on the session's campaign."""
    from callflow.campaigns import counters
    from callflow.models import Outcome

    before = attributes.get("status_before")
    before_outcome = attributes.get("outcome_before")
    counters.count_transition(
        table,
        session.campaign_id,
        (
            SessionStatus(before) if before else None,
            Outcome(before_outcome) if before_outcome else None,
        ),
        (session.status, session.outcome),
    )


_CALL_PHASES = frozenset(
    {
        SessionStatus.SCHEDULED,
        SessionStatus.QUEUED,
        SessionStatus.DIALING,
        SessionStatus.RINGING,
        SessionStatus.IN_CALL,
        SessionStatus.CALL_ENDED,
    }
)


def _delivery_key(signature: str) -> str:
    return "webhook#" + hashlib.sha256(signature.encode()).hexdigest()


def _claim_key(module: str, record_id: str) -> dict[str, str]:
    return {"pk": f"record#{module}#{record_id}"}


def _claim_blocks(claim: dict[str, Any], holder: Session | None, now: int) -> bool:
    """Whether a record claim still refuses new sessions (see :meth:`SessionStore.claim_record`).

    Claims written before ``pending_until`` existed fall back to their window."""
    if holder is None:
        return int(claim.get("pending_until", claim["until"])) > now
    return int(claim["until"]) > now or holder.active


def _entry(event: str, detail: dict[str, Any] | None = None) -> TimelineEntry:
    return TimelineEntry(at=iso(utcnow()), event=event, detail=detail or {})


def session_from_item(item: dict[str, Any]) -> Session:
    """A session from its table item (as ``GetItem`` or ``BatchGetItem`` answers it)."""
    return _session(item)


def _session(item: dict[str, Any]) -> Session:
    data = from_dynamo({k: v for k, v in item.items() if k != "pk"})
    return Session.model_validate(data)

"""Campaign items on the session table: create, read, and conditional state changes.

Each change of a campaign's state is one conditional write on the state it moves from, so an
operator's pause racing the finish step, or two cancels, leave one answer each: the first
applies, the second learns the state it found (:class:`StateConflict`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from callflow.aws import CONDITION_FAILED, error_code
from callflow.campaigns.counters import campaign_key
from callflow.campaigns.model import Campaign, CampaignState
from callflow.models import iso, utcnow
from callflow.store import from_dynamo, to_dynamo


class CampaignNotFound(LookupError):
    """No campaign with that id."""


class StateConflict(Exception):
    """The campaign is not in a state the change can move from; ``state`` is where it is."""

    def __init__(self, state: CampaignState, wanted: str) -> None:
        super().__init__(f"the campaign is {state.value}; it cannot be {wanted}")
        self.state = state


class CampaignStore:
    """Campaign items on a boto3 DynamoDB ``Table``."""

    def __init__(self, table: Any, ttl_days: int = 30) -> None:
        self.table = table
        self.ttl_days = ttl_days

    def create(self, campaign: Campaign) -> Campaign:
        """Store a new campaign (conditional on its id being new) with its timestamps."""
        now = utcnow()
        campaign = campaign.model_copy(
            update={
                "created_at": iso(now),
                "updated_at": iso(now),
                "expires_at": int(now.timestamp()) + self.ttl_days * 86400,
            }
        )
        item = {**campaign_key(campaign.campaign_id), **to_dynamo(campaign.model_dump(mode="json"))}
        self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        return campaign

    def get(self, campaign_id: str) -> Campaign | None:
        """The campaign, read consistently; ``None`` when there is none."""
        item = self.table.get_item(Key=campaign_key(campaign_id), ConsistentRead=True).get("Item")
        return _campaign(item) if item else None

    def require(self, campaign_id: str) -> Campaign:
        """The campaign; :class:`CampaignNotFound` when there is none."""
        campaign = self.get(campaign_id)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        return campaign

    def move(
        self,
        campaign_id: str,
        to: CampaignState,
        sources: Collection[CampaignState],
        fields: dict[str, Any] | None = None,
    ) -> Campaign:
        """Move the campaign to ``to`` if it is in one of ``sources``; the campaign as written.
        :class:`StateConflict` when it is elsewhere, :class:`CampaignNotFound` when missing."""
        values: dict[str, Any] = {f":s{i}": state.value for i, state in enumerate(sources)}
        allowed = ", ".join(values)
        try:
            return self._update(
                campaign_id,
                {"state": to.value, **(fields or {})},
                condition=f"#state IN ({allowed})",
                names={"#state": "state"},
                values=values,
            )
        except _Refused:
            current = self.require(campaign_id)
            raise StateConflict(current.state, to.value) from None

    def set_fields(self, campaign_id: str, fields: dict[str, Any]) -> Campaign:
        """Set fields of an existing campaign (its state untouched)."""
        try:
            return self._update(campaign_id, fields, condition="attribute_exists(pk)")
        except _Refused:
            raise CampaignNotFound(campaign_id) from None

    def _update(
        self,
        campaign_id: str,
        fields: dict[str, Any],
        *,
        condition: str,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Campaign:
        names = dict(names or {})
        values = dict(values or {})
        fields = {**fields, "updated_at": iso(utcnow())}
        sets = []
        for i, (key, value) in enumerate(fields.items()):
            names[f"#f{i}"] = key
            values[f":f{i}"] = to_dynamo(value, depth=1)
            sets.append(f"#f{i} = :f{i}")
        try:
            response = self.table.update_item(
                Key=campaign_key(campaign_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=f"attribute_exists(pk) AND ({condition})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except Exception as error:
            if error_code(error) == CONDITION_FAILED:
                raise _Refused from None
            raise
        return _campaign(response["Attributes"])


class _Refused(Exception):
    pass


def _campaign(item: dict[str, Any]) -> Campaign:
    data = from_dynamo({k: v for k, v in item.items() if k != "pk"})
    return Campaign.model_validate(data)

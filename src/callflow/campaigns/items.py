"""A campaign's enumerated records in S3: the items its Distributed Map reads.

Each record is an item ``{"record_id": ..., "record": {field: value}}``: the snapshot read while
enumerating, so an item creates its session without reading the record again (a credit saved
per record, as a single trigger spends one on its read).

The enumeration writes one *part* per page it read (``campaigns/<id>/parts/<n>.json``), so an
enumeration stopped by its credit budget or its Lambda's time resumes without losing or
re-reading anything; once done, the parts are joined into ``campaigns/<id>/items.json``, a JSON
array (the Map's ``ItemReader`` with ``InputType: JSON``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

Item = dict[str, Any]


def items_key(campaign_id: str) -> str:
    """The key of the campaign's joined items file."""
    return f"campaigns/{campaign_id}/items.json"


def _part_key(campaign_id: str, number: int) -> str:
    return f"campaigns/{campaign_id}/parts/{number:06d}.json"


class CampaignItems:
    """The items of campaigns in one bucket, through a boto3 S3 client."""

    def __init__(self, s3: Any, bucket: str) -> None:
        if not bucket:
            raise ValueError("no campaign bucket is configured (CALLFLOW_CAMPAIGN_BUCKET)")
        self.s3 = s3
        self.bucket = bucket

    def put_part(self, campaign_id: str, number: int, items: list[Item]) -> None:
        """Write one page's items as part ``number`` (a retry overwrites it with the same)."""
        self._put(_part_key(campaign_id, number), items)

    def parts(self, campaign_id: str) -> Iterator[list[Item]]:
        """Every part written so far, in order."""
        paginator = self.s3.get_paginator("list_objects_v2")
        prefix = f"campaigns/{campaign_id}/parts/"
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in sorted(page.get("Contents") or [], key=lambda e: str(e["Key"])):
                yield self._get(str(entry["Key"]))

    def join(self, campaign_id: str) -> tuple[str, int]:
        """Join the parts into the items file, each record once (a page read again after an
        expired page token repeats records); its key and the number of items."""
        seen: set[str] = set()
        joined: list[Item] = []
        for part in self.parts(campaign_id):
            for item in part:
                if item["record_id"] not in seen:
                    seen.add(item["record_id"])
                    joined.append(item)
        key = items_key(campaign_id)
        self._put(key, joined)
        return key, len(joined)

    def read(self, campaign_id: str) -> list[Item]:
        """The joined items file (empty before the enumeration finished)."""
        try:
            return self._get(items_key(campaign_id))
        except Exception as error:
            from callflow.aws import error_code

            if error_code(error) in ("NoSuchKey", "404"):
                return []
            raise

    def _put(self, key: str, items: list[Item]) -> None:
        body = json.dumps(items, separators=(",", ":"), default=str).encode()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def _get(self, key: str) -> list[Item]:
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        items = json.loads(body)
        if not isinstance(items, list):
            raise ValueError(f"s3://{self.bucket}/{key} does not hold a JSON array")
        return items

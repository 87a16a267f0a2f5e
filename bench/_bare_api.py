"""The bare Powertools event handler the API's cold start is measured against.

What the leanest hand-written Lambda for the same two requests would be: Powertools'
``APIGatewayHttpResolver``; ``GET /health`` answering ``ok``; ``POST /webhooks/infobip/<secret>``
checking Basic auth and the path secret, then making the DynamoDB requests our API makes for a
``CALL_RINGING`` of an unknown session (a conditional update that fails, a read, the timeline's
conditional update) with a low-level boto3 client. No settings object, no models, no validation
beyond that. Like the API it imports boto3 and builds its client on the first request that needs
them, so ``/health`` pays for neither: the comparison is with the leanest start, not a careless one.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import os
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

app = APIGatewayHttpResolver()
_dynamodb: Any = None


def _table_client() -> Any:
    global _dynamodb
    if _dynamodb is None:
        import boto3

        _dynamodb = boto3.client("dynamodb")
    return _dynamodb


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/webhooks/infobip/<secret>")
def infobip(secret: str) -> Any:
    expected = (
        "Basic "
        + base64.b64encode(
            b"infobip:" + os.environ["CALLFLOW_INFOBIP_WEBHOOK_PASSWORD"].encode()
        ).decode()
    )
    given = app.current_event.headers.get("authorization", "")
    if not hmac.compare_digest(given, expected) or not hmac.compare_digest(
        secret, os.environ["CALLFLOW_INFOBIP_WEBHOOK_PATH_SECRET"]
    ):
        return Response(401, "application/json", '{"detail": "unauthorized"}')
    body = app.current_event.json_body
    session_id = str(body["properties"]["call"]["customData"]["session_id"])
    client = _table_client()
    table = os.environ["CALLFLOW_TABLE_NAME"]
    key = {"pk": {"S": f"session#{session_id}"}}
    from botocore.exceptions import ClientError

    try:
        client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #status = :ringing",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":ringing": {"S": "ringing"}},
        )
        return {"result": "ringing"}
    except ClientError:
        pass
    if "Item" in client.get_item(TableName=table, Key=key, ConsistentRead=True):
        return {"result": "duplicate"}
    with contextlib.suppress(ClientError):
        client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #timeline = list_append(#timeline, :entry)",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#timeline": "timeline"},
            ExpressionAttributeValues={":entry": {"L": [{"S": "infobip CALL_RINGING"}]}},
        )
    return {"result": "ignored: unknown session"}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)

"""Recordings in S3: stored by the bridge at the call's end, read by the writeback.

Every object is written with SSE-S3 (``AES256``, the bucket's default too) under the configured
prefix, keyed by session id. The S3 client is given bounded retries (the SDK's standard mode, a
fixed number of attempts, short timeouts): an unreachable S3 costs a call's recording, never the
call's result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

CONTENT_TYPE = "audio/wav"
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class StorageUnavailable(RuntimeError):
    """S3 could not be reached or refused the request; the message names the error's kind
    only (no endpoint, no credentials)."""


def s3_client(region: str, attempts: int) -> Any:
    """A boto3 S3 client that gives up after ``attempts`` tries (standard retry mode)."""
    config = Config(
        retries={"max_attempts": attempts, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )
    return boto3.client("s3", region_name=region, config=config)


def put_recording(s3: Any, bucket: str, key: str, body: IO[bytes]) -> None:
    """Store one recording, encrypted; raises :class:`StorageUnavailable` when S3 fails."""
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType=CONTENT_TYPE,
            ServerSideEncryption="AES256",
        )
    except (BotoCoreError, ClientError) as error:
        raise StorageUnavailable(_reason(error)) from error


@dataclass(frozen=True)
class StoredRecording:
    """A recording read back: its bytes (``size`` of them)."""

    content: bytes

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return len(self.content)


def recording_size(s3: Any, bucket: str, key: str) -> int | None:
    """The stored recording's size, or ``None`` when there is none under ``key``."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if _code(error) in _MISSING:
            return None
        raise StorageUnavailable(_reason(error)) from error
    except BotoCoreError as error:
        raise StorageUnavailable(_reason(error)) from error
    return int(head.get("ContentLength", 0))


def get_recording(s3: Any, bucket: str, key: str) -> StoredRecording | None:
    """The stored recording, or ``None`` when there is none under ``key``."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
        return StoredRecording(response["Body"].read())
    except ClientError as error:
        if _code(error) in _MISSING:
            return None
        raise StorageUnavailable(_reason(error)) from error
    except BotoCoreError as error:
        raise StorageUnavailable(_reason(error)) from error


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _reason(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"S3 refused: {_code(error) or 'error'}"
    return f"S3 unreachable: {type(error).__name__}"

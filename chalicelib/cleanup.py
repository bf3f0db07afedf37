"""Emptying the reports bucket: list with a paginator, delete in batches of 1,000.

``DeleteObjects`` takes up to 1,000 keys and ``ListObjectsV2`` returns up to
1,000 per page, so emptying N objects costs 2 requests per started 1,000
(the Go seed's SDK batches 100 and needs 11).
"""

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

SHOWN_FAILURES = 5


@dataclass(frozen=True)
class DeleteFailure:
    key: str
    code: str
    message: str


@dataclass
class CleanupResult:
    deleted: int = 0
    failures: list[DeleteFailure] = field(default_factory=list)
    elapsed_ms: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "deleted": self.deleted,
            "failed": len(self.failures),
            "elapsed_ms": self.elapsed_ms,
        }


class CleanupError(RuntimeError):
    """The cleanup could not delete everything; the message says what failed."""

    def __init__(self, message: str, result: CleanupResult) -> None:
        super().__init__(message)
        self.result = result


def _describe(failures: list[DeleteFailure]) -> str:
    shown = ", ".join(
        f"{json.dumps(f.key)} ({f.code}: {f.message})" for f in failures[:SHOWN_FAILURES]
    )
    more = len(failures) - SHOWN_FAILURES
    return shown + (f" and {more} more" if more > 0 else "")


def _delete_batch(s3: Any, bucket: str, keys: list[str]) -> list[DeleteFailure]:
    """Delete up to 1,000 keys in one request; return the keys that failed."""
    try:
        response = s3.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "ClientError"), error.get("Message", str(exc))
        return [DeleteFailure(key, code, message) for key in keys]
    except BotoCoreError as exc:
        return [DeleteFailure(key, type(exc).__name__, str(exc)) for key in keys]
    return [
        DeleteFailure(e.get("Key", "?"), e.get("Code", "?"), e.get("Message", ""))
        for e in response.get("Errors", [])
    ]


def empty_bucket(s3: Any, bucket: str) -> CleanupResult:
    """Delete every object, attempting every batch before reporting failures.

    Raises :class:`CleanupError` if listing fails or any key could not be
    deleted; the error carries the partial result.
    """
    started = time.monotonic()
    result = CleanupResult()
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    try:
        for page in pages:
            keys = [obj["Key"] for obj in page.get("Contents", [])]
            if keys:
                failed = _delete_batch(s3, bucket, keys)
                result.failures.extend(failed)
                result.deleted += len(keys) - len(failed)
    except (ClientError, BotoCoreError) as exc:
        result.elapsed_ms = round((time.monotonic() - started) * 1000)
        raise CleanupError(
            f"listing s3://{bucket} failed after deleting {result.deleted} objects: {exc}",
            result,
        ) from exc
    result.elapsed_ms = round((time.monotonic() - started) * 1000)
    if result.failures:
        raise CleanupError(
            f"{len(result.failures)} objects could not be deleted from s3://{bucket} "
            f"({result.deleted} deleted): {_describe(result.failures)}",
            result,
        )
    return result


def run_cleanup(s3: Any, bucket: str, log: logging.Logger) -> dict[str, int]:
    """Empty the bucket, log the summary either way, and fail loudly on any loss."""
    try:
        result = empty_bucket(s3, bucket)
    except CleanupError as exc:
        log.error("Cleanup failed: %s: %s", json.dumps(exc.result.summary()), exc)
        raise
    log.info("Cleanup: %s", json.dumps(result.summary()))
    return result.summary()

"""Listing the bucket: ``ListObjectsV2`` pages in key order, one continuation token at a time."""

from collections.abc import Iterator
from typing import Any

from chalicelib.cleanup.clock import Clock
from chalicelib.cleanup.deadline import DELETE, LIST, Deadline
from chalicelib.cleanup.deletes import AtDeadline, Deletes
from chalicelib.cleanup.result import CleanupResult


def pages(
    s3: Any, bucket: str, deadline: Deadline, deletes: Deletes, result: CleanupResult,
    clock: Clock,
) -> Iterator[dict]:  # fmt: skip
    """``ListObjectsV2`` pages; raises :class:`AtDeadline` rather than start one too late.

    Unless it is a dry run, a page is only worth listing if its delete can start too.
    """
    params: dict[str, str] = {"Bucket": bucket}
    while True:
        concurrency = len(deletes.in_flight) + 1
        if not deadline.allows_start(LIST, concurrency, then=() if result.dry_run else (DELETE,)):
            raise AtDeadline
        started = clock.monotonic()
        result.requests += 1
        page = s3.list_objects_v2(**params)
        deadline.record(LIST, clock.monotonic() - started, concurrency)
        result.pages += 1
        yield page
        if not page.get("IsTruncated"):
            return
        params["ContinuationToken"] = page["NextContinuationToken"]

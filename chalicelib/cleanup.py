"""Emptying the reports bucket at the limit of the S3 API, inside the Lambda deadline.

**Cost.** One ``ListObjectsV2`` per 1,000 objects listed and one ``DeleteObjects``
(``Quiet``: the answer carries only failures) per 1,000 objects deleted. Keys due
for deletion are batched across pages, so with a retention window that keeps some
objects the deletes still go 1,000 at a time: ``ceil(listed / 1000) + ceil(due /
1000)`` requests, 2 per 1,000 when everything is due (the Go seed's SDK needs 11).

**Pipeline.** The calling thread lists page after page (the continuation token
makes listing sequential) while up to ``DELETE_WORKERS`` ``DeleteObjects`` run in
a small pool: deletes of disjoint keys are independent, and deleting keys already
listed does not disturb a listing that continues after them. At most
``DELETE_WORKERS`` batches are in flight; the listing waits for a free slot, so
memory stays bounded whatever the bucket holds.

**Deadline.** Before starting a request, the remaining time must exceed a
margin of ``RESERVE_MS + MARGIN_FACTOR * slowest``, where ``slowest`` is the
slowest request *of the same operation* measured so far in this run
(``FIRST_REQUEST_ESTIMATE_MS`` before the first); a list page also needs time
for one more ``DeleteObjects``, the delete that makes listing it worthwhile.
Keeping the two operations apart matters: one slow list page must not make the
run refuse the delete of the page it already paid for (with a single
``slowest`` that happened, and every run then stopped after its first page).
The requests in flight at the cut run in parallel and their measured times
include the contention at this concurrency, so they finish in about one
``slowest``; the factor leaves as much again for variance, the reserve covers
returning. The run then returns a partial result (``complete: false``) instead
of being killed; listing is stateless, so the next run simply lists what is left.
"""

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

DELETE_BATCH = 1000  # the most keys one DeleteObjects takes
DELETE_WORKERS = 4  # DeleteObjects in flight at once, beside the listing
RESERVE_MS = 250
MARGIN_FACTOR = 2
FIRST_REQUEST_ESTIMATE_MS = 500
SHOWN_FAILURES = 5


@dataclass(frozen=True)
class CleanupOptions:
    max_age: timedelta = timedelta(0)  # keep objects younger than this; 0 = delete all
    dry_run: bool = False  # list and count, delete nothing


@dataclass(frozen=True)
class DeleteFailure:
    key: str
    code: str
    message: str


@dataclass
class CleanupResult:
    dry_run: bool = False
    listed: int = 0
    kept: int = 0  # younger than max_age
    due: int = 0  # old enough to delete (what a dry run would delete)
    deleted: int = 0
    failures: list[DeleteFailure] = field(default_factory=list)
    complete: bool = True  # false: stopped at the deadline or by a listing error
    requests: int = 0
    slowest_request_ms: int = 0
    elapsed_ms: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "complete": self.complete,
            "listed": self.listed,
            "kept": self.kept,
            "due": self.due,
            "deleted": self.deleted,
            "failed": len(self.failures),
            # Due objects seen and still there; an incomplete run may have more unlisted.
            "remaining_at_least": self.due - self.deleted,
            "requests": self.requests,
            "slowest_request_ms": self.slowest_request_ms,
            "elapsed_ms": self.elapsed_ms,
        }


class CleanupError(RuntimeError):
    """The cleanup could not delete everything; the message says what failed."""

    def __init__(self, message: str, result: CleanupResult) -> None:
        super().__init__(message)
        self.result = result


LIST = "ListObjectsV2"
DELETE = "DeleteObjects"


class Deadline:
    """Whether a request started now still ends, with the run, before the Lambda timeout."""

    def __init__(self, remaining_ms: Callable[[], float] | None) -> None:
        self._remaining_ms = remaining_ms
        self._slowest_ms: dict[str, float] = {}

    def record(self, operation: str, seconds: float) -> None:
        self._slowest_ms[operation] = max(self._slowest_ms.get(operation, 0.0), seconds * 1000)

    @property
    def slowest_ms(self) -> float:
        return max(self._slowest_ms.values(), default=0.0)

    def estimate_ms(self, operation: str) -> float:
        return self._slowest_ms.get(operation, FIRST_REQUEST_ESTIMATE_MS)

    def allows_start(self, operation: str, then: tuple[str, ...] = ()) -> bool:
        """Time for ``operation``, and for the ones in ``then`` that must follow it to be of use?"""
        needed = RESERVE_MS + MARGIN_FACTOR * self.estimate_ms(operation)
        needed += sum(self.estimate_ms(following) for following in then)
        return self._remaining_ms is None or self._remaining_ms() > needed


def _describe(failures: list[DeleteFailure]) -> str:
    shown = ", ".join(
        f"{json.dumps(f.key)} ({f.code}: {f.message})" for f in failures[:SHOWN_FAILURES]
    )
    more = len(failures) - SHOWN_FAILURES
    return shown + (f" and {more} more" if more > 0 else "")


def _delete_batch(s3: Any, bucket: str, keys: list[str]) -> tuple[list[DeleteFailure], float]:
    """Delete up to 1,000 keys in one request; return the keys that failed and the time taken."""
    started = time.monotonic()
    try:
        response = s3.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "ClientError"), error.get("Message", str(exc))
        failed = [DeleteFailure(key, code, message) for key in keys]
    except BotoCoreError as exc:
        failed = [DeleteFailure(key, type(exc).__name__, str(exc)) for key in keys]
    else:
        failed = [
            DeleteFailure(e.get("Key", "?"), e.get("Code", "?"), e.get("Message", ""))
            for e in response.get("Errors", [])
        ]
    return failed, time.monotonic() - started


class _AtDeadline(Exception):
    """No time left to start another request."""


class _Deletes:
    """The ``DeleteObjects`` in flight; only the calling thread touches the result."""

    def __init__(
        self, s3: Any, bucket: str, pool: ThreadPoolExecutor, workers: int, deadline: Deadline,
        result: CleanupResult,
    ) -> None:  # fmt: skip
        self.s3, self.bucket, self.pool, self.workers = s3, bucket, pool, workers
        self.deadline, self.result = deadline, result
        self.in_flight: dict[Future, int] = {}

    def submit(self, keys: list[str]) -> None:
        """Start deleting ``keys`` once a slot is free; raises :class:`_AtDeadline`."""
        while len(self.in_flight) >= self.workers:
            self._collect(wait(self.in_flight, return_when=FIRST_COMPLETED).done)
        self._collect([f for f in self.in_flight if f.done()])
        if not self.deadline.allows_start(DELETE):
            raise _AtDeadline
        self.in_flight[self.pool.submit(_delete_batch, self.s3, self.bucket, keys)] = len(keys)
        self.result.requests += 1

    def drain(self) -> None:
        self._collect(wait(self.in_flight).done)

    def _collect(self, done: Any) -> None:
        for future in done:
            count = self.in_flight.pop(future)
            failed, seconds = future.result()
            self.deadline.record(DELETE, seconds)
            self.result.failures.extend(failed)
            self.result.deleted += count - len(failed)


def _pages(s3: Any, bucket: str, deadline: Deadline, result: CleanupResult) -> Iterator[dict]:
    """``ListObjectsV2`` pages; raises :class:`_AtDeadline` rather than start one too late.

    Unless it is a dry run, a page is only worth listing if its delete can start too.
    """
    params: dict[str, str] = {"Bucket": bucket}
    while True:
        if not deadline.allows_start(LIST, then=() if result.dry_run else (DELETE,)):
            raise _AtDeadline
        started = time.monotonic()
        result.requests += 1
        page = s3.list_objects_v2(**params)
        deadline.record(LIST, time.monotonic() - started)
        yield page
        if not page.get("IsTruncated"):
            return
        params["ContinuationToken"] = page["NextContinuationToken"]


def empty_bucket(
    s3: Any,
    bucket: str,
    options: CleanupOptions | None = None,
    remaining_ms: Callable[[], float] | None = None,
    *,
    workers: int = DELETE_WORKERS,
) -> CleanupResult:
    """Delete every object older than ``options.max_age`` (all when 0) before the deadline.

    ``remaining_ms`` is the Lambda context's ``get_remaining_time_in_millis``
    (no deadline when None). Returns the result, with ``complete`` false if the
    deadline stopped it. Raises :class:`CleanupError`, carrying the partial
    result, if listing fails or any key could not be deleted; either way only
    after every batch already listed was attempted.
    """
    options = options or CleanupOptions()
    started = time.monotonic()
    cutoff = datetime.now(UTC) - options.max_age
    result = CleanupResult(dry_run=options.dry_run)
    deadline = Deadline(remaining_ms)
    pending: list[str] = []
    listing_error: ClientError | BotoCoreError | None = None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cleanup-delete") as pool:
        deletes = _Deletes(s3, bucket, pool, workers, deadline, result)
        try:
            for page in _pages(s3, bucket, deadline, result):
                contents = page.get("Contents", [])
                due = [o["Key"] for o in contents if _is_due(o, options.max_age, cutoff)]
                result.listed += len(contents)
                result.kept += len(contents) - len(due)
                result.due += len(due)
                if not options.dry_run:
                    pending.extend(due)
                while len(pending) >= DELETE_BATCH:
                    deletes.submit(pending[:DELETE_BATCH])
                    del pending[:DELETE_BATCH]
            if pending:
                deletes.submit(pending)
        except _AtDeadline:
            result.complete = False
        except (ClientError, BotoCoreError) as exc:
            listing_error, result.complete = exc, False
            if pending:  # already listed: attempt them before reporting the error
                with contextlib.suppress(_AtDeadline):
                    deletes.submit(pending)
        deletes.drain()
    result.slowest_request_ms = round(deadline.slowest_ms)
    result.elapsed_ms = round((time.monotonic() - started) * 1000)
    if listing_error is not None:
        raise CleanupError(
            f"listing s3://{bucket} failed after deleting {result.deleted} objects: "
            f"{listing_error}",
            result,
        ) from listing_error
    if result.failures:
        raise CleanupError(
            f"{len(result.failures)} objects could not be deleted from s3://{bucket} "
            f"({result.deleted} deleted): {_describe(result.failures)}",
            result,
        )
    return result


def _is_due(obj: dict[str, Any], max_age: timedelta, cutoff: datetime) -> bool:
    """Old enough to delete: everything when ``max_age`` is 0, else last modified by ``cutoff``.

    ``cutoff`` is the run's start minus ``max_age``, so with a retention window
    an object written during the run is never due.
    """
    return not max_age or obj["LastModified"] <= cutoff


def run_cleanup(
    s3: Any,
    bucket: str,
    log: logging.Logger,
    options: CleanupOptions | None = None,
    remaining_ms: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """Run the cleanup, log the summary either way, and fail loudly on any loss.

    The summary is a structured field (``cleanup``): a JSON field under Lambda's
    JSON log format, JSON after the message in text.
    """
    try:
        result = empty_bucket(s3, bucket, options, remaining_ms)
    except CleanupError as exc:
        log.error("Cleanup failed: %s", exc, extra={"cleanup": exc.result.summary()})
        raise
    summary = result.summary()
    if result.dry_run:
        log.info("Cleanup dry run, nothing deleted", extra={"cleanup": summary})
    elif not result.complete:
        log.warning(
            "Cleanup stopped at the deadline, next run continues", extra={"cleanup": summary}
        )
    else:
        log.info("Cleanup", extra={"cleanup": summary})
    return summary

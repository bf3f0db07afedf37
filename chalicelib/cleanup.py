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

**Per-key retries.** ``DeleteObjects`` may answer 200 and refuse single keys;
botocore retries whole requests, never keys inside an answer. Keys refused with a
transient code (:data:`RETRYABLE_KEY_CODES`) are batched again into later
deletes after a jittered exponential backoff (one draw per answer, so keys refused
together go again together), at most :data:`KEY_ATTEMPTS` sends per key, and only
while the deadline allows. A key refused with any other code, or with its attempts
used up, is reported with its last code.

**Deadline.** A request starts only if the remaining time exceeds ``RESERVE_MS +
MARGIN_FACTOR * estimate``; a list page also needs one more delete's estimate
(the delete that makes listing it worthwhile). The estimate of an operation is
the slowest of its kind measured in this run, scaled up by how many requests
will be in flight against how many were when it was measured (in Lambda's CPU
slice a round trip is mostly client CPU, so parallel requests share it). Before
an operation is measured, the other one's measurement stands in (both carry
1,000 keys), and before anything is measured, ``FIRST_REQUEST_ESTIMATE_MS``.
The requests in flight at the cut started earlier, so they end within one
estimate; the factor leaves as much again for variance and the reserve covers
returning. A run that starts with a minute or more (the cleanup has 900 s) also
reserves one S3 call's worst case (12 s, every attempt timing out): the measured
margins cover calls that behave, that reserve a call that hangs at the cut. A
shorter run cannot afford it and relies on the measured margins. A run stopped
by the deadline returns ``complete: false`` (listing is stateless: the next run
lists what is left), but a run that could not start a
single request, or listed due objects and could start no delete, raises
:class:`DeadlineTooShortError`: it would do the same every day.

**Guarantee.** Every key the run listed is deleted, reported as failed, or counted
in ``remaining_at_least`` (stopped at the deadline); ``listed_through`` is the last
key listed (S3 lists in key order). A listing that fails raises
:class:`CleanupError` saying how far it got, after attempting what it listed.
"""

import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.s3 import WORST_CASE_CALL_S

DELETE_BATCH = 1000  # the most keys one DeleteObjects takes
DELETE_WORKERS = 4  # DeleteObjects in flight at once, beside the listing
RESERVE_MS = 150  # returning: the summary, its log line and metrics
# A run that starts with this much time or more also keeps one S3 call's worst case
# (every attempt timing out, chalicelib/s3.py) in reserve, so that even a call that
# hangs at the cut ends, with the summary and the metrics, before Lambda's timeout.
HANG_RESERVE_FROM_MS = 5 * WORST_CASE_CALL_S * 1000
MARGIN_FACTOR = 2
# Before any measurement: a 1,000-key page costs ~12 ms of client CPU at full speed
# (bench/client_cpu.py), ~170 ms in the smallest (128 MB) slice, ~85 ms in the
# cleanup's 256 MB, plus S3's time.
FIRST_REQUEST_ESTIMATE_MS = 250
# Transient per the S3 error code list (retry "SlowDown", 500 "InternalError", 503
# "ServiceUnavailable", 400 "RequestTimeout"), the codes botocore's standard mode
# retries for whole requests; anything else (AccessDenied, ...) will not pass by waiting.
RETRYABLE_KEY_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"}
)
KEY_ATTEMPTS = 4  # sends per key, the first included
KEY_BACKOFF_BASE_S = 0.1  # re-send n waits rand(0, 1) * min(cap, base * 2**(n-1))
KEY_BACKOFF_CAP_S = 2.0
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
    # S3 may have deleted the key all the same: the request's answer was lost or a
    # server error (after botocore's retries), or the key was refused on a retry of a
    # request whose earlier attempt may have been applied.
    outcome_unknown: bool = False


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
    pages: int = 0  # ListObjectsV2 pages received
    listed_through: str | None = None  # the last key listed: every key after it is unseen
    key_retries: int = 0  # keys sent again after a retryable per-key error
    slowest_request_ms: int = 0
    elapsed_ms: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "complete": self.complete,
            "listed": self.listed,
            "listed_through": self.listed_through,
            "kept": self.kept,
            "due": self.due,
            "deleted": self.deleted,
            "failed": len(self.failures),
            # Due objects listed and still there (failures included); keys after
            # listed_through were not seen, so an incomplete run may leave more.
            "remaining_at_least": self.due - self.deleted,
            "key_retries": self.key_retries,
            "requests": self.requests,
            "slowest_request_ms": self.slowest_request_ms,
            "elapsed_ms": self.elapsed_ms,
        }


class CleanupError(RuntimeError):
    """The cleanup could not delete everything; the message says what failed."""

    def __init__(self, message: str, result: CleanupResult) -> None:
        super().__init__(message)
        self.result = result


class DeadlineTooShortError(CleanupError):
    """The function's timeout leaves no time for the requests that make progress."""


LIST = "ListObjectsV2"
DELETE = "DeleteObjects"


class Deadline:
    """Whether a request started now still ends, with the run, before the Lambda timeout."""

    def __init__(self, remaining_ms: Callable[[], float] | None) -> None:
        self._remaining_ms = remaining_ms
        at_start = None if remaining_ms is None else remaining_ms()
        long_run = at_start is not None and at_start >= HANG_RESERVE_FROM_MS
        self.reserve_ms = RESERVE_MS + (WORST_CASE_CALL_S * 1000 if long_run else 0)
        # operation -> {requests in flight when measured: slowest ms at that concurrency}
        self._slowest_ms: dict[str, dict[int, float]] = {LIST: {}, DELETE: {}}

    def record(self, operation: str, seconds: float, concurrency: int) -> None:
        by_concurrency = self._slowest_ms[operation]
        by_concurrency[concurrency] = max(by_concurrency.get(concurrency, 0.0), seconds * 1000)

    @property
    def slowest_ms(self) -> float:
        return max((ms for by in self._slowest_ms.values() for ms in by.values()), default=0.0)

    def estimate_ms(self, operation: str, concurrency: int = 1) -> float:
        """The slowest ``operation`` so far, scaled up to ``concurrency`` requests in flight."""
        other = DELETE if operation == LIST else LIST
        measured = self._slowest_ms[operation] or self._slowest_ms[other]
        if not measured:
            return FIRST_REQUEST_ESTIMATE_MS * concurrency
        return max(ms * max(1.0, concurrency / then) for then, ms in measured.items())

    def needed_ms(self, operation: str, concurrency: int = 1, then: tuple[str, ...] = ()) -> float:
        """Time to start ``operation`` and the ones in ``then`` that must follow it to be of use.

        The margin factor applies to an operation's own measurements and to the prior; an
        estimate borrowed from the other operation is taken as it is: it already carries
        the run's first-request costs (connection, endpoint resolution), and doubling it
        would refuse the one delete a short run has time for.
        """
        borrowed = not self._slowest_ms[operation] and any(self._slowest_ms.values())
        factor = 1 if borrowed else MARGIN_FACTOR
        needed = self.reserve_ms + factor * self.estimate_ms(operation, concurrency)
        return needed + sum(self.estimate_ms(following, concurrency) for following in then)

    def left_ms(self) -> float | None:
        return None if self._remaining_ms is None else self._remaining_ms()

    def allows_start(
        self, operation: str, concurrency: int = 1, then: tuple[str, ...] = (), after_s: float = 0
    ) -> bool:
        """Time, ``after_s`` from now, for ``operation`` and the ones in ``then``?"""
        left = self.left_ms()
        return left is None or left - after_s * 1000 > self.needed_ms(operation, concurrency, then)


def _describe(failures: list[DeleteFailure]) -> str:
    shown = ", ".join(
        f"{json.dumps(f.key)} ({f.code}: {f.message})" for f in failures[:SHOWN_FAILURES]
    )
    more = len(failures) - SHOWN_FAILURES
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass(frozen=True)
class _Answer:
    failed: list[DeleteFailure]
    refused: bool  # the failures are keys refused in a 200 answer, not a failed request
    seconds: float


def _delete_batch(s3: Any, bucket: str, keys: list[str]) -> _Answer:
    """Delete up to 1,000 keys in one request: the keys that failed, and the time taken.

    A failed request has already been retried by botocore (``chalicelib.s3``)."""
    started = time.monotonic()
    refused = False
    try:
        response = s3.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "ClientError"), error.get("Message", str(exc))
        unknown = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) >= 500
        failed = [DeleteFailure(key, code, message, unknown) for key in keys]
    except BotoCoreError as exc:
        failed = [DeleteFailure(key, type(exc).__name__, str(exc), True) for key in keys]
    else:
        refused = True
        # After a retry, an earlier attempt whose answer was lost may have deleted them.
        unknown = response.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0
        failed = [
            DeleteFailure(e.get("Key", "?"), e.get("Code", "?"), e.get("Message", ""), unknown)
            for e in response.get("Errors", [])
        ]
    return _Answer(failed, refused, time.monotonic() - started)


class _AtDeadline(Exception):
    """No time left to start another request."""


@dataclass(order=True)
class _Retry:
    """Keys refused together in one answer, to send again once ``ready`` (monotonic s)."""

    ready: float
    keys: list[str] = field(compare=False)


class _Deletes:
    """The ``DeleteObjects`` of one run: in flight, pending, and refused keys waiting
    for a retry. Only the calling thread touches the state and the result."""

    def __init__(
        self, s3: Any, bucket: str, pool: ThreadPoolExecutor, workers: int, deadline: Deadline,
        result: CleanupResult,
    ) -> None:  # fmt: skip
        self.s3, self.bucket, self.pool, self.workers = s3, bucket, pool, workers
        self.deadline, self.result = deadline, result
        self.in_flight: dict[Future, tuple[list[str], int]] = {}  # keys, concurrency at start
        self.pending: list[str] = []  # listed (or ready to retry), not yet sent
        self.retries: list[_Retry] = []
        self.sends: dict[str, int] = {}  # keys refused at least once: sends so far
        self.unknown: set[str] = set()  # refused keys a send of which may have deleted
        self.listing = True  # a list page may run beside the deletes
        self.sent = 0  # DeleteObjects started

    def add(self, keys: list[str]) -> None:
        """Queue listed keys; send every full batch (raises :class:`_AtDeadline`)."""
        self.pending.extend(keys)
        self._promote_ready()
        while len(self.pending) >= DELETE_BATCH:
            self._submit_next()

    def finish(self) -> bool:
        """Send what is pending and every retry the deadline allows, wait for all in
        flight; False if the deadline stopped it with keys unsent."""
        self.listing = False
        try:
            while True:
                self._promote_ready()
                if self.pending:
                    self._submit_next()
                elif self.retries:  # none ready yet: wait for an answer or the first one
                    wait_s = max(0.0, min(self.retries).ready - time.monotonic())
                    if self.in_flight:
                        self._collect(wait(self.in_flight, wait_s, FIRST_COMPLETED).done)
                    elif self.deadline.allows_start(DELETE, 1, after_s=wait_s):
                        time.sleep(wait_s)
                    else:
                        raise _AtDeadline
                elif self.in_flight:
                    self._collect(wait(self.in_flight, return_when=FIRST_COMPLETED).done)
                else:
                    return True
        except _AtDeadline:
            self.drain()
            return False

    def drain(self) -> None:
        """Wait for every delete in flight: each started with the margin the rule left."""
        while self.in_flight:
            self._collect(wait(self.in_flight).done)

    def concurrency(self) -> int:
        """Requests in flight if one more delete starts now: with a list page beside
        it only if the next page may still start (near the cut it may not)."""
        deletes = len(self.in_flight) + 1
        next_list = self.listing and self.deadline.allows_start(LIST, deletes + 1, then=(DELETE,))
        return deletes + next_list

    def _promote_ready(self) -> None:
        now = time.monotonic()
        ready = [r for r in self.retries if r.ready <= now]
        if ready:
            self.retries = [r for r in self.retries if r.ready > now]
            # Retries first: they have waited longest.
            self.pending[:0] = [key for r in sorted(ready) for key in r.keys]

    def _submit_next(self) -> None:
        """Send the next batch once a slot is free; raises :class:`_AtDeadline`."""
        while len(self.in_flight) >= self.workers:
            self._collect(wait(self.in_flight, return_when=FIRST_COMPLETED).done)
        self._collect([f for f in self.in_flight if f.done()])
        self._promote_ready()
        if not self.pending:
            return
        concurrency = self.concurrency()
        if not self.deadline.allows_start(DELETE, concurrency):
            raise _AtDeadline
        keys = self.pending[:DELETE_BATCH]
        del self.pending[:DELETE_BATCH]
        future = self.pool.submit(_delete_batch, self.s3, self.bucket, keys)
        self.in_flight[future] = (keys, concurrency)
        self.result.requests += 1
        self.sent += 1
        resent = [key for key in keys if key in self.sends]
        self.result.key_retries += len(resent)
        for key in resent:
            self.sends[key] += 1

    def _collect(self, done: Any) -> None:
        for future in done:
            keys, concurrency = self.in_flight.pop(future)
            answer: _Answer = future.result()
            self.deadline.record(DELETE, answer.seconds, concurrency)
            failed, retryable = answer.failed, RETRYABLE_KEY_CODES if answer.refused else ()
            retry = []
            for failure in failed:
                sends = self.sends.setdefault(failure.key, 1)
                if failure.outcome_unknown:
                    self.unknown.add(failure.key)
                if failure.code in retryable and sends < KEY_ATTEMPTS:
                    retry.append(failure.key)
                    continue
                message = failure.message
                if failure.code in retryable:
                    message += f" (refused {sends} times)"
                self.result.failures.append(
                    replace(failure, message=message, outcome_unknown=failure.key in self.unknown)
                )
            self.result.deleted += len(keys) - len(failed)
            if retry:
                self.retries.append(_Retry(time.monotonic() + _backoff_s(retry, self.sends), retry))


def _backoff_s(keys: list[str], sends: dict[str, int]) -> float:
    """Full jitter: rand(0, 1) * min(cap, base * 2**(n-1)) before the n-th re-send."""
    resend = max(sends[key] for key in keys)
    return random.random() * min(KEY_BACKOFF_CAP_S, KEY_BACKOFF_BASE_S * 2 ** (resend - 1))


def _pages(
    s3: Any, bucket: str, deadline: Deadline, deletes: "_Deletes", result: CleanupResult
) -> Iterator[dict]:
    """``ListObjectsV2`` pages; raises :class:`_AtDeadline` rather than start one too late.

    Unless it is a dry run, a page is only worth listing if its delete can start too.
    """
    params: dict[str, str] = {"Bucket": bucket}
    while True:
        concurrency = len(deletes.in_flight) + 1
        if not deadline.allows_start(LIST, concurrency, then=() if result.dry_run else (DELETE,)):
            raise _AtDeadline
        started = time.monotonic()
        result.requests += 1
        page = s3.list_objects_v2(**params)
        deadline.record(LIST, time.monotonic() - started, concurrency)
        result.pages += 1
        yield page
        if not page.get("IsTruncated"):
            return
        params["ContinuationToken"] = page["NextContinuationToken"]


def _too_short(bucket: str, result: CleanupResult, deadline: Deadline, left_ms: float) -> str:
    """Why a run stopped at the deadline without progress, naming the setting to change."""
    measured = "measured in this run" if deadline.slowest_ms else "estimated before measuring"
    if result.requests == 0:
        needed = deadline.needed_ms(LIST, 1, then=() if result.dry_run else (DELETE,))
        what = "a list needs" if result.dry_run else "a list and a delete need"
        start = f"cleanup of s3://{bucket} could not start a request: {left_ms:,.0f} ms left"
    else:
        needed = deadline.needed_ms(DELETE, 1)
        what = "a delete needs"
        start = (
            f"cleanup of s3://{bucket} listed {result.due:,} due objects but could not start "
            f"a delete: {left_ms:,.0f} ms left"
        )
    return (
        f"{start} of the function's timeout, {what} ~{needed:,.0f} ms ({measured}); "
        "raise lambda_timeout for cleanup in .chalice/config.json"
    )


def _pages_text(pages: int) -> str:
    return f"{pages:,} page" + ("" if pages == 1 else "s")


def _listing_failed(bucket: str, result: CleanupResult, error: Exception) -> str:
    through = json.dumps(result.listed_through) if result.listed_through else "no key"
    return (
        f"listing s3://{bucket} failed after {_pages_text(result.pages)} ({result.listed:,} keys "
        f"listed, through {through}; {result.deleted:,} deleted, {len(result.failures):,} "
        f"failed, {result.due - result.deleted:,} due left); keys after it were not seen: "
        f"{error}"
    )


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
    result, if listing fails or any key could not be deleted, only after every
    key already listed was attempted as far as the deadline allows; and
    :class:`DeadlineTooShortError` if the deadline let it make no progress.
    """
    options = options or CleanupOptions()
    started = time.monotonic()
    cutoff = datetime.now(UTC) - options.max_age
    result = CleanupResult(dry_run=options.dry_run)
    deadline = Deadline(remaining_ms)
    listing_error: ClientError | BotoCoreError | None = None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cleanup-delete") as pool:
        deletes = _Deletes(s3, bucket, pool, workers, deadline, result)
        try:
            for page in _pages(s3, bucket, deadline, deletes, result):
                contents = page.get("Contents", [])
                due = [o["Key"] for o in contents if _is_due(o, options.max_age, cutoff)]
                result.listed += len(contents)
                result.kept += len(contents) - len(due)
                result.due += len(due)
                if contents:
                    result.listed_through = contents[-1]["Key"]
                if not options.dry_run:
                    deletes.add(due)
        except _AtDeadline:
            result.complete = False
        except (ClientError, BotoCoreError) as exc:
            listing_error, result.complete = exc, False
        # Whatever stopped the listing, what it listed is attempted (deadline permitting).
        if not deletes.finish():
            result.complete = False
    result.slowest_request_ms = round(deadline.slowest_ms)
    result.elapsed_ms = round((time.monotonic() - started) * 1000)
    if listing_error is not None:
        raise CleanupError(_listing_failed(bucket, result, listing_error), result) from (
            listing_error
        )
    if result.failures:
        raise CleanupError(
            f"{len(result.failures)} objects could not be deleted from s3://{bucket} "
            f"({result.deleted} deleted): {_describe(result.failures)}",
            result,
        )
    stuck = result.requests == 0 or (result.due and not result.dry_run and not deletes.sent)
    if not result.complete and stuck:
        left = deadline.left_ms() or 0.0
        raise DeadlineTooShortError(_too_short(bucket, result, deadline, left), result)
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

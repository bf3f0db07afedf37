"""The run: list the key ranges, delete what is due, and report (``empty_bucket``,
``run_cleanup``).

One loop on the calling thread starts requests into a thread pool and takes their
answers: list pages of up to ``LISTS_IN_FLIGHT`` ranges side by side
(:mod:`~chalicelib.cleanup.listing`), ``DeleteObjects`` of 1,000 due keys as many
as the window allows (:mod:`~chalicelib.cleanup.window`), re-sends of refused keys
once their backoff has passed (:mod:`~chalicelib.cleanup.deletes`), each only if
the deadline allows it (:mod:`~chalicelib.cleanup.deadline`). Only this thread
touches the state; the pool's threads only send.

Memory stays bounded whatever the bucket holds: a page is listed only while the
keys waiting to be deleted, with the pages in flight, are fewer than two windows
and a batch (``(2 * window + 1) * 1,000``: enough for the window to double at
once); the keys in flight are the window's; per key, only those refused at least
once are remembered.
"""

import logging
import random
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.cleanup.clock import SYSTEM_CLOCK, Clock
from chalicelib.cleanup.deadline import DELETE, LIST, Deadline
from chalicelib.cleanup.deletes import DELETE_BATCH, KeyRetries, delete_batch
from chalicelib.cleanup.listing import KEYS_PER_PAGE, Listing, Range
from chalicelib.cleanup.result import (
    CleanupError,
    CleanupOptions,
    CleanupResult,
    DeadlineTooShortError,
    describe_failures,
    listing_failed,
)
from chalicelib.cleanup.window import MAX_DELETES_IN_FLIGHT, DeleteWindow

LISTS_IN_FLIGHT = 4  # list pages at once, each of another range


@dataclass
class _Request:
    operation: str
    started: float
    concurrency: int  # requests in flight with it, when it started
    range: Range | None = None
    keys: list[str] = field(default_factory=list)
    deletes: int = 0  # deletes in flight with it (a delete), when it started
    ended: float | None = None  # set by the pool's thread when the call returns


def _list_page(s3: Any, bucket: str, params: dict[str, str]) -> dict[str, Any]:
    return s3.list_objects_v2(Bucket=bucket, **params)


class _Run:
    def __init__(
        self, s3: Any, bucket: str, options: CleanupOptions, deadline: Deadline, clock: Clock,
        pool: Executor, window: DeleteWindow, lists_in_flight: int, retries: KeyRetries,
    ) -> None:  # fmt: skip
        self.s3, self.bucket, self.options, self.deadline = s3, bucket, options, deadline
        self.clock, self.pool, self.window, self.retries = clock, pool, window, retries
        self.lists_in_flight = lists_in_flight
        self.cutoff = datetime.now(UTC) - options.max_age
        self.result = CleanupResult(dry_run=options.dry_run)
        self.listing = Listing()
        self.in_flight: dict[Future, _Request] = {}
        self.pending: list[str] = []  # due keys (or ready re-sends) not yet sent
        self.listing_open = True  # list pages may still start
        self.listing_error: ClientError | BotoCoreError | None = None
        self.stopped = False  # the deadline refused a delete with nothing in flight
        self.deletes_sent = 0

    def go(self) -> CleanupResult:
        started = self.clock.monotonic()
        while True:
            self._start()
            if self.in_flight:
                ready = self.retries.next_ready()
                timeout = None if ready is None else max(0.0, ready - self.clock.monotonic())
                for future in self.clock.wait_any(list(self.in_flight), timeout):
                    self._collect(future)
                continue
            ready = self.retries.next_ready()
            if ready is None or self.stopped:
                break
            wait_s = max(0.0, ready - self.clock.monotonic())
            if not self.deadline.allows_start(DELETE, 1, after_s=wait_s):
                break  # the backoff would end past the cut: the keys stay, counted
            self.clock.sleep(wait_s)
        result = self.result
        result.unlisted = self.listing.unlisted()
        result.complete = (
            self.listing.finished
            and self.listing_error is None
            and not self.pending
            and not self.retries.waiting_keys
        )
        result.slowest_request_ms = round(self.deadline.slowest_ms)
        result.elapsed_ms = round((self.clock.monotonic() - started) * 1000)
        return result

    # -- starting requests ----------------------------------------------------------

    def _start(self) -> None:
        self.pending[:0] = self.retries.ready(self.clock.monotonic())  # waited longest
        deletes = sum(1 for r in self.in_flight.values() if r.operation == DELETE)
        while not self.stopped and self._batch_ready() and deletes < self.window.size:
            if not self.deadline.allows_start(DELETE, len(self.in_flight) + 1):
                self.stopped = not self.in_flight  # else: again once fewer are in flight
                self.listing_open = self.listing_open and not self.stopped
                break
            self._send_delete()
            deletes += 1
        then = () if self.options.dry_run else (DELETE,)
        while self.listing_open and self.listing.busy < self.lists_in_flight and self._room():
            r = self.listing.next()
            if r is None:
                break
            if not self.deadline.allows_start(LIST, len(self.in_flight) + 1, then=then):
                # Again once fewer are in flight; with none, never (time only runs out).
                self.listing_open = bool(self.in_flight)
                break
            params = self.listing.request(r)
            self._submit(_Request(LIST, 0, 0, range=r), _list_page, self.s3, self.bucket, params)

    def _batch_ready(self) -> bool:
        if len(self.pending) >= DELETE_BATCH:
            return True
        listing_over = (not self.listing_open or self.listing.finished) and not self.listing.busy
        return bool(self.pending) and listing_over

    def _room(self) -> bool:
        """Room for one more page of keys to wait beside the deletes (memory's bound)."""
        if self.options.dry_run:
            return True
        waiting = len(self.pending) + KEYS_PER_PAGE * self.listing.busy
        return waiting < (2 * self.window.size + 1) * DELETE_BATCH

    def _send_delete(self) -> None:
        keys, self.pending = self.pending[:DELETE_BATCH], self.pending[DELETE_BATCH:]
        self.result.key_retries += self.retries.sending(keys)
        self.deletes_sent += 1
        deletes = 1 + sum(1 for r in self.in_flight.values() if r.operation == DELETE)
        request = _Request(DELETE, 0, 0, keys=keys, deletes=deletes)
        self._submit(request, delete_batch, self.s3, self.bucket, keys)
        self.result.max_deletes_in_flight = max(self.result.max_deletes_in_flight, deletes)

    def _submit(self, request: _Request, fn: Callable[..., Any], *args: Any) -> None:
        request.started, request.concurrency = self.clock.monotonic(), len(self.in_flight) + 1
        future = self.pool.submit(fn, *args)
        self.in_flight[future] = request
        self.result.requests += 1

        # Runs in the pool's thread as the call returns. Should it run after the answer is
        # taken, the taking's time stands in: a little later, so the estimate errs long.
        def ended(_: Future) -> None:
            request.ended = self.clock.monotonic()

        future.add_done_callback(ended)

    # -- taking answers -------------------------------------------------------------

    def _collect(self, future: Future) -> None:
        request = self.in_flight.pop(future)
        seconds = (request.ended or self.clock.monotonic()) - request.started
        if request.operation == LIST:
            assert request.range is not None
            try:
                page = future.result()
            except (ClientError, BotoCoreError) as exc:  # after botocore's retries
                self.listing.failed(request.range)
                self.listing_error = self.listing_error or exc
                self.listing_open = False
                return
            self.deadline.record(LIST, seconds, request.concurrency)
            self._listed(self.listing.page(request.range, page))
        else:
            answer = future.result()
            self.deadline.record(DELETE, seconds, request.concurrency)
            full = len(request.keys) == DELETE_BATCH
            self.window.on_answer(seconds, answer.throttled, request.deletes, full)
            self.result.failures += self.retries.answered(answer, self.clock.monotonic())
            self.result.deleted += len(request.keys) - len(answer.failed)

    def _listed(self, objects: list[dict[str, Any]]) -> None:
        result, max_age = self.result, self.options.max_age
        due = [o["Key"] for o in objects if is_due(o, max_age, self.cutoff)]
        result.pages += 1
        result.listed += len(objects)
        result.kept += len(objects) - len(due)
        result.due += len(due)
        if not self.options.dry_run:
            self.pending += due


def empty_bucket(
    s3: Any,
    bucket: str,
    options: CleanupOptions | None = None,
    remaining_ms: Callable[[], float] | None = None,
    *,
    workers: int | None = None,
    lists_in_flight: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
    pool: Executor | None = None,
    rng: random.Random | None = None,
) -> CleanupResult:
    """Delete every object older than ``options.max_age`` (all when 0) before the deadline.

    ``remaining_ms`` is the Lambda context's ``get_remaining_time_in_millis``
    (no deadline when None). Returns the result, with ``complete`` false if the
    deadline stopped it. Raises :class:`CleanupError`, carrying the partial
    result, if listing fails or any key could not be deleted, only after every
    key already listed was attempted as far as the deadline allows; and
    :class:`DeadlineTooShortError` if the deadline let it make no progress.

    ``workers`` pins the deletes in flight (the benchmark's sweep; None adapts),
    ``lists_in_flight`` bounds the list pages at once (default ``LISTS_IN_FLIGHT``);
    ``clock``, ``pool`` and ``rng`` (the re-sends' jitter) are for tests.
    """
    options = options or CleanupOptions()
    lists = LISTS_IN_FLIGHT if lists_in_flight is None else lists_in_flight
    window = (
        DeleteWindow()
        if workers is None
        else DeleteWindow(workers, maximum=max(workers, MAX_DELETES_IN_FLIGHT), pinned=True)
    )
    deadline = Deadline(remaining_ms, options.dry_run)
    threads = window.maximum + lists
    own_pool = ThreadPoolExecutor(threads, thread_name_prefix="cleanup") if pool is None else None
    with own_pool or nullcontext(pool) as executor:
        run = _Run(s3, bucket, options, deadline, clock, executor, window, lists, KeyRetries(rng))
        result = run.go()
    if run.listing_error is not None:
        error = run.listing_error
        raise CleanupError(listing_failed(bucket, result, error), result) from error
    if result.failures:
        raise CleanupError(
            f"{len(result.failures)} objects could not be deleted from s3://{bucket} "
            f"({result.deleted} deleted): {describe_failures(result.failures)}",
            result,
        )
    # No progress: nothing listed but the days, or due keys listed and none sent.
    stuck = not result.listed or (not result.dry_run and result.due and not run.deletes_sent)
    if not result.complete and stuck:
        raise DeadlineTooShortError(deadline.too_short(bucket, result), result)
    return result


def is_due(obj: dict[str, Any], max_age: timedelta, cutoff: datetime) -> bool:
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

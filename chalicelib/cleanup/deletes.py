"""Delete scheduling: ``DeleteObjects`` in flight beside the listing, and per-key retries.

At most ``workers`` batches of up to 1,000 keys are in flight; the listing waits for
a free slot, so memory stays bounded whatever the bucket holds.

``DeleteObjects`` may answer 200 and refuse single keys; botocore retries whole
requests, never keys inside an answer. Keys refused with a transient code
(:data:`RETRYABLE_KEY_CODES`) are batched again into later deletes after a jittered
exponential backoff (one draw per answer, so keys refused together go again
together), at most :data:`KEY_ATTEMPTS` sends per key, and only while the deadline
allows. A key refused with any other code, or with its attempts used up, is
reported with its last code.
"""

import random
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.cleanup.clock import Clock
from chalicelib.cleanup.deadline import DELETE, LIST, Deadline
from chalicelib.cleanup.result import CleanupResult, DeleteFailure

DELETE_BATCH = 1000  # the most keys one DeleteObjects takes
DELETE_WORKERS = 4  # DeleteObjects in flight at once, beside the listing
# Transient per the S3 error code list (retry "SlowDown", 500 "InternalError", 503
# "ServiceUnavailable", 400 "RequestTimeout"), the codes botocore's standard mode
# retries for whole requests; anything else (AccessDenied, ...) will not pass by waiting.
RETRYABLE_KEY_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"}
)
KEY_ATTEMPTS = 4  # sends per key, the first included
KEY_BACKOFF_BASE_S = 0.1  # re-send n waits rand(0, 1) * min(cap, base * 2**(n-1))
KEY_BACKOFF_CAP_S = 2.0


@dataclass(frozen=True)
class Answer:
    failed: list[DeleteFailure]
    refused: bool  # the failures are keys refused in a 200 answer, not a failed request
    seconds: float


def delete_batch(s3: Any, bucket: str, keys: list[str], clock: Clock) -> Answer:
    """Delete up to 1,000 keys in one request: the keys that failed, and the time taken.

    A failed request has already been retried by botocore (``chalicelib.s3``)."""
    started = clock.monotonic()
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
    return Answer(failed, refused, clock.monotonic() - started)


class AtDeadline(Exception):
    """No time left to start another request."""


@dataclass(order=True)
class Retry:
    """Keys refused together in one answer, to send again once ``ready`` (monotonic s)."""

    ready: float
    keys: list[str] = field(compare=False)


def backoff_s(keys: list[str], sends: dict[str, int], draw: float) -> float:
    """Full jitter: ``draw`` (in [0, 1)) * min(cap, base * 2**(n-1)) before the n-th re-send."""
    resend = max(sends[key] for key in keys)
    return draw * min(KEY_BACKOFF_CAP_S, KEY_BACKOFF_BASE_S * 2 ** (resend - 1))


class Deletes:
    """The ``DeleteObjects`` of one run: in flight, pending, and refused keys waiting
    for a retry. Only the calling thread touches the state and the result."""

    def __init__(
        self, s3: Any, bucket: str, pool: ThreadPoolExecutor, workers: int, deadline: Deadline,
        result: CleanupResult, clock: Clock, rng: random.Random | None = None,
    ) -> None:  # fmt: skip
        self.s3, self.bucket, self.pool, self.workers = s3, bucket, pool, workers
        self.deadline, self.result, self.clock = deadline, result, clock
        self.rng = rng or random.Random()
        self.in_flight: dict[Future, tuple[list[str], int]] = {}  # keys, concurrency at start
        self.pending: list[str] = []  # listed (or ready to retry), not yet sent
        self.retries: list[Retry] = []
        self.sends: dict[str, int] = {}  # keys refused at least once: sends so far
        self.unknown: set[str] = set()  # refused keys a send of which may have deleted
        self.listing = True  # a list page may run beside the deletes
        self.sent = 0  # DeleteObjects started

    def add(self, keys: list[str]) -> None:
        """Queue listed keys; send every full batch (raises :class:`AtDeadline`)."""
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
                    wait_s = max(0.0, min(self.retries).ready - self.clock.monotonic())
                    if self.in_flight:
                        self._collect(wait(self.in_flight, wait_s, FIRST_COMPLETED).done)
                    elif self.deadline.allows_start(DELETE, 1, after_s=wait_s):
                        self.clock.sleep(wait_s)
                    else:
                        raise AtDeadline
                elif self.in_flight:
                    self._collect(wait(self.in_flight, return_when=FIRST_COMPLETED).done)
                else:
                    return True
        except AtDeadline:
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
        now = self.clock.monotonic()
        ready = [r for r in self.retries if r.ready <= now]
        if ready:
            self.retries = [r for r in self.retries if r.ready > now]
            # Retries first: they have waited longest.
            self.pending[:0] = [key for r in sorted(ready) for key in r.keys]

    def _submit_next(self) -> None:
        """Send the next batch once a slot is free; raises :class:`AtDeadline`."""
        while len(self.in_flight) >= self.workers:
            self._collect(wait(self.in_flight, return_when=FIRST_COMPLETED).done)
        self._collect([f for f in self.in_flight if f.done()])
        self._promote_ready()
        if not self.pending:
            return
        concurrency = self.concurrency()
        if not self.deadline.allows_start(DELETE, concurrency):
            raise AtDeadline
        keys = self.pending[:DELETE_BATCH]
        del self.pending[:DELETE_BATCH]
        future = self.pool.submit(delete_batch, self.s3, self.bucket, keys, self.clock)
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
            answer: Answer = future.result()
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
                wait_s = backoff_s(retry, self.sends, self.rng.random())
                self.retries.append(Retry(self.clock.monotonic() + wait_s, retry))

"""The deadline rule: start a request only if it, and the run's return, end in time.

A request starts only if the remaining time exceeds ``reserve + MARGIN_FACTOR *
estimate``; a list page also needs one more delete's estimate (the delete that
makes listing it worthwhile).

**Estimates.** An operation's estimate is the slowest of its kind measured in
this run (from the client: round trip, retries and contention included), scaled
up by how far the requests in flight exceed the most that were in flight at any
measurement (in Lambda's CPU slice a round trip is mostly client CPU, which
parallel requests share; at a concurrency already measured, the measurement
stands as it is). Before an operation is measured, the other one's measurement
stands in (both carry 1,000 keys), taken as it is; before anything is measured,
``FIRST_REQUEST_ESTIMATE_MS`` per request in flight.

**Why it holds.** The requests in flight at the cut started earlier, so they end
within one estimate; the factor leaves as much again for variance and the reserve
covers returning (``RESERVE_MS``). A run that starts with at least five times the
worst case of the slowest call it may start (a ``DeleteObjects`` with every
attempt timing out, ``chalicelib.s3.WORST_CASE_DELETE_S``, 51 s; a dry run only lists,
``WORST_CASE_LIST_S``, 21 s) also keeps that worst case in reserve: the measured margins
cover calls that behave, that reserve a call that hangs at the cut. A shorter run
cannot afford it and relies on the measured margins.
"""

from collections.abc import Callable

from chalicelib.cleanup.result import CleanupResult
from chalicelib.s3 import WORST_CASE_DELETE_S, WORST_CASE_LIST_S

LIST = "ListObjectsV2"
DELETE = "DeleteObjects"

RESERVE_MS = 150  # returning: the summary, its log line and metrics
HANG_RESERVE_RUNS = 5  # a run this many worst cases long keeps one in reserve
MARGIN_FACTOR = 2
# Before any measurement: a 1,000-key page costs ~12 ms of client CPU at full speed
# (bench/client_cpu.py), ~170 ms in the smallest (128 MB) slice, ~85 ms in the
# cleanup's 256 MB, plus S3's time.
FIRST_REQUEST_ESTIMATE_MS = 250


def hang_reserve_ms(at_start_ms: float | None, dry_run: bool = False) -> float:
    """The worst case of one call the run may start, if the run is long enough to keep it."""
    worst_ms = (WORST_CASE_LIST_S if dry_run else WORST_CASE_DELETE_S) * 1000
    long_run = at_start_ms is not None and at_start_ms >= HANG_RESERVE_RUNS * worst_ms
    return worst_ms if long_run else 0.0


class Deadline:
    """Whether a request started now still ends, with the run, before the Lambda timeout.

    ``remaining_ms`` is the Lambda context's ``get_remaining_time_in_millis`` (no
    deadline when None)."""

    def __init__(self, remaining_ms: Callable[[], float] | None, dry_run: bool = False) -> None:
        self._remaining_ms = remaining_ms
        at_start = None if remaining_ms is None else remaining_ms()
        self.reserve_ms = RESERVE_MS + hang_reserve_ms(at_start, dry_run)
        # operation -> {requests in flight when measured: slowest ms at that concurrency}
        self._slowest_ms: dict[str, dict[int, float]] = {LIST: {}, DELETE: {}}

    def record(self, operation: str, seconds: float, concurrency: int) -> None:
        by_concurrency = self._slowest_ms[operation]
        by_concurrency[concurrency] = max(by_concurrency.get(concurrency, 0.0), seconds * 1000)

    @property
    def slowest_ms(self) -> float:
        return max((ms for by in self._slowest_ms.values() for ms in by.values()), default=0.0)

    @property
    def measured(self) -> bool:
        return bool(self.slowest_ms)

    def estimate_ms(self, operation: str, concurrency: int = 1) -> float:
        """The slowest ``operation`` so far, scaled up by how far ``concurrency`` exceeds
        the most requests in flight it was measured at."""
        other = DELETE if operation == LIST else LIST
        measured = self._slowest_ms[operation] or self._slowest_ms[other]
        if not measured:
            return FIRST_REQUEST_ESTIMATE_MS * concurrency
        return max(measured.values()) * max(1.0, concurrency / max(measured))

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

    def too_short(self, bucket: str, result: CleanupResult) -> str:
        """Why a run stopped at the deadline without progress, naming the setting to change."""
        left_ms = self.left_ms() or 0.0
        measured = "measured in this run" if self.measured else "estimated before measuring"
        if result.requests == 0 or not result.listed:
            needed = self.needed_ms(LIST, 1, then=() if result.dry_run else (DELETE,))
            what = "a list needs" if result.dry_run else "a list and a delete need"
            could_not = "start a request" if result.requests == 0 else "list an object"
            start = f"cleanup of s3://{bucket} could not {could_not}: {left_ms:,.0f} ms left"
        else:
            needed = self.needed_ms(DELETE, 1)
            what = "a delete needs"
            start = (
                f"cleanup of s3://{bucket} listed {result.due:,} due objects but could not "
                f"start a delete: {left_ms:,.0f} ms left"
            )
        return (
            f"{start} of the function's timeout, {what} ~{needed:,.0f} ms ({measured}); "
            "raise lambda_timeout for cleanup in .chalice/config.json"
        )

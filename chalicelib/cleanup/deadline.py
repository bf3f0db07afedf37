"""The deadline rule: start a request only if it, and the run's return, end in time.

A request starts only if the remaining time exceeds ``RESERVE_MS + MARGIN_FACTOR *
estimate``; a list page also needs one more delete's estimate (the delete that makes
listing it worthwhile). The estimate of an operation is the slowest of its kind
measured in this run, scaled up by how many requests will be in flight against how
many were when it was measured (in Lambda's CPU slice a round trip is mostly client
CPU, so parallel requests share it). Before an operation is measured, the other
one's measurement stands in (both carry 1,000 keys), and before anything is
measured, ``FIRST_REQUEST_ESTIMATE_MS``. The requests in flight at the cut started
earlier, so they end within one estimate; the factor leaves as much again for
variance and the reserve covers returning. A run that starts with a minute or more
(the cleanup has 900 s) also reserves one S3 call's worst case (12 s, every attempt
timing out): the measured margins cover calls that behave, that reserve a call that
hangs at the cut. A shorter run cannot afford it and relies on the measured margins.
"""

from collections.abc import Callable

from chalicelib.cleanup.result import CleanupResult
from chalicelib.s3 import WORST_CASE_CALL_S

LIST = "ListObjectsV2"
DELETE = "DeleteObjects"

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


class Deadline:
    """Whether a request started now still ends, with the run, before the Lambda timeout.

    ``remaining_ms`` is the Lambda context's ``get_remaining_time_in_millis`` (no
    deadline when None)."""

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

    @property
    def measured(self) -> bool:
        return bool(self.slowest_ms)

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

    def too_short(self, bucket: str, result: CleanupResult) -> str:
        """Why a run stopped at the deadline without progress, naming the setting to change."""
        left_ms = self.left_ms() or 0.0
        measured = "measured in this run" if self.measured else "estimated before measuring"
        if result.requests == 0:
            needed = self.needed_ms(LIST, 1, then=() if result.dry_run else (DELETE,))
            what = "a list needs" if result.dry_run else "a list and a delete need"
            start = f"cleanup of s3://{bucket} could not start a request: {left_ms:,.0f} ms left"
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

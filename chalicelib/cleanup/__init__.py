"""Emptying the reports bucket at the limit of the S3 API, inside the Lambda deadline.

One job per module:

- :mod:`~chalicelib.cleanup.run`: the run (``empty_bucket``, ``run_cleanup``), one loop
  that starts requests and takes their answers;
- :mod:`~chalicelib.cleanup.listing`: the bucket cut into key ranges listed side by side;
- :mod:`~chalicelib.cleanup.window`: how many ``DeleteObjects`` are in flight (adaptive);
- :mod:`~chalicelib.cleanup.deletes`: one ``DeleteObjects`` and the per-key re-sends;
- :mod:`~chalicelib.cleanup.deadline`: the rule that starts a request only if it ends in time;
- :mod:`~chalicelib.cleanup.result`: options, result and summary, errors and their messages;
- :mod:`~chalicelib.cleanup.clock`: the time it reads and waits on (a fake one in tests).

**Cost.** One ``ListObjectsV2`` per 1,000 objects listed (plus one to find the
top-level prefixes, one per 1,000 days under ``reports/``, and the last page of
each range) and one ``DeleteObjects`` (``Quiet``: the answer carries only failures)
per 1,000 objects deleted. Due keys are batched across pages and ranges, so with
a retention window the deletes still go 1,000 at a time.

**Deadline.** A run stopped by the deadline returns ``complete: false`` (listing is
stateless: the next run lists what is left), but a run that could not start a
single request, or listed due objects and could start no delete, raises
:class:`DeadlineTooShortError`: it would do the same every day.

**Guarantee.** Every key the run listed (every key outside the ranges of
``unlisted``) is deleted, reported as failed, or counted in ``remaining_at_least``
(stopped at the deadline). A listing that fails raises :class:`CleanupError`
saying what it did not list, after attempting what it listed.
"""

from chalicelib.cleanup.deadline import (
    FIRST_REQUEST_ESTIMATE_MS,
    MARGIN_FACTOR,
    RESERVE_MS,
    Deadline,
)
from chalicelib.cleanup.deletes import KEY_ATTEMPTS, RETRYABLE_KEY_CODES
from chalicelib.cleanup.listing import KeyRange
from chalicelib.cleanup.result import (
    CleanupError,
    CleanupOptions,
    CleanupResult,
    DeadlineTooShortError,
    DeleteFailure,
)
from chalicelib.cleanup.run import empty_bucket, run_cleanup
from chalicelib.cleanup.window import INITIAL_DELETES_IN_FLIGHT, MAX_DELETES_IN_FLIGHT

__all__ = [
    "FIRST_REQUEST_ESTIMATE_MS",
    "INITIAL_DELETES_IN_FLIGHT",
    "KEY_ATTEMPTS",
    "MARGIN_FACTOR",
    "MAX_DELETES_IN_FLIGHT",
    "RESERVE_MS",
    "RETRYABLE_KEY_CODES",
    "CleanupError",
    "CleanupOptions",
    "CleanupResult",
    "Deadline",
    "DeadlineTooShortError",
    "DeleteFailure",
    "KeyRange",
    "empty_bucket",
    "run_cleanup",
]

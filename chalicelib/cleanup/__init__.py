"""Emptying the reports bucket at the limit of the S3 API, inside the Lambda deadline.

One job per module:

- :mod:`~chalicelib.cleanup.result`: options, result and summary, errors and their messages;
- :mod:`~chalicelib.cleanup.deadline`: the rule that starts a request only if it ends in time;
- :mod:`~chalicelib.cleanup.deletes`: ``DeleteObjects`` in flight, per-key retries;
- :mod:`~chalicelib.cleanup.listing`: ``ListObjectsV2`` pages;
- :mod:`~chalicelib.cleanup.run`: the run itself (``empty_bucket``, ``run_cleanup``);
- :mod:`~chalicelib.cleanup.clock`: the time it reads and waits on (a fake one in tests).

**Cost.** One ``ListObjectsV2`` per 1,000 objects listed and one ``DeleteObjects``
(``Quiet``: the answer carries only failures) per 1,000 objects deleted. Keys due
for deletion are batched across pages, so with a retention window that keeps some
objects the deletes still go 1,000 at a time: ``ceil(listed / 1000) + ceil(due /
1000)`` requests, 2 per 1,000 when everything is due (the Go seed's SDK needs 11).

**Pipeline.** The calling thread lists page after page (the continuation token
makes listing sequential) while up to ``DELETE_WORKERS`` ``DeleteObjects`` run in
a small pool: deletes of disjoint keys are independent, and deleting keys already
listed does not disturb a listing that continues after them.

**Deadline.** A run stopped by the deadline returns ``complete: false`` (listing is
stateless: the next run lists what is left), but a run that could not start a
single request, or listed due objects and could start no delete, raises
:class:`DeadlineTooShortError`: it would do the same every day.

**Guarantee.** Every key the run listed is deleted, reported as failed, or counted
in ``remaining_at_least`` (stopped at the deadline); ``listed_through`` is the last
key listed (S3 lists in key order). A listing that fails raises
:class:`CleanupError` saying how far it got, after attempting what it listed.
"""

from chalicelib.cleanup.deadline import (
    FIRST_REQUEST_ESTIMATE_MS,
    MARGIN_FACTOR,
    RESERVE_MS,
    Deadline,
)
from chalicelib.cleanup.deletes import DELETE_WORKERS, KEY_ATTEMPTS, RETRYABLE_KEY_CODES
from chalicelib.cleanup.result import (
    CleanupError,
    CleanupOptions,
    CleanupResult,
    DeadlineTooShortError,
    DeleteFailure,
)
from chalicelib.cleanup.run import empty_bucket, run_cleanup

__all__ = [
    "DELETE_WORKERS",
    "FIRST_REQUEST_ESTIMATE_MS",
    "KEY_ATTEMPTS",
    "MARGIN_FACTOR",
    "RESERVE_MS",
    "RETRYABLE_KEY_CODES",
    "CleanupError",
    "CleanupOptions",
    "CleanupResult",
    "Deadline",
    "DeadlineTooShortError",
    "DeleteFailure",
    "empty_bucket",
    "run_cleanup",
]

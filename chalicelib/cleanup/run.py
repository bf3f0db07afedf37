"""The run: list, delete what is due, and report; ``empty_bucket`` and ``run_cleanup``."""

import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.cleanup.clock import SYSTEM_CLOCK, Clock
from chalicelib.cleanup.deadline import Deadline
from chalicelib.cleanup.deletes import DELETE_WORKERS, AtDeadline, Deletes
from chalicelib.cleanup.listing import pages
from chalicelib.cleanup.result import (
    CleanupError,
    CleanupOptions,
    CleanupResult,
    DeadlineTooShortError,
    describe_failures,
    listing_failed,
)


def empty_bucket(
    s3: Any,
    bucket: str,
    options: CleanupOptions | None = None,
    remaining_ms: Callable[[], float] | None = None,
    *,
    workers: int = DELETE_WORKERS,
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
) -> CleanupResult:
    """Delete every object older than ``options.max_age`` (all when 0) before the deadline.

    ``remaining_ms`` is the Lambda context's ``get_remaining_time_in_millis``
    (no deadline when None). Returns the result, with ``complete`` false if the
    deadline stopped it. Raises :class:`CleanupError`, carrying the partial
    result, if listing fails or any key could not be deleted, only after every
    key already listed was attempted as far as the deadline allows; and
    :class:`DeadlineTooShortError` if the deadline let it make no progress.
    ``clock`` and ``rng`` (the retry backoff's jitter) are for tests.
    """
    options = options or CleanupOptions()
    started = clock.monotonic()
    cutoff = datetime.now(UTC) - options.max_age
    result = CleanupResult(dry_run=options.dry_run)
    deadline = Deadline(remaining_ms)
    listing_error: ClientError | BotoCoreError | None = None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cleanup-delete") as pool:
        deletes = Deletes(s3, bucket, pool, workers, deadline, result, clock, rng)
        try:
            for page in pages(s3, bucket, deadline, deletes, result, clock):
                contents = page.get("Contents", [])
                due = [o["Key"] for o in contents if is_due(o, options.max_age, cutoff)]
                result.listed += len(contents)
                result.kept += len(contents) - len(due)
                result.due += len(due)
                if contents:
                    result.listed_through = contents[-1]["Key"]
                if not options.dry_run:
                    deletes.add(due)
        except AtDeadline:
            result.complete = False
        except (ClientError, BotoCoreError) as exc:
            listing_error, result.complete = exc, False
        # Whatever stopped the listing, what it listed is attempted (deadline permitting).
        if not deletes.finish():
            result.complete = False
    result.slowest_request_ms = round(deadline.slowest_ms)
    result.elapsed_ms = round((clock.monotonic() - started) * 1000)
    if listing_error is not None:
        raise CleanupError(listing_failed(bucket, result, listing_error), result) from (
            listing_error
        )
    if result.failures:
        raise CleanupError(
            f"{len(result.failures)} objects could not be deleted from s3://{bucket} "
            f"({result.deleted} deleted): {describe_failures(result.failures)}",
            result,
        )
    stuck = result.requests == 0 or (result.due and not result.dry_run and not deletes.sent)
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

"""What a cleanup run reports: its options, its result and summary, and its errors."""

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chalicelib.cleanup.listing import KeyRange

SHOWN_FAILURES = 5
SHOWN_RANGES = 3


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
    # The key ranges the run did not list ([] once it listed the whole bucket).
    unlisted: list[KeyRange] = field(default_factory=list)
    key_retries: int = 0  # keys sent again after a retryable per-key error
    max_deletes_in_flight: int = 0  # the widest the adaptive window was
    slowest_request_ms: int = 0
    elapsed_ms: int = 0

    def was_listed(self, key: str) -> bool:
        """Whether ``key`` lies in what the run listed (outside every unlisted range)."""
        return not any(key in r for r in self.unlisted)

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "complete": self.complete,
            "listed": self.listed,
            "unlisted": [r.to_json() for r in self.unlisted],
            "kept": self.kept,
            "due": self.due,
            "deleted": self.deleted,
            "failed": len(self.failures),
            # Due objects listed and still there (failures included); keys in the
            # unlisted ranges were not seen, so an incomplete run may leave more.
            "remaining_at_least": self.due - self.deleted,
            "key_retries": self.key_retries,
            "requests": self.requests,
            "max_deletes_in_flight": self.max_deletes_in_flight,
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


def describe_failures(failures: list[DeleteFailure]) -> str:
    shown = ", ".join(
        f"{json.dumps(f.key)} ({f.code}: {f.message})" for f in failures[:SHOWN_FAILURES]
    )
    more = len(failures) - SHOWN_FAILURES
    return shown + (f" and {more} more" if more > 0 else "")


def _pages_text(pages: int) -> str:
    return f"{pages:,} page" + ("" if pages == 1 else "s")


def describe_ranges(ranges: list[KeyRange]) -> str:
    shown = "; ".join(r.describe() for r in ranges[:SHOWN_RANGES])
    more = len(ranges) - SHOWN_RANGES
    return shown + (f"; and {more} more ranges" if more > 0 else "")


def listing_failed(bucket: str, result: CleanupResult, error: Exception) -> str:
    return (
        f"listing s3://{bucket} failed after {_pages_text(result.pages)} ({result.listed:,} keys "
        f"listed; {result.deleted:,} deleted, {len(result.failures):,} failed, "
        f"{result.due - result.deleted:,} due left); not listed: "
        f"{describe_ranges(result.unlisted)}: {error}"
    )

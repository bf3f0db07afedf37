"""The worker: validate the event, do the work, store the report."""

import logging
from typing import Any

from chalicelib.reports import report_body, store_report, utc_now
from chalicelib.settings import bucket_name
from chalicelib.worker_event import parse_event


def perform_work() -> None:
    """The work itself. The seed leaves it empty ("perform work here"); so do we."""


def run_worker(s3: Any, payload: Any, request_id: str, log: logging.Logger) -> dict[str, Any]:
    """Returns ``{"bucket", "key", "report"}``; raises on bad input or S3 failure.

    Validation and configuration come first, so a bad event writes nothing.
    """
    bucket = bucket_name()
    event = parse_event(payload)
    # A field, not text: JSON escapes newlines and control characters, one event, one line.
    log.info("Worker Event", extra={"event": event.to_json()})
    perform_work()
    stored = store_report(s3, bucket, request_id, event, utc_now())
    report = {"bytes": len(report_body(stored["report"]))}
    log.info("Report stored: s3://%s/%s", stored["bucket"], stored["key"], extra={"report": report})
    return stored

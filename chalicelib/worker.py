"""The worker: validate the event, do the work, store the report."""

import logging
from typing import Any

from chalicelib import work
from chalicelib.reports import Report, store_report, utc_now
from chalicelib.settings import bucket_name
from chalicelib.worker_event import parse_event


def run_worker(s3: Any, payload: Any, request_id: str, log: logging.Logger) -> dict[str, Any]:
    """Returns ``{"bucket", "key", "report"}``; raises on bad input, on a failure or a
    bad result of the work, or on an S3 failure.

    Validation, configuration and the work come first, so none of those failing
    writes anything.
    """
    bucket = bucket_name()
    event = parse_event(payload)
    # A field, not text: JSON escapes newlines and control characters, one event, one line.
    log.info("Worker Event", extra={"event": event.to_json()})
    result = work.perform_work(event)  # looked up here: chalicelib/work.py, yours to edit
    report = Report.of(event, result, utc_now())
    stored = store_report(s3, bucket, request_id, report)
    size = {"bytes": len(report.body)}
    log.info("Report stored: s3://%s/%s", stored["bucket"], stored["key"], extra={"report": size})
    return stored

"""Storing worker reports in S3.

Key scheme: ``reports/<YYYY-MM-DD>/<request-id>.json`` where the date is the
UTC day of ``time_end`` and the request id is the Lambda invocation's
``aws_request_id``. Lambda re-delivers a retried invocation with the same
request id, so a retry overwrites its own report instead of adding a second.
"""

import json
import re
from datetime import UTC, datetime
from typing import Any

from chalicelib.worker_event import WorkerEvent

REPORTS_PREFIX = "reports/"
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{1,64}", re.ASCII)


def report_key(request_id: str, time_end: datetime) -> str:
    if not _REQUEST_ID.fullmatch(request_id):
        raise ValueError(f"unexpected Lambda request id: {request_id!r}")
    day = time_end.astimezone(UTC).date().isoformat()
    return f"{REPORTS_PREFIX}{day}/{request_id}.json"


def store_report(
    s3: Any, bucket: str, request_id: str, event: WorkerEvent, now: datetime
) -> dict[str, Any]:
    """Set ``time_end`` to ``now``, write the report and say where it went.

    Any S3 error (after botocore's retries) propagates: the invocation fails.
    """
    report = WorkerEvent(event.source_ip, event.time_start, now).to_json()
    key = report_key(request_id, now)
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=report_body(report),
        ContentType="application/json",
    )
    return {"bucket": bucket, "key": key, "report": report}


def report_body(report: dict[str, Any]) -> bytes:
    """The stored form of a report: compact JSON."""
    return json.dumps(report, separators=(",", ":")).encode()


def utc_now() -> datetime:
    return datetime.now(UTC)

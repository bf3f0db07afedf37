"""The worker's report: its type, its stored form and where it is stored.

A report is the validated event with ``time_end`` set to when the work finished,
and the work's result (``perform_work``'s dict)::

    {"source_ip": "203.0.113.7", "time_start": "2018-02-21T15:00:43.511Z",
     "time_end": "2026-11-30T17:24:49.120Z", "result": {}}

Key scheme: ``reports/<YYYY-MM-DD>/<request-id>.json`` where the date is the
UTC day of ``time_end`` and the request id is the Lambda invocation's
``aws_request_id``. Lambda re-delivers a retried invocation with the same
request id, so a retry overwrites its own report instead of adding a second.
"""

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from chalicelib.worker_event import WorkerEvent, format_time

REPORTS_PREFIX = "reports/"
# The report also travels back in the invocation's response, which Lambda caps at
# 6 MB: a bigger one would be stored and then fail the invocation.
MAX_REPORT_BYTES = 5 * 1024 * 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{1,64}", re.ASCII)
_JSON_SCALARS = (str, int, float, bool, type(None))


class WorkResultError(TypeError):
    """``perform_work`` returned something a report cannot hold; nothing was written."""


@dataclass(frozen=True)
class Report:
    source_ip: str | None
    time_start: datetime | None
    time_end: datetime
    result: dict[str, Any]

    @classmethod
    def of(cls, event: WorkerEvent, result: Any, time_end: datetime) -> "Report":
        """The report of ``event`` whose work returned ``result``, finished at ``time_end``.

        Raises :class:`WorkResultError` naming the problem if ``result`` is not a
        JSON object, or the report would be too big to return.
        """
        check_result(result)
        report = cls(event.source_ip, event.time_start, time_end, result)
        size = len(report.body)
        if size > MAX_REPORT_BYTES:
            raise WorkResultError(
                f"perform_work's result makes a report of {size} bytes, over the "
                f"{MAX_REPORT_BYTES}-byte limit (Lambda returns it in a 6 MB response)"
            )
        return report

    def to_json(self) -> dict[str, Any]:
        return {
            "source_ip": self.source_ip,
            "time_start": format_time(self.time_start) if self.time_start else None,
            "time_end": format_time(self.time_end),
            "result": self.result,
        }

    @cached_property
    def body(self) -> bytes:
        """The stored form: compact JSON, serialised once (size check, PUT, log)."""
        return report_body(self.to_json())

    def key(self, request_id: str) -> str:
        return report_key(request_id, self.time_end)


def check_result(result: Any) -> None:
    """Refuse, naming where, a result that is not a dict made only of JSON values
    (what would not come back from the stored JSON as it went in)."""
    if not isinstance(result, dict):
        raise WorkResultError(
            f"perform_work must return a dict (stored as the report's result), "
            f"got {type(result).__name__}"
        )
    stack: list[tuple[str, Any]] = [("result", result)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for name, child in value.items():
                if not isinstance(name, str):
                    raise WorkResultError(
                        f"{path}: a key of type {type(name).__name__} ({name!r}); "
                        "JSON object keys are strings"
                    )
                stack.append((f"{path}[{name!r}]", child))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(value))
        elif not isinstance(value, _JSON_SCALARS):
            raise WorkResultError(
                f"{path}: {type(value).__name__} is not JSON "
                "(use dict, list, str, int, float, bool or None)"
            )
        elif isinstance(value, float) and not math.isfinite(value):
            raise WorkResultError(f"{path}: {value} is not a JSON number")


def report_key(request_id: str, time_end: datetime) -> str:
    if not _REQUEST_ID.fullmatch(request_id):
        raise ValueError(f"unexpected Lambda request id: {request_id!r}")
    day = time_end.astimezone(UTC).date().isoformat()
    return f"{REPORTS_PREFIX}{day}/{request_id}.json"


def store_report(s3: Any, bucket: str, request_id: str, report: Report) -> dict[str, Any]:
    """Write the report and say where it went: ``{"bucket", "key", "report"}``.

    Any S3 error (after botocore's retries) propagates: the invocation fails.
    """
    key = report.key(request_id)
    s3.put_object(Bucket=bucket, Key=key, Body=report.body, ContentType="application/json")
    return {"bucket": bucket, "key": key, "report": report.to_json()}


def report_body(report: dict[str, Any]) -> bytes:
    """The stored form of a report's JSON: compact."""
    return json.dumps(report, separators=(",", ":"), allow_nan=False).encode()


def utc_now() -> datetime:
    return datetime.now(UTC)

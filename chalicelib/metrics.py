"""Metrics in CloudWatch Embedded Metric Format (EMF): one JSON document per invocation.

The document is one line on stdout; CloudWatch Logs extracts the metrics from
the function's log group, so the functions need no ``cloudwatch:PutMetricData``.
Namespace ``WorkerFunctions``, one dimension set ``[["FunctionName"]]`` (the
Lambda function's name). A plain line, not a log record: EMF needs ``_aws`` at
the top of the object, which the runtime's JSON records would wrap in ``message``.
"""

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from chalicelib.reports import report_body

NAMESPACE = "WorkerFunctions"
DIMENSION = "FunctionName"


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str  # one of CloudWatch's units: Count, Milliseconds, Bytes, None, ...


class _Stdout(logging.Handler):
    """Writes the message alone to the current ``sys.stdout`` (the runtime replaces it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stdout.write(record.getMessage() + "\n")
        sys.stdout.flush()


# A logger, so a local runner can capture the documents the way it captures app.log.
METRICS_LOG = logging.getLogger("worker-functions.metrics")
METRICS_LOG.propagate = False
METRICS_LOG.setLevel(logging.INFO)
METRICS_LOG.addHandler(_Stdout())


def document(
    metrics: list[Metric], properties: dict[str, Any] | None = None, now_ms: int | None = None
) -> dict[str, Any]:
    """The EMF document: ``_aws`` metadata, the dimension and metric values as members."""
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "local"
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if now_ms is None else now_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": [{"Name": m.name, "Unit": m.unit} for m in metrics],
                }
            ],
        },
        DIMENSION: function_name,
        **(properties or {}),
        **{m.name: m.value for m in metrics},
    }


def emit(doc: dict[str, Any]) -> None:
    METRICS_LOG.info(json.dumps(doc, separators=(",", ":")))


def _cleanup_summary(result: Any, error: BaseException | None) -> dict[str, Any]:
    from chalicelib.cleanup import CleanupError  # only the cleanup's sandbox loads it

    if isinstance(error, CleanupError):
        return error.result.summary()
    return result if error is None else {}


def cleanup_properties(result: Any, error: BaseException | None) -> dict[str, Any]:
    """``DryRun`` (0/1): a dry run deletes nothing, so queries of the backlog leave it out."""
    return {"DryRun": int(bool(_cleanup_summary(result, error).get("dry_run")))}


def cleanup_metrics(result: Any, error: BaseException | None, duration_ms: float) -> list[Metric]:
    """From the summary the cleanup returned, or the partial one its error carries.

    Any other failure (bad configuration or event) counts as an incomplete run
    that deleted nothing.
    """
    summary = _cleanup_summary(result, error)
    complete = error is None and bool(summary.get("complete"))
    return [
        Metric("ObjectsDeleted", summary.get("deleted", 0), "Count"),
        Metric("ObjectsDue", summary.get("due", 0), "Count"),
        Metric("ObjectsRemaining", summary.get("remaining_at_least", 0), "Count"),
        Metric("ObjectsFailed", summary.get("failed", 0), "Count"),
        Metric("CleanupComplete", int(complete), "None"),
        Metric("CleanupDuration", round(duration_ms), "Milliseconds"),
        Metric("KeyRetries", summary.get("key_retries", 0), "Count"),
    ]


def worker_metrics(result: Any, error: BaseException | None, duration_ms: float) -> list[Metric]:
    """One report stored and its size, or none."""
    stored = result if error is None else None
    size = len(report_body(stored["report"])) if stored else 0
    return [
        Metric("ReportsStored", int(bool(stored)), "Count"),
        Metric("ReportBytes", size, "Bytes"),
    ]

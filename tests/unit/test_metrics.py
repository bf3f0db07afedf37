"""The metrics documents (CloudWatch's embedded metric format), built with no server: the
shared contract, a failed or incomplete cleanup counted as not complete, and the
specification check refusing what CloudWatch would."""

from typing import Any

import jsonschema
import pytest
from chalice_loop import deployed_name

from chalicelib.cleanup import CleanupError, CleanupResult, DeleteFailure
from chalicelib.metrics import NAMESPACE, cleanup_metrics, document, worker_metrics
from chalicelib.settings import ConfigurationError
from tests.conftest import APP_NAME, STAGE
from tests.emf_schema import check_emf

CLEANUP_UNITS = {
    "ObjectsDeleted": "Count",
    "ObjectsDue": "Count",
    "ObjectsRemaining": "Count",
    "ObjectsFailed": "Count",
    "CleanupComplete": "None",
    "CleanupDuration": "Milliseconds",
    "KeyRetries": "Count",
}
WORKER_UNITS = {"ReportsStored": "Count", "ReportBytes": "Bytes"}
SUMMARY = {
    "dry_run": False, "complete": True, "listed": 12, "kept": 2, "due": 10, "deleted": 10,
    "failed": 0, "remaining_at_least": 0, "requests": 2, "slowest_request_ms": 5,
    "elapsed_ms": 9, "key_retries": 4,
}  # fmt: skip


def values(metrics: list) -> dict[str, Any]:
    return {m.name: m.value for m in metrics}


def test_documents_follow_the_shared_contract(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", deployed_name(APP_NAME, STAGE, "cleanup"))
    doc = document(cleanup_metrics(SUMMARY, None, 12.4), {"requestId": "r-1"}, now_ms=17)
    check_emf(doc)
    directive = doc["_aws"]["CloudWatchMetrics"]
    assert directive == [
        {
            "Namespace": NAMESPACE,
            "Dimensions": [["FunctionName"]],
            "Metrics": [{"Name": n, "Unit": u} for n, u in CLEANUP_UNITS.items()],
        }
    ]
    assert NAMESPACE == "WorkerFunctions" and doc["_aws"]["Timestamp"] == 17
    assert doc["FunctionName"] == deployed_name(APP_NAME, STAGE, "cleanup")
    assert doc["requestId"] == "r-1"
    assert {n: doc[n] for n in CLEANUP_UNITS} == {
        "ObjectsDeleted": 10, "ObjectsDue": 10, "ObjectsRemaining": 0, "ObjectsFailed": 0,
        "CleanupComplete": 1, "CleanupDuration": 12, "KeyRetries": 4,
    }  # fmt: skip
    worker = document(worker_metrics({"report": {"source_ip": "::1"}}, None, 3.0))
    check_emf(worker)
    assert [m["Unit"] for m in worker["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == list(
        WORKER_UNITS.values()
    )
    assert (worker["ReportsStored"], worker["ReportBytes"]) == (1, len(b'{"source_ip":"::1"}'))


def test_a_failed_or_incomplete_cleanup_counts_as_not_complete():
    result = CleanupResult(listed=5, due=5, deleted=3, requests=2)
    result.failures = [DeleteFailure(f"k{i}", "InternalError", "try again") for i in range(2)]
    failed = values(cleanup_metrics(None, CleanupError("2 objects could not", result), 40))
    assert failed["CleanupComplete"] == 0 and failed["ObjectsFailed"] == 2
    assert (failed["ObjectsDeleted"], failed["ObjectsRemaining"], failed["KeyRetries"]) == (3, 2, 0)
    stopped = values(cleanup_metrics({**SUMMARY, "complete": False, "deleted": 4}, None, 1))
    assert stopped["CleanupComplete"] == 0 and stopped["ObjectsDeleted"] == 4
    misconfigured = values(cleanup_metrics(None, ConfigurationError("BUCKET is not set"), 1))
    assert misconfigured["CleanupComplete"] == 0 and misconfigured["ObjectsDeleted"] == 0
    assert values(worker_metrics(None, ValueError("bad"), 1)) == {
        "ReportsStored": 0,
        "ReportBytes": 0,
    }


def _broken(change: Any) -> dict[str, Any]:
    doc = document(cleanup_metrics(SUMMARY, None, 1))
    change(doc)
    return doc


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["_aws"].__setitem__("Timestamp", 1.5),
        lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].__setitem__("Unit", "Objects"),
        lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"].extend(
            [{"Name": "ObjectsDue"}] * 100
        ),
        lambda d: d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].extend(["FunctionName"] * 30),
        lambda d: d["_aws"]["CloudWatchMetrics"][0].pop("Namespace"),
        lambda d: d.pop("FunctionName"),
        lambda d: d.pop("ObjectsDue"),
        lambda d: d.__setitem__("ObjectsDue", "10"),
        lambda d: d.__setitem__("CleanupComplete", True),
        lambda d: d.__setitem__("FunctionName", 7),
    ],
    ids=[
        "float-timestamp", "unknown-unit", "101-metrics", "31-dimensions", "no-namespace",
        "dimension-missing", "metric-missing", "string-value", "boolean-value", "number-dimension",
    ],
)  # fmt: skip
def test_the_specification_check_rejects_what_cloudwatch_would(change):
    with pytest.raises((jsonschema.ValidationError, AssertionError)):
        check_emf(_broken(change))

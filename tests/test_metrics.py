"""The metrics documents: the shared contract's names and units, valid Embedded Metric
Format, one per invocation whatever the outcome, and the local view of them."""

import copy
import json
from typing import Any

import jsonschema
import pytest
from chalice_loop import LocalLambda, deployed_name

from chalicelib.cleanup import CleanupError, CleanupResult, DeleteFailure
from chalicelib.metrics import NAMESPACE, cleanup_metrics, document, worker_metrics
from chalicelib.settings import ConfigurationError
from tests.conftest import APP_NAME, PROJECT, SCHEDULED_EVENT, STAGE, seed_objects
from tests.emf_schema import check_emf
from tests.test_local_cli import cli, env_with_endpoint, env_without_aws

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


def emf_documents(invocation: Any) -> list[dict[str, Any]]:
    return [e.record for e in invocation.events if e.record and "_aws" in e.record]


def test_every_invocation_writes_one_document_also_when_it_fails(app_module, bucket):
    local = LocalLambda(app_module.app, stage=STAGE, project_dir=str(PROJECT))
    seed_objects(bucket, 3)
    runs = {
        "worker": local.invoke("worker", {"source_ip": "::1"}),
        "bad worker event": local.invoke("worker", {"source_ip": "bad"}),
        "dry cleanup": local.invoke("cleanup", {**SCHEDULED_EVENT, "detail": {"dry_run": True}}),
        "cleanup": local.invoke("cleanup", SCHEDULED_EVENT),
        "bad cleanup event": local.invoke("cleanup", {**SCHEDULED_EVENT, "detail": {"x": 1}}),
    }
    assert [run.failed for run in runs.values()] == [False, True, False, False, True]
    docs = {name: emf_documents(run) for name, run in runs.items()}
    assert all(len(found) == 1 for found in docs.values()), docs
    for name, (doc,) in docs.items():
        check_emf(doc)
        assert doc["requestId"] == runs[name].request_id
        function = name.split()[-2] if name.startswith("bad") else name.split()[-1]
        assert doc["FunctionName"] == deployed_name(APP_NAME, STAGE, function)
    assert docs["worker"][0]["ReportsStored"] == 1
    assert docs["bad worker event"][0]["ReportsStored"] == 0
    cleaned = docs["cleanup"][0]
    assert (cleaned["CleanupComplete"], cleaned["ObjectsDeleted"]) == (1, 4)  # 3 + the report
    assert docs["bad cleanup event"][0]["CleanupComplete"] == 0
    # A dry run leaves everything due in place: marked, so backlog queries can leave it out.
    dry = docs["dry cleanup"][0]
    assert (dry["DryRun"], dry["ObjectsDeleted"], dry["ObjectsRemaining"]) == (1, 0, 4)
    assert cleaned["DryRun"] == docs["bad cleanup event"][0]["DryRun"] == 0


def test_local_logs_json_shows_the_fields_lambda_would_store(
    s3_server, bucket, tmp_path, stand_in_project
):
    state = tmp_path / "state"
    payload = (PROJECT / "events" / "worker.json").read_text()
    env = env_with_endpoint(s3_server)
    app = ("--project-dir", stand_in_project, "--state-dir", state)
    assert cli(*app, "invoke", "worker", env=env, stdin=payload).returncode == 0
    cleanup = json.dumps(SCHEDULED_EVENT)
    assert cli(*app, "invoke", "cleanup", env=env, stdin=cleanup).returncode == 0

    shown = cli("--state-dir", state, "logs", "--json", env=env_without_aws())
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    app = [r for r in records if r.get("logger") == APP_NAME]
    assert [r["message"].split(":")[0] for r in app] == ["Worker Event", "Report stored", "Cleanup"]
    assert app[0]["event"]["source_ip"] == json.loads(payload)["source_ip"]
    assert app[2]["cleanup"]["deleted"] == 1 and app[2]["cleanup"]["complete"] is True
    assert app[0]["requestId"] == app[1]["requestId"] != app[2]["requestId"]
    assert {r["functionName"] for r in app} == {
        deployed_name(APP_NAME, STAGE, f) for f in ("worker", "cleanup")
    }
    metrics = [r for r in records if "_aws" in r]
    assert [m["requestId"] for m in metrics] == [app[0]["requestId"], app[2]["requestId"]]
    for doc in metrics:
        check_emf(copy.deepcopy(doc))
    text = cli("--state-dir", state, "logs", env=env_without_aws()).stdout
    assert "Worker Event: {" in text and '"CleanupComplete":1' in text  # and as text


def test_the_alarms_on_our_metrics_watch_what_a_cleanup_run_emits(app_module, bucket):
    """infra/ops.json's alarms on the WorkerFunctions namespace name a metric and the
    dimension a real (incomplete) cleanup run writes, with the value the ops stack gets
    for the cleanup's name, so the alarm can fire."""
    from devtools.deploy.merge_template import CLEANUP, app_config, function_name

    ops = json.loads((PROJECT / "infra" / "ops.json").read_text())
    ours = [
        alarm["Properties"]
        for alarm in ops["Resources"].values()
        if alarm["Type"] == "AWS::CloudWatch::Alarm"
        and alarm["Properties"]["Namespace"] == NAMESPACE
    ]
    assert ours, "no alarm watches the app's own metrics"
    local = LocalLambda(app_module.app, stage=STAGE, project_dir=str(PROJECT))
    failed = local.invoke("cleanup", {**SCHEDULED_EVENT, "detail": {"dry_rn": True}})
    (doc,) = emf_documents(failed)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    emitted = {metric["Name"] for metric in directive["Metrics"]}
    for alarm in ours:
        assert alarm["MetricName"] in emitted
        assert [[d["Name"] for d in alarm["Dimensions"]]] == directive["Dimensions"]
        assert alarm["Dimensions"][0]["Value"] == {"Ref": "CleanupFunctionName"}
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "LessThanThreshold"
    assert doc["CleanupComplete"] == 0  # what the incomplete alarm's Minimum < 1 catches
    assert doc["FunctionName"] == function_name(app_config(), STAGE, CLEANUP)

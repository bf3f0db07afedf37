"""The metrics documents: the shared contract's names and units, valid Embedded Metric
Format, one per invocation whatever the outcome, and the local view of them."""

import json
from typing import Any

from chalice_loop import LocalLambda, deployed_name

from chalicelib.metrics import NAMESPACE
from tests.conftest import APP_NAME, PROJECT, SCHEDULED_EVENT, STAGE, seed_objects
from tests.emf_schema import check_emf


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

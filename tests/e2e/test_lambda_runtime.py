"""The functions as Lambda runs them: under awslambdaric, the Lambda Python runtime
interface client, served by a Runtime API on 127.0.0.1 (tests/runtime_api.py),
against the embedded S3. Its stdout is what CloudWatch Logs would store."""

import json
import re
from collections import Counter
from typing import Any

import pytest
from chalice_loop import deployed_name

from tests.app_runtime import function_env, run_function
from tests.conftest import (
    APP_NAME,
    SCHEDULED_EVENT,
    STAGE,
    object_keys,
    seed_objects,
)
from tests.emf_schema import check_emf
from tests.hostile_input import hostile_events
from tests.report_schema import check_report
from tests.stand_in_work import MARK

WORKER = deployed_name(APP_NAME, STAGE, "worker")
CLEANUP = deployed_name(APP_NAME, STAGE, "cleanup")
APP_LOGGER = APP_NAME  # chalice's app logger is named after the app


def json_records(output: str) -> list[dict[str, Any]]:
    """Every line of the log stream, each of which must be one JSON object."""
    lines = [line for line in output.splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    assert all(isinstance(r, dict) for r in records)
    return records


def kind(record: dict[str, Any]) -> str:
    if "_aws" in record:
        return "metrics"
    if record.get("logger") == APP_LOGGER:
        return "app"
    return "runtime error" if "errorType" in record else "other"


def by_request(records: list[dict[str, Any]]) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    for record in records:
        counts.setdefault(record.get("requestId", ""), Counter())[kind(record)] += 1
    return counts


def test_worker_runs_log_json_records_with_their_request_ids(stand_in_project, s3, bucket):
    with run_function(stand_in_project, "worker", function_env("JSON")) as (api, runtime):
        stored = api.invoke({"source_ip": "203.0.113.7", "time_start": "2018-02-21T15:00:43Z"})
        assert api.wait(stored).kind == "response"
        bad = api.invoke({"source_ip": "bad"})
        failed = api.wait(bad)
        again = api.invoke({"source_ip": "::1"})
        assert api.wait(again).kind == "response"
        records = json_records(runtime.output())

    assert failed.kind == "error" and failed.body["errorType"] == "InvalidEventError"
    assert by_request(records) == {
        stored: Counter(app=2, metrics=1),
        bad: Counter({"metrics": 1, "runtime error": 1}),
        again: Counter(app=2, metrics=1),
    }
    app = [r for r in records if kind(r) == "app"]
    for record in app:
        assert {"timestamp", "level", "message", "requestId"} <= record.keys()
        assert (record["level"], record["functionName"]) == ("INFO", WORKER)
    # The first invocation of the sandbox is its cold start; the third is warm.
    assert [r["coldStart"] for r in app] == [True, True, False, False]
    event, report = app[0], app[1]
    assert event["message"] == "Worker Event"
    assert event["event"] == {
        "source_ip": "203.0.113.7",
        "time_start": "2018-02-21T15:00:43.000Z",
        "time_end": None,
    }
    key = f"reports/{report['timestamp'][:10]}/{stored}.json"
    assert report["message"] == f"Report stored: s3://{bucket}/{key}"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert report["report"] == {"bytes": len(body)}
    # Stored as a report, with the result of the copy's work: the stand-in's.
    assert check_report(json.loads(body))["result"] == {"work": MARK, "source_ip": "203.0.113.7"}

    metrics = {r["requestId"]: r for r in records if kind(r) == "metrics"}
    for doc in metrics.values():
        check_emf(doc)
        assert doc["FunctionName"] == WORKER
    assert (metrics[stored]["ReportsStored"], metrics[stored]["ReportBytes"]) == (1, len(body))
    assert (metrics[bad]["ReportsStored"], metrics[bad]["ReportBytes"]) == (0, 0)


def test_cleanup_runs_log_the_summary_as_json_fields(stand_in_project, s3, bucket):
    seed_objects(bucket, 3)
    with run_function(stand_in_project, "cleanup", function_env("JSON")) as (api, runtime):
        emptied = api.invoke(SCHEDULED_EVENT)
        assert api.wait(emptied).kind == "response"
        s3.delete_bucket(Bucket=bucket)  # the next listing fails
        failed = api.invoke(SCHEDULED_EVENT)
        outcome = api.wait(failed)
        records = json_records(runtime.output())

    assert outcome.kind == "error" and outcome.body["errorType"] == "CleanupError"
    assert by_request(records) == {
        emptied: Counter(app=1, metrics=1),
        failed: Counter({"app": 1, "metrics": 1, "runtime error": 1}),
    }
    done, broken = [r for r in records if kind(r) == "app"]
    assert (done["level"], done["message"], done["coldStart"]) == ("INFO", "Cleanup", True)
    assert done["cleanup"]["complete"] is True and done["cleanup"]["deleted"] == 3
    assert broken["level"] == "ERROR" and broken["message"].startswith("Cleanup failed: listing")
    assert broken["cleanup"]["complete"] is False and broken["coldStart"] is False

    metrics = {r["requestId"]: r for r in records if kind(r) == "metrics"}
    for doc in metrics.values():
        check_emf(doc)
        assert doc["FunctionName"] == CLEANUP
    assert metrics[emptied]["CleanupComplete"] == 1 and metrics[emptied]["ObjectsDeleted"] == 3
    assert metrics[failed]["CleanupComplete"] == 0 and metrics[failed]["ObjectsDeleted"] == 0


def test_text_format_keeps_the_readable_lines(stand_in_project, bucket):
    with run_function(stand_in_project, "worker", function_env(None)) as (api, runtime):
        request_id = api.invoke({"source_ip": "::1"})
        assert api.wait(request_id).kind == "response"
        lines = runtime.output().splitlines()

    assert lines[0] == (
        f'{APP_LOGGER} - INFO - Worker Event: {{"source_ip": "::1", '
        '"time_start": null, "time_end": null}'
    )
    assert re.fullmatch(
        rf"{re.escape(APP_LOGGER)} - INFO - Report stored: s3://{re.escape(bucket)}/reports/"
        rf'\d{{4}}-\d\d-\d\d/{request_id}\.json: {{"bytes": \d+}}',
        lines[1],
    )
    check_emf(json.loads(lines[2]))  # the metrics document is JSON in either format
    assert len(lines) == 3


def test_the_log_level_reaches_debug_without_credentials(stand_in_project, s3, bucket):
    """SECURITY.md's guarantee under the runtime's JSON format at DEBUG (the level an
    operator may set in LoggingConfig): botocore logs, its signing loggers do not."""
    secrets = {
        "AWS_ACCESS_KEY_ID": "AKIARUNTIMEDEBUG0001",
        "AWS_SECRET_ACCESS_KEY": "runtimeDebug/Secret+0123456789abcdefghij",
        "AWS_SESSION_TOKEN": "runtimeDebugSessionToken0123456789ABCDEFG",
    }
    env = function_env("JSON", AWS_LAMBDA_LOG_LEVEL="DEBUG", **secrets)
    with run_function(stand_in_project, "worker", env) as (api, runtime):
        assert api.wait(api.invoke({"source_ip": "::1"})).kind == "response"
        output = runtime.output()
    records = json_records(output)
    loggers = Counter(r.get("logger") for r in records)
    assert loggers[APP_LOGGER] == 2 and loggers["botocore.hooks"] > 0  # DEBUG reached botocore
    assert "botocore.endpoint" not in loggers and "botocore.auth" not in loggers
    assert len(object_keys(s3, bucket)) == 1
    for secret in secrets.values():
        assert secret not in output


@pytest.mark.parametrize("log_format", ["JSON", "Text"])
def test_hostile_worker_events_forge_no_line_under_the_lambda_runtime(
    stand_in_project, s3, bucket, log_format
):
    """The same events, as Lambda runs them: one awslambdaric process, one invocation each.
    Every one is refused, and writes nothing. Under JSON every line is one JSON object
    of its invocation; under Text every line starts as the metrics or the runtime's
    error entry writes it."""
    events = [case.values[0] for case in hostile_events()]
    with run_function(stand_in_project, "worker", function_env(log_format)) as (api, rt):
        request_ids = [api.invoke(event) for event in events]
        outcomes = [api.wait(request_id) for request_id in request_ids]
        output = rt.output()

    assert {o.kind for o in outcomes} == {"error"} and object_keys(s3, bucket) == []
    assert "\x1b" not in output
    lines = output.split("\n")[:-1]  # a record may hold "\r": the runtime's own separator
    assert len(lines) >= 2 * len(events)  # each invocation: its metrics and a record
    for line in lines:
        if log_format == "JSON":
            assert json.loads(line)["requestId"] in request_ids, line
        else:
            assert line.startswith(('{"_aws":', "[ERROR] ")), line

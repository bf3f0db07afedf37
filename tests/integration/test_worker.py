"""The worker: report content, key scheme, bad input, configuration, S3 failure, and
the work's place (chalicelib/work.py), with the tests' stand-in work."""

import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from chalice.test import Client
from chalice_loop import LocalLambda

from chalicelib.reports import MAX_REPORT_BYTES, WorkResultError
from chalicelib.settings import ConfigurationError
from chalicelib.worker_event import InvalidEventError, parse_event
from tests.conftest import PROJECT, STAGE, object_keys
from tests.report_schema import check_report
from tests.stand_in_work import perform_work as stand_in_result

KEY = re.compile(r"reports/(\d{4}-\d{2}-\d{2})/([0-9a-f-]{36})\.json")


def parse_utc(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_worker_stores_the_event_as_a_report(chalice_client, s3, bucket, work):
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    payload = {"source_ip": "203.0.113.7", "time_start": "2018-02-21T15:00:43.511Z"}
    response = chalice_client.lambda_.invoke("worker", payload)
    after = datetime.now(UTC)
    result = response.payload

    assert result["bucket"] == bucket
    match = KEY.fullmatch(result["key"])
    assert match, result["key"]
    time_end = parse_utc(result["report"]["time_end"])
    assert before <= time_end <= after
    assert match[1] == time_end.strftime("%Y-%m-%d")

    stored = check_report(
        json.loads(s3.get_object(Bucket=bucket, Key=result["key"])["Body"].read())
    )
    assert work.events == [parse_event(payload)]  # the work got the validated event
    assert (
        stored
        == result["report"]
        == {
            "source_ip": "203.0.113.7",
            "time_start": "2018-02-21T15:00:43.511Z",
            "time_end": result["report"]["time_end"],
            "result": stand_in_result(parse_event(payload)),
        }
    )
    assert object_keys(s3, bucket) == [result["key"]]


def test_time_end_is_overwritten_and_offsets_are_normalised_to_utc(chalice_client, s3, bucket):
    before = datetime.now(UTC) - timedelta(milliseconds=1)  # time_end is truncated to ms
    result = chalice_client.lambda_.invoke(
        "worker",
        {"time_start": "2018-02-21T20:45:43.5+05:45", "time_end": "1999-01-01T00:00:00Z"},
    ).payload
    after = datetime.now(UTC)
    assert result["report"]["time_start"] == "2018-02-21T15:00:43.500Z"
    assert before <= parse_utc(result["report"]["time_end"]) <= after  # the invocation's now


@pytest.mark.parametrize("payload", [None, {}, {"source_ip": None}])
def test_empty_payload_means_an_empty_event(chalice_client, s3, bucket, payload):
    report = chalice_client.lambda_.invoke("worker", payload).payload["report"]
    assert report["source_ip"] is None and report["time_start"] is None
    parse_utc(report["time_end"])
    assert len(object_keys(s3, bucket)) == 1


def test_ipv6_source_ip_is_accepted_in_canonical_form(chalice_client, bucket):
    report = chalice_client.lambda_.invoke("worker", {"source_ip": "2001:DB8:0:0::1"}).payload
    assert report["report"]["source_ip"] == "2001:db8::1"


def test_key_is_derived_from_the_request_id_so_a_retry_overwrites(app_module, s3, bucket):
    local = LocalLambda(app_module.app, stage=STAGE, project_dir=str(PROJECT))
    days = {datetime.now(UTC).strftime("%Y-%m-%d")}  # before and after: the run may span midnight
    first = local.invoke("worker", {}, "0bb47628-1718-11e8-ad73-c58e72b8826c").result
    again = local.invoke("worker", {}, "0bb47628-1718-11e8-ad73-c58e72b8826c").result
    other = local.invoke("worker", {}, "c96123d4-1727-11e8-b0e4-27c53f455614").result
    days.add(datetime.now(UTC).strftime("%Y-%m-%d"))
    keys = {f"reports/{day}/0bb47628-1718-11e8-ad73-c58e72b8826c.json" for day in days}
    assert first["key"] in keys and again["key"] in keys
    # The key's day is time_end's: equal unless UTC midnight fell between the two calls.
    assert first["key"] == again["key"] or len(days) == 2
    expected = {first["key"], again["key"], other["key"]}
    assert sorted(object_keys(s3, bucket)) == sorted(expected)


BAD_INPUTS = [
    pytest.param(["not", "an", "object"], "event", "expected a JSON object", id="list"),
    pytest.param("2018-02-21T15:00:43Z", "event", "expected a JSON object", id="string"),
    pytest.param(42, "event", "expected a JSON object", id="number"),
    pytest.param({"source_ip": 1234}, "source_ip", "expected an IP address string", id="ip-type"),
    pytest.param({"source_ip": "300.1.2.3"}, "source_ip", "not an IPv4 or IPv6", id="ip-bad"),
    pytest.param({"source_ip": ""}, "source_ip", "not an IPv4 or IPv6", id="ip-empty"),
    pytest.param({"source_ip": "fe80::1%eth0\n"}, "source_ip", "scoped IPv6", id="ip-zone"),
    pytest.param({"time_start": 1519225243}, "time_start", "expected an RFC 3339", id="ts-type"),
    pytest.param({"time_start": "yesterday"}, "time_start", "not an RFC 3339", id="ts-text"),
    pytest.param({"time_start": "2018-02-21T15:00:43"}, "time_start", "with a zone", id="no-zone"),
    pytest.param({"time_start": "2018-02-21"}, "time_start", "not an RFC 3339", id="date-only"),
    pytest.param({"time_end": "2018-02-30T00:00:00Z"}, "time_end", "not a valid time", id="feb30"),
    pytest.param({"time_end": "2018-02-21T25:00:00Z"}, "time_end", "not a valid time", id="hour25"),
    pytest.param({"time_end": ["2018-02-21T15:00:00Z"]}, "time_end", "expected", id="te-list"),
    pytest.param({"time_strat": "2018-02-21T15:00:43Z"}, "time_strat", "unknown field", id="typo"),
    pytest.param({"source_ip": "a" * 70_000}, "event", "over the 65536-byte limit", id="64KiB"),
]


@pytest.mark.parametrize(("payload", "field", "problem"), BAD_INPUTS)
def test_bad_input_names_the_field_and_writes_nothing(
    chalice_client, s3, bucket, s3_requests, payload, field, problem
):
    with pytest.raises(InvalidEventError) as raised:
        chalice_client.lambda_.invoke("worker", payload)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")
    assert problem in str(raised.value)
    assert object_keys(s3, bucket) == []
    assert s3_requests["PutObject"] == 0


def copy_project_with(tmp_path: Path, bucket_value: str | None) -> Path:
    shutil.copytree(PROJECT / ".chalice", tmp_path / ".chalice")
    config_file = tmp_path / ".chalice" / "config.json"
    config = json.loads(config_file.read_text())
    env = config["stages"][STAGE]["environment_variables"]
    if bucket_value is None:
        del env["BUCKET"]
    else:
        env["BUCKET"] = bucket_value
    config_file.write_text(json.dumps(config))
    return tmp_path


@pytest.mark.parametrize("bucket_value", [None, "", "  "], ids=["missing", "empty", "blank"])
def test_missing_bucket_is_a_configuration_error(
    app_module, s3, bucket, tmp_path, monkeypatch, bucket_value
):
    monkeypatch.delenv("BUCKET", raising=False)
    project = copy_project_with(tmp_path, bucket_value)
    client = Client(app_module.app, stage_name=STAGE, project_dir=str(project))
    with pytest.raises(ConfigurationError, match="BUCKET is not set"):
        client.lambda_.invoke("worker", {"source_ip": "10.0.0.1"})
    assert object_keys(s3, bucket) == []


def test_a_failed_put_fails_the_invocation(chalice_client, s3, s3_requests):
    # The stage's bucket does not exist: S3 answers NoSuchBucket to the PutObject.
    with pytest.raises(ClientError) as raised:
        chalice_client.lambda_.invoke("worker", {"source_ip": "10.0.0.1"})
    assert raised.value.response["Error"]["Code"] == "NoSuchBucket"
    assert s3_requests["PutObject"] == 1  # not retryable: one attempt


def test_one_request_per_invocation(chalice_client, bucket, s3_requests):
    for _ in range(5):
        chalice_client.lambda_.invoke("worker", {})
    assert dict(s3_requests) == {"PutObject": 5}


def test_the_worker_logs_the_event_on_one_line(app_module, bucket):
    local = LocalLambda(app_module.app, stage=STAGE, project_dir=str(PROJECT))
    invocation = local.invoke("worker", {"source_ip": "::1", "time_start": "2018-02-21T15:00:43Z"})
    assert invocation.error is None
    event_lines = [line for line in invocation.logs if "Worker Event: " in line]
    assert len(event_lines) == 1
    logged: dict[str, Any] = json.loads(event_lines[0].split("Worker Event: ", 1)[1])
    assert logged == {
        "source_ip": "::1",
        "time_start": "2018-02-21T15:00:43.000Z",
        "time_end": None,
    }


# -- the work's place: chalicelib/work.py ------------------------------------------------


def test_the_works_result_is_stored_under_result(chalice_client, s3, bucket, work):
    work.result = {"adopted": True, "scores": [1, 2.5, None], "nested": {"ok": "yes"}}
    stored = chalice_client.lambda_.invoke("worker", {"source_ip": "::1"}).payload
    body = json.loads(s3.get_object(Bucket=bucket, Key=stored["key"])["Body"].read())
    assert check_report(body)["result"] == work.result == stored["report"]["result"]


def test_a_bad_event_never_reaches_the_work(chalice_client, bucket, work):
    with pytest.raises(InvalidEventError):
        chalice_client.lambda_.invoke("worker", {"source_ip": "bad"})
    assert work.events == []


def test_a_failing_work_fails_the_invocation_and_writes_nothing(
    chalice_client, s3, bucket, s3_requests, work
):
    work.error = RuntimeError("the work broke")
    with pytest.raises(RuntimeError, match="the work broke"):
        chalice_client.lambda_.invoke("worker", {"source_ip": "::1"})
    assert len(work.events) == 1
    assert object_keys(s3, bucket) == [] and s3_requests["PutObject"] == 0


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        pytest.param(None, "perform_work must return a dict (stored as the report's result), "
                     "got NoneType", id="none"),
        pytest.param(["a"], "perform_work must return a dict", id="list"),
        pytest.param({"when": datetime(2026, 1, 1)}, "result['when']: datetime is not JSON",
                     id="datetime"),
        pytest.param({"ids": {1, 2}}, "result['ids']: set is not JSON", id="set"),
        pytest.param({"pair": (1, 2)}, "result['pair']: tuple is not JSON", id="tuple"),
        pytest.param({"a": [{"b": float("nan")}]}, "result['a'][0]['b']: nan is not a JSON number",
                     id="nan"),
        pytest.param({1: "one"}, "result: a key of type int (1); JSON object keys are strings",
                     id="int-key"),
        pytest.param({"big": "x" * MAX_REPORT_BYTES}, "over the 5242880-byte limit", id="too-big"),
    ],
)  # fmt: skip
def test_a_result_a_report_cannot_hold_fails_naming_the_problem_and_writes_nothing(
    chalice_client, s3, bucket, s3_requests, work, result, problem
):
    work.result = result
    with pytest.raises(WorkResultError) as raised:
        chalice_client.lambda_.invoke("worker", {"source_ip": "::1"})
    assert problem in str(raised.value)
    assert object_keys(s3, bucket) == [] and s3_requests["PutObject"] == 0

"""Lambda's asynchronous delivery in `up`, end to end: retries of a failed run with the same
event and request id after Lambda's (scaled) delays, the event age limit, the local
on-failure destination and `failures`. The queue itself, against a controlled clock, is
unit-tested in tests/unit/test_async_delivery.py."""

import json
import re
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from loop_testing import Running, chalice_project, cli, env_without_aws, free_port

APP = """
from chalice import Chalice, Rate

app = Chalice(app_name="edges")
runs = {"flaky": 0}


@app.schedule(Rate(1, unit=Rate.DAYS), name="boom")
def boom(event):
    raise RuntimeError("the bucket is unreachable")


@app.schedule(Rate(1, unit=Rate.DAYS), name="flaky")
def flaky(event):
    runs["flaky"] += 1
    if runs["flaky"] == 1:
        raise RuntimeError("first run fails")
    return {"run": runs["flaky"]}


@app.schedule(Rate(1, unit=Rate.DAYS), name="aged")
def aged(event):
    raise RuntimeError("still failing")


@app.schedule(Rate(1, unit=Rate.DAYS), name="slow")
def slow(event):
    import time

    time.sleep(1.5)  # past the 1 s lambda_timeout; the thread ends soon after
"""
SETTINGS = {
    # Scaled by 1/100: 1.2 s; the second retry would come at 0.6 + 1.2 s.
    "aged": {"EventInvokeConfig": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 120}}
}
ATTEMPT = re.compile(r"== (\w+): fired now, .* \(attempt (\d) of (\d), request ([0-9a-f-]{36})\)")


@pytest.fixture(scope="module")
def edges_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = {"version": "2.0", "app_name": "edges", "lambda_timeout": 1, "stages": {"dev": {}}}
    project = chalice_project(tmp_path_factory.mktemp("edges") / "edges", APP, config)
    (project / "infra").mkdir()
    (project / "infra" / "lambda_settings.json").write_text(json.dumps(SETTINGS))
    return project


def start_up(project: Path, state_dir: Path, env: dict[str, str], *args: str) -> Running:
    settings = ["--lambda-settings", "infra/lambda_settings.json"]
    argv = ["--project-dir", str(project), "--state-dir", str(state_dir), "up", *settings]
    return Running([*argv, "--port", str(free_port()), *args], env)


@pytest.fixture(scope="module")
def delivered(edges_app: Path) -> Iterator[dict[str, Any]]:
    """One `up` firing boom, flaky and aged at start, scale 1/100, until all settle."""
    env = env_without_aws()
    up = start_up(edges_app, edges_app / ".local", env, "--retry-delay-scale", "1/100",
                  "--fire-now", "boom", "--fire-now", "flaky", "--fire-now", "aged")  # fmt: skip
    try:
        up.wait_for(r"-> (RetriesExhausted|EventAgeExceeded) after", count=2)
        up.wait_for(r'"run": 2')
        assert up.interrupt() == 0
    finally:
        up.stop()
    state = edges_app / ".local"
    logs = [json.loads(line) for line in (state / "logs.jsonl").read_text().splitlines()]
    failures = [json.loads(line) for line in (state / "failures.jsonl").read_text().splitlines()]
    yield {"output": up.output, "logs": logs, "failures": failures, "env": env}


def attempts_in(output: str) -> list[tuple[str, int, int, str]]:
    return [(m[1], int(m[2]), int(m[3]), m[4]) for m in ATTEMPT.finditer(output)]


def start_times(logs: list[dict[str, Any]], request_id: str) -> list[datetime]:
    return [
        datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        for r in logs
        if r["request_id"] == request_id and r["message"].startswith("START RequestId")
    ]


def test_up_retries_a_failing_schedule_with_one_request_id_after_the_scaled_delays(delivered):
    output = delivered["output"]
    assert re.search(
        r"  boom +2 retries after 0.6 s, 1.2 s, max event age 216 s \(Lambda.s defaults", output
    )
    boom = [a for a in attempts_in(output) if a[0] == "boom"]
    assert [(n, of) for _, n, of, _ in boom] == [(1, 3), (2, 3), (3, 3)]
    request_ids = {rid for *_, rid in boom}
    assert len(request_ids) == 1
    (request_id,) = request_ids
    starts = start_times(delivered["logs"], request_id)  # what each attempt logged
    assert len(starts) == 3
    gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(starts)]
    assert gaps[0] >= 0.6 and gaps[1] >= 1.2  # Lambda's 60 s and 120 s, scaled by 1/100
    assert "-> failed: attempt 2 of 3 in 0.6 s (Lambda waits 60 s; --retry-delay-scale 1/100)" in (
        output
    )


def test_the_exhausted_event_lands_in_the_destination_as_lambdas_record(delivered):
    boom_id = next(rid for name, _, _, rid in attempts_in(delivered["output"]) if name == "boom")
    (line,) = [f for f in delivered["failures"] if f["function"] == "boom"]
    assert line["stage"] == "dev" and line["destination"] == "edges-dev-boom-failures"
    record = line["record"]
    assert record["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])
    assert record["requestContext"] == {
        "requestId": boom_id,
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:edges-dev-boom:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"]["detail-type"] == "Scheduled Event"
    assert record["requestPayload"]["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/edges-dev-boom-event"
    ]
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["errorMessage"] == "the bucket is unreachable"
    assert f"-> RetriesExhausted after 3 attempt(s): boom request {boom_id}" in delivered["output"]


def test_a_schedule_that_fails_once_then_succeeds_leaves_no_record(delivered):
    flaky = [a for a in attempts_in(delivered["output"]) if a[0] == "flaky"]
    assert [n for _, n, _, _ in flaky] == [1, 2]
    assert not [f for f in delivered["failures"] if f["function"] == "flaky"]


def test_retries_do_not_hold_back_other_events(delivered):
    order = [(name, n) for name, n, _, _ in attempts_in(delivered["output"])]
    # Every first attempt runs before any retry: no event waits out another's delay.
    assert order[:3] == [("boom", 1), ("flaky", 1), ("aged", 1)]


def test_up_honours_the_max_event_age_from_lambda_settings_json(delivered):
    assert re.search(
        r"  aged +2 retries after 0.6 s, 1.2 s, max event age 1.2 s \(", delivered["output"]
    )
    aged = [a for a in attempts_in(delivered["output"]) if a[0] == "aged"]
    assert [n for _, n, _, _ in aged] == [1, 2]  # the third would come at ~1.8 s > 1.2 s
    (line,) = [f for f in delivered["failures"] if f["function"] == "aged"]
    assert line["record"]["requestContext"]["condition"] == "EventAgeExceeded"
    assert line["record"]["requestContext"]["approximateInvokeCount"] == 2
    assert line["record"]["responsePayload"]["errorMessage"] == "still failing"


def test_failures_shows_the_records_readably_and_raw(delivered, edges_app):
    env = delivered["env"]
    shown = cli("--project-dir", edges_app, "failures", env=env)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"Z  boom \(dev\)  RetriesExhausted after 3 attempt\(s\)\n", shown.stdout)
    assert re.search(r"Z  aged \(dev\)  EventAgeExceeded after 2 attempt\(s\)\n", shown.stdout)
    assert "  destination: edges-dev-boom-failures (local)\n" in shown.stdout
    assert "  last error:  RuntimeError: the bucket is unreachable\n" in shown.stdout

    raw = cli("--project-dir", edges_app, "failures", "-n", "boom", "--json", env=env)
    records = [json.loads(line) for line in raw.stdout.splitlines()]
    assert records == [f["record"] for f in delivered["failures"] if f["function"] == "boom"]
    other_stage = cli("--project-dir", edges_app, "failures", "--stage", "prod", env=env)
    assert other_stage.returncode == 0 and other_stage.stdout == ""


def test_a_timed_out_run_is_retried_and_ctrl_c_drops_the_pending_retry(edges_app, tmp_path):
    env = env_without_aws()
    up = start_up(edges_app, tmp_path, env, "--retry-delay-scale", "1", "--fire-now", "slow")
    try:
        output = up.wait_for(r"-> timed out: attempt 2 of 3 in 60 s")
        assert "Task timed out after 1.00 seconds" in output
        (request_id,) = {a[3] for a in attempts_in(output)}
        assert up.interrupt() == 0
    finally:
        up.stop()
    assert "dropped 1 queued event(s) (not kept across `up` runs):" in up.output
    assert f"  slow request {request_id}: attempt 2 was due at " in up.output
    assert up.output.rstrip().endswith("stopped")

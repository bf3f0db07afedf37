"""Lambda's asynchronous delivery in `up`: retries of a failed run with the same event
and request id after Lambda's (scaled) delays, the event age limit, the local on-failure
destination and `failures`. The queue against a controlled clock, then `up` end to end."""

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from chalice_loop.async_delivery import (
    EVENT_AGE_EXCEEDED,
    RETRIES_EXHAUSTED,
    AsyncQueue,
    RetryPolicy,
    SettingsError,
    invocation_record,
    parse_scale,
    retry_policy,
)
from chalice_loop.cli import build_parser
from loop_testing import Running, chalice_project, cli, env_without_aws, free_port

ERROR = {"errorMessage": "boom", "errorType": "RuntimeError", "stackTrace": []}
ARN = "arn:aws:lambda:us-east-1:123456789012:function:app-dev-nightly:$LATEST"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def deliver(
    queue: AsyncQueue, clock: Clock, outcomes: list[bool], run_s: float = 0.0
) -> tuple[list[tuple[float, str]], str, Any]:
    """Drive the queue as `up` does: attempts come when due, each running ``run_s``;
    ``outcomes`` says which attempts fail. Returns (seconds since submit, request id)
    per attempt, the final outcome and the event."""
    start = clock()
    event = queue.submit("nightly", {"id": "evt"}, "fired now")
    attempts: list[tuple[float, str]] = []
    for failed in outcomes:
        wait = queue.seconds_until_next()
        assert wait is not None
        clock.advance(wait)
        due = queue.take_due()
        assert due is event
        if queue.age_exceeded(due):
            return attempts, EVENT_AGE_EXCEEDED, event
        attempts.append(((clock() - start).total_seconds(), due.request_id))
        clock.advance(run_s)
        settled = queue.settle(due, ERROR if failed else None)
        if settled.outcome != "retrying":
            return attempts, settled.outcome, event
    raise AssertionError("more attempts than outcomes given")


# -- the queue, against a controlled clock


@pytest.mark.parametrize(
    ("retries", "scale", "times"),
    [
        (2, Fraction(1), [0, 60, 180]),  # Lambda's own: 1 min, then 2 min
        (2, Fraction(1, 60), [0, 1, 3]),  # the local default
        (1, Fraction(1, 100), [0, 0.6]),
        (0, Fraction(1, 100), [0]),
    ],
)
def test_a_failing_event_runs_1_plus_max_retries_times_after_the_scaled_delays(
    retries, scale, times
):
    clock = Clock()
    queue = AsyncQueue({"nightly": RetryPolicy(retries, 21_600)}, clock, scale)

    attempts, outcome, event = deliver(queue, clock, [True] * 5)

    assert [t for t, _ in attempts] == pytest.approx(times)
    assert {rid for _, rid in attempts} == {event.request_id}  # one request id throughout
    assert outcome == RETRIES_EXHAUSTED
    assert queue.seconds_until_next() is None  # nothing left queued
    record = invocation_record(event, outcome, ARN, clock())
    assert record["requestContext"] == {
        "requestId": event.request_id,
        "functionArn": ARN,
        "condition": "RetriesExhausted",
        "approximateInvokeCount": retries + 1,
    }
    assert record["requestPayload"] == {"id": "evt"}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"] == ERROR


def test_an_event_that_fails_once_then_succeeds_is_not_sent_anywhere():
    clock = Clock()
    queue = AsyncQueue({}, clock, Fraction(1, 60))  # no policy: Lambda's defaults

    attempts, outcome, _ = deliver(queue, clock, [True, False])

    assert [t for t, _ in attempts] == pytest.approx([0, 1])
    assert outcome == "succeeded"
    assert queue.seconds_until_next() is None


def test_the_max_event_age_stops_retries_before_the_count_does():
    clock = Clock()
    # 90 s: the first retry (60 s + 1 s of run) is in time, the second (at 182 s) is not.
    queue = AsyncQueue({"nightly": RetryPolicy(2, 90)}, clock, Fraction(1))

    attempts, outcome, event = deliver(queue, clock, [True] * 3, run_s=1.0)

    assert [t for t, _ in attempts] == pytest.approx([0, 61])
    assert outcome == EVENT_AGE_EXCEEDED
    record = invocation_record(event, outcome, ARN, clock())
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["responsePayload"] == ERROR  # the last attempt's error


def test_an_event_that_ages_out_before_any_attempt_has_no_response():
    clock = Clock()
    queue = AsyncQueue({"nightly": RetryPolicy(2, 60)}, clock, Fraction(1))
    event = queue.submit("nightly", {}, "fired now")
    clock.advance(61)  # e.g. behind a long invocation of another function

    assert queue.take_due() is event and queue.age_exceeded(event)
    record = invocation_record(event, EVENT_AGE_EXCEEDED, ARN, clock())
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in record and "responsePayload" not in record


def test_a_retry_waiting_out_its_delay_does_not_hold_back_another_event():
    clock = Clock()
    queue = AsyncQueue({}, clock, Fraction(1))
    failing = queue.submit("nightly", {}, "fired now")
    assert queue.take_due() is failing
    queue.settle(failing, ERROR)  # its retry is due in 60 s

    clock.advance(5)
    other = queue.submit("hourly", {}, "rate(1 hour) is due")
    assert queue.take_due() is other  # runs now, not after the retry
    assert queue.take_due() is None
    assert queue.seconds_until_next() == pytest.approx(55)
    clock.advance(55)
    assert queue.take_due() is failing
    assert queue.drain() == []


# -- settings and flags


def test_the_settings_come_from_the_file_per_function(tmp_path):
    settings = tmp_path / "lambda_settings.json"
    config = {"MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 600}
    settings.write_text(json.dumps({"nightly": {"EventInvokeConfig": config}}))

    nightly = retry_policy(settings, "nightly")
    assert (nightly.max_retry_attempts, nightly.max_event_age_s) == (1, 600)
    assert Path(nightly.source).resolve() == settings.resolve()
    other = retry_policy(settings, "hourly")  # no EventInvokeConfig: Lambda's defaults
    assert (other.max_retry_attempts, other.max_event_age_s) == (2, 21_600)
    assert "Lambda's defaults" in other.source
    missing = retry_policy(tmp_path / "no-such.json", "nightly")
    assert (missing.max_retry_attempts, missing.max_event_age_s) == (2, 21_600)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"MaximumRetryAttempts": 3}, "MaximumRetryAttempts"),
        ({"MaximumRetryAttempts": "2"}, "MaximumRetryAttempts"),
        ({"MaximumRetryAttempts": True}, "MaximumRetryAttempts"),
        ({"MaximumEventAgeInSeconds": 59}, "MaximumEventAgeInSeconds"),
        ({"MaximumEventAgeInSeconds": 21_601}, "MaximumEventAgeInSeconds"),
    ],
)
def test_settings_lambda_would_refuse_are_refused_naming_the_field(tmp_path, config, field):
    settings = tmp_path / "lambda_settings.json"
    settings.write_text(json.dumps({"nightly": {"EventInvokeConfig": config}}))
    with pytest.raises(SettingsError, match=f"nightly.EventInvokeConfig: {field}"):
        retry_policy(settings, "nightly")


def test_the_retry_delay_scale_takes_positive_numbers_and_fractions():
    assert parse_scale("1/60") == Fraction(1, 60)
    assert parse_scale("0.01") == Fraction(1, 100)
    assert parse_scale("1") == 1
    for bad in ("0", "-1", "soon", "1/0"):
        with pytest.raises(ValueError):
            parse_scale(bad)
    assert build_parser().parse_args(["up"]).retry_delay_scale == Fraction(1, 60)
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["up", "--retry-delay-scale", "0"])
    assert refused.value.code == 2


# -- `up` end to end

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

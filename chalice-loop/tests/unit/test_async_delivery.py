"""Lambda's asynchronous delivery, planned against a controlled clock with no process and no
server: retries of a failed run with the same event after Lambda's (scaled) delays, the
event age limit, the on-failure destination, and the settings read per function from
the file (`up` doing it end to end: tests/integration/test_up_async_delivery.py)."""

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
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

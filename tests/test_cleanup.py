"""The daily cleanup: pipelined 1,000-key batches, failures surfaced, retention,
dry run, and the Lambda deadline."""

import json
import logging
import math
import shutil
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from chalice_loop import LocalLambda, rule_name

from bench.instrument import RequestCounter, SimulatedRoundTrip
from chalicelib.cleanup import (
    FIRST_REQUEST_ESTIMATE_MS,
    RESERVE_MS,
    CleanupError,
    DeadlineTooShortError,
    empty_bucket,
)
from chalicelib.s3 import WORST_CASE_CALL_S, make_client
from chalicelib.settings import ConfigurationError, parse_duration
from chalicelib.worker_event import InvalidEventError
from tests.conftest import (
    APP_NAME,
    PROJECT,
    SCHEDULED_EVENT,
    STAGE,
    age_objects,
    object_keys,
    seed_objects,
    stage_bucket,
)  # fmt: skip
from tests.faultproxy import Fault, fault_proxy


def scheduled(detail: object) -> dict:
    return {**SCHEDULED_EVENT, "detail": detail}


@pytest.fixture
def run_cleanup(lambda_handler: Any) -> Any:
    """Invoke the cleanup with the default stage's config and a context of its timeout.

    chalice's test client hard-codes 3 s, which a loaded machine can make too
    short for a few thousand objects: the cleanup would (rightly) stop early.
    """

    def invoke(payload: dict = SCHEDULED_EVENT) -> dict:
        return lambda_handler("cleanup", payload)

    return invoke


def test_scheduled_event_payload_is_eventbridge_shaped():
    assert set(SCHEDULED_EVENT) == {
        "version", "id", "detail-type", "source", "account", "time", "region", "resources",
        "detail",
    }  # fmt: skip
    assert SCHEDULED_EVENT["detail-type"] == "Scheduled Event"
    assert SCHEDULED_EVENT["source"] == "aws.events"
    assert SCHEDULED_EVENT["resources"][0].endswith(
        f":rule/{rule_name(APP_NAME, STAGE, 'cleanup')}"
    )
    assert SCHEDULED_EVENT["detail"] == {}


def test_cleanup_receives_the_payload_as_a_cloudwatch_event(
    app_module, chalice_client, bucket, monkeypatch
):
    seen = []
    handler = app_module.app.handler_map["cleanup"]
    original = handler.func

    def spy(event):
        seen.append(event)
        return original(event)

    monkeypatch.setattr(handler, "func", spy)
    # chalice builds (and caches) the wrapped handler on the first call: rebuild it.
    monkeypatch.setattr(handler, "handler", None)
    chalice_client.lambda_.invoke("cleanup", SCHEDULED_EVENT)
    event = seen[0]
    assert event.detail_type == "Scheduled Event"
    assert event.resources == SCHEDULED_EVENT["resources"]
    assert event.context.function_name == "cleanup"


def test_cleanup_of_an_empty_bucket(chalice_client, bucket, counted_requests):
    started = time.monotonic()
    summary = chalice_client.lambda_.invoke("cleanup", SCHEDULED_EVENT).payload
    wall_ms = (time.monotonic() - started) * 1000
    assert summary == {
        "dry_run": False, "complete": True, "listed": 0, "listed_through": None, "kept": 0,
        "due": 0, "deleted": 0, "failed": 0, "remaining_at_least": 0, "key_retries": 0,
        "requests": 1, "slowest_request_ms": summary["slowest_request_ms"],
        "elapsed_ms": summary["elapsed_ms"],
    }  # fmt: skip
    # The one request is part of the run, and the run of the invocation.
    assert summary["slowest_request_ms"] <= summary["elapsed_ms"] <= wall_ms + 1
    assert counted_requests.counts == {"ListObjectsV2": 1}


@pytest.mark.parametrize("count", [999, 1000, 2345])
def test_cleanup_costs_two_requests_per_started_thousand(
    run_cleanup, s3, bucket, counted_requests, count
):
    seed_objects(bucket, count)
    summary = run_cleanup()
    assert summary["deleted"] == summary["listed"] == summary["due"] == count
    assert summary["failed"] == 0 and summary["complete"] is True
    assert object_keys(s3, bucket) == []
    batches = math.ceil(count / 1000)
    assert counted_requests.counts == {"ListObjectsV2": batches, "DeleteObjects": batches}
    assert summary["requests"] == 2 * batches


def test_listing_errors_fail_the_cleanup(chalice_client, s3, counted_requests):
    # The stage's bucket does not exist: ListObjectsV2 answers NoSuchBucket (not retried).
    with pytest.raises(CleanupError) as raised:
        chalice_client.lambda_.invoke("cleanup", SCHEDULED_EVENT)
    assert str(raised.value).startswith(
        f"listing s3://{stage_bucket()} failed after 0 pages (0 keys listed, "
        "through no key; 0 deleted, 0 failed, 0 due left); keys after it were not seen: "
        "An error occurred (NoSuchBucket)"
    )
    assert raised.value.result.listed_through is None
    assert counted_requests.counts == {"ListObjectsV2": 1}


def _client_for(endpoint: str) -> Any:
    """The production client, pointed at ``endpoint``."""
    return make_client(endpoint_url=endpoint)


def test_per_key_delete_errors_are_collected_across_every_batch(s3_server, s3, bucket):
    # moto never fails single keys of a DeleteObjects; the fault proxy does, over
    # HTTP: the failing keys are left out of what reaches moto and reported as <Error>.
    seed_objects(bucket, 2345)
    fail_some = Fault("fail_keys", 1.0, frozenset({"DeleteObjects"}), key_rate=0.01)
    with fault_proxy(s3_server, [fail_some], seed=6) as proxy:
        with pytest.raises(CleanupError) as raised:
            empty_bucket(_client_for(proxy.url), bucket)
        proxy.wait_idle()
        failed = proxy.failed_keys()
    assert proxy.log.errors == []
    result = raised.value.result
    assert proxy.log.requests["DeleteObjects"] == 3  # every batch was attempted
    assert 0 < len(failed) < 2345
    assert sorted(f.key for f in result.failures) == sorted(failed)
    assert {f.code for f in result.failures} == {"AccessDenied"}
    assert result.deleted == 2345 - len(failed)
    assert sorted(object_keys(s3, bucket)) == sorted(failed)  # really not deleted
    message = str(raised.value)
    deleted = result.deleted
    assert message.startswith(
        f"{len(failed)} objects could not be deleted from s3://{bucket} ({deleted} deleted): "
    )
    assert "(AccessDenied: Access Denied)" in message
    assert f"and {len(failed) - 5} more" in message


def test_a_failed_delete_request_fails_its_keys_and_the_others_still_go(s3_server, s3, bucket):
    seed_objects(bucket, 1500)
    every_delete = Fault("internal", 1.0, frozenset({"DeleteObjects"}))
    with fault_proxy(s3_server, [every_delete]) as proxy:
        with pytest.raises(CleanupError) as raised:
            empty_bucket(_client_for(proxy.url), bucket)
        proxy.wait_idle()
    assert proxy.log.errors == []
    result = raised.value.result
    assert len(result.failures) == 1500 and result.deleted == 0
    assert {f.code for f in result.failures} == {"InternalError"}
    assert len(object_keys(s3, bucket)) == 1500
    assert proxy.log.requests["DeleteObjects"] == 2 * 3  # two batches, three attempts each


# --- retention (CLEANUP_MAX_AGE) and dry run ---------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("86400", timedelta(days=1)),
        ("90.5", timedelta(seconds=90.5)),
        ("PT1H", timedelta(hours=1)),
        ("pt90m", timedelta(minutes=90)),
        ("P1D", timedelta(days=1)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("P2W", timedelta(weeks=2)),
        ("PT1.5S", timedelta(seconds=1.5)),
        (" P7D ", timedelta(days=7)),
    ],
)
def test_max_age_accepts_seconds_and_iso_8601_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("P1M", "years and months have no fixed length"),
        ("P1Y", "years and months have no fixed length"),
        ("-60", "expected seconds or an ISO 8601 duration"),
        ("1 day", "expected seconds or an ISO 8601 duration"),
        ("P", "expected seconds or an ISO 8601 duration"),
        ("PT", "expected seconds or an ISO 8601 duration"),
        ("P1DT", "expected seconds or an ISO 8601 duration"),
        ("PT0.5S", "must be 0 or at least 1 second"),
    ],
)
def test_a_bad_max_age_is_a_configuration_error_before_any_request(
    chalice_client, s3, bucket, counted_requests, monkeypatch, text, problem
):
    seed_objects(bucket, 3)
    monkeypatch.setenv("CLEANUP_MAX_AGE", text)
    with pytest.raises(ConfigurationError, match=f"CLEANUP_MAX_AGE: {problem}"):
        chalice_client.lambda_.invoke("cleanup", SCHEDULED_EVENT)
    assert counted_requests.total == 0
    assert len(object_keys(s3, bucket)) == 3


def test_max_age_keeps_younger_reports(run_cleanup, s3, bucket, monkeypatch):
    old = seed_objects(bucket, 1200, prefix="reports/2026-01-01/")
    new = seed_objects(bucket, 300, prefix="reports/2026-01-03/")
    age_objects(bucket, old, timedelta(days=2))
    age_objects(bucket, new, timedelta(hours=23))
    monkeypatch.setenv("CLEANUP_MAX_AGE", "P1D")
    summary = run_cleanup()
    assert (summary["listed"], summary["kept"], summary["due"], summary["deleted"]) == (
        1500, 300, 1200, 1200,
    )  # fmt: skip
    assert summary["complete"] is True and summary["remaining_at_least"] == 0
    assert sorted(object_keys(s3, bucket)) == new


@pytest.mark.parametrize(
    ("max_age", "detail"),
    [("PT1H", {}), ("0", {"dry_run": True}), ("PT1H", {"dry_run": True})],
    ids=["retention", "dry-run", "dry-run-retention"],
)
def test_objects_written_during_a_run_are_kept(
    app_module, run_cleanup, s3, bucket, monkeypatch, max_age, detail
):
    old = seed_objects(bucket, 2500, prefix="reports/2026-01-01/")
    age_objects(bucket, old, timedelta(days=2))
    monkeypatch.setenv("CLEANUP_MAX_AGE", max_age)
    written = []

    def write_during_the_run(event_name, **_):
        if event_name.endswith("ListObjectsV2") and len(written) < 2:
            # Sorts after everything listed so far, so the listing reaches it.
            key = f"reports/2026-12-31/{uuid.uuid4()}.json"
            s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
            written.append(key)

    app_module.S3.meta.events.register("before-send.s3", write_during_the_run, "during-run")
    try:
        summary = run_cleanup(scheduled(detail))
    finally:
        app_module.S3.meta.events.unregister("before-send.s3", unique_id="during-run")
    left = set(object_keys(s3, bucket))
    assert set(written) <= left and len(written) == 2
    assert summary["dry_run"] is bool(detail)
    assert summary["listed"] == 2502
    if detail:  # a dry run deletes nothing and counts what it would delete
        assert left == set(old) | set(written)
        assert summary["deleted"] == 0
        assert summary["due"] == summary["remaining_at_least"] == (2500 if max_age != "0" else 2502)
    else:
        assert left == set(written)
        assert (summary["kept"], summary["due"], summary["deleted"]) == (2, 2500, 2500)


def test_dry_run_sends_no_delete_and_says_so(
    app_module, run_cleanup, s3, bucket, counted_requests, caplog
):
    keys = seed_objects(bucket, 1500)
    with caplog.at_level(logging.INFO, logger=app_module.app.log.name):
        summary = run_cleanup(scheduled({"dry_run": True}))
    assert counted_requests.counts == {"ListObjectsV2": 2}
    assert sorted(object_keys(s3, bucket)) == keys
    assert (summary["due"], summary["deleted"], summary["remaining_at_least"]) == (1500, 0, 1500)
    assert "Cleanup dry run, nothing deleted" in caplog.text


@pytest.mark.parametrize(
    ("detail", "field", "problem"),
    [
        ({"dry_run": "yes"}, "detail.dry_run", 'expected true or false, got "yes"'),
        ({"dry_run": 1}, "detail.dry_run", "expected true or false, got 1"),
        ({"dry_rn": True}, "detail", 'unknown option "dry_rn" (expected only dry_run)'),
        (["dry_run"], "detail", "expected a JSON object, got list"),
    ],
)
def test_bad_detail_is_refused_before_any_request(
    chalice_client, s3, bucket, counted_requests, detail, field, problem
):
    keys = seed_objects(bucket, 5)
    with pytest.raises(InvalidEventError) as raised:
        chalice_client.lambda_.invoke("cleanup", scheduled(detail))
    assert raised.value.field == field
    assert str(raised.value) == f"{field}: {problem}"
    assert counted_requests.total == 0
    assert object_keys(s3, bucket) == keys


# --- the deadline ---------------------------------------------------------------------
# Timed against moto in a child process: its CPU is not this process's, so a loaded
# machine slows both sides alike, and the margins come from what each run measures.


class FunctionClock:
    """``get_remaining_time_in_millis`` of a function with ``timeout_ms``, from now."""

    def __init__(self, timeout_ms: float) -> None:
        self.ends = time.monotonic() + timeout_ms / 1000

    def __call__(self) -> float:
        return (self.ends - time.monotonic()) * 1000


def test_a_run_that_can_start_nothing_fails_and_names_the_timeout(
    s3_child_endpoint, s3_child, counted_requests
):
    client = make_client(endpoint_url=s3_child_endpoint)
    client.create_bucket(Bucket="deadline-nothing")
    s3_child.seed(None, "deadline-nothing", 10, "reports/")
    counter = RequestCounter().attach(client)
    with pytest.raises(DeadlineTooShortError) as raised:
        empty_bucket(client, "deadline-nothing", remaining_ms=lambda: 300)
    assert str(raised.value) == (
        "cleanup of s3://deadline-nothing could not start a request: 300 ms left of the "
        "function's timeout, a list and a delete need ~900 ms (estimated before measuring); "
        "raise lambda_timeout for cleanup in .chalice/config.json"
    )
    result = raised.value.result
    assert (result.complete, result.requests, counter.total) == (False, 0, 0)
    assert client.list_objects_v2(Bucket="deadline-nothing")["KeyCount"] == 10


def test_a_long_run_keeps_one_hanging_s3_call_in_reserve(s3_child_endpoint, s3_child):
    # The same 12.5 s left: a run that started with 900 s keeps the S3 client's worst
    # case (12 s) for a call that might hang at the cut and starts nothing more; a run
    # of 12.5 s in all cannot afford that reserve and empties the bucket.
    client = make_client(endpoint_url=s3_child_endpoint)
    client.create_bucket(Bucket="deadline-hang")
    s3_child.seed(None, "deadline-hang", 10, "reports/")
    times = iter([900_000.0])
    with pytest.raises(DeadlineTooShortError) as raised:
        empty_bucket(client, "deadline-hang", remaining_ms=lambda: next(times, 12_500.0))
    needed = RESERVE_MS + WORST_CASE_CALL_S * 1000 + 3 * FIRST_REQUEST_ESTIMATE_MS
    assert f"12,500 ms left of the function's timeout, a list and a delete need ~{needed:,} ms" in (
        str(raised.value)
    )
    assert client.list_objects_v2(Bucket="deadline-hang")["KeyCount"] == 10
    result = empty_bucket(client, "deadline-hang", remaining_ms=lambda: 12_500.0)
    assert (result.deleted, result.complete) == (10, True)


def test_a_run_that_lists_but_cannot_delete_fails_with_what_it_measured(
    s3_child_endpoint, s3_child
):
    # Listing takes >= 600 ms (a simulated round trip): the first page fits in 1,200 ms
    # (150 + 2 x 250 + 250 ms estimated before measuring), but after it a delete,
    # estimated by the list's measured time, needs >= 150 + 600 ms and < 600 ms are left.
    client = make_client(endpoint_url=s3_child_endpoint)
    client.create_bucket(Bucket="deadline-list-only")
    s3_child.seed(None, "deadline-list-only", 1500, "reports/")
    SimulatedRoundTrip(0.6).attach(client)
    with pytest.raises(DeadlineTooShortError) as raised:
        empty_bucket(client, "deadline-list-only", remaining_ms=FunctionClock(1200))
    message = str(raised.value)
    assert message.startswith(
        "cleanup of s3://deadline-list-only listed 1,000 due objects but could not start a delete: "
    )
    assert message.endswith(
        "(measured in this run); raise lambda_timeout for cleanup in .chalice/config.json"
    )
    result = raised.value.result
    assert (result.listed, result.deleted, result.requests) == (1000, 0, 1)
    assert result.summary()["remaining_at_least"] == 1000


def test_a_run_with_time_for_a_list_and_a_delete_makes_progress(s3_child_endpoint, s3_child):
    # Issue 10: with 1.5 s left on 6,000 objects the old 500 ms guess, doubled, plus
    # reserves started nothing, run after run. Now a run that has time for a list and
    # a delete (estimated by the list it measured) deletes and returns in time. It
    # needs the reserve and two list pages' time. moto lists 6,000 objects in ~0.3 s,
    # but on a loaded machine one page can take 2x another a second later: the timeout
    # is 1.5 s or, if longer, the reserve and five of the slowest of two pages listed now.
    client = make_client(endpoint_url=s3_child_endpoint)
    client.create_bucket(Bucket="deadline-progress")
    s3_child.seed(None, "deadline-progress", 6000, "reports/")
    list_ms = []
    for _ in range(2):
        started = time.monotonic()
        client.list_objects_v2(Bucket="deadline-progress")
        list_ms.append((time.monotonic() - started) * 1000)
    timeout_ms = max(1500, RESERVE_MS + 5 * max(list_ms))
    runs = []
    while not runs or not runs[-1][0].complete:
        assert len(runs) < 6, f"no progress: {[(r.summary(), left) for r, left in runs]}"
        clock = FunctionClock(timeout_ms)
        result = empty_bucket(client, "deadline-progress", remaining_ms=clock)
        runs.append((result, clock()))
    assert all(result.deleted >= 1000 for result, _ in runs), runs
    assert all(left > 0 for _, left in runs), runs  # each returned before its deadline
    assert sum(result.deleted for result, _ in runs) == 6000
    assert client.list_objects_v2(Bucket="deadline-progress")["KeyCount"] == 0


def short_timeout_lambda(app_module, tmp_path, seconds: int) -> LocalLambda:
    """The default stage with ``lambda_timeout`` set to ``seconds``, from a copy of .chalice/."""
    shutil.copytree(PROJECT / ".chalice", tmp_path / ".chalice")
    config_file = tmp_path / ".chalice" / "config.json"
    config = json.loads(config_file.read_text())
    config["lambda_timeout"] = seconds  # every function's, also where one sets its own:
    for function in config.get("lambda_functions", {}).values():
        function["lambda_timeout"] = seconds
    config_file.write_text(json.dumps(config))
    return LocalLambda(app_module.app, stage=STAGE, project_dir=str(tmp_path))


def test_a_bucket_too_big_for_one_run_is_emptied_by_the_next_runs(
    app_module, s3_child_endpoint, s3_child, tmp_path, caplog, monkeypatch
):
    # 10,000 objects take 10 list pages, one after the other, each >= 250 ms (a
    # simulated round trip): a 3 s run cannot list them all. The handler runs as
    # Lambda runs it, with the stage's config and its timeout, on moto in a child process.
    count = 10_000
    client = make_client(endpoint_url=s3_child_endpoint)
    bucket = stage_bucket()
    client.create_bucket(Bucket=bucket)
    s3_child.seed(None, bucket, count, "reports/seed/")
    SimulatedRoundTrip(0.25).attach(client)
    monkeypatch.setattr(app_module, "S3", client)
    local = short_timeout_lambda(app_module, tmp_path, seconds=3)
    for name, value in local.environment("cleanup").items():
        monkeypatch.setenv(name, value)
    runs = []
    with caplog.at_level(logging.INFO, logger=app_module.app.log.name):
        while not runs or not runs[-1][0]["complete"]:
            assert len(runs) < 15, f"no progress: {runs}"
            context = local.context("cleanup")
            summary = local.call("cleanup", SCHEDULED_EVENT, context)
            runs.append((summary, context.get_remaining_time_in_millis()))
    first = runs[0][0]
    assert first["complete"] is False and 0 < first["deleted"] < count
    assert first["remaining_at_least"] == first["due"] - first["deleted"]
    assert all(left > 0 for _, left in runs), runs  # each returned before its deadline
    assert all(summary["deleted"] > 0 and summary["failed"] == 0 for summary, _ in runs), runs
    assert sum(summary["deleted"] for summary, _ in runs) == count
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert "Cleanup stopped at the deadline, next run continues" in caplog.text

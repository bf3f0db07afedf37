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
from urllib.parse import parse_qs, urlsplit

import pytest
from chalice_loop import LocalLambda

from bench.instrument import SimulatedRoundTrip
from chalicelib.cleanup import CleanupError, empty_bucket
from chalicelib.s3 import make_client
from chalicelib.settings import ConfigurationError
from chalicelib.worker_event import InvalidEventError
from tests.conftest import (
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
        "dry_run": False, "complete": True, "listed": 0, "unlisted": [], "kept": 0,
        "due": 0, "deleted": 0, "failed": 0, "remaining_at_least": 0, "key_retries": 0,
        "requests": 2, "max_deletes_in_flight": 0,
        "slowest_request_ms": summary["slowest_request_ms"], "elapsed_ms": summary["elapsed_ms"],
    }  # fmt: skip
    # The requests are part of the run, and the run of the invocation.
    assert summary["slowest_request_ms"] <= summary["elapsed_ms"] <= wall_ms + 1
    # Two lists at once: the bucket's top level and reports/ (where the days are).
    assert counted_requests.counts == {"ListObjectsV2": 2}


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
    finding_days = 2  # the top level and reports/, with a delimiter
    assert counted_requests.counts == {
        "ListObjectsV2": finding_days + batches, "DeleteObjects": batches
    }  # fmt: skip
    assert summary["requests"] == finding_days + 2 * batches


def test_listing_errors_fail_the_cleanup(chalice_client, s3, counted_requests):
    # The stage's bucket does not exist: ListObjectsV2 answers NoSuchBucket (not retried).
    with pytest.raises(CleanupError) as raised:
        chalice_client.lambda_.invoke("cleanup", SCHEDULED_EVENT)
    assert str(raised.value).startswith(
        f"listing s3://{stage_bucket()} failed after 0 pages (0 keys listed; 0 deleted, "
        '0 failed, 0 due left); not listed: keys in the bucket outside "reports/"; keys under '
        '"reports/": '
        "An error occurred (NoSuchBucket)"
    )
    assert [r.to_json() for r in raised.value.result.unlisted] == [
        {"prefix": "", "outside": "reports/"}, {"prefix": "reports/"}
    ]  # fmt: skip
    assert counted_requests.counts == {"ListObjectsV2": 2}


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

    def write_during_the_run(event_name, request, **_):
        # While reports/ is listed for its days: a new day, so the listing reaches it.
        query = parse_qs(urlsplit(request.url).query)
        if event_name.endswith("ListObjectsV2") and query.get("prefix") == ["reports/"]:
            for _ in range(2):
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
    assert counted_requests.counts == {"ListObjectsV2": 2 + 2}  # finding the day, its pages
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
# The rule and the runs it decides are unit-tested on a fake clock
# (tests/unit/test_cleanup_deadline.py); this checks the guarantee end to end: the
# handler as Lambda runs it, with the stage's config and a short timeout, on moto in a
# child process (its CPU is not this process's, so a loaded machine slows both sides).


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


def slowest_call_s(client: Any, s3_child: Any) -> float:
    """The slower of a 1,000-key list page and a 1,000-key delete here now (a scratch bucket)."""
    scratch = f"calibration-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=scratch)
    s3_child.seed(None, scratch, 1000, "c/")
    started = time.monotonic()
    keys = [{"Key": o["Key"]} for o in client.list_objects_v2(Bucket=scratch)["Contents"]]
    listed = time.monotonic()
    client.delete_objects(Bucket=scratch, Delete={"Objects": keys, "Quiet": True})
    deleted = time.monotonic()
    client.delete_bucket(Bucket=scratch)  # emptied by the delete
    return max(listed - started, deleted - listed)


def test_a_bucket_too_big_for_one_run_is_emptied_by_the_next_runs(
    app_module, s3_child_endpoint, s3_child, tmp_path, caplog, monkeypatch
):
    # 6,000 objects take 6 list pages of one day, one after the other, each >= 250 ms
    # (a simulated round trip) beside the deletes: a 3 s run cannot list them all. On a
    # machine busy enough that a 1,000-key page or delete takes more than 0.6 s (parallel
    # test workers on two CPUs), the timeout and the bucket grow together, so that each
    # run still has room for its deletes and still cannot list the bucket.
    client = make_client(endpoint_url=s3_child_endpoint)
    SimulatedRoundTrip(0.25).attach(client)
    seconds = max(3, math.ceil(3 * slowest_call_s(client, s3_child) / 0.6))
    count = 2_000 * seconds
    bucket = stage_bucket()
    client.create_bucket(Bucket=bucket)
    s3_child.seed(None, bucket, count, "reports/seed/")
    monkeypatch.setattr(app_module, "S3", client)
    local = short_timeout_lambda(app_module, tmp_path, seconds=seconds)
    for name, value in local.environment("cleanup").items():
        monkeypatch.setenv(name, value)
    runs = []
    with caplog.at_level(logging.INFO, logger=app_module.app.log.name):
        while not runs or not runs[-1][0]["complete"]:
            assert len(runs) < 12, f"no progress: {runs}"
            context = local.context("cleanup")
            summary = local.call("cleanup", SCHEDULED_EVENT, context)
            runs.append((summary, context.get_remaining_time_in_millis()))
    first = runs[0][0]
    assert first["complete"] is False and 0 < first["deleted"] < count and first["unlisted"]
    assert first["remaining_at_least"] == first["due"] - first["deleted"]
    assert all(left > 0 for _, left in runs), runs  # each returned before its deadline
    assert all(summary["deleted"] > 0 and summary["failed"] == 0 for summary, _ in runs), runs
    assert sum(summary["deleted"] for summary, _ in runs) == count
    assert runs[-1][0]["unlisted"] == []
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert "Cleanup stopped at the deadline, next run continues" in caplog.text

"""End to end on a real S3 server that is not moto: SeaweedFS (``weed server -s3``,
``bench/seaweedfs.py``) on 127.0.0.1. The worker and the cleanup run as the real
handlers in the local Lambda (``chalice_loop.run_in_slice``, the memory and timeout
from .chalice/config.json); the server counts the requests it answered."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice_loop import run_in_slice

from bench.seaweedfs import SeaweedFS
from chalicelib.s3 import MAX_ATTEMPTS
from tests.conftest import PROJECT, SCHEDULED_EVENT, STAGE, stage_bucket

WORKER_EVENT = json.loads((PROJECT / "events" / "worker.json").read_text())
REPORTS = 3


@pytest.fixture(scope="module")
def weed() -> Iterator[SeaweedFS]:
    with SeaweedFS() as server:
        yield server


def _invoke(weed: SeaweedFS, function: str, payloads: list[Any]) -> list[Any]:
    run = run_in_slice(PROJECT, STAGE, function, payloads, env=weed.client_env())
    failed = [i.payload for i in run.invocations if i.failed]
    assert not failed and len(run.invocations) == len(payloads), (failed, run.exit_status)
    return [i.payload for i in run.invocations]


def test_worker_stores_reports_and_cleanup_empties_the_bucket_on_seaweedfs(weed):
    bucket = stage_bucket()
    s3 = weed.client()
    s3.create_bucket(Bucket=bucket)
    created = weed.request_counts(bucket)

    stored = _invoke(weed, "worker", [WORKER_EVENT] * REPORTS)

    # One PutObject each (exactly one on moto: tests/integration/test_worker.py::
    # test_one_request_per_invocation), and here also any retry of one answered after the
    # 2 s read timeout: the 128 MB slice on a busy machine can read that late. A retry
    # writes the same key, so the listing below still holds exactly one report each.
    answered = weed.request_counts(bucket) - created
    assert set(answered) == {"PUT 200"}
    assert REPORTS <= answered["PUT 200"] <= REPORTS * MAX_ATTEMPTS
    keys = sorted(r["key"] for r in stored)
    assert len(set(keys)) == REPORTS
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="reports/")
    assert [o["Key"] for o in listed["Contents"]] == keys
    body = json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    assert body == next(r["report"] for r in stored if r["key"] == keys[0])
    assert body["source_ip"] == WORKER_EVENT["source_ip"] and body["time_end"]

    before = weed.request_counts(bucket)
    (summary,) = _invoke(weed, "cleanup", [SCHEDULED_EVENT])

    assert summary["complete"] and summary["failed"] == 0
    assert summary["listed"] == summary["deleted"] == REPORTS
    answered = weed.request_counts(bucket) - before
    # What the server answered is what the cleanup says it sent: its pages (the top level,
    # reports/, the day) and one DeleteObjects for the day's reports.
    assert answered == {"LIST 200": summary["requests"] - 1, "DELETE 200": 1}
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    weed.drop(s3, bucket)

"""Exact request counts at scale: ours at the limit of the S3 API, the benchmark's
baselines at theirs (the figures `make bench` reports per 1,000 objects)."""

from datetime import timedelta
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from bench.instrument import RequestCounter
from bench.strategies import STRATEGIES, expected_requests, prepare
from chalicelib.cleanup import CleanupOptions, empty_bucket
from tests.conftest import age_objects, object_keys, seed_objects
from tests.faultproxy import S3_NS

# Requests to delete 1,000 objects: the benchmark's "requests /1,000" column. Ours
# includes the 2 lists that find the days (the top level and reports/, with a delimiter).
PER_THOUSAND = {"ours": 2 + 2, "per_key": 1001, "batch_100": 11, "boto3_all": 2}
FINDING_DAYS = 2


@pytest.fixture
def delete_bodies(app_module: Any) -> Any:
    """Every DeleteObjects request body the app's client sends."""
    bodies: list[bytes] = []

    def keep(event_name: str, request: Any, **_: Any) -> None:
        if event_name.endswith(".DeleteObjects"):
            bodies.append(request.body)

    app_module.S3.meta.events.register("before-send.s3", keep, unique_id="delete-bodies")
    yield bodies
    app_module.S3.meta.events.unregister("before-send.s3", unique_id="delete-bodies")


def batch(body: bytes) -> tuple[int, str | None]:
    root = ET.fromstring(body)
    return len(root.findall(f"{{{S3_NS}}}Object")), root.findtext(f"{{{S3_NS}}}Quiet")


def test_ten_thousand_objects_cost_exactly_twenty_requests_and_two_to_find_the_day(
    app_module, s3, bucket, counted_requests, delete_bodies
):
    seed_objects(bucket, 10_000)
    result = empty_bucket(app_module.S3, bucket)
    assert (result.deleted, result.failures, result.complete) == (10_000, [], True)
    assert counted_requests.counts == {"ListObjectsV2": FINDING_DAYS + 10, "DeleteObjects": 10}
    assert result.requests == counted_requests.total == FINDING_DAYS + 20  # 2.0 per 1,000
    assert [batch(body) for body in delete_bodies] == [(1000, "true")] * 10
    assert object_keys(s3, bucket) == []


def test_retention_batches_across_pages(app_module, s3, bucket, counted_requests, delete_bodies):
    # Every third object is young: each 1,000-key page has ~667 due keys. Batched
    # across pages, 2,000 due keys still go in 2 full DeleteObjects, not 3 partial.
    keys = seed_objects(bucket, 3000)
    young = keys[::3]
    age_objects(bucket, sorted(set(keys) - set(young)), timedelta(days=2))
    result = empty_bucket(app_module.S3, bucket, CleanupOptions(max_age=timedelta(days=1)))
    assert (result.listed, result.kept, result.due, result.deleted) == (3000, 1000, 2000, 2000)
    # ceil(listed / 1000) + ceil(due / 1000), and the 2 lists that find the day
    assert counted_requests.counts == {"ListObjectsV2": FINDING_DAYS + 3, "DeleteObjects": 2}
    assert [batch(body) for body in delete_bodies] == [(1000, "true")] * 2
    assert sorted(object_keys(s3, bucket)) == young


# Objects each strategy deletes on the wire here: one full page, but per_key sends one
# request per key (1,000 DELETEs over HTTP take moto ~10 s), so it deletes a tenth of a
# page, on which its count is the same formula (one list page + one DELETE per key).
MEASURED_ON = {"per_key": 100}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_benchmarked_strategy_costs_its_exact_count(s3_server, s3, bucket, strategy):
    objects = MEASURED_ON.get(strategy, 1000)
    client, run = prepare(strategy)
    counter = RequestCounter().attach(client)
    seed_objects(bucket, objects)
    assert run(bucket, None) == objects
    assert object_keys(s3, bucket) == []
    assert counter.total == expected_requests(strategy, objects)
    assert expected_requests(strategy, 1000) == PER_THOUSAND[strategy]


@pytest.mark.parametrize(
    ("strategy", "requests"),
    [("ours", FINDING_DAYS + 6), ("boto3_all", 6), ("batch_100", 3 + 25)],
)
def test_partial_pages_cost_what_the_benchmark_expects(s3_server, s3, bucket, strategy, requests):
    client, run = prepare(strategy)
    counter = RequestCounter().attach(client)
    seed_objects(bucket, 2500)
    assert run(bucket, None) == 2500
    assert counter.total == expected_requests(strategy, 2500) == requests

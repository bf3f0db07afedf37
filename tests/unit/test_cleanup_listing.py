"""The listing, on a fake S3: the bucket cut into ranges that cover every key exactly
once, whatever the keys, side by side; and what a run that stops did not list."""

import random

import pytest

from chalicelib.cleanup import KeyRange, empty_bucket
from chalicelib.cleanup.listing import MAX_DAY_RANGES, Listing
from chalicelib.reports import REPORTS_PREFIX
from tests.unit.fake_s3 import FakeClock, FakePool, FakeS3, client_error, report_keys

ODD_KEYS = [
    "top.json", "a", "a/", "a/b", "a/b/c", "reports", "reports/", "reports/x.json",
    "reports/2026-11-30", "reports/2026-11-30/", "reports/2026-11-30/~", "reports0",
    "reports/2026-11-30/\U0010ffff", "reports/2026-11-30/0", "reports/2026-11-30/fff.json",
    "reportsz/1", "z" * 300, "ünïcödé/ключ", "reports/2026-11-30/a/b/c.json", "\x01",
]  # fmt: skip


def list_everything(s3: FakeS3, lists_in_flight: int = 4) -> list[str]:
    """Every key the listing hands out, in the order it does, by driving it directly."""
    listing, seen = Listing(), []
    while not listing.finished:
        ranges = []
        while len(ranges) < lists_in_flight and (r := listing.next()) is not None:
            ranges.append((r, listing.request(r)))
        for r, params in ranges:
            seen += [o["Key"] for o in listing.page(r, s3.list_objects_v2(Bucket="b", **params))]
    return seen


@pytest.mark.parametrize("seed", range(20))
def test_the_ranges_cover_every_key_exactly_once(seed):
    rng = random.Random(seed)
    keys = set(ODD_KEYS)
    for day in rng.sample(["2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"], 3):
        keys |= set(report_keys(rng.choice([1, 999, 1000, 1001, 5000, 30_000]), day, seed))
    keys |= {f"reports/seed/{i:06d}.json" for i in range(rng.randint(0, 2500))}  # not UUIDs
    keys |= {f"other/{i}" for i in range(rng.randint(0, 1500))}
    s3 = FakeS3(FakeClock())
    s3.put(keys)
    seen = list_everything(s3, lists_in_flight=rng.randint(1, 6))
    assert len(seen) == len(set(seen))  # none twice
    assert set(seen) == keys  # none missed


def test_a_day_of_uuid_reports_is_cut_into_ranges_other_days_are_not():
    s3 = FakeS3(FakeClock())
    s3.put(report_keys(100_000, "2026-11-30"))
    s3.put(f"reports/seed/{i:06d}.json" for i in range(100_000))
    listing = Listing()
    while not listing.finished:
        r = listing.next()
        assert r is not None
        listing.page(r, s3.list_objects_v2(Bucket="b", **listing.request(r)))
    by_prefix: dict[str, int] = {}
    for r in listing.ranges:
        by_prefix[r.bounds.prefix] = by_prefix.get(r.bounds.prefix, 0) + 1
    assert by_prefix["reports/2026-11-30/"] == MAX_DAY_RANGES  # ~6 pages each
    assert by_prefix["reports/seed/"] == 1  # keys of another shape: one range


def test_cutting_a_day_costs_at_most_one_list_page_per_range():
    keys = report_keys(50_000)
    s3 = FakeS3(FakeClock())
    s3.put(keys)
    clock = s3.clock
    result = empty_bucket(s3, "b", clock=clock, pool=FakePool(clock, s3))
    assert result.deleted == len(keys)
    ranges = s3.count("ListObjectsV2") - 2 - 50  # less the two finding the day, 50 full pages
    assert 0 < ranges <= MAX_DAY_RANGES


def test_a_small_day_is_listed_in_its_pages_alone():
    s3 = FakeS3(FakeClock())
    s3.put(report_keys(2500))  # too few to cut: ~3 pages
    clock = s3.clock
    empty_bucket(s3, "b", clock=clock, pool=FakePool(clock, s3))
    assert s3.count("ListObjectsV2") == 2 + 3


def test_key_ranges_bound_keys_as_their_json_says():
    r = KeyRange("reports/2026-11-30/", start="reports/2026-11-30/8", end="reports/2026-11-30/c")
    assert "reports/2026-11-30/8" in r and "reports/2026-11-30/bzz" in r
    assert "reports/2026-11-30/c" not in r and "reports/2026-11-30/7" not in r
    assert "reports/2026-11-29/9" not in r
    assert KeyRange.from_json(r.to_json()) == r
    after = KeyRange("reports/", after="reports/2026-11-30/x")
    assert "reports/2026-11-30/x" not in after and "reports/2026-11-30/y" in after
    assert KeyRange().to_json() == {"prefix": ""} and "anything" in KeyRange()
    assert r.describe() == (
        'keys under "reports/2026-11-30/" from "reports/2026-11-30/8" before "reports/2026-11-30/c"'
    )
    assert KeyRange().describe() == "keys in the bucket"


def test_a_listing_that_fails_says_what_it_did_not_list_and_deletes_what_it_did():
    days = ["2026-11-28", "2026-11-29", "2026-11-30"]
    s3 = FakeS3(FakeClock())
    s3.put([k for day in days for k in report_keys(1500, day)])
    failing = f"{REPORTS_PREFIX}2026-11-29/"

    def fault(call):
        second_page = "ContinuationToken" in call.params  # of that day: fails for good
        if (
            call.operation == "ListObjectsV2"
            and call.params.get("Prefix") == failing
            and second_page
        ):
            return client_error("ListObjectsV2", "InternalError", 500)
        return None

    s3.fault = fault
    clock = s3.clock
    with pytest.raises(Exception) as raised:
        empty_bucket(s3, "b", clock=clock, pool=FakePool(clock, s3), lists_in_flight=1)
    result = raised.value.result
    assert str(raised.value).startswith("listing s3://b failed after ")
    assert f'not listed: keys under "{failing}" after "{failing}' in str(raised.value)
    assert result.complete is False and result.unlisted
    left = set(s3.stored())
    listed_left = {k for k in left if result.was_listed(k)}
    assert listed_left == set() and result.deleted == result.listed  # what it listed went
    assert all(not result.was_listed(k) for k in left)

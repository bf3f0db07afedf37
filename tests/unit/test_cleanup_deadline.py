"""The deadline rule, on a fake clock: what a request needs, what a run keeps in reserve,
and runs that stop in time, make progress, or say why they cannot."""

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.cleanup import CleanupOptions, DeadlineTooShortError, empty_bucket
from chalicelib.cleanup.deadline import (
    DELETE,
    FIRST_REQUEST_ESTIMATE_MS,
    HANG_RESERVE_RUNS,
    LIST,
    MARGIN_FACTOR,
    RESERVE_MS,
    Deadline,
)
from chalicelib.s3 import WORST_CASE_DELETE_S, WORST_CASE_LIST_S
from tests.unit.fake_s3 import FakeClock, FakePool, FakeS3, report_keys


def per_operation(list_s: float, delete_s: float):
    return lambda operation, keys, in_flight: list_s if operation == "ListObjectsV2" else delete_s


def day_keys(count: int, day: str = "2026-11-30") -> list[str]:
    return report_keys(count, day)


def run(s3: FakeS3, timeout_s: float | None, **kwargs):
    clock = s3.clock
    remaining = None if timeout_s is None else clock.remaining_ms(timeout_s)
    started = clock.now
    result = empty_bucket(
        s3, "b", remaining_ms=remaining, clock=clock, pool=FakePool(clock, s3), **kwargs
    )
    return result, clock.now - started


# --- the rule ---------------------------------------------------------------------------


def test_before_any_measurement_a_list_and_a_delete_need_the_prior():
    deadline = Deadline(lambda: 10_000)
    prior = FIRST_REQUEST_ESTIMATE_MS
    assert deadline.needed_ms(LIST, 1, then=(DELETE,)) == RESERVE_MS + MARGIN_FACTOR * prior + prior
    assert deadline.needed_ms(DELETE, 3) == RESERVE_MS + MARGIN_FACTOR * 3 * prior
    assert deadline.allows_start(LIST, 1, then=(DELETE,))
    assert not Deadline(lambda: 899).allows_start(LIST, 1, then=(DELETE,))  # 900 ms needed
    assert Deadline(None).allows_start(DELETE, 100)  # no deadline


def test_an_estimate_borrowed_from_the_other_operation_is_not_doubled():
    deadline = Deadline(lambda: 10_000)
    deadline.record(LIST, 0.4, 1)
    assert deadline.needed_ms(DELETE, 1) == RESERVE_MS + 400  # borrowed: as it is
    deadline.record(DELETE, 0.3, 1)
    assert deadline.needed_ms(DELETE, 1) == RESERVE_MS + MARGIN_FACTOR * 300  # its own


def test_estimates_scale_only_beyond_the_concurrency_measured():
    deadline = Deadline(lambda: 10_000)
    deadline.record(DELETE, 1.0, 4)
    deadline.record(DELETE, 3.0, 16)  # slower with more in flight
    deadline.record(DELETE, 2.0, 8)
    assert deadline.estimate_ms(DELETE, 1) == 3000  # the slowest, whatever the concurrency
    assert deadline.estimate_ms(DELETE, 16) == 3000
    assert deadline.estimate_ms(DELETE, 32) == 6000  # twice the most ever in flight
    assert deadline.slowest_ms == 3000


@pytest.mark.parametrize(
    ("at_start_ms", "dry_run", "reserve_ms"),
    [
        (900_000, False, RESERVE_MS + WORST_CASE_DELETE_S * 1000),
        (
            HANG_RESERVE_RUNS * WORST_CASE_DELETE_S * 1000,
            False,
            RESERVE_MS + WORST_CASE_DELETE_S * 1000,
        ),
        (HANG_RESERVE_RUNS * WORST_CASE_DELETE_S * 1000 - 1, False, RESERVE_MS),
        (900_000, True, RESERVE_MS + WORST_CASE_LIST_S * 1000),  # a dry run only lists
        (HANG_RESERVE_RUNS * WORST_CASE_LIST_S * 1000 - 1, True, RESERVE_MS),
        (3_000, False, RESERVE_MS),
    ],
)
def test_a_long_run_keeps_the_worst_case_of_a_hanging_call_in_reserve(
    at_start_ms, dry_run, reserve_ms
):
    assert Deadline(lambda: at_start_ms, dry_run).reserve_ms == reserve_ms


# --- runs on the fake clock -------------------------------------------------------------


def test_a_run_that_can_start_nothing_fails_and_names_the_timeout():
    s3 = FakeS3(FakeClock())
    s3.put(day_keys(10))
    with pytest.raises(DeadlineTooShortError) as raised:
        run(s3, 0.3)
    assert str(raised.value) == (
        "cleanup of s3://b could not start a request: 300 ms left of the function's timeout, "
        "a list and a delete need ~900 ms (estimated before measuring); raise lambda_timeout "
        "for cleanup in .chalice/config.json"
    )
    assert (raised.value.result.requests, s3.calls) == (0, [])


def test_a_long_run_with_its_worst_case_left_starts_nothing_more():
    # 900 s at the start, then only the reserve and a little: a list and a delete
    # would eat into the time kept for a call that hangs.
    clock = FakeClock()
    s3 = FakeS3(clock)
    s3.put(day_keys(10))
    times = iter([900_000.0])
    left = RESERVE_MS + WORST_CASE_DELETE_S * 1000 + 500
    with pytest.raises(DeadlineTooShortError) as raised:
        empty_bucket(
            s3, "b", remaining_ms=lambda: next(times, left), clock=clock, pool=FakePool(clock, s3)
        )
    needed = RESERVE_MS + WORST_CASE_DELETE_S * 1000 + 3 * FIRST_REQUEST_ESTIMATE_MS
    assert (
        f"{left:,} ms left of the function's timeout, a list and a delete need ~{needed:,} ms"
        in (str(raised.value))
    )
    # The same time left in a run that started with it: too short to keep the reserve.
    result, _ = run(s3, left / 1000)
    assert (result.deleted, result.complete, s3.stored()) == (10, True, [])


def test_a_run_that_lists_but_cannot_delete_fails_with_what_it_measured():
    # Finding the day takes two 50 ms pages, its first page of keys 600 ms (0.05 +
    # 0.05 + 0.6 of the 1.3 s); then a delete, estimated by the slowest list measured
    # (it has no measurement of its own), needs 150 + 600 ms, and 600 ms are left.
    s3 = FakeS3(FakeClock())
    s3.latency = lambda operation, keys, in_flight: (
        0.6 if s3.calls[-1].params.get("Prefix") == "reports/seed/" else 0.05
    )
    s3.put([f"reports/seed/{i:06d}.json" for i in range(1500)])
    with pytest.raises(DeadlineTooShortError) as raised:
        run(s3, 1.3)
    message = str(raised.value)
    assert message.startswith(
        "cleanup of s3://b listed 1,000 due objects but could not start a delete: 600 ms left "
        "of the function's timeout, a delete needs ~750 ms"
    )
    assert message.endswith(
        "(measured in this run); raise lambda_timeout for cleanup in .chalice/config.json"
    )
    result = raised.value.result
    assert (result.listed, result.deleted, s3.count("DeleteObjects")) == (1000, 0, 0)
    assert result.summary()["remaining_at_least"] == 1000


@pytest.mark.parametrize("lists_in_flight", [1, 4])
def test_a_run_with_time_for_a_list_and_a_delete_makes_progress(lists_in_flight):
    # Issue 10's case: 1.5 s left on 6,000 objects; the old rule (500 ms guessed,
    # doubled, plus reserves) started nothing, run after run. Each run now deletes at
    # least a batch and returns before its deadline, and runs follow until it is empty.
    s3 = FakeS3(FakeClock(), latency=per_operation(0.05, 0.1))
    s3.put(day_keys(6000))
    runs = []
    while not runs or not runs[-1][0].complete:
        assert len(runs) < 6, [r.summary() for r, _ in runs]
        runs.append(run(s3, 1.5, lists_in_flight=lists_in_flight))
    assert all(result.deleted >= 1000 for result, _ in runs)
    assert all(took < 1.5 for _, took in runs)
    assert sum(result.deleted for result, _ in runs) == 6000 and s3.stored() == []


def test_a_bucket_too_big_for_one_run_is_emptied_by_the_next_runs():
    # 30,000 objects over three days, 250 ms a list page, 500 ms a delete: a 3 s run
    # cannot list them all; each run deletes some, says it is incomplete, says what it
    # did not list, and returns before its deadline.
    s3 = FakeS3(FakeClock(), latency=per_operation(0.25, 0.5))
    keys = [k for day in ("2026-11-28", "2026-11-29", "2026-11-30") for k in day_keys(10_000, day)]
    s3.put(keys)
    runs = []
    while not runs or not runs[-1][0].complete:
        assert len(runs) < 15, [r.summary() for r, _ in runs]
        runs.append(run(s3, 3.0))
    first = runs[0][0]
    assert first.complete is False and 0 < first.deleted < len(keys) and first.unlisted
    assert first.summary()["remaining_at_least"] == first.due - first.deleted
    assert all(took < 3.0 for _, took in runs)
    assert all(r.deleted > 0 and not r.failures for r, _ in runs)
    assert sum(r.deleted for r, _ in runs) == len(keys) and s3.stored() == []
    assert runs[-1][0].unlisted == []


def test_a_run_that_lists_only_kept_objects_until_its_deadline_is_not_an_error():
    # A retention window keeps everything; listing is the run's work: it stops at the
    # deadline, incomplete, and says what it did not list.
    s3 = FakeS3(FakeClock(), latency=per_operation(0.3, 0.3))
    s3.put(day_keys(20_000), datetime.now(UTC))  # younger than the retention window
    clock = s3.clock
    result = empty_bucket(
        s3, "b", CleanupOptions(max_age=timedelta(days=1)), clock.remaining_ms(2.0),
        clock=clock, pool=FakePool(clock, s3),
    )  # fmt: skip
    assert (result.complete, result.due, result.deleted) == (False, 0, 0)
    assert 0 < result.listed == result.kept < 20_000 and result.unlisted


def test_a_run_that_finds_the_days_but_can_list_none_fails_and_says_so():
    s3 = FakeS3(FakeClock())
    s3.latency = lambda operation, keys, in_flight: (
        0.8 if s3.calls[-1].params.get("Delimiter") else 0.05
    )  # fmt: skip
    s3.put(day_keys(10))
    with pytest.raises(DeadlineTooShortError) as raised:
        run(s3, 1.7)
    assert str(raised.value).startswith("cleanup of s3://b could not list an object: ")
    assert raised.value.result.listed == 0 and s3.count("ListObjectsV2") == 2

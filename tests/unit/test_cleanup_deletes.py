"""Delete scheduling on a fake clock: the per-key re-send plan, one DeleteObjects's
answer, and whole runs against fake servers (slow, saturated, throttling, refusing
keys, hanging) that take seconds of fake time and milliseconds of real time."""

import random

import pytest
from botocore.exceptions import ReadTimeoutError

from chalicelib.cleanup import CleanupError, empty_bucket
from chalicelib.cleanup.deletes import (
    DELETE_BATCH,
    KEY_ATTEMPTS,
    KEY_BACKOFF_BASE_S,
    KEY_BACKOFF_CAP_S,
    Answer,
    KeyRetries,
    backoff_s,
    delete_batch,
)
from chalicelib.cleanup.result import DeleteFailure
from chalicelib.cleanup.window import INITIAL_DELETES_IN_FLIGHT, MAX_DELETES_IN_FLIGHT
from chalicelib.s3 import WORST_CASE_DELETE_S
from tests.unit.fake_s3 import FakeClock, FakePool, FakeS3, client_error, report_keys


def refused(*keys: str, code: str = "SlowDown", unknown: bool = False) -> Answer:
    return Answer([DeleteFailure(k, code, code, unknown) for k in keys], refused=True)


# --- the re-send plan -------------------------------------------------------------------


def test_transient_refusals_are_sent_again_together_after_a_backoff():
    retries = KeyRetries(random.Random(1))
    assert retries.sending(["a", "b", "c"]) == 0  # first sends are not re-sends
    assert retries.answered(refused("a", "b"), now=10.0) == []
    ready = retries.next_ready()
    assert ready is not None and 10.0 <= ready <= 10.0 + KEY_BACKOFF_BASE_S
    assert retries.waiting_keys == 2 and retries.ready(ready - 0.001) == []
    assert retries.ready(ready) == ["a", "b"]  # together, as refused together
    assert retries.sending(["a", "b", "d"]) == 2 and retries.waiting_keys == 0


def test_a_key_refused_on_every_send_is_reported_with_its_last_code_after_all_attempts():
    retries = KeyRetries(random.Random(2))
    retries.sending(["k"])
    for send in range(1, KEY_ATTEMPTS):
        assert retries.answered(refused("k"), now=0.0) == []
        assert retries.ready(1e9) == ["k"]
        assert retries.sending(["k"]) == 1
        assert retries.sends["k"] == send + 1
    (failure,) = retries.answered(refused("k", code="InternalError"), now=0.0)
    assert failure.code == "InternalError"
    assert failure.message == f"InternalError (refused {KEY_ATTEMPTS} times)"
    assert retries.next_ready() is None


@pytest.mark.parametrize("code", ["AccessDenied", "NoSuchBucket", "?"])
def test_other_codes_are_reported_at_once(code):
    retries = KeyRetries()
    (failure,) = retries.answered(refused("k", code=code), now=0.0)
    assert (failure.key, failure.code, failure.message) == ("k", code, code)
    assert retries.waiting_keys == 0


def test_a_request_that_failed_whole_is_not_sent_again():
    retries = KeyRetries()
    answer = Answer([DeleteFailure("k", "SlowDown", "x", True)], refused=False, throttled=True)
    assert [f.key for f in retries.answered(answer, now=0.0)] == ["k"]
    assert retries.waiting_keys == 0


def test_an_unknown_outcome_on_any_send_stays_with_the_key():
    retries = KeyRetries(random.Random(3))
    retries.answered(refused("k", unknown=True), now=0.0)  # a send that may have deleted it
    retries.ready(1e9)
    (failure,) = retries.answered(refused("k", code="AccessDenied"), now=0.0)
    assert failure.outcome_unknown is True


def test_backoff_is_full_jitter_capped():
    assert backoff_s(1, 0.0) == 0.0
    assert backoff_s(1, 0.999) == pytest.approx(0.999 * KEY_BACKOFF_BASE_S)
    assert backoff_s(3, 0.5) == pytest.approx(0.5 * KEY_BACKOFF_BASE_S * 4)
    assert backoff_s(30, 0.999) == pytest.approx(0.999 * KEY_BACKOFF_CAP_S)


# --- one DeleteObjects ------------------------------------------------------------------


AFTER_RETRY = {
    "Errors": [{"Key": "a", "Code": "InternalError"}],
    "ResponseMetadata": {"RetryAttempts": 1},
}


class Answers:
    """A client whose delete_objects answers or raises what it is given."""

    def __init__(self, outcome):
        self.outcome = outcome

    def delete_objects(self, **_):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    ("outcome", "refused_", "throttled", "unknown"),
    [
        ({"Errors": [], "ResponseMetadata": {"RetryAttempts": 0}}, True, False, False),
        ({"Errors": [{"Key": "a", "Code": "SlowDown"}]}, True, True, False),
        ({"Errors": [{"Key": "a", "Code": "AccessDenied"}]}, True, False, False),
        # A 200 after botocore retried: an earlier attempt may have been applied.
        (AFTER_RETRY, True, True, True),
        (client_error("DeleteObjects", "SlowDown", 503), False, True, True),
        (client_error("DeleteObjects", "AccessDenied", 403), False, False, False),
        (ReadTimeoutError(endpoint_url="http://s3"), False, True, True),
    ],
    ids=["ok", "per-key-slowdown", "per-key-denied", "after-retry", "503", "403", "timeout"],
)
def test_an_answer_says_what_failed_whether_it_was_throttled_and_what_is_unknown(
    outcome, refused_, throttled, unknown
):
    answer = delete_batch(Answers(outcome), "b", ["a", "b"])
    assert (answer.refused, answer.throttled) == (refused_, throttled)
    if answer.failed:
        assert {f.outcome_unknown for f in answer.failed} == {unknown}
    if not refused_:
        assert [f.key for f in answer.failed] == ["a", "b"]  # the whole request failed


# --- runs on fake servers ---------------------------------------------------------------


def lists_fast(delete_latency):
    """List pages 50 ms; a DeleteObjects as ``delete_latency(in_flight)`` says."""
    return lambda operation, keys, in_flight: (
        0.05 if operation == "ListObjectsV2" else delete_latency(in_flight)
    )


def run(s3: FakeS3, timeout_s: float | None = 900, **kwargs):
    clock = s3.clock
    remaining = None if timeout_s is None else clock.remaining_ms(timeout_s)
    started = clock.now
    result = empty_bucket(
        s3, "b", remaining_ms=remaining, clock=clock, pool=FakePool(clock, s3),
        rng=random.Random(0), **kwargs,
    )  # fmt: skip
    return result, clock.now - started


def deletes_in_flight(s3: FakeS3) -> list[int]:
    """At each DeleteObjects, how many deletes were in flight at the server (itself too)."""
    ends: list[float] = []
    counts = []
    for call, end in zip(s3.calls, s3.call_ends, strict=True):
        if call.operation == "DeleteObjects":
            counts.append(1 + sum(1 for e in ends if e > call.at))
            ends.append(end)
    return counts


def test_a_slow_but_healthy_server_has_every_key_deleted_none_reported_and_the_window_opens():
    s3 = FakeS3(FakeClock(), latency=lists_fast(lambda in_flight: 3.0))  # each answer 3 s late
    keys = [k for day in ("2026-11-29", "2026-11-30") for k in report_keys(30_000, day)]
    s3.put(keys)
    result, took = run(s3, timeout_s=900)
    assert (result.deleted, result.failures, result.complete) == (len(keys), [], True)
    assert result.max_deletes_in_flight == MAX_DELETES_IN_FLIGHT  # it grew to its bound
    assert s3.count("DeleteObjects") == len(keys) // DELETE_BATCH  # nothing sent twice
    # Throughput followed the window: well above what the first window would give.
    assert len(keys) / took > 1.5 * INITIAL_DELETES_IN_FLIGHT * DELETE_BATCH / 3.0
    assert s3.stored() == []


def test_a_saturated_server_keeps_the_deletes_near_its_capacity():
    capacity = 6  # serves 6 at once; beyond, latency grows with what waits
    s3 = FakeS3(FakeClock(), latency=lists_fast(lambda n: 0.5 * max(1.0, (n + 1) / capacity)))
    s3.put(report_keys(60_000))
    result, took = run(s3, timeout_s=None)
    assert result.deleted == 60_000 and not result.failures
    assert 60_000 / took >= 0.8 * capacity * DELETE_BATCH / 0.5  # near the server's best
    settled = deletes_in_flight(s3)[50:]
    assert sorted(settled)[len(settled) // 2] <= capacity + 3  # not a queue of 32


def test_throttling_shrinks_the_window_and_every_key_is_still_deleted():
    # Above 8 deletes in flight the server refuses 5 % of each batch's keys with SlowDown.
    def fault(call):
        if call.operation == "DeleteObjects" and s3.in_flight() >= 8:
            keys = call.params["keys"]
            return {k: "SlowDown" for k in keys[::20]}
        return None

    s3 = FakeS3(FakeClock(), latency=lists_fast(lambda n: 1.0))
    s3.fault = fault
    s3.put(report_keys(50_000))
    result, _ = run(s3)
    assert (result.deleted, result.failures, result.complete) == (50_000, [], True)
    assert result.key_retries > 0
    settled = deletes_in_flight(s3)[30:]
    assert sorted(settled)[len(settled) // 2] <= 9  # it stays where it is not throttled


def test_memory_stays_bounded_whatever_the_bucket_holds():
    # Listing is 100 times faster than deleting: the keys listed and not yet deleted
    # stay within what the window and the pages in flight hold.
    s3 = FakeS3(FakeClock(), latency=lists_fast(lambda n: 5.0))
    s3.put(
        [k for day in ("2026-11-28", "2026-11-29", "2026-11-30") for k in report_keys(60_000, day)]
    )
    result, _ = run(s3, timeout_s=None)
    assert result.deleted == 180_000
    bound = (2 * MAX_DELETES_IN_FLIGHT + 1) * DELETE_BATCH + 4 * 1000  # in flight, waiting, pages
    assert s3.most_outstanding <= bound


def test_deletes_that_hang_end_a_long_run_visibly_before_its_deadline():
    # Every DeleteObjects takes the client's worst case (each attempt timing out), then
    # fails: a 900 s run keeps that worst case in reserve, so it still returns in time.
    def fault(call):
        if call.operation == "DeleteObjects":
            return ReadTimeoutError(endpoint_url="http://s3")
        return None

    s3 = FakeS3(FakeClock(), latency=lists_fast(lambda n: WORST_CASE_DELETE_S))
    s3.fault = fault
    s3.put(report_keys(50_000))
    with pytest.raises(CleanupError) as raised:
        run(s3, timeout_s=900)
    result = raised.value.result
    assert s3.clock.now < 900
    assert result.deleted == 0 and result.failures
    assert {f.code for f in result.failures} == {"ReadTimeoutError"}
    assert all(f.outcome_unknown for f in result.failures)
    assert result.complete is False  # stopped by the deadline: the rest is counted
    assert result.summary()["remaining_at_least"] == result.due


def test_retries_stop_at_the_deadline_and_the_keys_left_are_counted():
    refuse = set(report_keys(1000)[::50])

    def fault(call):
        if call.operation == "DeleteObjects":
            return {k: "SlowDown" for k in call.params["keys"] if k in refuse}
        return None

    s3 = FakeS3(FakeClock(), latency=lists_fast(lambda n: 0.4))
    s3.fault = fault
    s3.put(report_keys(1000))
    result, took = run(s3, timeout_s=1.6)  # time for one delete and a re-send, not more
    assert took < 1.6
    assert (result.complete, result.failures) == (False, [])
    assert 0 < s3.count("DeleteObjects") < KEY_ATTEMPTS
    assert result.summary()["remaining_at_least"] == len(refuse) == len(s3.stored())


def test_a_pinned_window_never_exceeds_its_deletes_in_flight():
    s3 = FakeS3(FakeClock(), latency=lists_fast(lambda n: 1.0))
    s3.put(report_keys(50_000))
    result, _ = run(s3, workers=3)
    assert result.max_deletes_in_flight == 3 and max(deletes_in_flight(s3)) == 3

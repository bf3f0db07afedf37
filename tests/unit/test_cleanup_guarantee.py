"""The cleanup's guarantee over hundreds of seeds, on a fake S3, in milliseconds each.

Every key the run listed (every key outside its ``unlisted`` ranges) is deleted,
reported, or counted in ``remaining_at_least``; keys in the unlisted ranges are left
only by a run that says it is incomplete; a run that could not list everything
raises, saying what it did not list. The deadline may stop a run anywhere. Each
seed draws a bucket (several days of UUID-named reports, cut into ranges, a day of
other names, keys outside ``reports/``), latencies, a deadline or none, and faults:
list pages failing for good, deletes failing whole (some after the server applied
them: outcome unknown), keys refused transiently (``SlowDown``, then passing) or for
good (``AccessDenied``).
tests/integration/test_cleanup_guarantee.py checks the same over HTTP on moto.
"""

import hashlib
import random
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.cleanup import CleanupError, CleanupOptions, empty_bucket
from tests.conftest import assert_every_listed_key_accounted
from tests.unit.fake_s3 import FakeClock, FakePool, FakeS3, client_error, report_keys

SEEDS = range(200)


def bucket_for(rng: random.Random) -> dict[str, datetime]:
    now = datetime.now(UTC)
    written = {hours: now - timedelta(hours=hours) for hours in (1, 30, 80)}
    keys: dict[str, datetime] = {}
    for day in rng.sample(
        ["2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30"], rng.randint(1, 3)
    ):
        for key in report_keys(rng.choice([10, 999, 1000, 2500, 6000]), day, rng.random()):
            keys[key] = written[rng.choice([1, 30, 80])]
    for i in range(rng.choice([0, 1500])):
        keys[f"reports/seed/{i:06d}.json"] = now - timedelta(days=3)
    for key in ("top.json", "other/a", "other/b/c", "reports/x.json"):
        keys[key] = now - timedelta(days=3)
    return keys


def key_draw(key: str) -> float:
    """A number in [0, 1) fixed by the key alone, so a key's fate is the same on every send
    (a hash: seeding a ``random.Random`` per key cost a fifth of this file's time)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def faults_for(rng: random.Random, s3: FakeS3):
    list_fail, delete_fail, lost = (
        rng.choice([0, 0.02, 0.1]),
        rng.choice([0, 0.05]),
        rng.random() < 0.5,
    )
    slow_keys, denied = rng.choice([0, 0.02]), rng.choice([0, 0.002])
    refused_once: set[str] = set()

    def fault(call):
        draw = random.Random(f"{rng.random()}")  # one draw per call, from the seed
        if call.operation == "ListObjectsV2":
            if draw.random() < list_fail:
                return client_error("ListObjectsV2", "InternalError", 500)
            return None
        keys = call.params["keys"]
        if draw.random() < delete_fail:
            if lost:  # the server applied it; the answer was lost
                for key in keys:
                    s3._live.pop(key, None)
            return client_error("DeleteObjects", "InternalError", 500)
        refused = {}
        for key in keys:
            pick = key_draw(key)
            if pick < denied:
                refused[key] = "AccessDenied"
            elif pick < denied + slow_keys and key not in refused_once:
                refused_once.add(key)
                refused[key] = "SlowDown"
        return refused

    return fault


@pytest.mark.parametrize("seed", SEEDS)
def test_every_listed_key_is_deleted_reported_or_counted(seed):
    rng = random.Random(seed)
    clock = FakeClock()
    s3 = FakeS3(clock)
    objects = bucket_for(rng)
    s3.put(objects)
    s3.fault = faults_for(rng, s3)
    list_s, delete_s = rng.choice([0.02, 0.2]), rng.choice([0.1, 0.5, 3.0])
    s3.latency = lambda op, keys, n: (
        (list_s if op == "ListObjectsV2" else delete_s) * rng.uniform(0.5, 1.5)
    )
    timeout_s = rng.choice([None, None, 2.0, 5.0, 30.0])
    max_age = rng.choice([timedelta(0), timedelta(days=2)])
    cutoff = datetime.now(UTC) - max_age
    error = None
    try:
        result = empty_bucket(
            s3, "b", CleanupOptions(max_age=max_age),
            None if timeout_s is None else clock.remaining_ms(timeout_s),
            clock=clock, pool=FakePool(clock, s3), rng=random.Random(seed),
            lists_in_flight=rng.choice([1, 4]),
        )  # fmt: skip
    except CleanupError as exc:
        error, result = exc, exc.result
    # Whether it returned before its deadline is not asserted here: the latencies are
    # drawn wildly (a delete up to 200 times a list page), and the deadline rule holds
    # for calls like the ones it measured (tests/unit/test_cleanup_deadline.py).
    due_left = {k for k in s3.stored() if not max_age or objects[k] <= cutoff}
    summary = result.summary()
    assert_every_listed_key_accounted(summary, result.failures, due_left, timeout_s is None)
    if result.unlisted:
        assert result.complete is False
    if error is None:
        assert not result.failures
    elif "listing" in str(error).split(" failed")[0]:
        assert "not listed: " in str(error) and result.unlisted
    kept = {k for k in objects if max_age and objects[k] > cutoff}
    assert kept <= set(s3.stored()), "a younger object was deleted"

"""Per-key errors in a 200 DeleteObjects answer, over HTTP through the fault proxy:
transient codes are sent again (batched, backed off, bounded), the others fail the run."""

import random
from typing import Any

import pytest

from chalicelib.cleanup import KEY_ATTEMPTS, CleanupError, empty_bucket
from chalicelib.s3 import make_client
from tests.conftest import object_keys, seed_objects
from tests.faultproxy import Fault, delete_keys, fault_proxy
from tests.reliability_figures import record_figures

DELETE = frozenset({"DeleteObjects"})
MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "AccessDenied": "Access Denied",
}


class DeleteBatches:
    """The number of keys in each DeleteObjects a client sends (retries by botocore too)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def attach(self, client: Any) -> "DeleteBatches":
        client.meta.events.register("before-send.s3.DeleteObjects", self._count)
        return self

    def _count(self, request: Any, **_: Any) -> None:
        self.sizes.append(len(delete_keys(request.body)))


def refuse(code: str, sends: int, key_rate: float = 0.1) -> Fault:
    """Refuse ~``key_rate`` of the keys (drawn by key and seed) on their first ``sends`` sends."""
    return Fault(
        "fail_keys", 1.0, DELETE, key_rate=key_rate, key_code=code, key_message=MESSAGES[code],
        key_attempts=sends,
    )  # fmt: skip


def drawn(keys: list[str], seed: int, key_rate: float = 0.1) -> set[str]:
    """The keys the proxy refuses for ``seed``: the same draw as ``FaultProxy``'s."""
    return {k for k in keys if random.Random(f"{seed}|key|{k}").random() < key_rate}


@pytest.mark.parametrize("code", ["SlowDown", "InternalError"])
def test_retryable_per_key_errors_are_sent_again_until_deleted(s3_server, s3, bucket, code):
    keys = seed_objects(bucket, 3000)
    refused = drawn(keys, seed=3)
    with fault_proxy(s3_server, [refuse(code, sends=2)], seed=3) as proxy:
        client = make_client(endpoint_url=proxy.url)
        batches = DeleteBatches().attach(client)
        result = empty_bucket(client, bucket)
        proxy.wait_idle()
    assert proxy.log.errors == []
    assert 200 < len(refused) < 400
    assert sorted(proxy.failed_keys()) == sorted([*refused, *refused])  # twice each
    assert (result.deleted, result.failures, result.complete) == (3000, [], True)
    assert result.key_retries == result.summary()["key_retries"] == 2 * len(refused)
    assert object_keys(s3, bucket) == []
    deletes = proxy.log.requests["DeleteObjects"]
    # Re-sent keys go in batches (with fresh keys while the listing goes on), not one by
    # one: every key sent once, every refused key twice more, at most 1,000 a request,
    # and at most 3 refusing answers per round, each possibly split at a batch boundary.
    assert sum(batches.sizes) == 3000 + 2 * len(refused) and max(batches.sizes) == 1000
    assert len(batches.sizes) == deletes and 4 <= deletes <= 3 + 2 * 3 * 2
    lists = 2 + 3  # the top level and reports/ (finding the day), then its 3 pages
    assert result.requests == proxy.log.requests["ListObjectsV2"] + deletes == lists + deletes
    record_figures(
        f"cleanup, per-key `{code}` in 200 answers",
        {
            "objects": len(keys),
            "keys refused (twice each)": len(refused),
            "key re-sends": result.key_retries,
            "deleted": result.deleted,
            "failed": len(result.failures),
            "objects left": len(object_keys(s3, bucket)),
        },
        {"DeleteObjects requests": deletes},
    )


def test_non_retryable_per_key_errors_fail_the_run_without_a_resend(s3_server, s3, bucket):
    keys = seed_objects(bucket, 2000)
    refused = drawn(keys, seed=5)
    with fault_proxy(s3_server, [refuse("AccessDenied", sends=1)], seed=5) as proxy:
        with pytest.raises(CleanupError) as raised:
            empty_bucket(make_client(endpoint_url=proxy.url), bucket)
        proxy.wait_idle()
    assert proxy.log.errors == []
    result = raised.value.result
    assert proxy.log.requests["DeleteObjects"] == 2 and result.key_retries == 0
    assert {f.key for f in result.failures} == refused
    assert {(f.code, f.message) for f in result.failures} == {("AccessDenied", "Access Denied")}
    assert result.deleted == 2000 - len(refused)
    assert set(object_keys(s3, bucket)) == refused
    assert str(raised.value).startswith(f"{len(refused)} objects could not be deleted")
    left = set(object_keys(s3, bucket))
    record_figures(
        "cleanup, per-key `AccessDenied` in 200 answers",
        {
            "objects": len(keys),
            "keys refused": len(refused),
            "key re-sends": result.key_retries,
            "deleted": result.deleted,
            "reported failed": len(result.failures),
            "raised": type(raised.value).__name__,
            "left and not reported": len(left - {f.key for f in result.failures}),
        },
    )


def test_keys_still_refused_after_every_attempt_are_reported_with_their_last_code(
    s3_server, s3, bucket
):
    keys = seed_objects(bucket, 1500)
    refused = drawn(keys, seed=8, key_rate=0.02)
    with fault_proxy(s3_server, [refuse("SlowDown", sends=99, key_rate=0.02)], seed=8) as proxy:
        with pytest.raises(CleanupError) as raised:
            empty_bucket(make_client(endpoint_url=proxy.url), bucket)
        proxy.wait_idle()
    assert proxy.log.errors == []
    result = raised.value.result
    assert 10 < len(refused) < 60
    assert len(proxy.failed_keys()) == KEY_ATTEMPTS * len(refused)
    assert result.key_retries == (KEY_ATTEMPTS - 1) * len(refused)
    assert {f.key for f in result.failures} == refused
    assert {f.code for f in result.failures} == {"SlowDown"}
    assert {f.message for f in result.failures} == {
        f"Please reduce your request rate. (refused {KEY_ATTEMPTS} times)"
    }
    assert set(object_keys(s3, bucket)) == refused
    assert result.deleted == 1500 - len(refused) and result.complete is True


def test_retries_stop_at_the_deadline_and_the_keys_left_are_counted(s3_server, s3, bucket):
    # Refused keys are refused on every send. Time is ample for the first delete and
    # one re-send, then 100 ms are left: no further re-send starts, the run returns
    # incomplete (it made progress) and counts the refused keys as remaining.
    keys = seed_objects(bucket, 1000)
    refused = drawn(keys, seed=8, key_rate=0.02)
    with fault_proxy(s3_server, [refuse("SlowDown", sends=99, key_rate=0.02)], seed=8) as proxy:

        def remaining_ms() -> float:
            return 10_000 if proxy.log.requests["DeleteObjects"] < 2 else 100

        result = empty_bucket(make_client(endpoint_url=proxy.url), bucket, None, remaining_ms)
        proxy.wait_idle()
    assert proxy.log.errors == []
    assert proxy.log.requests["DeleteObjects"] == 2
    assert (result.complete, result.failures, result.key_retries) == (False, [], len(refused))
    assert result.summary()["remaining_at_least"] == len(refused) > 0
    assert set(object_keys(s3, bucket)) == refused

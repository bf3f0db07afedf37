"""The cleanup's guarantee on a real server, over several fault seeds rather than one.

Every key the run listed is deleted or reported: the keys still there outside the
``unlisted`` ranges number ``remaining_at_least``, failures among them; keys in
those ranges are left only by a run that says it is incomplete, and a run that
could not list everything raises, saying what it did not list. The same guarantee
is swept over hundreds of seeds and bucket shapes on a fake S3, in milliseconds
(tests/unit/test_cleanup_guarantee.py); this sweep checks it end to end, over HTTP.

Each of 12 seeds empties a bucket of 1,100-2,000 objects (two list pages of one
day, after the two that find it; moto's server in a child process lists ~0.1-0.3 s
a page) through the fault proxy at a 35 % ListObjectsV2 fault
rate (500 InternalError, which botocore retries 3 times: ~4 % of pages fail for
good) with failed and refused deletes beside it. Delete faults act before S3
sees the request, so a reported key is certainly still there (with a lost answer
S3 may have deleted it: ``assert_every_listed_key_accounted`` allows for that).

The sweep proves something only if it reaches both outcomes (a listing that fails for
good, one that completes) and a key sent again, whatever the seeds draw: the first
seed's run is planned to fail its listing after the first page, the last seed's to
list everything with one key refused (``SlowDown``) on every send, sent again and
reported. The other runs, and the deletes of those two, are the seeds' draws.
"""

from typing import Any

import boto3

from bench.s3_host import seed_keys
from chalicelib.cleanup import CleanupError, empty_bucket
from chalicelib.s3 import make_client
from tests.conftest import assert_every_listed_key_accounted, object_keys
from tests.faultproxy import EVERY_SEND, Fault, Planned, fault_proxy
from tests.reliability_figures import record_figures

LIST, DELETE = frozenset({"ListObjectsV2"}), frozenset({"DeleteObjects"})
SEEDS = range(1, 13)
SLOW_DOWN = "Please reduce your request rate."
FAULTS = [
    Fault("internal", 0.35, LIST),
    Fault("internal", 0.1, DELETE),
    Fault("fail_keys", 0.3, DELETE, key_rate=0.05, key_code="SlowDown", key_attempts=1),
    Fault("fail_keys", 0.05, DELETE, key_rate=0.01),  # AccessDenied: not retried
]


def objects_for(seed: int) -> int:
    return 1100 + (seed * 173) % 900


def plan_for(seed: int, keys: list[str]) -> list[Planned]:
    """The first and the last seed's plans (the module's docstring); none for the rest.
    The two first lists (the top level and ``reports/``, side by side) go first."""
    if seed == SEEDS[0]:  # both first pages pass; then every list fails: page 2, for good
        return [
            Planned("ListObjectsV2", None, sends=range(1, 3)),
            Planned("ListObjectsV2", Fault("internal", 1.0, LIST), sends=range(3, EVERY_SEND.stop)),
        ]
    if seed == SEEDS[-1]:
        refused = Fault("fail_keys", 1.0, DELETE, key_code="SlowDown", key_message=SLOW_DOWN)
        return [
            Planned("ListObjectsV2", None, sends=EVERY_SEND),
            Planned("DeleteObjects", refused, key=keys[0], sends=EVERY_SEND),
        ]
    return []


def run_seed(host: Any, s3: Any, seed: int) -> dict:
    """One cleanup through the proxy for ``seed``; checks the guarantee, returns figures."""
    endpoint, bucket = host.endpoint, f"guarantee-{seed}"
    s3.create_bucket(Bucket=bucket)
    host.seed(s3, bucket, objects_for(seed), "reports/")
    keys = seed_keys(objects_for(seed), "reports/")
    error = None
    with fault_proxy(endpoint, FAULTS, seed=seed, plan=plan_for(seed, keys)) as proxy:
        try:
            result = empty_bucket(make_client(endpoint_url=proxy.url), bucket)
        except CleanupError as exc:
            error, result = exc, exc.result
        proxy.wait_idle()
    assert proxy.log.errors == []
    remaining = set(object_keys(s3, bucket))
    assert_every_listed_key_accounted(result.summary(), result.failures, remaining, True)
    listed_all = result.unlisted == [] and result.listed == len(keys)
    if result.complete:
        assert listed_all and remaining == {f.key for f in result.failures}
    if not listed_all:  # the listing failed for good: a visible error that says how far
        pages = f"{result.pages} page{'' if result.pages == 1 else 's'}"
        assert error is not None and str(error).startswith(
            f"listing s3://{bucket} failed after {pages} ({result.listed:,} keys listed; "
        )
        assert f"not listed: {result.unlisted[0].describe()}" in str(error)
        assert result.complete is False
    assert (error is None) == (result.complete and not result.failures)
    listed_left = {k for k in remaining if result.was_listed(k)}
    return {
        "unaccounted": max(0, len(listed_left) - result.summary()["remaining_at_least"]),
        "listing failed": not listed_all,
        "left unlisted": len(keys) - result.listed,
        "failed": len(result.failures),
        "key_retries": result.key_retries,
    }


def test_every_listed_key_is_deleted_or_reported_for_every_seed(s3_child_endpoint, s3_child):
    # moto in a child process: its listing CPU runs beside the client and the proxy.
    s3 = boto3.client("s3", endpoint_url=s3_child_endpoint)
    figures = []
    for seed in SEEDS:
        try:
            figures.append(run_seed(s3_child, s3, seed))
        except AssertionError as exc:
            raise AssertionError(f"FAULT seed {seed}: {exc}") from exc
    failed_listings = sum(f["listing failed"] for f in figures)
    # The sweep proves something only if it reaches both outcomes, and the retries.
    assert figures[0]["listing failed"] and not figures[-1]["listing failed"]  # planned
    assert figures[-1]["key_retries"] > 0 and figures[-1]["failed"] > 0  # planned
    record_figures(
        "cleanup guarantee, seed sweep",
        {"seeds": len(figures), "listed keys unaccounted": sum(f["unaccounted"] for f in figures)},
        {
            "listings failed for good": failed_listings,
            "keys never listed (all in runs that raised)": sum(f["left unlisted"] for f in figures),
            "keys reported failed": sum(f["failed"] for f in figures),
            "key re-sends": sum(f["key_retries"] for f in figures),
        },
    )
    print(
        f"\n{len(figures)} seeds: {failed_listings} listings failed for good "
        f"({sum(f['left unlisted'] for f in figures):,} keys unlisted, all in incomplete runs), "
        f"{sum(f['failed'] for f in figures)} keys reported failed, "
        f"{sum(f['key_retries'] for f in figures)} key re-sends; "
        f"{sum(f['unaccounted'] for f in figures)} listed keys unaccounted"
    )

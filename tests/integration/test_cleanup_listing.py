"""The listing over HTTP on moto: the whole bucket is emptied, inside ``reports/`` and out,
its days listed side by side, a big day of UUID-named reports cut into ranges."""

import random
import uuid

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from chalicelib.cleanup import empty_bucket
from chalicelib.cleanup.listing import MAX_DAY_RANGES
from chalicelib.s3 import make_client
from tests.conftest import object_keys, seed_objects


def test_every_key_goes_inside_reports_and_out(s3_server, s3, bucket):
    odd = ["top.json", "a/", "a/b/c", "other/x.json", "reports/x.json", "reports0", "ünï/ключ"]
    for key in odd:
        s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    days = [seed_objects(bucket, 700, prefix=f"reports/2026-11-{d}/") for d in (28, 29, 30)]
    keys = sorted([*odd, *(k for day in days for k in day)])
    client = make_client(endpoint_url=s3_server)
    result = empty_bucket(client, bucket)
    assert (result.listed, result.deleted, result.complete, result.unlisted) == (
        len(keys), len(keys), True, [],
    )  # fmt: skip
    assert object_keys(s3, bucket) == []


def test_a_big_day_of_uuid_reports_is_listed_in_ranges_and_emptied(s3_server, s3, bucket):
    count = 12_000
    rng = random.Random(0)
    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]  # as Lambda's
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for rid in ids:
        backend.put_object(bucket, f"reports/2026-11-30/{rid}.json", b"{}")
    lists = []
    client = make_client(endpoint_url=s3_server)
    client.meta.events.register(
        "before-parameter-build.s3.ListObjectsV2", lambda params, **_: lists.append(dict(params))
    )
    result = empty_bucket(client, bucket)
    assert (result.deleted, result.complete) == (count, True)
    assert object_keys(s3, bucket) == []
    day = [p for p in lists if p.get("Prefix") == "reports/2026-11-30/"]
    ranges = {p["StartAfter"] for p in day if "StartAfter" in p}
    assert 1 <= len(ranges) < MAX_DAY_RANGES  # cut, into ranges of about 4 pages
    assert len(day) <= count // 1000 + 1 + len(ranges)  # a partial page per range at most

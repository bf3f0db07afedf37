"""The ways to empty a bucket that the benchmark compares, and what each must cost.

- ``ours``: the production code, :func:`chalicelib.cleanup.empty_bucket`.
- ``per_key``: list, then one ``DeleteObject`` per key, one after the other.
- ``batch_100``: what the Go seed's SDK does (``s3manager.NewDeleteListIterator`` +
  ``BatchDelete``): ``ListObjects`` (v1) pages, ``DeleteObjects`` of 100 keys, in turn.
- ``boto3_all``: boto3's resource API, ``bucket.objects.all().delete()``: a
  ``ListObjects`` page, then one ``DeleteObjects`` (not quiet) for that page, in turn.
"""

import math
from collections.abc import Callable
from typing import Any

import boto3

from chalicelib.cleanup import empty_bucket
from chalicelib.s3 import make_client

STRATEGIES = ("ours", "per_key", "batch_100", "boto3_all")
LABELS = {
    "ours": "ours (pipelined, 1,000/batch)",
    "per_key": "one DeleteObject per key",
    "batch_100": "batches of 100 (Go seed)",
    "boto3_all": "boto3 objects.all().delete()",
}


Runner = Callable[[str, int | None], int]


def prepare(strategy: str) -> tuple[Any, Runner]:
    """A fresh client for ``strategy`` (to instrument) and ``run(bucket, limit) -> deleted``.

    Ours uses the production client (``chalicelib.s3.make_client``), the others
    boto3's defaults, as their users would. ``limit`` caps the per-key baseline.
    """
    if strategy == "ours":
        s3 = make_client()
        return s3, lambda bucket, limit: empty_bucket(s3, bucket).deleted
    if strategy == "boto3_all":
        resource = boto3.resource("s3")
        return resource.meta.client, lambda bucket, limit: _boto3_all(resource, bucket)
    s3 = boto3.client("s3")
    runner = {"per_key": _per_key, "batch_100": _batch_100}[strategy]
    return s3, lambda bucket, limit: runner(s3, bucket, limit)


def _per_key(s3: Any, bucket: str, limit: int | None) -> int:
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
            deleted += 1
            if deleted == limit:  # before the paginator asks for another page
                return deleted
    return deleted


def _batch_100(s3: Any, bucket: str, limit: int | None) -> int:
    deleted, batch = 0, []
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            batch.append({"Key": obj["Key"]})
            if len(batch) == 100:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": batch})
                deleted, batch = deleted + len(batch), []
    if batch:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch})
        deleted += len(batch)
    return deleted


def _boto3_all(resource: Any, bucket: str) -> int:
    responses = resource.Bucket(bucket).objects.all().delete()
    return sum(len(response.get("Deleted", [])) for response in responses)


def expected_requests(strategy: str, objects: int) -> int:
    """The exact request count to delete ``objects`` objects (full 1,000-key pages)."""
    pages = max(1, math.ceil(objects / 1000))
    deletes = {
        "ours": math.ceil(objects / 1000),
        "per_key": objects,
        "batch_100": math.ceil(objects / 100),
        "boto3_all": math.ceil(objects / 1000),
    }[strategy]
    # Ours also lists the top level and reports/ with a delimiter, to find the days.
    finding_days = 2 if strategy == "ours" else 0
    return finding_days + pages + deletes

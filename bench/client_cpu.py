"""Client CPU per 1,000 objects: the cleanup against boto3's ``bucket.objects.all().delete()``.

Both empty a freshly seeded bucket on the same endpoint in the same run,
interleaved, and the figure is this process's CPU time (``time.process_time``,
every thread included: the cleanup deletes from a pool), so the server must run
in another process (``bench.s3_host.MotoChild``) for the server to be excluded.
Clients are created and warmed up before timing, as a Lambda creates its client
at init. Each side's figure is the median of ``repeats`` runs.

    python -m bench.client_cpu [--objects 5000] [--repeats 3] [--profile ours|boto3_all]

starts moto's server in a child process, prints the figures as JSON, and with
``--profile`` prints where that side's CPU goes (cProfile, top functions).
"""

import argparse
import cProfile
import itertools
import json
import pstats
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

from chalicelib.cleanup import empty_bucket
from chalicelib.s3 import make_client

Seeder = Callable[[str, int], None]  # (bucket, count): put ``count`` objects in ``bucket``
SIDES = ("ours", "boto3_all")
_buckets = itertools.count(1)


def _put_seeder(endpoint: str) -> Seeder:
    """Seed with PutObject, 16 at a time (any endpoint; ~200/s on moto)."""
    s3 = boto3.client("s3", endpoint_url=endpoint)

    def seed(bucket: str, count: int) -> None:
        with ThreadPoolExecutor(16) as pool:
            keys = (f"reports/2026-01-01/{i:07d}.json" for i in range(count))
            list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"{}"), keys))

    return seed


def _runners(endpoint: str) -> dict[str, Callable[[str], int]]:
    ours = make_client(endpoint_url=endpoint)
    resource = boto3.resource("s3", endpoint_url=endpoint)

    def boto3_all(bucket: str) -> int:
        responses = resource.Bucket(bucket).objects.all().delete()
        return sum(len(response.get("Deleted", [])) for response in responses)

    return {"ours": lambda bucket: empty_bucket(ours, bucket).deleted, "boto3_all": boto3_all}


def _timed(run: Callable[[str], int], bucket: str, profile: cProfile.Profile | None) -> float:
    """Client CPU seconds to empty ``bucket``."""
    cpu = time.process_time()
    if profile:
        profile.enable()
    deleted = run(bucket)
    if profile:
        profile.disable()
    cpu = time.process_time() - cpu
    if deleted == 0:
        raise RuntimeError(f"nothing deleted from {bucket}")
    return cpu


def measure(
    endpoint: str,
    objects: int,
    *,
    repeats: int = 3,
    seed: Seeder | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """Client CPU ms per 1,000 objects for ours and for boto3's ``objects.all().delete()``.

    ``seed(bucket, count)`` fills a bucket (default: PutObject over HTTP; pass
    ``MotoChild``'s backend seeding for speed). Returns ``{"objects", "repeats",
    "ours_cpu_ms_per_1000", "boto3_all_cpu_ms_per_1000", "ratio", "runs_ms"}``;
    ``ratio`` is ours over boto3's (the target is <= 0.5). ``profile`` names a side
    whose timed runs are profiled (the profile then inflates that side's figure).
    """
    seed = seed or _put_seeder(endpoint)
    admin = boto3.client("s3", endpoint_url=endpoint)
    runners = _runners(endpoint)
    profiler = cProfile.Profile() if profile else None

    def fresh(count: int) -> str:
        bucket = f"client-cpu-{next(_buckets):04d}"
        admin.create_bucket(Bucket=bucket)
        seed(bucket, count)
        return bucket

    for run in runners.values():  # warm up: first-call model loading, connections
        run(fresh(10))
    runs: dict[str, list[float]] = {side: [] for side in SIDES}
    for _ in range(repeats):
        for side in SIDES:
            bucket = fresh(objects)
            cpu = _timed(runners[side], bucket, profiler if profile == side else None)
            runs[side].append(cpu * 1000 / objects * 1000)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    ours, theirs = (statistics.median(runs[side]) for side in SIDES)
    return {
        "objects": objects,
        "repeats": repeats,
        "ours_cpu_ms_per_1000": round(ours, 1),
        "boto3_all_cpu_ms_per_1000": round(theirs, 1),
        "ratio": round(ours / theirs, 3),
        "runs_ms": {side: [round(v, 1) for v in values] for side, values in runs.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", choices=SIDES)
    args = parser.parse_args()
    from chalice_loop import point_aws_at

    from bench.s3_host import MotoChild

    host = MotoChild()
    try:
        point_aws_at(host.endpoint)  # credentials and region for the clients

        def seed(bucket: str, count: int) -> None:
            host.seed(None, bucket, count, "reports/2026-01-01/")

        figures = measure(
            host.endpoint, args.objects, repeats=args.repeats, seed=seed, profile=args.profile
        )
    finally:
        host.close()
    print(json.dumps({"server": host.description, **figures}, indent=2))


if __name__ == "__main__":
    main()

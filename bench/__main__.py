"""``make bench``: measure the cleanup and the worker, at full CPU and in Lambda's
CPU slice at several memory sizes; write bench/results.json, BENCHMARKS.md and
the plots.

Two servers, one after the other. On moto (a child process): the strategies at
10,000 objects without and with a 20 ms simulated round trip, the pipeline depth,
the deadline runs, client CPU against boto3, the worker's cold start. On
SeaweedFS (``bench/seaweedfs.py``, a real S3 server): the seeding check, the
peers side by side (``bench/peers.py``), the power-tuning table and one scheduled
cleanup run on 100,000 objects in its slice. Defaults finish in under 10 minutes
on 2 quiet CPUs; ``--full`` makes that run 1,000,000 objects (bench/scale_run.json).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from chalice_loop import ensure_region, point_aws_at

from bench import cleanup_bench, peers, power_tuning, report, worker_bench
from bench.client_cpu import measure as measure_client_cpu
from bench.limits import SCALE_RUN_OBJECTS
from bench.s3_host import MotoChild, start_host
from bench.seaweedfs import SeaweedFS, check_seeding

PROJECT = Path(__file__).resolve().parent.parent
PLOT = "cleanup_throughput.png"
TUNING_PLOT = "power_tuning.png"
PEERS_PLOT = "peers_seaweedfs.png"
SCALE_RUN = "scale_run.json"
DEADLINE_BUDGET_MS = 2000  # a Lambda timeout too short to empty the bucket in one run


def log(message: str) -> None:
    print(message, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000", help="strategy object counts (default 10000)")
    parser.add_argument("--large", action="store_true", help="strategies also at 100,000 (slow)")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="simulated round trip")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per measurement")
    parser.add_argument("--cpu-objects", type=int, default=5000, help="client CPU comparison")
    parser.add_argument("--slice-objects", type=int, default=10_000, help="cleanup per memory")
    parser.add_argument(
        "--one-run-objects", type=int, default=100_000, help="the scheduled cleanup run's bucket"
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help=f"the scheduled run on {SCALE_RUN_OBJECTS:,} objects (~7 minutes more)",
    )
    parser.add_argument("--peer-objects", type=int, default=20_000, help="each peer's bucket")
    parser.add_argument("--peer-rounds", type=int, default=3, help="rounds of every peer")
    parser.add_argument("--aws-rounds", type=int, default=1, help="rounds with aws s3 rm")
    parser.add_argument(
        "--seed-check-objects", type=int, default=5000, help="PUT vs seeded check (0: skip)"
    )
    parser.add_argument(
        "--only",
        choices=("moto", "seaweedfs", "scale"),
        help="one part (the rest is kept from results.json); scale: only the --full run",
    )
    parser.add_argument("--slice-sandboxes", type=int, default=5, help="worker sandboxes/memory")
    parser.add_argument("--slice-warm", type=int, default=40, help="warm calls per sandbox")
    parser.add_argument("--per-key-cap", type=int, default=200, help="per-key baseline sample")
    parser.add_argument("--cold-runs", type=int, default=15, help="fresh processes per cold start")
    parser.add_argument("--warm-calls", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=PROJECT / "bench")
    parser.add_argument("--markdown", type=Path, default=PROJECT / "BENCHMARKS.md")
    parser.add_argument(
        "--report-only", action="store_true", help="redo targets, report and plot from results.json"
    )
    return parser.parse_args()


def write_report(results: dict, out: Path, markdown: Path) -> None:
    report.plot(results, out / PLOT)
    report.plot_power_tuning(results, out / TUNING_PLOT)
    report.plot_peers(results, out / PEERS_PLOT)
    names = (PLOT, TUNING_PLOT, PEERS_PLOT)
    plots = [os.path.relpath(out / name, markdown.parent) for name in names]
    markdown.write_text(report.markdown(results, *plots))
    log(report.console(results))
    log(f"\nwrote {out / 'results.json'}, {out / PLOT}, {markdown}")


def _seeder(host: MotoChild | object) -> object:
    """Seed straight into moto's backend (PUTs over HTTP run at ~200/s); else PutObject."""
    if isinstance(host, MotoChild):
        return lambda bucket, count: host.seed(None, bucket, count, "reports/2026-01-01/")
    return None


def main() -> None:
    args = parse_args()
    scale_path = args.out / SCALE_RUN
    if args.report_only:
        results = json.loads((args.out / "results.json").read_text())
        results["scale_run"] = _read(scale_path)
        results["targets"] = report.targets(results)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        write_report(results, args.out, args.markdown)
        return
    if args.full or args.only == "scale":
        args.one_run_objects = max(args.one_run_objects, SCALE_RUN_OBJECTS)
    started = time.perf_counter()
    previous = _read(args.out / "results.json") or {}
    if args.only == "scale":  # the last run's figures stay as they are, with their header
        run_scale_only(args, previous, scale_path)
        return
    results: dict = {"machine": report.machine()}
    if args.only == "seaweedfs":
        results |= {k: v for k, v in previous.items() if k in MOTO_PARTS}
    else:
        results |= run_moto(args)
    if args.only == "moto":
        results |= {k: v for k, v in previous.items() if k in SEAWEEDFS_PARTS}
    if args.only != "moto":
        results |= run_seaweedfs(args)
        one = results["power_tuning"]["one_run"]
        if one["objects"] >= SCALE_RUN_OBJECTS:
            _write_scale(scale_path, one)
    results["scale_run"] = _read(scale_path)
    results["machine"]["load_average_at_end"] = report.load_average()
    results["targets"] = report.targets(results)
    results["finished_at"] = report.stamp()
    results["duration_s"] = round(time.perf_counter() - started, 1)
    results["command"] = _command()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, args.out, args.markdown)
    log(f"benchmark done in {results['duration_s']:.0f} s")
    if not all(t["pass"] for t in results["targets"]):
        log("some targets FAIL (see above); the figures are what this machine measured")


MOTO_PARTS = ("config", "cleanup", "batch_times", "pool", "deadline", "client_cpu", "worker")
SEAWEEDFS_PARTS = ("seaweedfs", "seed_check", "peers", "power_tuning")


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _command() -> str:
    return " ".join(["python -m bench", *sys.argv[1:]])


def run_moto(args: argparse.Namespace) -> dict:
    """The moto part: strategies, pipeline depth, deadline, client CPU, worker."""
    sizes = [int(n) for n in args.sizes.split(",")] + ([100_000] if args.large else [])
    results: dict = {}
    host = None
    try:
        host = start_host()
        if isinstance(host, MotoChild):
            point_aws_at(host.endpoint)  # its local credentials, no profile
        else:
            ensure_region()
        log(f"S3: {host.description}")
        pool_objects = max(sizes[:2])
        results["config"] = {
            "s3": host.description,
            "sizes": sizes,
            "rtt_ms": args.rtt_ms,
            "repeats": args.repeats,
            "per_key_cap": args.per_key_cap,
            "pool_objects": pool_objects,
            "deadline_objects": pool_objects,
            "deadline_budget_ms": DEADLINE_BUDGET_MS,
            "cpu_objects": args.cpu_objects,
        }
        log("\nCleanup strategies")
        runs = cleanup_bench.run_matrix(
            host, sizes, [0.0, args.rtt_ms], args.repeats, args.per_key_cap, log
        )
        results["cleanup"] = cleanup_bench.summarize(runs)
        results["batch_times"] = cleanup_bench.batch_times(runs)
        log("\nPipeline depth")
        results["pool"] = cleanup_bench.pool_sweep(
            host, pool_objects, args.rtt_ms, [1, 2, 4, 8], log
        )
        log("\nDeadline")
        results["deadline"] = cleanup_bench.deadline_runs(
            host, pool_objects, args.rtt_ms, DEADLINE_BUDGET_MS, log
        )
        log("\nClient CPU per 1,000 objects, ours and boto3")
        results["client_cpu"] = measure_client_cpu(
            host.endpoint, args.cpu_objects, seed=_seeder(host)
        )
        log(f"  {results['client_cpu']}")
        log("\nWorker")
        results["worker"] = worker_bench.run(host.endpoint, args.cold_runs, args.warm_calls, log)
    finally:
        if host is not None:
            host.close()
    return results


def _write_scale(path: Path, one: dict) -> None:
    scale = {
        "measured_at": report.stamp(),
        "command": _command(),
        "machine_load": report.load_average(),
        "s3": one["s3"],
        "one_run": one,
    }
    path.write_text(json.dumps(scale, indent=2) + "\n")


def run_scale_only(args: argparse.Namespace, previous: dict, scale_path: Path) -> None:
    """``--only scale``: the run at scale into scale_run.json; the report is redone."""
    _write_scale(scale_path, run_scale(args))
    if previous:
        previous["scale_run"] = _read(scale_path)
        previous["targets"] = report.targets(previous)
        (args.out / "results.json").write_text(json.dumps(previous, indent=2) + "\n")
        write_report(previous, args.out, args.markdown)


def run_scale(args: argparse.Namespace) -> dict:
    """Only the scheduled run at scale, on SeaweedFS (``--only scale``)."""
    with SeaweedFS() as weed:
        point_aws_at(weed.endpoint)
        log(f"\nS3: {weed.description}")
        log(f"One scheduled cleanup run, {args.one_run_objects:,} objects, configured settings")
        one = power_tuning.one_run(weed, args.one_run_objects)
        log(f"    {one['report']}")
        return one | {"s3": weed.description}


def run_seaweedfs(args: argparse.Namespace) -> dict:
    """The SeaweedFS part: seeding check, peers, power tuning, one scheduled run."""
    results: dict = {}
    with SeaweedFS() as weed:
        point_aws_at(weed.endpoint)  # every client from here on, the sliced Lambdas too
        log(f"\nS3: {weed.description}")
        results["seaweedfs"] = {"s3": weed.description, "ports": weed.ports}
        if args.seed_check_objects:
            log("\nSeeding check: PUT objects against seeded ones")
            results["seed_check"] = check_seeding(weed, args.seed_check_objects, log)
        log(f"\nPeers on SeaweedFS, {args.peer_objects:,} objects each")
        results["peers"] = peers.run(
            weed, args.peer_objects, args.peer_rounds, args.aws_rounds, log
        )
        log("\nPower tuning, in the Lambda slice, on SeaweedFS")
        results["power_tuning"] = power_tuning.run(
            weed, args.slice_objects, args.one_run_objects, args.slice_sandboxes,
            args.slice_warm, log,
        )  # fmt: skip
        results["seaweedfs"]["starts_s"] = list(weed.starts_s)
        results["power_tuning"]["one_run"]["s3"] = weed.description
    return results


if __name__ == "__main__":
    sys.exit(main())

"""``make bench``: measure the cleanup and the worker, at full CPU and in Lambda's
CPU slice at several memory sizes; write bench/results.json, BENCHMARKS.md and
the plots.

Defaults finish in under 10 minutes on 2 CPUs: the strategies at 10,000 objects
without and with a 20 ms simulated round trip, client CPU against boto3, the
power-tuning table, and one scheduled cleanup run on 100,000 objects in its slice.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from chalice_loop.embedded_s3 import ensure_region, point_aws_at

from bench import cleanup_bench, power_tuning, report, worker_bench
from bench.client_cpu import measure as measure_client_cpu
from bench.s3_host import MotoChild, start_host

PROJECT = Path(__file__).resolve().parent.parent
PLOT = "cleanup_throughput.png"
TUNING_PLOT = "power_tuning.png"
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
    plots = [os.path.relpath(out / name, markdown.parent) for name in (PLOT, TUNING_PLOT)]
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
    if args.report_only:
        results = json.loads((args.out / "results.json").read_text())
        results["targets"] = report.targets(results)
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        write_report(results, args.out, args.markdown)
        return
    sizes = [int(n) for n in args.sizes.split(",")] + ([100_000] if args.large else [])
    started = time.perf_counter()
    results: dict = {"machine": report.machine()}
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
            "slice_objects": args.slice_objects,
            "one_run_objects": args.one_run_objects,
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
        log("\nPower tuning, in the Lambda slice")
        results["power_tuning"] = power_tuning.run(
            host, args.slice_objects, args.one_run_objects, args.slice_sandboxes,
            args.slice_warm, log,
        )  # fmt: skip
        log("\nWorker")
        results["worker"] = worker_bench.run(host.endpoint, args.cold_runs, args.warm_calls, log)
    finally:
        if host is not None:
            host.close()
    results["machine"]["load_average_at_end"] = report.load_average()
    results["targets"] = report.targets(results)
    results["finished_at"] = report.stamp()
    results["duration_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, args.out, args.markdown)
    log(f"benchmark done in {results['duration_s']:.0f} s")
    if not all(t["pass"] for t in results["targets"]):
        log("some targets FAIL (see above); the figures are what this machine measured")


if __name__ == "__main__":
    sys.exit(main())

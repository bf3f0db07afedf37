"""``make bench``: measure the cleanup strategies and the worker; write
bench/results.json, BENCHMARKS.md and bench/cleanup_throughput.png.

Defaults finish in a few minutes on 2 CPUs: 1,000 and 10,000 objects,
without and with a 20 ms simulated round trip. ``--large`` adds 100,000.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench import cleanup_bench, report, worker_bench
from bench.s3_host import MotoChild, start_host
from devtools.local_lambda.embedded_s3 import ensure_region, point_aws_at

PROJECT = Path(__file__).resolve().parent.parent
PLOT = "cleanup_throughput.png"
DEADLINE_BUDGET_MS = 2000  # a Lambda timeout too short to empty the bucket in one run


def log(message: str) -> None:
    print(message, flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="object counts (default 1000,10000)")
    parser.add_argument("--large", action="store_true", help="also 100,000 objects (slow)")
    parser.add_argument("--rtt-ms", type=float, default=20.0, help="simulated round trip")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--per-key-cap", type=int, default=500, help="per-key baseline sample")
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
    markdown.write_text(report.markdown(results, os.path.relpath(out / PLOT, markdown.parent)))
    log(report.console(results))
    log(f"\nwrote {out / 'results.json'}, {out / PLOT}, {markdown}")


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

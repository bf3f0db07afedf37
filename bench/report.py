"""The benchmark's outputs: targets with PASS/FAIL, tables, BENCHMARKS.md and the plot."""

import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.strategies import LABELS, STRATEGIES
from chalicelib.cleanup import DELETE_WORKERS, FIRST_REQUEST_ESTIMATE_MS, MARGIN_FACTOR, RESERVE_MS

ZIP_LIMIT = 100 * 1000
RSS_LIMIT_MB = 64
IMPORT_RATIO_LIMIT = 1.15
SPEEDUP_TARGET = 2.0


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "virtualized": " hypervisor" in cpuinfo,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured value and PASS/FAIL."""
    rows = results["cleanup"]
    out = []
    for row in rows:
        if row["strategy"] == "ours" and row["rtt_ms"] == 0:
            out.append(
                _target(
                    f"cleanup requests per 1,000 objects ({row['objects']:,})",
                    "= 2.0 (2 per started 1,000)",
                    row["requests_per_1000"],
                    row["requests_exact"],  # ours' formula: 2 per started 1,000
                )
            )
    rtt = results["config"]["rtt_ms"]
    for row in rows:
        if row["strategy"] == "boto3_all" and row["rtt_ms"] == rtt:
            out.append(
                _target(
                    f"ours vs boto3 objects.all().delete(), {rtt:g} ms RTT ({row['objects']:,})",
                    f">= {SPEEDUP_TARGET:g}x",
                    f"{row['ours_speedup']}x",
                    row["ours_speedup"] >= SPEEDUP_TARGET,
                )
            )
    worker = results.get("worker")
    if worker:
        out += [
            _target(
                "worker requests per invocation",
                "= 1 (PutObject)",
                worker["requests_per_invocation"],
                worker["requests"] == {"PutObject": worker["warm_calls"]},
            ),
            _target(
                "import app / (import boto3 + client)",
                f"<= {IMPORT_RATIO_LIMIT}x",
                f"{worker['import_ratio']}x",
                worker["import_ratio"] <= IMPORT_RATIO_LIMIT,
            ),
            _target(
                "peak RSS of an invoking process",
                f"<= {RSS_LIMIT_MB} MB",
                f"{worker['peak_rss_app_mb']} MB",
                worker["peak_rss_app_mb"] <= RSS_LIMIT_MB,
            ),
            _target(
                "deployment zip",
                f"<= {ZIP_LIMIT // 1000} KB",
                f"{worker['zip_bytes'] / 1000:.1f} KB",
                worker["zip_bytes"] <= ZIP_LIMIT,
            ),
        ]
    return out


def _target(name: str, goal: str, measured: Any, passed: bool) -> dict[str, Any]:
    return {"target": name, "goal": goal, "measured": measured, "pass": passed}


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def cleanup_table(rows: list[dict[str, Any]]) -> list[str]:
    body = []
    for row in rows:
        wall = f"{row['wall_s']:.2f}"
        if row["extrapolated"]:
            wall = f"~{wall} (extrapolated from the first {row['measured_objects']:,})"
        server = row["server_cpu_ms_per_1000"]
        body.append(
            [
                f"{row['rtt_ms']:g} ms",
                f"{row['objects']:,}",
                LABELS[row["strategy"]],
                wall,
                f"{row['objects_per_s']:,}",
                f"{row['requests_per_1000']:g}" + ("" if row["requests_exact"] else " (!)"),
                f"{row['ours_speedup']:g}x",
                f"{row['client_cpu_ms_per_1000']:g}",
                "-" if server is None else f"{server:g}",
                row["runs"],
            ]
        )
    header = [
        "RTT", "objects", "strategy", "wall s", "objects/s", "requests /1,000",
        "ours is", "client CPU ms /1,000", "server CPU ms /1,000", "runs",
    ]  # fmt: skip
    return _table(header, body)


def targets_table(rows: list[dict[str, Any]]) -> list[str]:
    return _table(
        ["target", "goal", "measured", "result"],
        [[t["target"], t["goal"], t["measured"], "PASS" if t["pass"] else "FAIL"] for t in rows],
    )


def console(results: dict[str, Any]) -> str:
    lines = ["", "Cleanup", *cleanup_table(results["cleanup"]), "", "Targets"]
    lines += targets_table(results["targets"])
    return "\n".join(lines)


def _server_bound(results: dict[str, Any]) -> list[str]:
    """What moto's own CPU allows any client, from the measured server CPU per object."""
    rtt = results["config"]["rtt_ms"]
    lines = []
    for row in results["cleanup"]:
        if row["strategy"] != "ours" or row["rtt_ms"] != rtt or not row["server_cpu_ms_per_1000"]:
            continue
        boto3_row = next(
            r for r in results["cleanup"]
            if r["strategy"] == "boto3_all" and (r["rtt_ms"], r["objects"]) == (rtt, row["objects"])
        )  # fmt: skip
        ceiling = 1e6 / row["server_cpu_ms_per_1000"]
        lines.append(
            f"- {row['objects']:,} objects, {rtt:g} ms RTT: moto spent "
            f"{row['server_cpu_ms_per_1000']:g} ms of CPU per 1,000 objects serving ours, so "
            f"no client can go past ~{ceiling:,.0f} objects/s on it; boto3 reached "
            f"{boto3_row['objects_per_s']:,}/s, a ceiling of "
            f"{ceiling / boto3_row['objects_per_s']:.2f}x for any strategy with the same "
            f"requests (ours: {row['objects_per_s']:,}/s, {boto3_row['ours_speedup']}x)."
        )
    return lines


def markdown(results: dict[str, Any], plot_name: str) -> str:
    m, cfg, w = results["machine"], results["config"], results.get("worker")
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`); do not edit by hand, run it again.",
        f"This run: {results['finished_at']}, {results['duration_s']:.0f} s in all.",
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB, "
        f"{'a virtual machine (KVM guest), shared: ' if m['virtualized'] else ''}"
        f"1/5/15-minute load average {m['load_average_at_start']} at the start and "
        f"{m.get('load_average_at_end')} at the end (other sessions' test suites share the "
        "machine), so expect 10-30 % noise between runs; ratios from the same run are "
        "steadier than absolute figures.",
        f"- Python {m['python']}, {m['platform']}.",
        f"- S3: {cfg['s3']}.",
        "",
        "## Cleanup",
        "",
        "Each strategy empties a freshly seeded bucket (keys like "
        f"`reports/2026-01-01/0000042.json`), at {', '.join(f'{n:,}' for n in cfg['sizes'])} "
        "objects, without and with a simulated "
        f"round trip of {cfg['rtt_ms']:g} ms slept in the client before every request "
        "(`bench/instrument.py`). Wall time is the best of the runs (column `runs`; other "
        "processes only ever add time; every run's time is in results.json); requests are "
        "counted "
        "on the wire (botocore `before-send`) and are exact: `(!)` would mark a count that "
        'differs from the formula in `bench/strategies.py`. "ours is" = ours\' objects/s '
        "divided by that row's, in the same run. Client CPU is this process's; server CPU "
        "is moto's child process's.",
        "",
        f"The one-`DeleteObject`-per-key baseline deletes at most {cfg['per_key_cap']:,} "
        "objects per run (at moto's ~250 requests/s, plus the round trip, the full 10,000 "
        "would take minutes); beyond that its wall time is extrapolated linearly from the "
        "measured rate and marked so. Its requests per 1,000 are those of the whole bucket "
        "(1 list + 1,000 deletes per 1,000), the formula its sample was checked against.",
        "",
        *cleanup_table(results["cleanup"]),
        "",
        f"![objects/s against object count]({plot_name})",
        "",
        "### What bounds ours on moto (the 2x target)",
        "",
        "Listing is sequential (each page needs the previous page's continuation token), so "
        "no client empties a bucket faster than one `ListObjectsV2` per 1,000 objects allows. "
        "Ours hides every `DeleteObjects` behind the listing; what is left is the listing "
        "itself. On moto a 1,000-key page costs ~130 ms of the server's CPU (profiled: its "
        "generic XML serializer and `dateutil`), far more than the 20 ms round trip, and moto "
        "serves requests on one Python interpreter, so deletes and listings queue for the "
        "same CPU:",
        "",
        *_server_bound(results),
        "",
        "At 1,000 objects there is a single page and nothing to overlap: ours and boto3 send "
        "the same two requests one after the other, and differ only in client work (ours asks "
        "for a `Quiet` answer and builds no resource objects).",
        "",
        "Several deletes in flight beside the listing pay most when a `DeleteObjects` of "
        "1,000 keys takes longer than a list page and the server runs requests in parallel. "
        "Neither holds on moto; whether and by how much it holds on S3 could not be "
        "measured here (no AWS account).",
        "",
        "### Pipeline depth",
        "",
        f"Ours at {cfg['pool_objects']:,} objects, {cfg['rtt_ms']:g} ms RTT, with N "
        f"`DeleteObjects` in flight beside the listing (default {DELETE_WORKERS}):",
        "",
        *_table(
            ["DeleteObjects in flight", "wall s", "objects/s", "requests"],
            [
                [
                    f"{r['workers']}{' (default)' if r['default'] else ''}",
                    r["wall_s"],
                    f"{r['objects_per_s']:,}",
                    r["requests"],
                ]
                for r in results["pool"]
            ],
        ),
        "",
        "### Request times and the deadline margin",
        "",
        "The cleanup stops starting requests once the Lambda's remaining time is below "
        f"`{RESERVE_MS} ms + {MARGIN_FACTOR} x the slowest request of the same kind so far "
        f"in the run` ({FIRST_REQUEST_ESTIMATE_MS} ms assumed before the first of each kind; "
        "a list page needs one slowest delete more, for the delete it feeds). "
        "Ours' request times "
        "(wall, in the client, round trip and contention included):",
        "",
        *_table(
            ["objects", "RTT", "request", "count", "p50 ms", "p99 ms", "max ms"],
            [
                [
                    f"{r['objects']:,}",
                    f"{r['rtt_ms']:g} ms",
                    r["operation"],
                    r["count"],
                    r["p50"],
                    r["p99"],
                    r["max"],
                ]
                for r in results["batch_times"]
            ],
        ),
        "",
        f"With a {cfg['deadline_budget_ms']:,} ms Lambda timeout, {cfg['deadline_objects']:,} "
        f"objects and {cfg['rtt_ms']:g} ms RTT, invocations until the bucket is empty:",
        "",
        *_table(
            [
                "run",
                "deleted",
                "complete",
                "requests",
                "slowest request ms",
                "elapsed ms",
                "left at return ms",
            ],
            [
                [
                    i + 1,
                    f"{r['deleted']:,}",
                    r["complete"],
                    r["requests"],
                    r["slowest_request_ms"],
                    r["elapsed_ms"],
                    r["remaining_ms_at_return"],
                ]
                for i, r in enumerate(results["deadline"])
            ],
        ),
        "",
    ]
    if w:
        lines += [
            "## Worker",
            "",
            f"Cold start: {w['cold_runs']} fresh processes each, alternated, medians; warm: "
            f"{w['warm_calls']:,} invocations in one process. `import app` runs in the unpacked "
            "deployment zip without cached bytecode (as on Lambda) and includes creating the "
            'S3 client; the baseline is `import boto3` + `boto3.client("s3")`.',
            "",
            *_table(
                ["measure", "app", "baseline (boto3 alone)", "ratio"],
                [
                    [
                        "import (+ client)",
                        f"{w['import_app_ms']} ms",
                        f"{w['import_boto3_client_ms']} ms",
                        f"{w['import_ratio']}x",
                    ],
                    [
                        "import (+ client), bytecode in the zip (not shipped today)",
                        f"{w['import_app_with_bytecode_ms']} ms",
                        f"{w['import_boto3_client_ms']} ms",
                        f"{w['import_ratio_with_bytecode']}x",
                    ],
                    [
                        "import + first invocation (+ first PutObject)",
                        f"{w['first_invocation_app_ms']} ms",
                        f"{w['first_put_boto3_ms']} ms",
                        f"{w['first_call_ratio']}x",
                    ],
                    [
                        "warm invocation p50",
                        f"{w['warm_app_p50_ms']} ms",
                        f"{w['warm_boto3_put_p50_ms']} ms (PutObject)",
                        "",
                    ],
                    [
                        "warm invocation p99",
                        f"{w['warm_app_p99_ms']} ms",
                        f"{w['warm_boto3_put_p99_ms']} ms (PutObject)",
                        "",
                    ],
                    ["peak RSS", f"{w['peak_rss_app_mb']} MB", f"{w['peak_rss_boto3_mb']} MB", ""],
                    ["requests per invocation", w["requests_per_invocation"], "", ""],
                    [
                        "deployment zip",
                        f"{w['zip_bytes']:,} bytes ({len(w['zip_entries'])} files)",
                        "",
                        "",
                    ],
                ],
            ),
            "",
            "Without bytecode in the zip, every cold start compiles chalice's runtime "
            "(`chalice/app.py`, ~90 KB of source) and chalicelib/: most of what `import app` "
            "costs beyond boto3. The second row is the same import with `.pyc` files compiled "
            "beside them (Lambda's Python must be the version that compiled them).",
            "",
            "Peak RSS is the invoking process's own (VmHWM after the warm calls); the "
            "S3 server runs in another process. Lambda's `Max Memory Used` also counts its "
            "runtime, so it reads somewhat higher.",
            "",
        ]
    lines += ["## Targets", "", *targets_table(results["targets"]), ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rtts = sorted({row["rtt_ms"] for row in results["cleanup"]})
    figure, axes = plt.subplots(
        1, len(rtts), figsize=(6 * len(rtts), 4.5), squeeze=False, sharey=True
    )
    for axis, rtt in zip(axes[0], rtts, strict=True):
        for strategy in STRATEGIES:
            rows = [
                r for r in results["cleanup"] if r["strategy"] == strategy and r["rtt_ms"] == rtt
            ]
            line = axis.plot(
                [r["objects"] for r in rows],
                [r["objects_per_s"] for r in rows],
                marker="o",
                label=LABELS[strategy],
            )[0]
            sampled = [r for r in rows if r["extrapolated"]]
            axis.plot(
                [r["objects"] for r in sampled],
                [r["objects_per_s"] for r in sampled],
                linestyle="none", marker="o", markersize=11, markerfacecolor="none",
                color=line.get_color(),
                label=f"{LABELS[strategy]}: rate of a sample" if sampled else None,
            )  # fmt: skip
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("objects in the bucket")
        axis.set_ylabel("objects deleted per second")
        axis.set_title(f"simulated round trip {rtt:g} ms")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"Cleanup throughput on {results['config']['s3'].split(',')[0]}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")

"""The benchmark's outputs: targets with PASS/FAIL, tables, BENCHMARKS.md and the plot."""

import math
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalice_loop import MB_PER_VCPU, cpu_share

from bench.limits import (
    CLIENT_CPU_RATIO_LIMIT,
    CPU_OVER_S5CMD_LIMIT,
    IMPORT_RATIO_LIMIT,
    ONE_RUN_OBJECTS,
    OURS_OVER_S5CMD_LIMIT,
    RSS_LIMIT_MB,
    SCALE_RUN_OBJECTS,
    SLICE_OVER_S5CMD_LIMIT,
    ZIP_LIMIT_BYTES,
)
from bench.peers import LABELS as PEER_LABELS
from bench.power_tuning import run_reserve_ms
from bench.strategies import LABELS, STRATEGIES
from chalicelib.cleanup import (
    FIRST_REQUEST_ESTIMATE_MS,
    INITIAL_DELETES_IN_FLIGHT,
    MARGIN_FACTOR,
    RESERVE_MS,
)


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
    cpu = results.get("client_cpu")
    if cpu:
        out.append(
            _target(
                "cleanup client CPU per 1,000 objects / boto3 objects.all().delete()",
                f"<= {CLIENT_CPU_RATIO_LIMIT}x",
                f"{cpu['ratio']}x ({cpu['ours_cpu_ms_per_1000']} / "
                f"{cpu['boto3_all_cpu_ms_per_1000']} ms)",
                cpu["ratio"] <= CLIENT_CPU_RATIO_LIMIT,
            )
        )
    one = (results.get("power_tuning") or {}).get("one_run")
    if one:
        out.append(
            _target(
                f"one scheduled cleanup run in its slice ({one['memory_mb']} MB, "
                f"{one['timeout_s']} s), {one['objects']:,} objects",
                f"deletes >= {ONE_RUN_OBJECTS:,} and returns before its deadline",
                f"{one['deleted']:,} deleted, {_failed_keys(one)}complete {one['complete']}, "
                f"{one['duration_ms'] / 1000:.1f} s of {one['timeout_s']} s",
                one["deleted"] >= ONE_RUN_OBJECTS
                and one["objects"] >= ONE_RUN_OBJECTS
                and not one["failed"]
                and one["confined"],
            )
        )
    out += peer_targets(results)
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
                f"<= {ZIP_LIMIT_BYTES / 1024:g} KiB ({ZIP_LIMIT_BYTES:,} bytes)",
                f"{worker['zip_bytes'] / 1024:.1f} KiB",
                worker["zip_bytes"] <= ZIP_LIMIT_BYTES,
            ),
        ]
    return out


def peer_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 20's goals, from the peers' run on SeaweedFS, and the run at scale."""
    out = []
    peers = results.get("peers")
    if peers:
        rows = {row["peer"]: row for row in peers["rows"]}
        ratios, s5 = peers["ratios"], rows["s5cmd"]
        slice_cfg = peers["cleanup_config"]

        def rate(peer: str) -> str:
            row = rows[peer]
            failed = (
                f", {row['failed_runs']} of {row['runs']} runs FAILED" if row["failed_runs"] else ""
            )
            return (
                "no" if row["objects_per_s"] is None else f"{row['objects_per_s']:,}"
            ) + f"/s{failed}"

        def shown(ratio: float | None) -> str:
            return "no complete run" if ratio is None else f"{ratio}x"

        def ok(ratio: float | None, limit: float) -> bool:
            return ratio is not None and ratio >= limit

        n = f"{peers['objects']:,} objects, SeaweedFS"
        out += [
            _target(
                f"ours at full CPU / s5cmd rm, objects/s ({n})",
                f">= {OURS_OVER_S5CMD_LIMIT}x",
                f"{shown(ratios['ours_over_s5cmd'])} ({rate('ours')} / {rate('s5cmd')})",
                ok(ratios["ours_over_s5cmd"], OURS_OVER_S5CMD_LIMIT),
            ),
            _target(
                f"ours in its slice ({slice_cfg['memory_mb']} MB) / s5cmd rm at full CPU ({n})",
                f">= {SLICE_OVER_S5CMD_LIMIT}x",
                f"{shown(ratios['slice_over_s5cmd'])} ({rate('ours_slice')} / {rate('s5cmd')})",
                ok(ratios["slice_over_s5cmd"], SLICE_OVER_S5CMD_LIMIT),
            ),
            _target(
                f"ours' client CPU per 1,000 objects / s5cmd's ({n})",
                f"<= {CPU_OVER_S5CMD_LIMIT}x",
                f"{ratios['cpu_ours_over_s5cmd']}x ({rows['ours']['client_cpu_ms_per_1000']} / "
                f"{s5['client_cpu_ms_per_1000']} ms)",
                ratios["cpu_ours_over_s5cmd"] <= CPU_OVER_S5CMD_LIMIT,
            ),
        ]
    scale = results.get("scale_run")
    name = f"one scheduled cleanup run in its slice clears >= {SCALE_RUN_OBJECTS:,} (SeaweedFS)"
    goal = f"deletes >= {SCALE_RUN_OBJECTS:,}, 0 failed, returns before its deadline"
    if scale:
        one = scale["one_run"]
        out.append(
            _target(
                name,
                goal,
                f"{one['deleted']:,} deleted, {_failed_keys(one)}complete {one['complete']}, "
                f"{one['duration_ms'] / 1000:.1f} s of {one['timeout_s']} s "
                f"({one['memory_mb']} MB; measured {scale['measured_at']})",
                one["deleted"] >= SCALE_RUN_OBJECTS
                and one["complete"]
                and not one["failed"]
                and not one["timed_out"]
                and one["confined"],
            )
        )
    elif peers:
        out.append(_target(name, goal, "not measured: make bench BENCH_ARGS=--full", False))
    return out


def _failed_keys(one: dict[str, Any]) -> str:
    if not one.get("failed"):
        return ""
    keys = one.get("failed_keys")
    return f"FAILED ({keys:,} keys reported failed), " if keys else "FAILED, "


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


def noise(results: dict[str, Any]) -> str:
    """How much repeated runs of one measurement differed in this run (replaces a guess)."""
    spreads = sorted(
        (max(r["wall_s_runs"]) - min(r["wall_s_runs"])) / min(r["wall_s_runs"]) * 100
        for r in results["cleanup"]
        if len(r["wall_s_runs"]) > 1
    )
    if not spreads:
        return "no measurement was repeated, so this run cannot say how noisy it was"
    middle = spreads[len(spreads) // 2]
    return (
        f"repeated runs of the same cleanup measurement differed by {middle:.0f} % (median) "
        f"and up to {spreads[-1]:.0f} % in this run"
    )


def _row(results: dict[str, Any], strategy: str, rtt_ms: float) -> dict[str, Any] | None:
    rows = [r for r in results["cleanup"] if r["strategy"] == strategy and r["rtt_ms"] == rtt_ms]
    return max(rows, key=lambda r: r["objects"]) if rows else None


def _kb(size: int | None) -> str:
    return "?" if size is None else f"{size / 1024:.0f} KiB"


def _usd(value: float) -> str:
    """Dollars to three significant digits below $1 (these costs are fractions of a cent)."""
    if value >= 1 or value <= 0:
        return f"${value:,.2f}"
    return f"${value:.{2 - math.floor(math.log10(value))}f}"


def client_cpu_section(results: dict[str, Any]) -> list[str]:
    cpu = results.get("client_cpu")
    if not cpu:
        return []
    return [
        "## Client CPU per 1,000 objects",
        "",
        f"Both empty freshly seeded buckets of {cpu['objects']:,} objects on the same server, "
        f"interleaved, {cpu['repeats']} runs each (medians); the figure is the benchmark "
        "process's CPU time (`time.process_time`, all threads), the server runs in another "
        "process (`bench/client_cpu.py`). This is the cost that Lambda's CPU slice "
        f"multiplies: at 128 MB every CPU millisecond takes ~{1 / cpu_share(128):.0f} ms of wall "
        "time.",
        "",
        *_table(
            ["client", "CPU ms per 1,000 objects", "runs (ms per 1,000)"],
            [
                [
                    "ours (`chalicelib.cleanup`)",
                    cpu["ours_cpu_ms_per_1000"],
                    ", ".join(map(str, cpu["runs_ms"]["ours"])),
                ],
                [
                    "boto3 `objects.all().delete()`",
                    cpu["boto3_all_cpu_ms_per_1000"],
                    ", ".join(map(str, cpu["runs_ms"]["boto3_all"])),
                ],
                ["ratio (ours / boto3)", f"{cpu['ratio']}x", ""],
            ],
        ),
        "",
    ]


def _cleanup_tuning_row(r: dict[str, Any], memory: str) -> list[str]:
    if r.get("failed"):
        failed = f"FAILED: {r.get('failed_keys')} keys reported failed, {r['deleted']:,} deleted"
        return [memory, f"{cpu_share(r['memory_mb']):.1%}", failed, "-", "-", "-", "-", "-"]
    return [
        memory,
        f"{cpu_share(r['memory_mb']):.1%}",
        f"{r['objects_per_s']:,}",
        f"{10_000 / r['objects_per_s']:.1f}",
        f"{r['cpu_ms'] / r['deleted'] * 1000:.0f}",
        f"~{r['one_run_objects']:,}",
        _usd(r["lambda_usd_per_1m_objects"]),
        _usd(r["s3_usd_per_1m_objects"]),
    ]


def power_tuning_section(results: dict[str, Any], plot_name: str) -> list[str]:
    tuning = results.get("power_tuning")
    if not tuning:
        return []
    cfg, prices, one = tuning["configured"], tuning["prices"], tuning["one_run"]
    cleanup_cfg, worker_cfg = cfg["cleanup"], cfg["worker"]

    def mark(memory: int, function: dict[str, Any]) -> str:
        return f"{memory:,}" + (" (configured)" if memory == function["memory_mb"] else "")

    def confined(rows: list[dict[str, Any]]) -> str:
        return "" if all(r["confined"] for r in rows) else " **(NOT confined: no cgroups)**"

    cleanup_rows = tuning["cleanup"]
    worker_rows = tuning["worker"]
    first = cleanup_rows[0]
    return [
        "## Power tuning in the Lambda slice",
        "",
        "Each function runs in a child process held to Lambda's CPU share for its memory, "
        f'`min(memory, {MB_PER_VCPU:,}) / {MB_PER_VCPU:,}` of one CPU (AWS: "at 1,769 MB, '
        'a function has the equivalent of one vCPU"), with a memory limit of that size, '
        "after an unthrottled import of the app (Lambda's init burst): "
        "`chalice-loop/src/chalice_loop/lambda_slice.py`, cgroups. Durations are the handler's, "
        "as a REPORT line "
        "gives them. This is the offline counterpart of aws-lambda-power-tuning (which "
        "invokes a deployed function at each size through Step Functions); it models CPU "
        "and memory, not Lambda's network, hardware or the S3 service (the S3 here is "
        f"{tuning.get('s3', 'moto').split(' (')[0].split(',')[0]} on the same machine, whose "
        "CPU the function's slice shares with it).",
        "",
        f"### Cleanup{confined(cleanup_rows)}",
        "",
        f"One scheduled run per size on {first['objects']:,} seeded objects, with Lambda's "
        f'longest timeout ({first["timeout_s"]} s) so that it completes. "One run clears" '
        f"extrapolates that rate to the configured timeout ({cleanup_cfg['timeout_s']} s, "
        f"less the {run_reserve_ms(cleanup_cfg['timeout_s']):,.0f} ms a run of that length "
        "keeps in reserve); the measured one-run figure is below. "
        "Cost per 1M objects: GB-seconds at the measured rate, plus one Lambda request per "
        "run needed, plus S3 requests (one `ListObjectsV2` and one `DeleteObjects` per "
        "1,000).",
        "",
        *_table(
            [
                "memory MB",
                "CPU share",
                "objects/s",
                "s per 10,000",
                "client CPU ms /1,000",
                "one run clears (est.)",
                "Lambda $ per 1M objects",
                "S3 $ per 1M objects",
            ],
            [_cleanup_tuning_row(r, mark(r["memory_mb"], cleanup_cfg)) for r in cleanup_rows],
        ),
        "",
        f"### Worker{confined(worker_rows)}",
        "",
        f"{worker_rows[0]['sandboxes']} fresh sandboxes (child processes) per size; in each, "
        "init, a first invocation, then warm invocations "
        f"({worker_rows[0]['warm_calls']:,} in all per size). Cost per 1M invocations at "
        "the warm p50 (billed in whole milliseconds) plus the request price; every "
        "invocation also makes one `PutObject`.",
        "",
        *_table(
            [
                "memory MB",
                "CPU share",
                "init ms (p50)",
                "first invocation ms (p50 / max)",
                "warm p50 ms",
                "warm p99 ms",
                "Lambda $ per 1M",
                "S3 $ per 1M",
            ],
            [
                [
                    mark(r["memory_mb"], worker_cfg),
                    f"{cpu_share(r['memory_mb']):.1%}",
                    r["init_ms_p50"],
                    f"{r['first_ms_p50']} / {r['first_ms_max']}",
                    r["warm_ms_p50"],
                    r["warm_ms_p99"],
                    _usd(r["lambda_usd_per_1m"]),
                    _usd(r["s3_usd_per_1m"]),
                ]
                for r in worker_rows
            ],
        ),
        "",
        "The warm p99 at small sizes is the CPU quota at work: a handler that has used its "
        "share of the 100 ms CFS period waits for the next one. Lambda's own scheduler "
        "period is not published, so treat the p99 as this model's, not Lambda's.",
        "",
        f"![power tuning]({plot_name})",
        "",
        "### One scheduled cleanup run, as configured",
        "",
        f"{one['objects']:,} seeded objects; the `cleanup` function with the memory and "
        f"timeout `.chalice/config.json` gives it ({one['memory_mb']} MB, {one['timeout_s']} "
        f"s), in its slice{'' if one['confined'] else ' (NOT confined: no cgroups)'}:",
        "",
        "```",
        one["report"],
        "```",
        "",
        *_table(
            [
                "deleted",
                "complete",
                "requests",
                "duration s",
                "deadline margin s",
                "left in the bucket",
                "GB-s",
                "Lambda $ for the run",
            ],
            [_one_run_cells(one)],
        ),
        "",
        "### Prices",
        "",
        f"us-east-1, x86, free tiers ignored: Lambda ${prices['gb_second']:.10f} per GB-second "
        "and "
        f"${prices['lambda_request'] * 1e6:.2f} per 1M requests "
        "(<https://aws.amazon.com/lambda/pricing/>); S3 Standard "
        f"${prices['s3_put_list_post'] * 1000:.3f} per 1,000 PUT, COPY, POST and LIST "
        "requests, DELETE and CANCEL free (<https://aws.amazon.com/s3/pricing/>). "
        "`DeleteObjects` is sent as `POST /?delete` and the page does not name it: we "
        f"count it as a POST (${prices['s3_delete_objects'] * 1000:.3f} per 1,000), the "
        "higher reading; as a DELETE it would be free and the S3 column would halve. "
        "GB-seconds are memory in MB / 1,024 times the billed duration.",
        "",
    ]


def markdown(
    results: dict[str, Any], plot_name: str, tuning_plot_name: str, peers_plot_name: str = ""
) -> str:
    m, cfg, w = results["machine"], results["config"], results.get("worker")
    per_key = _row(results, "per_key", 0.0)
    ours_0 = _row(results, "ours", 0.0)
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
        f"machine): {noise(results)}; ratios from the same run are steadier than absolute "
        "figures.",
        f"- Python {m['python']}, {m['platform']}.",
        f"- S3: {cfg['s3']}.",
        *(
            [f"- S3 for the peers, the power tuning and the scheduled run: {sw['s3']}."]
            if (sw := results.get("seaweedfs"))
            else []
        ),
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
        f"objects per run (at the ~{per_key['objects_per_s'] if per_key else '?'} requests/s "
        "moto served it in this run, plus the round trip, the full bucket would take "
        "minutes); beyond that its wall time is extrapolated linearly from the "
        "measured rate and marked so. Its requests per 1,000 are those of the whole bucket "
        "(1 list + 1,000 deletes per 1,000), the formula its sample was checked against.",
        "",
        *cleanup_table(results["cleanup"]),
        "",
        f"![objects/s against object count]({plot_name})",
        "",
        "### Why the old target (ours >= 2x boto3 at a 20 ms round trip) is retired",
        "",
        "That target measured moto more than ours. Listing is sequential (each page needs "
        "the previous page's continuation token), so no client empties a bucket faster than "
        "one `ListObjectsV2` per 1,000 objects allows. Ours hides every `DeleteObjects` "
        "behind the listing; what is left is the listing itself. On moto, serving ours cost "
        f"{ours_0['server_cpu_ms_per_1000'] if ours_0 else '?'} ms of the server's CPU per "
        "1,000 objects (one list page and one delete) in this run, more than the 20 ms round "
        "trip (profiled earlier: moto's generic XML serializer and `dateutil`), and moto "
        "serves requests on one Python interpreter, so deletes and listings queue for the "
        "same CPU:",
        "",
        *_server_bound(results),
        "",
        "So the targets are now the two things a client controls and Lambda charges for: "
        "the client's CPU per 1,000 objects against boto3's, measured with the server in "
        "another process (Lambda's slice multiplies exactly that), and what one scheduled "
        "run clears in its slice before its deadline.",
        "",
        "Several deletes in flight beside the listing pay most when a `DeleteObjects` of "
        "1,000 keys takes longer than a list page and the server runs requests in parallel. "
        "Neither holds on moto; whether and by how much it holds on S3 could not be "
        "measured here (no AWS account).",
        "",
        "### Pipeline depth",
        "",
        f"Ours at {cfg['pool_objects']:,} objects, {cfg['rtt_ms']:g} ms RTT, with N "
        f"`DeleteObjects` in flight beside the listing (default {INITIAL_DELETES_IN_FLIGHT}):",
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
        f"`{RESERVE_MS} ms + {MARGIN_FACTOR} x the estimate`, the estimate being the slowest "
        "request of the same kind so far in the run, scaled by the requests in flight (the "
        "other kind's measurement stands in before the first of a kind; "
        f"{FIRST_REQUEST_ESTIMATE_MS} ms before anything is measured); a list page needs one "
        "delete's estimate more, for the delete it feeds. A run that can start nothing fails "
        "with `DeadlineTooShortError`. "
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
            f"(`chalice/app.py`, {_kb(w.get('chalice_runtime_source_bytes'))} of source in "
            "the zip) and chalicelib/: most of what `import app` "
            "costs beyond boto3. The second row is the same import with `.pyc` files compiled "
            "beside them (Lambda's Python must be the version that compiled them).",
            "",
            "Peak RSS is the invoking process's own (VmHWM after the warm calls); the "
            "S3 server runs in another process. Lambda's `Max Memory Used` also counts its "
            "runtime, so it reads somewhat higher.",
            "",
        ]
    lines += client_cpu_section(results)
    lines += peers_section(results, peers_plot_name)
    lines += power_tuning_section(results, tuning_plot_name)
    lines += scale_section(results)
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


def plot_power_tuning(results: dict[str, Any], path: Path) -> None:
    tuning = results.get("power_tuning")
    if not tuning:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate_axis, worker_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    cleanup = [r for r in tuning["cleanup"] if not r.get("failed")]
    memory = [r["memory_mb"] for r in cleanup]
    rate_axis.plot(memory, [r["objects_per_s"] for r in cleanup], marker="o", label="objects/s")
    rate_axis.set_xlabel("memory MB")
    rate_axis.set_ylabel("cleanup objects deleted per second")
    rate_axis.set_xscale("log", base=2)
    rate_axis.set_xticks(memory, [str(m) for m in memory])
    cost_axis = rate_axis.twinx()
    cost_axis.plot(
        memory, [r["lambda_usd_per_1m_objects"] for r in cleanup],
        marker="s", color="tab:red", label="Lambda $ per 1M objects",
    )  # fmt: skip
    cost_axis.set_ylabel("Lambda $ per 1M objects cleaned", color="tab:red")
    cost_axis.set_ylim(bottom=0)
    rate_axis.set_ylim(bottom=0)
    rate_axis.set_title("cleanup in its slice")
    rate_axis.grid(True, alpha=0.3)
    worker = tuning["worker"]
    memory = [r["memory_mb"] for r in worker]
    for key, label in (
        ("first_ms_p50", "first invocation p50"),
        ("warm_ms_p50", "warm p50"),
        ("warm_ms_p99", "warm p99"),
    ):
        worker_axis.plot(memory, [r[key] for r in worker], marker="o", label=label)
    worker_axis.set_xscale("log", base=2)
    worker_axis.set_xticks(memory, [str(m) for m in memory])
    worker_axis.set_yscale("log")
    worker_axis.set_xlabel("memory MB")
    worker_axis.set_ylabel("handler duration ms")
    worker_axis.set_title("worker in its slice")
    worker_axis.grid(True, which="both", alpha=0.3)
    worker_axis.legend(fontsize=8)
    figure.suptitle("Local power tuning (CPU share = min(memory, 1769) / 1769)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _peer_label(peer: str, peers: dict[str, Any]) -> str:
    label = PEER_LABELS[peer]
    if peer == "ours_slice":
        label += f" ({peers['cleanup_config']['memory_mb']} MB)"
    return label


def _ratio(value: float | None) -> str:
    return "no complete run" if value is None else f"{value}x"


def peers_section(results: dict[str, Any], plot_name: str) -> list[str]:
    peers = results.get("peers")
    if not peers:
        return []
    rows = {row["peer"]: row for row in peers["rows"]}
    s5 = rows["s5cmd"]["objects_per_s"]
    ratios = peers["ratios"]
    slice_run = next((r for r in peers["runs"] if r["peer"] == "ours_slice"), None)
    body = []
    for row in peers["rows"]:
        rate = row["objects_per_s"]
        by_type = ", ".join(f"{k} {v:g}" for k, v in row["requests_by_type_per_1000"].items())
        body.append(
            [
                _peer_label(row["peer"], peers),
                f"{row['wall_s']:.2f}",
                "FAILED" if rate is None else f"{rate:,}",
                "-" if rate is None or not s5 else f"{rate / s5:.2f}x",
                f"{row['requests_per_1000']:g} ({by_type})",
                f"{row['client_cpu_ms_per_1000']:g}",
                f"{row['server_cpu_ms_per_1000']:g}",
                ", ".join(f"{w:.2f}" for w in row["wall_s_runs"])
                + (f" ({row['failed_runs']} FAILED)" if row["failed_runs"] else ""),
            ]
        )
    check = results.get("seed_check")
    lines = [
        "## On SeaweedFS: the cleanup beside s5cmd, aws s3 rm and boto3",
        "",
        f"Each client empties its own freshly seeded bucket of {peers['objects']:,} objects "
        "(keys `reports/<day>/<uuid>.json` dealt over 7 days), on the same SeaweedFS server, "
        f"in {peers['rounds']} round(s); one seeding fills a round's buckets, and the order of "
        f"the clients rotates every round (`aws s3 rm` runs in the first {peers['aws_rounds']} "
        "round(s) only: one `DeleteObject` per key, a minute per 20,000 here). Wall time is "
        "the best of a client's runs (other processes only add time; every run is in "
        "results.json and in the last column); the CPU and request figures are medians. "
        "`bench/peers.py`.",
        "",
        "- **Requests** are counted by the server, the same way for every client: the "
        "difference in SeaweedFS's `SeaweedFS_s3_request_total` metric for the client's "
        "bucket, by operation type and status (`DELETE` is both `DeleteObject` and "
        "`DeleteObjects`; `aws s3 rm` gets `204` per key).",
        "- **Client CPU** is the kernel's user + system time of the client's own process, all "
        "threads. The tools (s5cmd, aws) are timed from their start to their exit "
        "(`os.wait4`); the Python clients first import and create their client, as a "
        "Lambda's init does, then are timed from a `go` (`getrusage(RUSAGE_SELF)` before and "
        "after, wall time over the same span); the sliced handler's figures are the slice "
        "runner's (REPORT Duration; the child's CPU during the handler, init excluded).",
        "- **Server CPU** is SeaweedFS's own process (`/proc/<pid>/stat`), over the client's "
        "run. The server and the client share the machine's 2 CPUs, so a client that uses "
        "less CPU leaves more to the server.",
        f"- Machine load (1/5/15-minute) at the start of each round: "
        f"{'; '.join(str(x) for x in peers['load_average_per_round'])}.",
        "",
        *_table(
            [
                "client",
                "wall s (best)",
                "objects/s",
                "vs s5cmd",
                "requests /1,000 (by type)",
                "client CPU ms /1,000",
                "server CPU ms /1,000",
                "wall s of each run",
            ],
            body,
        ),
        "",
        f"Ours at full CPU / s5cmd: {_ratio(ratios['ours_over_s5cmd'])} (within each round: "
        f"{', '.join(map(_ratio, ratios['ours_over_s5cmd_per_round']))}); ours in its slice / "
        f"s5cmd at full CPU: {_ratio(ratios['slice_over_s5cmd'])} (within each round: "
        f"{', '.join(map(_ratio, ratios['slice_over_s5cmd_per_round']))}).",
        "",
    ]
    if slice_run and slice_run.get("report"):
        lines += ["The sliced handler's first run:", "", "```", slice_run["report"], "```", ""]
    failures = [r for r in peers["runs"] if not r["ok"]]
    if failures:
        lines += [
            "Runs that reported keys as failed (the server had them all the same or not):",
            "",
        ]
        lines += [
            f"- round {r['round'] + 1}, {r['peer']}: {r.get('failed', '?')} reported failed, "
            f"{r['deleted']:,} reported deleted, {r['left']:,} left in the bucket: "
            f"{str(r.get('error', ''))[:300]}"
            for r in failures
        ]
        lines.append("")
    if plot_name:
        lines += [f"![the peers on SeaweedFS]({plot_name})", ""]
    lines += [
        "### How the buckets are seeded",
        "",
        "`PutObject` runs at a few hundred per second here (s5cmd `run` of `cp` lines, 64 "
        "workers), 21 minutes for a million, so buckets are written into SeaweedFS's filer "
        "store instead: the default store, leveldb2 (8 LevelDB databases keyed by "
        "`md5(directory) + name`), with plyvel, while the server is stopped; then it starts "
        "again. Each entry is a copy of one the server wrote for a real 0-byte `PutObject` "
        "(ETag, CRC32 checksum, owner, content type), with its own name and inode; the "
        "directories are copies of the server's own (`bench/seaweedfs.py`). Buckets are "
        "created through S3.",
        "",
    ]
    if check:
        put, seeded = check["put_rm"], check["seeded_rm"]
        lines += [
            f"Checked in this run on {check['objects']:,} objects "
            "(`python -m bench.seaweedfs --check-seeding N` repeats it): PUT "
            f"{check['put_per_s']:,} objects/s; store writes {check['seeded_store_writes_per_s']:,}"
            f" entries/s, and the restart {check['restart_s']} s. s5cmd lists "
            f"{check['put_listed_by_s5cmd']:,} PUT and {check['seeded_listed_by_s5cmd']:,} "
            f"seeded objects; a seeded one answers HEAD with {check['seeded_head']} and GET "
            f"with {check['seeded_get_bytes']} bytes; `s5cmd rm` deletes the PUT bucket at "
            f"{put['objects_per_s']:,}/s with {put['requests']} and the seeded bucket at "
            f"{seeded['objects_per_s']:,}/s with {seeded['requests']}, leaving "
            f"{put['left']} and {seeded['left']}. Every run above also checks that the client "
            "deleted exactly the seeded count and left the bucket empty (our cleanup's "
            "`deleted`, s5cmd's and aws's output lines, boto3's `Deleted` lists).",
            "",
        ]
    return lines


def _one_run_cells(one: dict[str, Any]) -> list[Any]:
    """A scheduled run's table cells, from ``deleted`` to its Lambda cost."""
    return [
        f"{one['deleted']:,}",
        one["complete"],
        one["requests"],
        f"{one['duration_ms'] / 1000:.1f}",
        f"{one['deadline_margin_ms'] / 1000:.1f}",
        f"{one['left_in_bucket_at_least']:,}",
        one["gb_s"],
        _usd(one["lambda_usd"]),
    ]


def scale_section(results: dict[str, Any]) -> list[str]:
    """The run at scale (``--full``), and the daily capacity and cost derived from it."""
    scale = results.get("scale_run")
    tuning = results.get("power_tuning") or {}
    one = scale["one_run"] if scale else tuning.get("one_run")
    if not one:
        return []
    prices = tuning.get("prices") or {}
    lines = ["## One scheduled run at scale, on SeaweedFS", ""]
    if scale:
        lines += [
            f"Measured {scale['measured_at']} by `make bench BENCH_ARGS='"
            f"{scale['command'].removeprefix('python -m bench').strip()}'`, machine load "
            f"{scale['machine_load']}; "
            f"S3: {scale['s3']}.",
            "",
            "```",
            one["report"],
            "```",
            "",
            *_table(
                [
                    "objects",
                    "deleted",
                    "complete",
                    "requests",
                    "duration s",
                    "deadline margin s",
                    "left (at least)",
                    "GB-s",
                    "Lambda $",
                ],
                [[f"{one['objects']:,}", *_one_run_cells(one)]],
            ),
            "",
        ]
        if one.get("failed"):
            error = one.get("error") or {}
            text = error.get("errorMessage", error) if isinstance(error, dict) else error
            lines += [f"The run FAILED: {str(text)[:400]}", ""]
    else:
        lines += [
            f"Not measured in this run (`make bench BENCH_ARGS=--full` runs "
            f"{SCALE_RUN_OBJECTS:,}); the figures below come from the {one['objects']:,}-object "
            "run above.",
            "",
        ]
    if not one["deleted"] or not prices:
        return lines
    rate = one["deleted"] / (one["duration_ms"] / 1000)
    usable_s = one["timeout_s"] - run_reserve_ms(one["timeout_s"]) / 1000
    capacity = rate * usable_s
    requests_per_1000 = (one["requests"] or 0) / one["deleted"] * 1000
    # ListObjectsV2 and DeleteObjects in equal numbers when everything is due.
    s3_usd = (one["requests"] or 0) / 2 * (prices["s3_put_list_post"] + prices["s3_delete_objects"])
    lines += [
        "### Daily capacity and the cost of a run (proposed for the README)",
        "",
        f"- **Capacity** (one scheduled run a day, {one['memory_mb']} MB, {one['timeout_s']} s): "
        f"**{one['deleted']:,} objects measured** in one run ({one['duration_ms'] / 1000:.0f} s, "
        f"{rate:,.0f} objects/s in the slice on SeaweedFS); at that rate a run may use "
        f"{usable_s:.0f} s (the timeout less the reserve), **~{capacity / 1e6:.1f} million**. "
        "SeaweedFS runs on the same 2 CPUs as the function here; S3 is not modelled.",
        f"- **Cost of that run** (us-east-1, x86, free tier ignored): Lambda {one['gb_s']} GB-s "
        f"= {_usd(one['lambda_usd'])} with the request; S3 {requests_per_1000:g} requests per "
        f"1,000 objects (half `ListObjectsV2`, half `DeleteObjects` priced as POST) = "
        f"{_usd(s3_usd)}; **{_usd(one['lambda_usd'] + s3_usd)} for {one['deleted']:,} objects**.",
        "",
    ]
    return lines


def plot_peers(results: dict[str, Any], path: Path) -> None:
    peers = results.get("peers")
    if not peers:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = peers["rows"]
    labels = [_peer_label(r["peer"], peers).replace("`", "").replace(", ", ",\n", 1) for r in rows]
    figure, (rate_axis, cpu_axis) = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = ["tab:blue" if r["peer"].startswith("ours") else "tab:gray" for r in rows]
    rate_axis.barh(labels, [r["objects_per_s"] or 0 for r in rows], color=colors)
    for index, row in enumerate(rows):
        if row["objects_per_s"] is None:
            rate_axis.text(0, index, "  no complete run (keys reported failed)", va="center")
    rate_axis.set_xlabel("objects deleted per second (best run)")
    rate_axis.invert_yaxis()
    cpu_axis.barh(labels, [r["client_cpu_ms_per_1000"] for r in rows], color=colors)
    cpu_axis.set_xscale("log")
    cpu_axis.set_xlabel("client CPU ms per 1,000 objects (log)")
    cpu_axis.invert_yaxis()
    cpu_axis.set_yticklabels([])
    for axis in (rate_axis, cpu_axis):
        axis.grid(True, axis="x", alpha=0.3)
    figure.suptitle(
        f"Emptying a bucket of {peers['objects']:,} objects on SeaweedFS (same machine, same run)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

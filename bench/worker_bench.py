"""Worker: deployment zip, cold start, warm invocations, peak RSS, requests per call.

The zip comes from ``chalice package`` run on a temporary copy of the project
(offline: only ``AWS_DEFAULT_REGION`` is needed). It is unpacked, and every
probe is a fresh ``python -c`` child started there (see ``worker_probe.py``):
``import app`` then loads app.py, chalicelib/ and chalice's runtime from the
zip, without cached bytecode (Lambda's /var/task is read-only, so Python
compiles them on every cold start), and boto3 from the environment, as
Lambda's Python runtime provides it.
"""

import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import boto3

from bench.cleanup_bench import percentile
from devtools.deploy.package import package_app

PROBE = (Path(__file__).resolve().parent / "worker_probe.py").read_text()
BUCKET = "bench-worker-reports"


def package(workdir: Path) -> tuple[Path, dict[str, int]]:
    """``chalice package`` on a clean copy; returns the zip and its entries' sizes."""
    package_app("dev", workdir / "out")
    archive = workdir / "out" / "deployment.zip"
    with zipfile.ZipFile(archive) as zipped:
        sizes = {info.filename: info.file_size for info in zipped.infolist()}
        zipped.extractall(workdir / "task")
    return archive, sizes


def _probe(task: Path, endpoint: str, mode: str, calls: int) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "AWS_REGION": "us-east-1",  # what Lambda sets
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "BUCKET": BUCKET,
    }
    if mode == "boto3":
        env["AWS_DEFAULT_REGION"] = "us-east-1"  # plain boto3 only reads this one
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode, BUCKET, str(calls)],
        cwd=task, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"probe {mode} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len("PROBE ") :])


def run(endpoint: str, cold_runs: int, warm_calls: int, log: Any) -> dict[str, Any]:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        workdir = Path(tmp)
        archive, entries = package(workdir)
        size = archive.stat().st_size
        log(f"  deployment.zip: {size:,} bytes, {len(entries)} files")
        task = workdir / "task"
        # The same files with bytecode compiled in, as a zip could ship it (it does not today).
        compiled = workdir / "task-with-bytecode"
        shutil.copytree(task, compiled)
        compileall.compile_dir(compiled, quiet=1)
        cold: dict[str, list[dict[str, Any]]] = {"app": [], "boto3": [], "app_bytecode": []}
        for _ in range(cold_runs):  # alternate, so drift hits all alike
            cold["boto3"].append(_probe(task, endpoint, "boto3", 1))
            cold["app"].append(_probe(task, endpoint, "app", 1))
            cold["app_bytecode"].append(_probe(compiled, endpoint, "app", 1))
        warm = {mode: _probe(task, endpoint, mode, warm_calls) for mode in ("app", "boto3")}

    def median(mode: str, pick: Any) -> float:
        return round(statistics.median(pick(p) for p in cold[mode]), 1)

    import_app, import_boto3 = (
        median("app", lambda p: p["import_ms"]),
        median("boto3", lambda p: p["import_ms"]),
    )
    import_bytecode = median("app_bytecode", lambda p: p["import_ms"])
    first_app = median("app", lambda p: p["import_ms"] + p["calls_ms"][0])
    first_boto3 = median("boto3", lambda p: p["import_ms"] + p["calls_ms"][0])
    app_requests = warm["app"]["requests"]
    result = {
        "zip_bytes": size,
        "zip_entries": sorted(entries),
        "chalice_runtime_source_bytes": entries.get("chalice/app.py"),
        "cold_runs": cold_runs,
        "import_app_ms": import_app,
        "import_boto3_client_ms": import_boto3,
        "import_ratio": round(import_app / import_boto3, 3),
        "import_app_with_bytecode_ms": import_bytecode,
        "import_ratio_with_bytecode": round(import_bytecode / import_boto3, 3),
        "import_app_runs_ms": [round(p["import_ms"], 1) for p in cold["app"]],
        "import_boto3_client_runs_ms": [round(p["import_ms"], 1) for p in cold["boto3"]],
        "first_invocation_app_ms": first_app,
        "first_put_boto3_ms": first_boto3,
        "first_call_ratio": round(first_app / first_boto3, 3),
        "warm_calls": warm_calls,
        "warm_app_p50_ms": round(statistics.median(warm["app"]["calls_ms"]), 2),
        "warm_app_p99_ms": round(percentile(warm["app"]["calls_ms"], 0.99), 2),
        "warm_boto3_put_p50_ms": round(statistics.median(warm["boto3"]["calls_ms"]), 2),
        "warm_boto3_put_p99_ms": round(percentile(warm["boto3"]["calls_ms"], 0.99), 2),
        "requests": app_requests,
        "requests_per_invocation": round(sum(app_requests.values()) / warm_calls, 3),
        "peak_rss_app_mb": round(warm["app"]["peak_rss_kb"] / 1024, 1),
        "peak_rss_boto3_mb": round(warm["boto3"]["peak_rss_kb"] / 1024, 1),
    }
    log(
        f"  import app {import_app} ms vs import boto3 + client {import_boto3} ms; "
        f"warm p50 {result['warm_app_p50_ms']} ms; peak RSS {result['peak_rss_app_mb']} MB"
    )
    return result

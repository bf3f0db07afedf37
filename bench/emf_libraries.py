"""What a metrics/logging library would add to the functions: zip bytes and import time.

    python -m bench.emf_libraries LIBS_DIR [--runs N] [--memory-mb 128]

``LIBS_DIR`` holds one ``pip install --target`` directory per candidate, named
``powertools`` (aws-lambda-powertools) and ``emf`` (aws-embedded-metrics).
Zip bytes: the candidate's files less what the Lambda Python runtime already has
(boto3, botocore and their dependencies), deflated as ``chalice package`` does.
Import time: in fresh processes held to the CPU share of a ``--memory-mb``
Lambda function (a cgroup v1 CPU quota of memory / 1,769 MB), after importing
what the app imports anyway (boto3, chalice, chalicelib's cleanup and reports),
so each figure is what the candidate adds. Median of ``--runs``.
"""

import argparse
import io
import os
import statistics
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CGROUP = Path("/sys/fs/cgroup/cpu")
FULL_VCPU_MB = 1769
# Already in the Lambda Python runtime: never shipped in the zip.
IN_RUNTIME = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
ALREADY_IMPORTED = "import boto3, chalice, chalicelib.cleanup, chalicelib.reports"
CANDIDATES = {
    "small module (chalicelib.metrics, log_format, invocation)": (
        None,
        "import chalicelib.metrics, chalicelib.log_format, chalicelib.invocation",
    ),
    "aws-lambda-powertools Metrics": ("powertools", "from aws_lambda_powertools import Metrics"),
    "aws-lambda-powertools Metrics + Logger": (
        "powertools",
        "from aws_lambda_powertools import Logger, Metrics",
    ),
    "aws-embedded-metrics": ("emf", "from aws_embedded_metrics import metric_scope"),
}
OWN_FILES = ("chalicelib/metrics.py", "chalicelib/log_format.py", "chalicelib/invocation.py")


def shipped_files(libs: Path) -> list[Path]:
    return [
        path
        for path in sorted(libs.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.relative_to(libs).parts[0] != "bin"
        and not path.relative_to(libs).parts[0].startswith(IN_RUNTIME)
    ]


def zip_bytes(files: list[Path], root: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(root))
    return len(buffer.getvalue())


@contextmanager
def cpu_share(memory_mb: int) -> Iterator[Path]:
    group = CGROUP / f"emf-libraries-{os.getpid()}"
    group.mkdir()
    try:
        period = int((group / "cpu.cfs_period_us").read_text())
        (group / "cpu.cfs_quota_us").write_text(str(period * memory_mb // FULL_VCPU_MB))
        yield group
    finally:
        group.rmdir()


def import_ms(statement: str, libs: Path | None, group: Path) -> float:
    code = (
        f"{ALREADY_IMPORTED}\nimport time\nt = time.perf_counter()\n{statement}\n"
        "print((time.perf_counter() - t) * 1000)"
    )
    path = [str(PROJECT)] + ([str(libs)] if libs else [])
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("libs", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--memory-mb", type=int, default=128)
    args = parser.parse_args()
    print(f"| candidate | files | zip bytes | import ms at {args.memory_mb} MB (median) |")
    print("| --- | ---: | ---: | ---: |")
    with cpu_share(args.memory_mb) as group:
        for name, (folder, statement) in CANDIDATES.items():
            libs = args.libs / folder if folder else None
            if libs:
                files, root = shipped_files(libs), libs
            else:
                files, root = [PROJECT / f for f in OWN_FILES], PROJECT
            times = [import_ms(statement, libs, group) for _ in range(args.runs)]
            size = zip_bytes(files, root)
            print(f"| {name} | {len(files)} | {size:,} | {statistics.median(times):.0f} |")


if __name__ == "__main__":
    main()

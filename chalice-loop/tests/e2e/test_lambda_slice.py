"""The Lambda-slice runner (chalice_loop.lambda_slice): a child held to Lambda's CPU
share and memory limit by real cgroups, removed afterwards; unconfined, and saying
so, where cgroups cannot be written."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice_loop.lambda_slice import (
    NAME_PREFIX,
    Cgroups,
    SliceUnavailable,
    _current_path,
    _existing,
    cgroup_root,
    cpu_share,
    run_in_slice,
)
from loop_testing import chalice_project, default_sigint

SLICE_APP = """
import pathlib
import time

from chalice import Chalice

app = Chalice(app_name="slice")


def burn(seconds):
    cpu, wall = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall < seconds:
        pass
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


INIT_SHARE = burn(0.3)  # at import: the init burst


@app.lambda_function(name="spin")
def spin(event, context):
    return {
        "share": burn(event.get("seconds", 1.5)),
        "init_share": INIT_SHARE,
        "cgroups": pathlib.Path("/proc/self/cgroup").read_text(),
    }


@app.lambda_function(name="hog")
def hog(event, context):
    block = b"x" * (event["mb"] * 2**20)  # every page touched
    return len(block)
"""

SLICE_CONFIG = {
    "version": "2.0",
    "app_name": "slice",
    "lambda_timeout": 30,
    "lambda_memory_size": 128,
    "stages": {"dev": {"lambda_functions": {"hog": {"lambda_timeout": 60}}}},
}


def _slice_cgroups() -> set[Path]:
    """Every slice cgroup under the bases this process's children would use."""
    root = cgroup_root()
    bases = [_existing(root / "cpu", _current_path("cpu"))]
    bases.append(_existing(root / "memory", _current_path("memory")))
    bases.append(_existing(root, _current_path("")))
    return {path for base in bases if base.is_dir() for path in base.glob(f"{NAME_PREFIX}*")}


def _creator(cgroup: Path) -> int:
    """The pid of the process that made a slice cgroup (its name: ``<prefix><pid>-<hex>``)."""
    return int(cgroup.name.removeprefix(NAME_PREFIX).split("-")[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _made_by(pid: int) -> set[Path]:
    return {c for c in _slice_cgroups() if _creator(c) == pid}


@pytest.fixture
def no_cgroup_left() -> Iterator[None]:
    """Fails the test if a slice cgroup created during it is still there after it: one this
    process made, or whose maker has ended. (A test running beside it, in another worker
    or run, may hold a cgroup of its own meanwhile: its maker is alive and not this one.)"""
    before = _slice_cgroups()
    yield
    left = {
        c
        for c in _slice_cgroups() - before
        if _creator(c) == os.getpid() or not _alive(_creator(c))
    }
    assert left == set()


@pytest.fixture(scope="module")
def writable_cgroups() -> None:
    try:
        Cgroups.create(128, cgroup_root()).remove()
    except SliceUnavailable as exc:
        pytest.skip(f"cgroups are not writable here: {exc}")


@pytest.fixture
def slice_app(tmp_path: Path) -> Path:
    return chalice_project(tmp_path / "slice", SLICE_APP, SLICE_CONFIG)


def _report_line(lines: list[str]) -> str:
    return next(line for line in lines if line.startswith("REPORT RequestId"))


def test_handler_is_held_to_the_cpu_share_after_an_unthrottled_init(
    writable_cgroups: None, no_cgroup_left: None, slice_app: Path
) -> None:
    run = run_in_slice(slice_app, "dev", "spin", [{"seconds": 1.5}])
    assert run.confined and run.memory_mb == 128 and run.exit_status is None
    (invocation,) = run.invocations
    assert not invocation.failed, invocation.payload
    result = invocation.payload
    share = cpu_share(128)  # 0.0724
    # CPU time / wall time of a busy loop: near the quota (another load only lowers it).
    assert 0.25 * share < result["share"] < 2 * share, result["share"]
    # Init ran before the quota: a busy loop at import got more CPU than the handler's.
    assert result["init_share"] > 1.5 * result["share"], result
    # The handler ran inside both slice cgroups, which are gone now (fixture).
    members = [line for line in result["cgroups"].splitlines() if NAME_PREFIX in line]
    controllers = {c for line in members for c in line.split(":")[1].split(",")}
    assert controllers >= {"cpu", "memory"} or controllers == {""}  # v1, or v2's 0::/path
    report = _report_line(invocation.lines)
    assert "Memory Size: 128 MB" in report and "Init Duration: " in report
    assert re.search(r"Slice: 7\.2% vCPU, cgroup v[12]$", report)
    assert run.note.startswith("Lambda slice: 7.2% of one CPU")


def test_memory_limit_kills_past_the_configured_size(
    writable_cgroups: None, no_cgroup_left: None, slice_app: Path
) -> None:
    killed = run_in_slice(slice_app, "dev", "hog", [{"mb": 200}])
    assert killed.exit_status == "signal: killed"
    (invocation,) = killed.invocations
    assert invocation.failed and invocation.payload["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: signal: killed" in invocation.payload["errorMessage"]
    assert "Memory Size: 128 MB  Max Memory Used: 12" in _report_line(invocation.lines)
    # As Lambda logs it: the runtime's death after the REPORT line.
    assert invocation.lines[-2].startswith("REPORT RequestId")
    assert invocation.lines[-1] == f"{invocation.payload['errorMessage']}\nRuntime.ExitError"
    # The same allocation fits a 512 MB function: the limit, not the code, killed it.
    fits = run_in_slice(slice_app, "dev", "hog", [{"mb": 200}], memory_mb=512)
    assert fits.exit_status is None and fits.invocations[0].payload == 200 * 2**20


@pytest.mark.parametrize("kind", ["missing", "not_cgroupfs"])
def test_without_writable_cgroups_it_says_so_and_runs_unconfined(
    tmp_path: Path, slice_app: Path, kind: str
) -> None:
    root = tmp_path / "cgroup"
    if kind == "not_cgroupfs":  # looks like cgroup v1, but writing here would confine nothing
        (root / "cpu").mkdir(parents=True)
        (root / "memory").mkdir()
        (root / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    run = run_in_slice(slice_app, "dev", "spin", [{"seconds": 0.2}], root=root)
    assert not run.confined
    assert run.note.startswith("Lambda slice: UNCONFINED, cgroups cannot be written here (")
    assert str(root) in run.note
    (invocation,) = run.invocations
    assert not invocation.failed
    assert NAME_PREFIX not in invocation.payload["cgroups"]
    assert _report_line(invocation.lines).endswith("Slice: unconfined")
    assert list(root.rglob(f"{NAME_PREFIX}*")) == []


def _env_without_aws() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def _cli(slice_app: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "chalice_loop", "--project-dir", str(slice_app),
        "--state-dir", str(slice_app / "state"), "invoke", *args, "--lambda-slice",
    ]  # fmt: skip


def test_cli_invoke_lambda_slice_prints_a_report_from_the_slice(
    writable_cgroups: None, no_cgroup_left: None, slice_app: Path
) -> None:
    done = subprocess.run(
        _cli(slice_app, "spin", "--payload", '{"seconds": 0.5}'),
        cwd=slice_app, env=_env_without_aws(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Lambda slice: 7.2% of one CPU" in done.stderr
    report = next(line for line in done.stderr.splitlines() if line.startswith("REPORT"))
    assert re.search(r"Slice: 7\.2% vCPU, cgroup v[12]$", report)
    duration = float(report.split("Duration: ")[1].split(" ms")[0])
    assert duration >= 500  # the handler's own time, under the slice
    assert json.loads(done.stdout)["share"] < 2 * cpu_share(128)
    logged = (slice_app / "state" / "logs.jsonl").read_text()
    assert re.search(r"Slice: 7\.2% vCPU, cgroup v[12]", logged)


def test_ctrl_c_removes_the_cgroups(
    writable_cgroups: None, no_cgroup_left: None, slice_app: Path
) -> None:
    cli = subprocess.Popen(
        _cli(slice_app, "spin", "--payload", '{"seconds": 60}'),
        cwd=slice_app, env=_env_without_aws(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=default_sigint,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _made_by(cli.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _made_by(cli.pid), "the slice cgroups never appeared"
        time.sleep(1.0)  # into the handler
        cli.send_signal(signal.SIGINT)
        assert cli.wait(timeout=30) == 130
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()

"""Run a Chalice function in Lambda's CPU and memory slice: a local model.

Lambda gives a function CPU in proportion to its memory (1,769 MB is one vCPU)
and a hard memory limit of the configured size; init (importing app.py) runs
with burst CPU for up to 10 s, the handler does not. So the function runs in a
child process that:

1. joins a memory cgroup limited to the configured MB, and a CPU cgroup with no
   quota yet (the parent created both, nested under the parent's own cgroups);
2. imports the app at full speed (the init burst), and times that;
3. sets its CPU quota to ``min(memory, 1769) / 1769`` of one CPU, and only then
   invokes the handler through :class:`chalice_loop.lambda_runner.LocalLambda`, so the
   REPORT's Duration is the handler's under the slice.

cgroup v2 (``cpu.max``, ``memory.max``) or v1 (``cpu.cfs_quota_us``,
``memory.limit_in_bytes``), whichever the machine has, under ``/sys/fs/cgroup``
or ``$LAMBDA_SLICE_CGROUP_ROOT``. The parent removes every cgroup it created,
also on errors and Ctrl-C. Where cgroups cannot be written, it says so in one
line and runs the function unconfined, and the REPORT says ``unconfined``.

Run as ``python -m chalice_loop.lambda_slice`` the module is that child: a JSON spec
on stdin, JSON lines on the file descriptor the spec names.
"""

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chalice_loop.lambda_runner import Invocation, LogEvent, function_settings

MB_PER_VCPU = 1769  # AWS: "at 1,769 MB, a function has the equivalent of one vCPU"
PERIOD_US = 100_000  # the CFS period (Linux's default); the quota is a share of it
CGROUP_ROOT_ENV = "LAMBDA_SLICE_CGROUP_ROOT"
DEFAULT_CGROUP_ROOT = Path("/sys/fs/cgroup")
NAME_PREFIX = "lambda-slice-"


def cpu_share(memory_mb: int) -> float:
    """The share of one CPU Lambda gives a function of ``memory_mb``."""
    return min(memory_mb, MB_PER_VCPU) / MB_PER_VCPU


class SliceUnavailable(Exception):
    """Cgroups cannot be created or written here; the message says why."""


def _current_path(controller: str) -> str:
    """This process's cgroup path for a v1 controller, or for v2 (``controller`` "")."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (controller == "" and controllers == "") or controller in controllers.split(","):
            return path.lstrip("/")
    return ""


def _write(path: Path, value: str) -> None:
    path.write_text(value)


@dataclass
class Cgroups:
    """The cgroup(s) of one sliced child: created by the parent, joined by the child."""

    version: int
    cpu_dir: Path
    memory_dir: Path
    quota_file: str  # in cpu_dir
    quota_value: str  # written by the child after init
    created: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, memory_mb: int, root: Path) -> "Cgroups":
        """Make the cgroup(s) with the memory limit set and the CPU not yet limited."""
        name = f"{NAME_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        quota = max(1000, round(cpu_share(memory_mb) * PERIOD_US))
        limit = str(memory_mb * 2**20)
        if (root / "cgroup.controllers").is_file():  # cgroup v2 (unified)
            _require_cgroupfs(root)
            controllers = (root / "cgroup.controllers").read_text().split()
            if not {"cpu", "memory"} <= set(controllers):
                raise SliceUnavailable(f"{root} (cgroup v2) lacks the cpu/memory controllers")
            base = _existing(root, _current_path(""))
            group = cls(2, base / name, base / name, "cpu.max", f"{quota} {PERIOD_US}")
            group._make(base / name)
            group._enable_v2_controllers(base)
            _try(lambda: _write(base / name / "cpu.max", f"max {PERIOD_US}"), group)
            _try(lambda: _write(base / name / "memory.max", limit), group)
            if (base / name / "memory.swap.max").exists():
                _try(lambda: _write(base / name / "memory.swap.max", "0"), group)
            return group
        cpu_root, memory_root = root / "cpu", root / "memory"
        if not (cpu_root / "cpu.cfs_quota_us").is_file() or not memory_root.is_dir():
            raise SliceUnavailable(f"no cgroup v1 cpu and memory controllers under {root}")
        _require_cgroupfs(cpu_root)
        _require_cgroupfs(memory_root)
        cpu_base = _existing(cpu_root, _current_path("cpu"))
        memory_base = _existing(memory_root, _current_path("memory"))
        group = cls(1, cpu_base / name, memory_base / name, "cpu.cfs_quota_us", str(quota))
        _sweep_stale(cpu_base)
        _sweep_stale(memory_base)
        group._make(cpu_base / name)
        group._make(memory_base / name)
        _try(lambda: _write(cpu_base / name / "cpu.cfs_period_us", str(PERIOD_US)), group)
        _try(lambda: _write(cpu_base / name / "cpu.cfs_quota_us", "-1"), group)
        _try(lambda: _write(memory_base / name / "memory.limit_in_bytes", limit), group)
        if (memory_base / name / "memory.memsw.limit_in_bytes").exists():  # no swap past it
            _try(lambda: _write(memory_base / name / "memory.memsw.limit_in_bytes", limit), group)
        return group

    def _make(self, path: Path) -> None:
        try:
            path.mkdir()
        except OSError as exc:
            self.remove()
            raise SliceUnavailable(f"cannot create {path}: {exc.strerror or exc}") from None
        self.created.append(path)

    def _enable_v2_controllers(self, base: Path) -> None:
        enabled = (base / "cgroup.subtree_control").read_text().split()
        if not {"cpu", "memory"} <= set(enabled):
            _try(lambda: _write(base / "cgroup.subtree_control", "+cpu +memory"), self)

    @property
    def dirs(self) -> list[Path]:
        return list(dict.fromkeys([self.memory_dir, self.cpu_dir]))

    def describe(self) -> str:
        return f"cgroup v{self.version}"

    def peak_memory_mb(self) -> int | None:
        """The most memory the cgroup held (v1 max_usage_in_bytes, v2 memory.peak)."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return math.ceil(int((self.memory_dir / name).read_text()) / 2**20)
        return None

    def remove(self) -> None:
        """Move any process left to the parent cgroup, then remove every cgroup created."""
        for path in reversed(self.created):
            for _ in range(50):
                with contextlib.suppress(OSError, ValueError):
                    for pid in (path / "cgroup.procs").read_text().split():
                        _write(path.parent / "cgroup.procs", pid)
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)  # a process that just exited may still be listed
            else:
                raise OSError(f"could not remove the cgroup {path}")
        self.created.clear()


def _filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` is on (the longest mount point above it)."""
    best, kind = "", ""
    resolved = str(path.resolve())
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mount, fstype = fields[4], fields[fields.index("-") + 1]
        if (resolved == mount or resolved.startswith(mount.rstrip("/") + "/")) and len(
            mount
        ) >= len(best):
            best, kind = mount, fstype
    return kind


def _require_cgroupfs(path: Path) -> None:
    """A directory that merely looks like a cgroup would confine nothing: refuse it."""
    kind = _filesystem(path)
    if kind not in ("cgroup", "cgroup2"):
        raise SliceUnavailable(f"{path} is not a cgroup filesystem (it is {kind or 'unknown'})")


def _existing(controller_root: Path, current: str) -> Path:
    """Nest under this process's own cgroup, so its limits and accounting still apply."""
    nested = controller_root / current
    return nested if current and nested.is_dir() else controller_root


def _try(action: Any, group: Cgroups) -> None:
    try:
        action()
    except OSError as exc:
        group.remove()
        raise SliceUnavailable(f"cannot write {getattr(exc, 'filename', '')}: {exc}") from None


def _sweep_stale(base: Path) -> None:
    """Remove empty slice cgroups left by a process that no longer exists (killed -9)."""
    for path in base.glob(f"{NAME_PREFIX}*"):
        try:
            os.kill(int(path.name.removeprefix(NAME_PREFIX).split("-")[0]), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                path.rmdir()
        except (ValueError, PermissionError):
            continue


def cgroup_root() -> Path:
    return Path(os.environ.get(CGROUP_ROOT_ENV) or DEFAULT_CGROUP_ROOT)


@dataclass
class SlicedInvocation:
    """One invocation as the child reported it (or as the parent saw it die)."""

    lines: list[str]  # START ... END, REPORT (and Lambda's error lines)
    payload: Any  # the result, or Lambda's error document
    failed: bool
    timed_out: bool
    duration_ms: float
    cpu_ms: float | None  # the child's CPU time during the handler; None if it died


@dataclass
class SliceRun:
    function: str
    memory_mb: int
    timeout_s: int
    confined: bool
    note: str  # the one line that says what the slice is, or why there is none
    init_ms: float | None = None
    invocations: list[SlicedInvocation] = field(default_factory=list)
    exit_status: str | None = None  # "signal: killed" when the child died


def slice_note(memory_mb: int, group: Cgroups | None, reason: str = "") -> str:
    if group is None:
        return (
            f"Lambda slice: UNCONFINED, cgroups cannot be written here ({reason}); "
            "the function runs at this machine's full CPU and memory"
        )
    return (
        f"Lambda slice: {cpu_share(memory_mb):.1%} of one CPU "
        f"(min({memory_mb}, {MB_PER_VCPU}) / {MB_PER_VCPU} MB) and a {memory_mb} MB memory "
        f"limit, {group.describe()}; init (import app) runs unthrottled"
    )


def run_in_slice(
    project_dir: Path,
    stage: str,
    function: str,
    payloads: list[Any],
    *,
    memory_mb: int | None = None,
    timeout_s: int | None = None,
    root: Path | None = None,
    logs_path: Path | None = None,
    env: dict[str, str] | None = None,
) -> SliceRun:
    """Invoke ``function`` once per payload in one fresh child (one cold sandbox), in its slice.

    Memory and timeout come from chalice's config for the function and stage,
    unless given (the power-tuning table tries other sizes). The S3 and the
    credentials are the caller's environment (``env`` adds to it).
    """
    from chalice.cli.factory import CLIFactory  # here: importing this module stays cheap

    overrides = {
        key: value
        for key, value in (("lambda_memory_size", memory_mb), ("lambda_timeout", timeout_s))
        if value is not None
    }
    config = CLIFactory(str(project_dir)).create_config_obj(
        stage, user_provided_params=dict(overrides)
    )
    timeout, memory = function_settings(config, function)
    try:
        group: Cgroups | None = Cgroups.create(memory, root or cgroup_root())
        note = slice_note(memory, group)
    except SliceUnavailable as exc:
        group, note = None, slice_note(memory, None, str(exc))
    run = SliceRun(function, memory, timeout, group is not None, note)
    spec = {
        "project_dir": str(project_dir),
        "stage": stage,
        "function": function,
        "payloads": payloads,
        "overrides": overrides,
        "logs_path": str(logs_path) if logs_path else None,
        "cgroups": None
        if group is None
        else {
            "join": [str(d / "cgroup.procs") for d in group.dirs],
            "quota_file": str(group.cpu_dir / group.quota_file),
            "quota_value": group.quota_value,
        },
        "report_extra": "  Slice: "
        + ("unconfined" if group is None else f"{cpu_share(memory):.1%} vCPU, {group.describe()}"),
    }
    try:
        _run_child(run, spec, env, group)
    finally:
        if group is not None:
            group.remove()
    return run


def _run_child(run: SliceRun, spec: dict[str, Any], env: Any, group: Cgroups | None) -> None:
    read_fd, write_fd = os.pipe()
    spec["fd"] = write_fd
    child_env = dict(os.environ) | (env or {})
    child = subprocess.Popen(
        [sys.executable, "-m", "chalice_loop.lambda_slice"],
        stdin=subprocess.PIPE,
        pass_fds=(write_fd,),
        cwd=spec["project_dir"],
        env=child_env,
        text=True,
    )
    os.close(write_fd)
    invoking_since: float | None = None
    try:
        assert child.stdin is not None
        child.stdin.write(json.dumps(spec))
        child.stdin.close()
        with os.fdopen(read_fd, encoding="utf-8") as reports:
            for line in reports:
                message = json.loads(line)
                if message["event"] == "init":
                    run.init_ms = message["init_ms"]
                elif message["event"] == "invoking":
                    invoking_since = time.perf_counter()
                else:
                    invoking_since = None
                    run.invocations.append(SlicedInvocation(**message["invocation"]))
        status = child.wait()
    finally:
        if child.poll() is None:  # Ctrl-C or an error here: the child goes too
            child.kill()
            child.wait()
    if status < 0:
        run.exit_status = f"signal: {(signal.strsignal(-status) or str(-status)).lower()}"
        if invoking_since is not None:
            run.invocations.append(_died(run, invoking_since, group, spec))
    elif status != 0:
        run.exit_status = f"exit status {status}"
        if run.init_ms is None:
            raise RuntimeError(f"the sliced child failed during init ({run.exit_status})")


class RuntimeExitError(Exception):
    error_type = "Runtime.ExitError"


class _DiedInvocation(Invocation):
    """Lambda logs a runtime's death after the REPORT line, as it does a timeout."""

    def lambda_events(self) -> list[LogEvent]:
        ended = self.ended_at or self.started_at
        return [*super().lambda_events(), LogEvent(ended, f"{self.error}\n{self.error_type}")]

    @property
    def error_type(self) -> str:
        return RuntimeExitError.error_type

    def error_document(self) -> dict[str, Any]:
        return {"errorMessage": str(self.error), "errorType": self.error_type}


def _died(run: SliceRun, since: float, group: Cgroups | None, spec: dict) -> SlicedInvocation:
    """What Lambda reports when the runtime dies mid-invocation (e.g. at the memory limit)."""
    request_id = str(uuid.uuid4())  # the child died before it could say its own
    invocation = _DiedInvocation(run.function, request_id, run.memory_mb, run.timeout_s)
    invocation.duration_ms = (time.perf_counter() - since) * 1000
    invocation.started_at = datetime.fromtimestamp(time.time() - invocation.duration_ms / 1000, UTC)
    invocation.ended_at = datetime.now(UTC)
    peak = group.peak_memory_mb() if group else None
    invocation.max_memory_mb = peak or run.memory_mb
    invocation.report_extra = spec["report_extra"]
    invocation.error = RuntimeExitError(
        f"RequestId: {request_id} Error: Runtime exited with error: {run.exit_status}"
    )
    if spec["logs_path"]:
        from chalice_loop.local_logs import LogStore

        LogStore(Path(spec["logs_path"])).append(invocation, spec["stage"])
    return SlicedInvocation(
        invocation.lambda_lines(), invocation.error_document(), True, False,
        invocation.duration_ms, None,
    )  # fmt: skip


# --- the child -------------------------------------------------------------------


def _child() -> None:
    # Imported before the child joins its slice, as chalice's own loading is not the
    # function's init (the app's imports, boto3's among them, are, and are timed).
    from chalice.cli.factory import CLIFactory

    spec = json.loads(sys.stdin.read())
    out = os.fdopen(spec["fd"], "w", buffering=1, encoding="utf-8")
    cgroups = spec["cgroups"]
    if cgroups:
        for procs in cgroups["join"]:  # the memory limit holds from the start, as on Lambda
            _write(Path(procs), str(os.getpid()))
        joined = Path("/proc/self/cgroup").read_text()
        missing = [p for p in cgroups["join"] if f"/{Path(p).parent.name}\n" not in joined + "\n"]
        if missing:  # never pretend: a slice not joined is an error, not a figure
            sys.exit(f"lambda_slice: not a member of {missing} after joining")
    started = time.perf_counter()
    with _quiet_stdout():
        from chalice_loop.lambda_runner import LocalLambda
        from chalice_loop.local_logs import LogStore

        factory = CLIFactory(spec["project_dir"])
        config = factory.create_config_obj(
            spec["stage"], user_provided_params=dict(spec["overrides"])
        )
        app = factory.load_chalice_app(environment_variables=config.environment_variables)
        local = LocalLambda(app, spec["stage"], spec["project_dir"], config)
    init_ms = (time.perf_counter() - started) * 1000
    if cgroups:  # init is over: from here on, the slice
        _write(Path(cgroups["quota_file"]), cgroups["quota_value"])
    out.write(json.dumps({"event": "init", "init_ms": round(init_ms, 2)}) + "\n")
    store = LogStore(Path(spec["logs_path"])) if spec["logs_path"] else None
    for index, payload in enumerate(spec["payloads"]):
        out.write(json.dumps({"event": "invoking", "index": index}) + "\n")
        cpu = time.process_time()
        invocation = local.invoke(spec["function"], payload)
        cpu_ms = (time.process_time() - cpu) * 1000
        init = f"  Init Duration: {init_ms:.2f} ms" if index == 0 else ""
        invocation.report_extra = init + spec["report_extra"]
        invocation.max_memory_mb = _peak_rss_mb()
        if store is not None:
            store.append(invocation, spec["stage"])
        done = SlicedInvocation(
            invocation.lambda_lines(),
            invocation.error_document() if invocation.failed else invocation.result,
            invocation.failed, invocation.timed_out,
            round(invocation.duration_ms, 3), round(cpu_ms, 3),
        )  # fmt: skip
        out.write(json.dumps({"event": "done", "invocation": done.__dict__}) + "\n")
        if invocation.timed_out:
            break  # Lambda discards a sandbox whose handler timed out
    out.flush()
    os._exit(0)  # a timed-out handler's thread must not keep the sandbox alive


def _peak_rss_mb() -> int:
    """This process's own peak RSS (``VmHWM``): ``ru_maxrss`` survives ``exec``, so in a
    child it can report the parent's peak."""
    status = Path("/proc/self/status").read_text()
    return math.ceil(int(status.split("VmHWM:")[1].split()[0]) / 1024)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Init output goes to stderr (stdout is the caller's, for results only)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


if __name__ == "__main__":
    _child()

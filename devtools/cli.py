"""A local Lambda loop for any Chalice app, with no Docker and no AWS account.

    python -m devtools invoke NAME [--stage S] [--payload JSON]   (or payload on stdin)
    python -m devtools up [--stage S] [--port P] [--fire-now NAME]
    python -m devtools logs [-n NAME] [--follow]
    python -m devtools schedules [--stage S]

``--project-dir`` (default: the current directory) picks the app. Exit status:
0 success, 1 the function failed or timed out, 2 bad input (nothing was run).
"""

import argparse
import contextlib
import json
import queue
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from devtools.lambda_runner import Invocation, LocalLambda
from devtools.lambda_slice import run_in_slice
from devtools.local_logs import LogFilter, LogStore, print_records
from devtools.local_stack import (
    DEFAULT_PORT,
    LOG_FILE,
    Project,
    UsageError,
    create_buckets,
    region,
    remove_state,
    resolve_state_dir,
    s3_for_invoke,
    s3_for_up,
    write_state,
)
from devtools.scheduler import (
    Schedule,
    ScheduleError,
    Scheduler,
    app_schedules,
    describe,
    event_time,
    scheduled_event,
)

MAX_IDLE_S = 30.0  # `up` re-reads the clock at least this often


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _read_payload(text: str | None, stdin: IO[str]) -> Any:
    """``--payload`` wins; else stdin unless it is a terminal; empty means ``{}``."""
    if text is None:
        text = "" if stdin.isatty() else stdin.read()
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the payload is not valid JSON: {exc}") from None


def _scheduler(schedules: list[Schedule]) -> Scheduler:
    try:
        return Scheduler(schedules, _utc_now)
    except ScheduleError as exc:
        raise UsageError(str(exc)) from None


def _check_function(app: Any, name: str) -> None:
    if name not in app.handler_map:
        known = ", ".join(sorted(app.handler_map)) or "none"
        raise UsageError(f"no function named {name!r} in the app (functions: {known})")


def _report(invocation: Invocation, block: IO[str], result: IO[str]) -> None:
    """What Lambda prints: the log block, then the result or the error document."""
    block.write("\n".join(invocation.lambda_lines()) + "\n")
    block.flush()
    payload = invocation.error_document() if invocation.failed else invocation.result
    result.write(json.dumps(payload, indent=2) + "\n")
    result.flush()


def cmd_invoke(args: argparse.Namespace) -> int:
    name = args.name or args.name_option
    if not name:
        raise UsageError("say which function: invoke NAME (or -n NAME)")
    project = Project.open(args.project_dir, args.stage, args.state_dir)
    payload = _read_payload(args.payload, sys.stdin)
    with s3_for_invoke(project) as s3:
        print(s3.describe(), file=sys.stderr)
        app = project.load_app()
        _check_function(app, name)
        if s3.embedded:
            create_buckets(project.bucket_names())
        if args.lambda_slice:
            return _invoke_in_slice(project, name, payload)
        local = LocalLambda(app, project.stage, str(project.project_dir), project.config)
        invocation = local.invoke(name, payload)
        LogStore(project.logs_path).append(invocation, project.stage)
        _report(invocation, sys.stderr, sys.stdout)
    return 1 if invocation.failed else 0


def _invoke_in_slice(project: Project, name: str, payload: Any) -> int:
    """``invoke --lambda-slice``: the same output, from a child held to Lambda's CPU share."""
    run = run_in_slice(
        project.project_dir, project.stage, name, [payload], logs_path=project.logs_path
    )
    print(run.note, file=sys.stderr)
    (invocation,) = run.invocations
    sys.stderr.write("\n".join(invocation.lines) + "\n")
    sys.stdout.write(json.dumps(invocation.payload, indent=2) + "\n")
    return 1 if invocation.failed else 0


class _Stack:
    """``up``'s firing side: one invocation at a time, printed and logged."""

    def __init__(self, project: Project, local: LocalLambda, schedules: list[Schedule]) -> None:
        self.project = project
        self.local = local
        self.by_name = {s.name: s for s in schedules}
        self.region = region()
        self.logs = LogStore(project.logs_path)

    def fire(self, schedule: Schedule, when: datetime, why: str) -> None:
        rule = schedule.rule_name(self.project.app_name, self.project.stage)
        print(f"\n== {schedule.name}: {why}, rule {rule}, time {event_time(when)}")
        event = scheduled_event(rule, when, self.region)
        invocation = self.local.invoke(schedule.name, event)
        self.logs.append(invocation, self.project.stage)
        _report(invocation, sys.stdout, sys.stdout)
        if invocation.timed_out:
            print(
                "(the timed-out handler goes on in a background thread until it returns: "
                "Python cannot stop a thread; restart `up` if it holds on to something)"
            )

    def fire_named(self, name: str) -> None:
        if name not in self.by_name:
            print(f"no schedule named {name!r} (schedules: {', '.join(self.by_name) or 'none'})")
            return
        self.fire(self.by_name[name], _utc_now(), "fired now")


def _read_requests(stream: IO[str], requests: "queue.Queue[str]") -> None:
    for line in stream:
        if line.strip():
            requests.put(line.strip())


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM both stop `up` cleanly (a shell starts background jobs
    with SIGINT ignored; Python would then never raise KeyboardInterrupt)."""

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)


def cmd_up(args: argparse.Namespace) -> int:
    project = Project.open(args.project_dir, args.stage, args.state_dir)
    _stop_on_signals()
    try:
        with s3_for_up(args.port) as s3:
            print(s3.describe())
            app = project.load_app()
            schedules = app_schedules(app)
            for name in args.fire_now:
                if name not in {s.name for s in schedules}:
                    raise UsageError(f"--fire-now {name}: the app has no schedule named {name!r}")
            scheduler = _scheduler(schedules)
            if s3.embedded:
                buckets = project.bucket_names()
                create_buckets(buckets)
                print(f"buckets: {', '.join(f's3://{b}' for b in buckets) or 'none'}")
                write_state(project.state_path, s3.endpoint, project.stage)
            local = LocalLambda(app, project.stage, str(project.project_dir), project.config)
            stack = _Stack(project, local, schedules)
            _print_schedules(project, schedules, scheduler)
            print("Type a schedule name and Enter to fire it now; Ctrl-C stops.", flush=True)
            try:
                _serve(stack, scheduler, args.fire_now)
            finally:
                remove_state(project.state_path)
    except KeyboardInterrupt:
        pass
    print("\nstopped", flush=True)
    return 0


def _print_schedules(project: Project, schedules: list[Schedule], scheduler: Scheduler) -> None:
    print(f"schedules of {project.app_name} (stage {project.stage}, times UTC):")
    if not schedules:
        print("  none")
    for schedule in schedules:
        upcoming = scheduler.next_fire(schedule.name)
        shown = event_time(upcoming) if upcoming else "never"
        print(f"  {schedule.name}  {schedule.expression}  next {shown}")


def _serve(stack: _Stack, scheduler: Scheduler, fire_now: list[str]) -> None:
    requests: queue.Queue[str] = queue.Queue()
    for name in fire_now:
        requests.put(name)
    threading.Thread(target=_read_requests, args=(sys.stdin, requests), daemon=True).start()
    while True:
        for due in scheduler.due():
            stack.fire(due.schedule, due.when, f"{due.schedule.expression} is due")
        wait = scheduler.seconds_until_next()
        try:
            name = requests.get(timeout=MAX_IDLE_S if wait is None else min(wait, MAX_IDLE_S))
        except queue.Empty:
            continue
        stack.fire_named(name)


def cmd_logs(args: argparse.Namespace) -> int:
    store = LogStore(resolve_state_dir(args.project_dir, args.state_dir) / LOG_FILE)
    selection = LogFilter(args.name, args.stage, args.include_lambda_messages)
    with_function = args.name is None
    if args.follow:
        with contextlib.suppress(KeyboardInterrupt):
            print_records(store.follow(selection), sys.stdout, with_function)
        return 0
    if not store.path.exists():
        print(f"no local logs yet ({store.path}): run invoke or up first", file=sys.stderr)
        return 0
    print_records(store.read(selection), sys.stdout, with_function)
    return 0


def cmd_schedules(args: argparse.Namespace) -> int:
    project = Project.open(args.project_dir, args.stage, args.state_dir)
    region()  # an app may create regional clients at import; nothing is called
    app = project.load_app()
    schedules = app_schedules(app)
    scheduler = _scheduler(schedules)
    if not schedules:
        print(f"{project.app_name} has no schedules")
    for schedule in schedules:
        print(f"{schedule.name}  {schedule.expression}")
        zone = " (UTC)" if schedule.expression.startswith("cron(") else ""
        print(f"  {describe(schedule.expression)}{zone}")
        if schedule.description:
            print(f"  note: {schedule.description}")
        print(f"  rule: {schedule.rule_name(project.app_name, project.stage)}")
        times = ", ".join(event_time(t) for t in scheduler.upcoming(schedule.name)) or "never"
        print(f"  next: {times}")
    if any(s.expression.startswith("rate(") for s in schedules):
        print("(rate schedules count from when `up` starts: these assume it starts now)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools",
        description="Local Lambda loop for a Chalice app: invoke, up, logs, schedules.",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=Path.cwd(),
        help="the Chalice project (app.py, .chalice/config.json); default: current directory",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where logs.jsonl and up.json live; default: PROJECT_DIR/.local",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    invoke = commands.add_parser("invoke", help="run one function once, like `chalice invoke`")
    invoke.add_argument("name", nargs="?", help="the function's name")
    invoke.add_argument("-n", "--name", dest="name_option", help="same, as `chalice invoke -n`")
    invoke.add_argument("--stage", default="dev")
    invoke.add_argument("--payload", help="the event as JSON (default: stdin; empty means {})")
    invoke.add_argument(
        "--lambda-slice",
        action="store_true",
        help="run in a child held to Lambda's CPU share and memory limit for the function's "
        "configured memory (cgroups; init unthrottled)",
    )
    invoke.set_defaults(run=cmd_invoke)

    up = commands.add_parser("up", help="embedded S3 + a scheduler firing the app's schedules")
    up.add_argument("--stage", default="dev")
    up.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    up.add_argument(
        "--fire-now",
        action="append",
        default=[],
        metavar="NAME",
        help="fire this schedule once at start (repeatable)",
    )
    up.set_defaults(run=cmd_up)

    logs = commands.add_parser("logs", help="the invocation logs of up and invoke")
    logs.add_argument("-n", "--name", help="only this function")
    logs.add_argument("--stage", default="dev")
    logs.add_argument("--follow", action="store_true", help="keep printing new lines")
    logs.add_argument(
        "--include-lambda-messages",
        action="store_true",
        help="also the START/END/REPORT lines (as `chalice logs`)",
    )
    logs.set_defaults(run=cmd_logs)

    schedules = commands.add_parser("schedules", help="each schedule and its next fire times")
    schedules.add_argument("--stage", default="dev")
    schedules.set_defaults(run=cmd_schedules)
    return parser


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    args = build_parser().parse_args(argv)
    args.project_dir = args.project_dir.resolve()
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

"""A local Lambda loop for any Chalice app, with no Docker and no AWS account.

    chalice-loop invoke NAME [--stage S] [--payload JSON]   (or payload on stdin)
    chalice-loop up [--stage S] [--port P] [--fire-now NAME] [--retry-delay-scale X]
    chalice-loop logs [-n NAME] [--follow] [--json]
    chalice-loop failures [-n NAME] [--stage S] [--json]
    chalice-loop schedules [--stage S]

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
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from chalice_loop.async_delivery import (
    DEFAULT_DELAY_SCALE,
    EVENT_AGE_EXCEEDED,
    FAILURES_FILE,
    LAMBDA_RETRY_DELAYS_S,
    AsyncEvent,
    AsyncQueue,
    FailureStore,
    RetryPolicy,
    SettingsError,
    function_arn,
    invocation_record,
    parse_scale,
    print_failure,
    retry_policy,
)
from chalice_loop.lambda_runner import Invocation, LocalLambda
from chalice_loop.lambda_slice import run_in_slice
from chalice_loop.local_logs import LogFilter, LogStore, print_records
from chalice_loop.local_stack import (
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
from chalice_loop.naming import deployed_name, failure_queue_name
from chalice_loop.scheduler import (
    LOCAL_ACCOUNT_ID,
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
    """``up``'s firing side: each fired event goes through Lambda's async queue
    (retries, event age, on-failure destination); one invocation at a time."""

    def __init__(
        self, project: Project, local: LocalLambda, schedules: list[Schedule], queue: AsyncQueue
    ) -> None:
        self.project = project
        self.local = local
        self.by_name = {s.name: s for s in schedules}
        self.region = region()
        self.logs = LogStore(project.logs_path)
        self.queue = queue
        self.failures = FailureStore(project.failures_path)
        self.in_flight: AsyncEvent | None = None

    def fire(self, schedule: Schedule, when: datetime, why: str) -> None:
        """EventBridge's asynchronous invoke: the event is queued, not run here."""
        rule = schedule.rule_name(self.project.app_name, self.project.stage)
        event = scheduled_event(rule, when, self.region)
        self.queue.submit(schedule.name, event, f"{why}, rule {rule}, time {event_time(when)}")

    def fire_named(self, name: str) -> None:
        if name not in self.by_name:
            print(f"no schedule named {name!r} (schedules: {', '.join(self.by_name) or 'none'})")
            return
        self.fire(self.by_name[name], _utc_now(), "fired now")

    def deliver_next(self) -> bool:
        """Run the attempt that is due soonest; False if none is due."""
        event = self.queue.take_due()
        if event is None:
            return False
        if self.queue.age_exceeded(event):
            self._to_destination(event, EVENT_AGE_EXCEEDED)
            return True
        policy = self.queue.policy(event.function_name)
        print(
            f"\n== {event.function_name}: {event.label} "
            f"(attempt {event.attempts + 1} of {policy.max_attempts}, request {event.request_id})"
        )
        self.in_flight = event
        invocation = self.local.invoke(event.function_name, event.payload, event.request_id)
        self.in_flight = None
        self.logs.append(invocation, self.project.stage)
        _report(invocation, sys.stdout, sys.stdout)
        if invocation.timed_out:
            print(
                "(the timed-out handler goes on in a background thread until it returns: "
                "Python cannot stop a thread; restart `up` if it holds on to something)"
            )
        settled = self.queue.settle(
            event, invocation.error_document() if invocation.failed else None
        )
        if settled.outcome == "retrying":
            lambda_delay = LAMBDA_RETRY_DELAYS_S[event.attempts - 1]
            what = "timed out" if invocation.timed_out else "failed"
            print(
                f"-> {what}: attempt {event.attempts + 1} of {policy.max_attempts} in "
                f"{settled.delay_s:g} s (Lambda waits {lambda_delay} s; "
                f"--retry-delay-scale {self.queue.scale}), same event and request id"
            )
        elif settled.outcome != "succeeded":
            self._to_destination(event, settled.outcome)
        return True

    def _to_destination(self, event: AsyncEvent, condition: str) -> None:
        app, stage = self.project.app_name, self.project.stage
        deployed = deployed_name(app, stage, event.function_name)
        arn = function_arn(self.region, LOCAL_ACCOUNT_ID, deployed)
        destination = failure_queue_name(app, stage, event.function_name)
        record = invocation_record(event, condition, arn, _utc_now())
        self.failures.send(event.function_name, stage, destination, record)
        print(
            f"-> {condition} after {event.attempts} attempt(s): {event.function_name} request "
            f"{event.request_id} sent to the on-failure destination {destination} "
            f"({self.failures.path}); `chalice-loop failures` shows it"
        )

    def drop_pending(self) -> None:
        """``up`` is stopping: the queue is not kept (a new ``up`` starts empty)."""
        dropped = self.queue.drain()
        if self.in_flight is not None:
            dropped.insert(0, self.in_flight)
        if not dropped:
            return
        print(f"\ndropped {len(dropped)} queued event(s) (not kept across `up` runs):")
        for event in dropped:
            state = (
                "interrupted during its attempt"
                if event is self.in_flight
                else f"attempt {event.attempts + 1} was due at {event_time(event.due_at)}"
            )
            print(f"  {event.function_name} request {event.request_id}: {state}")


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
            delivery = AsyncQueue(
                _retry_policies(project, args.lambda_settings, schedules),
                _utc_now,
                args.retry_delay_scale,
            )
            if s3.embedded:
                buckets = project.bucket_names()
                create_buckets(buckets)
                print(f"buckets: {', '.join(f's3://{b}' for b in buckets) or 'none'}")
                write_state(project.state_path, s3.endpoint, project.stage)
            local = LocalLambda(app, project.stage, str(project.project_dir), project.config)
            stack = _Stack(project, local, schedules, delivery)
            _print_schedules(project, schedules, scheduler)
            _print_delivery(delivery, schedules)
            print("Type a schedule name and Enter to fire it now; Ctrl-C stops.", flush=True)
            try:
                _serve(stack, scheduler, args.fire_now)
            finally:
                remove_state(project.state_path)
    except KeyboardInterrupt:
        pass
    print("\nstopped", flush=True)
    return 0


def _retry_policies(
    project: Project, settings: Path | None, schedules: list[Schedule]
) -> dict[str, RetryPolicy]:
    path = None if settings is None else project.project_dir / settings
    try:
        return {s.name: retry_policy(path, s.name) for s in schedules}
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


def _print_delivery(queue: AsyncQueue, schedules: list[Schedule]) -> None:
    if not schedules:
        return
    print(
        f"asynchronous delivery as Lambda's, its delays and event age scaled by "
        f"{queue.scale} (--retry-delay-scale):"
    )
    for schedule in schedules:
        policy = queue.policy(schedule.name)
        delays = [f"{queue.scaled(d):g} s" for d in LAMBDA_RETRY_DELAYS_S]
        delays = delays[: policy.max_retry_attempts]
        retries = "retry" if policy.max_retry_attempts == 1 else "retries"
        print(
            f"  {schedule.name}  {policy.max_retry_attempts} {retries}"
            f"{' after ' + ', '.join(delays) if delays else ''}, max event age "
            f"{queue.scaled(policy.max_event_age_s):g} s ({policy.source})"
        )


def _print_schedules(project: Project, schedules: list[Schedule], scheduler: Scheduler) -> None:
    print(f"schedules of {project.app_name} (stage {project.stage}, times UTC):")
    if not schedules:
        print("  none")
    for schedule in schedules:
        upcoming = scheduler.next_fire(schedule.name)
        shown = event_time(upcoming) if upcoming else "never"
        print(f"  {schedule.name}  {schedule.expression}  next {shown}")


def _serve(stack: _Stack, scheduler: Scheduler, fire_now: list[str]) -> None:
    """Fire what is due into the async queue, then run one due attempt, and again;
    between attempts wait for the next fire time, retry or typed name."""
    requests: queue.Queue[str] = queue.Queue()
    for name in fire_now:
        requests.put(name)
    threading.Thread(target=_read_requests, args=(sys.stdin, requests), daemon=True).start()
    try:
        while True:
            for due in scheduler.due():
                stack.fire(due.schedule, due.when, f"{due.schedule.expression} is due")
            with contextlib.suppress(queue.Empty):
                while True:
                    stack.fire_named(requests.get_nowait())
            if stack.deliver_next():
                continue
            waits = [scheduler.seconds_until_next(), stack.queue.seconds_until_next()]
            wait = min([w for w in waits if w is not None], default=MAX_IDLE_S)
            try:
                name = requests.get(timeout=min(wait, MAX_IDLE_S))
            except queue.Empty:
                continue
            stack.fire_named(name)
    except KeyboardInterrupt:
        stack.drop_pending()
        raise


def cmd_logs(args: argparse.Namespace) -> int:
    store = LogStore(resolve_state_dir(args.project_dir, args.state_dir) / LOG_FILE)
    selection = LogFilter(args.name, args.stage, args.include_lambda_messages)
    with_function = args.name is None
    if args.follow:
        with contextlib.suppress(KeyboardInterrupt):
            print_records(store.follow(selection), sys.stdout, with_function, args.json)
        return 0
    if not store.path.exists():
        print(f"no local logs yet ({store.path}): run invoke or up first", file=sys.stderr)
        return 0
    print_records(store.read(selection), sys.stdout, with_function, args.json)
    return 0


def cmd_failures(args: argparse.Namespace) -> int:
    store = FailureStore(resolve_state_dir(args.project_dir, args.state_dir) / FAILURES_FILE)
    if not store.path.exists():
        print(f"no failed events yet ({store.path}): `up` writes them there", file=sys.stderr)
        return 0
    for line in store.read(args.name, args.stage):
        if args.json:
            print(json.dumps(line["record"]))
        else:
            print_failure(line, sys.stdout)
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


def _scale(text: str) -> Fraction:
    try:
        return parse_scale(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chalice-loop",
        description="Local Lambda loop for a Chalice app: invoke, up, logs, failures, schedules.",
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
        "--lambda-settings",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON of each function's EventInvokeConfig ({NAME: {EventInvokeConfig: ...}}), "
        "relative to --project-dir; default: Lambda's defaults (2 retries, 6 hours)",
    )
    up.add_argument(
        "--fire-now",
        action="append",
        default=[],
        metavar="NAME",
        help="fire this schedule once at start (repeatable)",
    )
    up.add_argument(
        "--retry-delay-scale",
        type=_scale,
        default=DEFAULT_DELAY_SCALE,
        metavar="X",
        help="multiplies Lambda's async retry delays (60 s, 120 s) and max event age; "
        "default 1/60 (a Lambda minute is a local second); 1 is Lambda's own timing",
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
    logs.add_argument(
        "--json",
        action="store_true",
        help="each line as Lambda's JSON log format stores it (requestId, fields, metrics)",
    )
    logs.set_defaults(run=cmd_logs)

    failures = commands.add_parser(
        "failures", help="events that failed every attempt in up (the on-failure destination)"
    )
    failures.add_argument("-n", "--name", help="only this function")
    failures.add_argument("--stage", default="dev")
    failures.add_argument("--json", action="store_true", help="the raw invocation records")
    failures.set_defaults(run=cmd_failures)

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

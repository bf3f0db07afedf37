"""A local Lambda loop for any Chalice app, with no Docker and no AWS account.

    chalice-loop invoke NAME [--stage S] [--payload JSON]   (or payload on stdin)
    chalice-loop up [--stage S] [--port P] [--http-port P] [--fire-now NAME] [--retry-delay-scale X]
    chalice-loop logs [-n NAME] [--follow] [--json]
    chalice-loop failures [-n NAME] [--stage S] [--json]
    chalice-loop schedules [--stage S]

``--project-dir`` (default: the current directory) picks the app. Exit status:
0 success, 1 the function failed or timed out, 2 bad input (nothing was run),
141 the output pipe closed (``| head``), as a command killed by SIGPIPE.
"""

import argparse
import contextlib
import json
import os
import signal
import sys
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from chalice import Chalice

from chalice_loop.async_delivery import (
    DEFAULT_DELAY_SCALE,
    FAILURES_FILE,
    LAMBDA_RETRY_DELAYS_S,
    AsyncQueue,
    FailureStore,
    RetryPolicy,
    SettingsError,
    parse_scale,
    print_failure,
    retry_policy,
)
from chalice_loop.embedded_s3 import PortInUseError
from chalice_loop.event_sources import EventSources, SourceError
from chalice_loop.handlers import (
    ASYNC_SOURCES,
    AUTHORIZER,
    ROUTE,
    Handler,
    app_handlers,
    find,
)
from chalice_loop.http_routes import serve_routes
from chalice_loop.lambda_events import NoSampleError, describe_sample, sample_event
from chalice_loop.lambda_runner import LocalLambda
from chalice_loop.lambda_slice import run_in_slice
from chalice_loop.local_logs import LogFilter, LogStore, print_records
from chalice_loop.local_stack import (
    DEFAULT_HTTP_PORT,
    DEFAULT_PORT,
    LOG_FILE,
    Project,
    UsageError,
    aws_for_invoke,
    aws_for_up,
    create_buckets,
    region,
    remove_state,
    resolve_state_dir,
    write_state,
)
from chalice_loop.paths import shown
from chalice_loop.scheduler import (
    Schedule,
    ScheduleError,
    Scheduler,
    app_schedules,
    describe,
    event_time,
)
from chalice_loop.up import Stack, how_fired, report, utc_now

SIGPIPE_STATUS = 128 + signal.SIGPIPE


def _read_payload(text: str | None, stdin: IO[str]) -> Any:
    """``--payload`` wins; else stdin unless it is a terminal; None when empty."""
    if text is None:
        text = "" if stdin.isatty() else stdin.read()
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the payload is not valid JSON: {exc}") from None


def _scheduler(schedules: list[Schedule]) -> Scheduler:
    try:
        return Scheduler(schedules, utc_now)
    except ScheduleError as exc:
        raise UsageError(str(exc)) from None


def _invokable(app: Chalice, name: str) -> Handler:
    """The handler ``invoke NAME`` runs; UsageError for what it cannot."""
    handler = find(app_handlers(app), name)
    if handler is None or name not in app.handler_map:
        known = ", ".join(sorted(app.handler_map)) or "none"
        raise UsageError(f"no function named {name!r} in the app (functions: {known})")
    if handler.not_run_reason:
        raise UsageError(f"{name} is not run locally: {handler.not_run_reason}")
    if handler.kind == ROUTE:
        raise UsageError(
            f"{name} is an HTTP route ({handler.declaration}): `up` serves it "
            f"(--http-port, default {DEFAULT_HTTP_PORT})"
        )
    if handler.kind == AUTHORIZER:
        raise UsageError(f"{name} is an authorizer: `up` runs it with the routes that use it")
    return handler


def cmd_invoke(args: argparse.Namespace) -> int:
    name = args.name or args.name_option
    if not name:
        raise UsageError("say which function: invoke NAME (or -n NAME)")
    project = Project.open(args.project_dir, args.stage, args.state_dir)
    payload = _read_payload(args.payload, sys.stdin)
    with aws_for_invoke(project) as aws:
        print(aws.describe(), file=sys.stderr)
        app = project.load_app()
        handler = _invokable(app, name)
        if payload is None:
            payload = _sample(project, handler)
        if aws.embedded:
            create_buckets(project.bucket_names())
        if args.lambda_slice:
            return _invoke_in_slice(project, name, payload)
        local = LocalLambda(app, project.stage, str(project.project_dir), project.config)
        invocation = local.invoke(name, payload)
        LogStore(project.logs_path).append(invocation, project.stage)
        report(invocation, sys.stderr, sys.stdout)
    return 1 if invocation.failed else 0


def _sample(project: Project, handler: Handler) -> Any:
    """No payload: an event-source handler gets its source's sample event, others {}."""
    try:
        event = sample_event(handler, project.app_name, project.stage, region())
    except NoSampleError as exc:
        raise UsageError(f"{handler.name}: {exc}") from None
    if event != {}:
        print(
            f"(no payload: {handler.name} gets {describe_sample(handler, event)})", file=sys.stderr
        )
    return event


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
        with contextlib.ExitStack() as stack:
            aws = stack.enter_context(aws_for_up(args.port))
            print(aws.describe())
            app = project.load_app()
            handlers = app_handlers(app)
            schedules = app_schedules(app)
            for name in args.fire_now:
                if name not in {s.name for s in schedules}:
                    raise UsageError(f"--fire-now {name}: the app has no schedule named {name!r}")
            scheduler = _scheduler(schedules)
            asynchronous = [h.name for h in handlers if h.kind in ASYNC_SOURCES]
            delivery = AsyncQueue(
                _retry_policies(project, args.lambda_settings, asynchronous),
                utc_now,
                args.retry_delay_scale,
            )
            if aws.embedded:
                buckets = project.bucket_names()
                create_buckets(buckets)
                print(f"buckets: {', '.join(f's3://{b}' for b in buckets) or 'none'}")
            sources = EventSources(
                handlers, aws.endpoint, region(), project.app_name, project.stage, aws.embedded
            )
            try:
                made = sources.create()
            except SourceError as exc:
                raise UsageError(str(exc)) from None
            for line in made:
                print(f"event source: {line}")
            http_url = _serve_routes(stack, app, project, args.http_port)
            write_state(project.state_path, aws, project.stage)
            stack.callback(remove_state, project.state_path)
            local = LocalLambda(app, project.stage, str(project.project_dir), project.config)
            up = Stack(project, local, handlers, scheduler, delivery, sources, http_url)
            _print_handlers(project, handlers, scheduler, http_url, aws.embedded)
            _print_delivery(delivery, asynchronous)
            print(
                "Type a handler's name and Enter to fire it (a schedule) or send it its sample "
                "event; Ctrl-C stops.",
                flush=True,
            )
            sources.start(up.submit, up.run_batch_later)
            stack.callback(sources.stop)
            up.serve(args.fire_now, sys.stdin)
    except KeyboardInterrupt:
        pass
    print("\nstopped", flush=True)
    return 0


def _serve_routes(
    stack: contextlib.ExitStack, app: Chalice, project: Project, port: int
) -> str | None:
    if not app.routes:
        return None
    try:
        url = stack.enter_context(serve_routes(app, project.config, port))
    except PortInUseError as exc:
        raise UsageError(f"{exc}: choose another port with --http-port") from None
    except ValueError as exc:  # routes chalice deploy would refuse
        raise UsageError(f"the app's routes: {exc}") from None
    print(f"HTTP: the app's routes, served as `chalice local` serves them, at {url}")
    return url


def _retry_policies(
    project: Project, settings: Path | None, functions: list[str]
) -> dict[str, RetryPolicy]:
    path = None if settings is None else project.project_dir / settings
    try:
        return {name: retry_policy(path, name) for name in functions}
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


def _print_delivery(queue: AsyncQueue, functions: list[str]) -> None:
    if not functions:
        return
    print(
        f"asynchronous delivery as Lambda's, its delays and event age scaled by "
        f"{queue.scale} (--retry-delay-scale):"
    )
    width = max(len(name) for name in functions)
    for name in functions:
        policy = queue.policy(name)
        delays = [f"{queue.scaled(d):g} s" for d in LAMBDA_RETRY_DELAYS_S]
        delays = delays[: policy.max_retry_attempts]
        retries = "retry" if policy.max_retry_attempts == 1 else "retries"
        print(
            f"  {name:<{width}}  {policy.max_retry_attempts} {retries}"
            f"{' after ' + ', '.join(delays) if delays else ''}, max event age "
            f"{queue.scaled(policy.max_event_age_s):g} s ({policy.source})"
        )


def _print_handlers(
    project: Project,
    handlers: list[Handler],
    scheduler: Scheduler,
    http_url: str | None,
    s3_embedded: bool,
) -> None:
    """Every registered handler, what it listens to, and how it is fired here (or why not)."""
    print(f"handlers of {project.app_name} (stage {project.stage}, times UTC):")
    if not handlers:
        print("  none")
    width = max((len(h.name) for h in handlers), default=0)
    kinds = max((len(h.kind) for h in handlers), default=0)
    for handler in handlers:
        print(f"  {handler.name:<{width}}  {handler.kind:<{kinds}}  {handler.declaration}")
        print(f"  {'':<{width}}  -> {how_fired(handler, scheduler, http_url, s3_embedded)}")


def cmd_logs(args: argparse.Namespace) -> int:
    store = LogStore(resolve_state_dir(args.project_dir, args.state_dir) / LOG_FILE)
    selection = LogFilter(args.name, args.stage, args.include_lambda_messages)
    with_function = args.name is None
    if args.follow:
        with contextlib.suppress(KeyboardInterrupt):
            print_records(store.follow(selection), sys.stdout, with_function, args.json)
        return 0
    if not store.path.exists():
        print(f"no local logs yet ({shown(store.path)}): run invoke or up first", file=sys.stderr)
        return 0
    print_records(store.read(selection), sys.stdout, with_function, args.json)
    return 0


def cmd_failures(args: argparse.Namespace) -> int:
    store = FailureStore(resolve_state_dir(args.project_dir, args.state_dir) / FAILURES_FILE)
    if not store.path.exists():
        print(
            f"no failed events yet ({shown(store.path)}): `up` writes them there", file=sys.stderr
        )
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

    up = commands.add_parser(
        "up",
        help="the whole app: an embedded AWS endpoint, its event sources, schedules and routes",
    )
    up.add_argument("--stage", default="dev")
    up.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the embedded endpoint's (S3, SQS, SNS, EventBridge); default {DEFAULT_PORT}",
    )
    up.add_argument(
        "--http-port",
        type=int,
        default=DEFAULT_HTTP_PORT,
        help=f"the HTTP routes' (as `chalice local --port`); default {DEFAULT_HTTP_PORT}",
    )
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


def _quiet_stdout() -> None:
    """The reader went away: later writes (and the exit's flush) go nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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
    except BrokenPipeError:  # `chalice-loop logs | head`: stop quietly, as `cat` would
        _quiet_stdout()
        return SIGPIPE_STATUS

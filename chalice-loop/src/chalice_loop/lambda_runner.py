"""Invoke a Chalice app's functions in-process the way Lambda would, and
print what Lambda prints (START / log lines / END / REPORT).

The handler runs in a worker thread and the caller waits for the stage's
``lambda_timeout``. Past it the invocation is reported as Lambda reports it
(``Task timed out after 15.00 seconds``) and the caller moves on. Python cannot
kill a thread, so the abandoned handler keeps running in the background until it
returns by itself (its thread is a daemon: it never holds the process open);
Lambda would have frozen and discarded the whole sandbox instead.
"""

import json
import logging
import math
import os
import resource
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from awslambdaric.lambda_runtime_log_utils import JsonFormatter
from chalice import Chalice
from chalice.config import Config
from chalice.constants import DEFAULT_LAMBDA_MEMORY_SIZE, DEFAULT_LAMBDA_TIMEOUT
from chalice.local import LambdaContext

from chalice_loop.naming import deployed_name
from chalice_loop.paths import shown

_TOOL_DIR = str(Path(__file__).resolve().parent)


class MarshalError(Exception):
    """The function returned something Lambda cannot serialise to JSON."""

    error_type = "Runtime.MarshalError"


def function_settings(config: Config, function: str) -> tuple[int, int]:
    """``(timeout s, memory MB)`` of a function in the config's stage, as chalice resolves
    them (chalice's defaults where unset)."""
    scoped = config.scope(config.chalice_stage, function)
    return (
        scoped.lambda_timeout or DEFAULT_LAMBDA_TIMEOUT,
        scoped.lambda_memory_size or DEFAULT_LAMBDA_MEMORY_SIZE,
    )


def lambda_time(moment: datetime) -> str:
    """Lambda's timestamp style: ``2026-11-26T16:47:31.929Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LogEvent:
    """One line (or one multi-line message) of an invocation's log, as Lambda stores it.

    ``record``: the same event as a JSON object, as Lambda stores it under the JSON
    log format (the runtime's formatter for log records; a JSON line as it is).
    """

    timestamp: datetime
    message: str
    record: dict[str, Any] | None = None


@dataclass
class Invocation:
    function_name: str
    request_id: str
    memory_size: int
    timeout_s: int
    result: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    events: list[LogEvent] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    duration_ms: float = 0.0
    max_memory_mb: int = 0
    report_extra: str = ""  # appended to REPORT: "Init Duration: ...", by lambda_slice

    @property
    def failed(self) -> bool:
        return self.timed_out or self.error is not None

    @property
    def logs(self) -> list[str]:
        """The lines between START and END: ``app.log`` output, then any ``[ERROR]`` entry."""
        return [event.message for event in self.events]

    @property
    def billed_ms(self) -> int:
        if self.timed_out:
            return self.timeout_s * 1000
        return math.ceil(self.duration_ms)

    def timeout_message(self) -> str:
        ended = self.ended_at or self.started_at
        return (
            f"{lambda_time(ended)} {self.request_id} "
            f"Task timed out after {self.timeout_s:.2f} seconds"
        )

    def lambda_events(self) -> list[LogEvent]:
        """Everything Lambda writes to the log stream for this invocation."""
        rid = self.request_id
        ended = self.ended_at or self.started_at
        lines = [
            LogEvent(self.started_at, f"START RequestId: {rid} Version: $LATEST"),
            *self.events,
            LogEvent(ended, f"END RequestId: {rid}"),
            LogEvent(
                ended,
                f"REPORT RequestId: {rid}  Duration: {self.duration_ms:.2f} ms  "
                f"Billed Duration: {self.billed_ms} ms  Memory Size: {self.memory_size} MB  "
                f"Max Memory Used: {self.max_memory_mb} MB{self.report_extra}",
            ),
        ]
        if self.timed_out:
            lines.append(LogEvent(ended, self.timeout_message()))
        return lines

    def lambda_lines(self) -> list[str]:
        return [event.message for event in self.lambda_events()]

    def error_document(self) -> dict[str, Any]:
        """The payload Lambda returns for a failed invocation."""
        if self.timed_out:
            return {"errorMessage": self.timeout_message()}
        assert self.error is not None
        return {
            "errorMessage": str(self.error),
            "errorType": getattr(self.error, "error_type", type(self.error).__name__),
            "stackTrace": _stack_trace(self.error),
        }


def _stack_trace(error: BaseException) -> list[str]:
    """The traceback from the handler down, without this runner's own frames
    (Lambda's starts at the handler too), paths relative to the working directory."""
    frames = [
        traceback.FrameSummary(shown(frame.filename), frame.lineno, frame.name, line=frame.line)
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(_TOOL_DIR)
    ]
    return traceback.format_list(frames)


def _unmarshallable(result: Any) -> MarshalError | None:
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        return MarshalError(f"Unable to marshal response: {exc}")
    return None


def _error_log(error: BaseException) -> str:
    """The ``[ERROR]`` entry Lambda's Python runtime logs for an unhandled error."""
    kind = getattr(error, "error_type", type(error).__name__)
    trace = "".join(_stack_trace(error))
    return f"[ERROR] {kind}: {error}\nTraceback (most recent call last):\n{trace}".rstrip("\n")


class _EventHandler(logging.Handler):
    """Both forms of each record: the text line, and the JSON object that Lambda's
    Python runtime (awslambdaric's ``JsonFormatter``) writes under the JSON format."""

    def __init__(self, sink: list[LogEvent], request_id: str, raw_json: bool = False) -> None:
        super().__init__()
        self.sink, self.request_id, self.raw_json = sink, request_id, raw_json
        self.json_formatter = JsonFormatter()
        self.json_formatter.converter = time.gmtime  # as the runtime sets it

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        if self.raw_json:  # a line that is a JSON document already (EMF)
            as_json = json.loads(message)
        else:
            copy = logging.makeLogRecord({**vars(record), "aws_request_id": self.request_id})
            as_json = json.loads(self.json_formatter.format(copy))
        when = datetime.fromtimestamp(record.created, UTC)
        self.sink.append(LogEvent(when, message, as_json))


class LocalLambda:
    """Runs an app's functions with a stage's config.json settings applied.

    :meth:`invoke` runs one invocation as Lambda would (the function's environment
    and timeout, its log captured, the START/END/REPORT block); :meth:`call` is the
    bare handler call, for tests that drive a function from many threads.
    """

    def __init__(
        self,
        app: Chalice,
        stage: str = "dev",
        project_dir: str = ".",
        config: Config | None = None,
    ) -> None:
        self.app = app
        if config is None:
            from chalice.cli.factory import CLIFactory  # here: `logs` and `failures` start fast

            config = CLIFactory(project_dir).create_config_obj(chalice_stage_name=stage)
        self.config = config

    def handler(self, function_name: str) -> Callable[[Any, Any], Any]:
        """The handler chalice registered (``app.handler_map``); raises
        ``chalice.test.FunctionNotFoundError`` for a name the app does not have."""
        if function_name not in self.app.handler_map:
            from chalice.test import FunctionNotFoundError  # chalice.test imports chalice.cli

            raise FunctionNotFoundError(function_name)
        return self.app.handler_map[function_name]

    def settings(self, function_name: str) -> tuple[int, int]:
        """``(lambda_timeout in s, lambda_memory_size in MB)``, chalice's defaults if unset."""
        return function_settings(self.config, function_name)

    def context(self, function_name: str, request_id: str | None = None) -> LambdaContext:
        """A fresh Lambda context for one call: its own request id (a new one unless
        given), the function's memory size, and a remaining time that counts down from
        the function's ``lambda_timeout`` (chalice's test client always starts at 3 s)."""
        timeout_s, memory_size = self.settings(function_name)
        context = LambdaContext(
            function_name, memory_size=memory_size, max_runtime_ms=timeout_s * 1000
        )
        context.aws_request_id = request_id or str(uuid.uuid4())
        return context

    def environment(self, function_name: str) -> dict[str, str]:
        """The variables Lambda sets for the function: config.json's for its stage and
        itself, and ``AWS_LAMBDA_FUNCTION_NAME`` (the deployed name)."""
        stage = self.config.chalice_stage
        scoped = self.config.scope(stage, function_name)
        deployed = deployed_name(self.config.app_name, stage, function_name)
        return {**scoped.environment_variables, "AWS_LAMBDA_FUNCTION_NAME": deployed}

    def call(self, function_name: str, payload: Any = None, context: Any = None) -> Any:
        """The registered handler, called in this thread with ``context`` (default: a
        new :meth:`context`): returns what it returns, raises what it raises.

        Nothing else happens: no timeout, no log capture and no environment swap, so
        many threads may call at once (set :meth:`environment` once, for all of them).
        """
        handler = self.handler(function_name)
        return handler({} if payload is None else payload, context or self.context(function_name))

    @contextmanager
    def _function_environment(self, function_name: str) -> Iterator[None]:
        """``os.environ`` with the function's variables for the call, as chalice's test
        client swaps it (a copy in its place, the original back after)."""
        original = os.environ
        patched = os.environ.copy()
        patched.update(self.environment(function_name))
        os.environ = patched  # type: ignore[assignment]  # noqa: B003 (a swap, not a clear)
        try:
            yield
        finally:
            os.environ = original  # noqa: B003

    def invoke(
        self, function_name: str, payload: Any = None, request_id: str | None = None
    ) -> Invocation:
        """Run one invocation; never raises for the function's own errors or timeout.

        ``request_id``: Lambda's async retries reuse the event's; default a new one.
        Raises ``FunctionNotFoundError`` for an unknown name, before anything runs.
        """
        handler = self.handler(function_name)
        timeout_s, memory_size = self.settings(function_name)
        request_id = request_id or str(uuid.uuid4())
        invocation = Invocation(function_name, request_id, memory_size, timeout_s)
        context = self.context(function_name, request_id)
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["result"] = handler(payload, context)
            except BaseException as exc:  # Lambda reports SystemExit etc. as errors too
                outcome["error"] = exc
            finally:
                done.set()

        with (
            self._captured_logs(invocation.events, request_id),
            self._function_environment(function_name),
        ):
            invocation.started_at = datetime.now(UTC)
            started = time.perf_counter()
            worker = threading.Thread(target=run, name=f"lambda-{request_id}", daemon=True)
            worker.start()
            finished = done.wait(timeout_s)
            invocation.duration_ms = (time.perf_counter() - started) * 1000
            invocation.ended_at = datetime.now(UTC)
        invocation.max_memory_mb = math.ceil(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        if not finished:
            invocation.timed_out = True
            return invocation
        invocation.error = outcome.get("error") or _unmarshallable(outcome.get("result"))
        if invocation.error is None:
            invocation.result = outcome.get("result")
        else:
            record = {"level": "ERROR", **invocation.error_document(), "requestId": request_id}
            record["timestamp"] = lambda_time(invocation.ended_at)
            invocation.events.append(
                LogEvent(invocation.ended_at, _error_log(invocation.error), record)
            )
        return invocation

    @contextmanager
    def _captured_logs(self, sink: list[LogEvent], request_id: str) -> Iterator[None]:
        """Route ``app.log`` into the invocation (as Lambda routes it to CloudWatch),
        formatted as the app formats it, and the lines its child loggers with their
        own handlers write (the metrics documents) as they are."""
        log = self.app.log
        capture = _EventHandler(sink, request_id)
        capture.setFormatter(
            next((h.formatter for h in log.handlers if h.formatter), None)
            or logging.Formatter(Chalice.FORMAT_STRING)
        )
        raw = _EventHandler(sink, request_id, raw_json=True)
        raw.setFormatter(logging.Formatter("%(message)s"))
        swapped = {log: [capture]} | {child: [raw] for child in _children_with_handlers(log)}
        saved = {logger: logger.handlers[:] for logger in swapped}
        for logger, handlers in swapped.items():
            logger.handlers[:] = handlers
        try:
            yield
        finally:
            for logger, handlers in saved.items():
                logger.handlers[:] = handlers


def _children_with_handlers(log: logging.Logger) -> list[logging.Logger]:
    prefix = log.name + "."
    return [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith(prefix) and isinstance(logger, logging.Logger) and logger.handlers
    ]

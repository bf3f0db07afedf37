"""Invoke a Chalice app's functions in-process the way Lambda would, and
print what Lambda prints (START / log lines / END / REPORT)."""

import logging
import math
import resource
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any

from chalice import Chalice
from chalice.cli.factory import CLIFactory
from chalice.local import LambdaContext
from chalice.test import TestLambdaClient


@dataclass
class Invocation:
    function_name: str
    request_id: str
    memory_size: int
    result: Any = None
    error: BaseException | None = None
    logs: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    max_memory_mb: int = 0

    @property
    def billed_ms(self) -> int:
        return math.ceil(self.duration_ms)

    def lambda_lines(self) -> list[str]:
        rid = self.request_id
        return [
            f"START RequestId: {rid} Version: $LATEST",
            *self.logs,
            f"END RequestId: {rid}",
            f"REPORT RequestId: {rid}  Duration: {self.duration_ms:.2f} ms  "
            f"Billed Duration: {self.billed_ms} ms  Memory Size: {self.memory_size} MB  "
            f"Max Memory Used: {self.max_memory_mb} MB",
        ]

    def error_document(self) -> dict[str, Any]:
        assert self.error is not None
        return {
            "errorMessage": str(self.error),
            "errorType": type(self.error).__name__,
            "stackTrace": traceback.format_tb(self.error.__traceback__),
        }


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(self.format(record))


class ConfiguredLambdaClient(TestLambdaClient):
    """chalice's test Lambda client, with a context that honours the stage's
    ``lambda_timeout`` (chalice's hard-codes 3,000 ms) and a request id known
    before the call, so the START line can name it."""

    def invoke_with_context(
        self, function_name: str, payload: Any, request_id: str
    ) -> tuple[Any, LambdaContext]:
        scoped = self._config.scope(self._config.chalice_stage, function_name)
        context = LambdaContext(
            function_name,
            memory_size=scoped.lambda_memory_size,
            max_runtime_ms=scoped.lambda_timeout * 1000,
        )
        context.aws_request_id = request_id
        handler = self._app.handler_map[function_name]
        with self._patched_env_vars(scoped.environment_variables):
            return handler(payload, context), context


class LocalLambda:
    """Runs an app's functions with a stage's config.json settings applied."""

    def __init__(self, app: Chalice, stage: str = "dev", project_dir: str = ".") -> None:
        self.app = app
        self.config = CLIFactory(project_dir).create_config_obj(chalice_stage_name=stage)
        self.client = ConfiguredLambdaClient(app, self.config)

    def invoke(self, function_name: str, payload: Any = None) -> Invocation:
        scoped = self.config.scope(self.config.chalice_stage, function_name)
        invocation = Invocation(function_name, str(uuid.uuid4()), scoped.lambda_memory_size)
        capture = _ListHandler(invocation.logs)
        capture.setFormatter(logging.Formatter(Chalice.FORMAT_STRING))
        saved = self.app.log.handlers[:]
        self.app.log.handlers[:] = [capture]
        started = time.perf_counter()
        try:
            invocation.result, _ = self.client.invoke_with_context(
                function_name, payload, invocation.request_id
            )
        except Exception as exc:
            invocation.error = exc
            invocation.logs.append(f"[ERROR] {type(exc).__name__}: {exc}")
        finally:
            invocation.duration_ms = (time.perf_counter() - started) * 1000
            self.app.log.handlers[:] = saved
        invocation.max_memory_mb = math.ceil(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        return invocation

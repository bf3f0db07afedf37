"""A Lambda Runtime API on 127.0.0.1, and the real runtime client (awslambdaric) serving it.

Enough of the API for ``python -m awslambdaric MODULE.HANDLER`` to run
invocations as Lambda runs them: ``GET /2018-06-01/runtime/invocation/next``
hands out the queued events with Lambda's headers (request id, deadline, function
ARN); ``POST .../invocation/{id}/response`` and ``.../error`` and ``/init/error``
record how each ended. The runtime's stdout is the function's log stream.
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "/2018-06-01/runtime"


@dataclass(frozen=True)
class Outcome:
    kind: str  # "response" or "error"
    body: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime stopped while it waits for the next event resets its connection: quiet."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RuntimeAPI:
    """Queued invocations for one runtime process, and their outcomes."""

    def __init__(self, function_name: str, timeout_s: int) -> None:
        self.function_name, self.timeout_s = function_name, timeout_s
        self.pending: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.outcomes: dict[str, Outcome] = {}
        self.init_error: Any = None
        self.changed = threading.Condition()
        self.server = _Server(("127.0.0.1", 0), _handler_for(self))
        host, port = self.server.server_address[:2]
        self.address = f"{host}:{port}"
        self.stopping = threading.Event()

    def invoke(self, event: Any, request_id: str | None = None) -> str:
        """Queue an event; returns its request id."""
        request_id = request_id or str(uuid.uuid4())
        self.pending.put((request_id, json.dumps(event).encode()))
        return request_id

    def wait(self, request_id: str, timeout_s: float = 30) -> Outcome:
        with self.changed:
            if not self.changed.wait_for(
                lambda: request_id in self.outcomes or self.init_error is not None, timeout_s
            ):
                raise TimeoutError(f"no outcome for {request_id} within {timeout_s} s")
        if self.init_error is not None:
            raise RuntimeError(f"the runtime failed to initialise: {self.init_error}")
        return self.outcomes[request_id]

    def record(self, request_id: str | None, outcome: Any) -> None:
        with self.changed:
            if request_id is None:
                self.init_error = outcome
            else:
                self.outcomes[request_id] = outcome
            self.changed.notify_all()

    def next_invocation(self) -> tuple[str, bytes] | None:
        """Blocks, as Lambda does, until there is an event (None once stopping)."""
        while not self.stopping.is_set():
            try:
                return self.pending.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def headers_for(self, request_id: str) -> dict[str, str]:
        deadline_ms = int((time.time() + self.timeout_s) * 1000)
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        return {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": arn,
            "Content-Type": "application/json",
        }

    @contextmanager
    def serving(self) -> Iterator["RuntimeAPI"]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            self.server.shutdown()
            self.server.server_close()
            thread.join(5)


def _handler_for(api: RuntimeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # no access log
            pass

        def _answer(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path != f"{PREFIX}/invocation/next":
                return self._answer(404)
            item = api.next_invocation()
            if item is None:
                return self._answer(500, b'{"errorMessage": "shutting down"}')
            request_id, body = item
            self._answer(200, body, api.headers_for(request_id))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            parsed = json.loads(body) if body else None
            parts = self.path.removeprefix(PREFIX).strip("/").split("/")
            if parts == ["init", "error"]:
                api.record(None, parsed)
            elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                api.record(parts[1], Outcome(parts[2], parsed))
            else:
                return self._answer(404)
            self._answer(202, b'{"status": "OK"}')

    return Handler


class RuntimeProcess:
    """``python -m awslambdaric HANDLER`` against the API; ``output()`` once stopped.

    Its output is read as it comes (a full pipe would block the runtime's writes), as
    bytes: text mode would turn the ``\r`` inside the runtime's error entries into lines."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for chunk in iter(lambda: self.process.stdout.read1(65536), b""):
            self.chunks.append(chunk)

    def output(self) -> str:
        self.process.terminate()  # it waits in invocation/next forever, as on Lambda
        self.process.wait(timeout=10)
        self.reader.join(10)
        return b"".join(self.chunks).decode()


def runtime_launch(
    project: Path, env: dict[str, str], python_flags: Sequence[str], import_path: Sequence[Path]
) -> tuple[list[str], dict[str, str]]:
    """The interpreter's arguments up to ``-m`` and its environment: shared by the
    runtime and by any probe of the import path the runtime gets."""
    pythonpath = os.pathsep.join(str(p) for p in import_path or [project])
    env = {**env, "PYTHONPATH": pythonpath, "PYTHONDONTWRITEBYTECODE": "1"}
    return [sys.executable, *python_flags], env


@contextmanager
def lambda_runtime(
    project: Path,
    handler: str,
    function_name: str,
    env: dict[str, str],
    timeout_s: int,
    *,
    memory_mb: int,
    python_flags: Sequence[str] = (),
    import_path: Sequence[Path] = (),
) -> Iterator[tuple[RuntimeAPI, RuntimeProcess]]:
    """The API on a free port and the runtime client serving ``handler`` from ``project``
    (stdout and stderr together, as Lambda sends both to the log stream).

    ``import_path`` (default: ``project``) is the runtime's PYTHONPATH and
    ``python_flags`` go to the interpreter (``-S``: no site-packages)."""
    api = RuntimeAPI(function_name, timeout_s)
    interpreter, env = runtime_launch(project, env, python_flags, import_path)
    with api.serving():
        process = subprocess.Popen(
            [*interpreter, "-m", "awslambdaric", handler],
            cwd=project,
            env={
                **env,
                "AWS_LAMBDA_RUNTIME_API": api.address,
                "AWS_LAMBDA_FUNCTION_NAME": function_name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        runtime = RuntimeProcess(process)
        try:
            yield api, runtime
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            runtime.reader.join(10)

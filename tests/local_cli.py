"""The app's local loop, ``chalice-loop``, run as a user runs it: in a subprocess from the
project's folder. Helpers shared by the end-to-end tests and the integration tests that
read its logs: environments with and without AWS settings, free loopback ports, and
long-running ``up`` processes whose output is collected as it comes."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import PROJECT

LAMBDA_BLOCK = re.compile(
    r"START RequestId: (?P<id>[0-9a-f-]{36}) Version: \$LATEST\n"
    r"(?P<logs>(?:.*\n)*?)"
    r"END RequestId: (?P=id)\n"
    r"REPORT RequestId: (?P=id)  Duration: [\d.]+ ms  Billed Duration: (?P<billed>\d+) ms  "
    r"Memory Size: (?P<memory>\d+) MB  Max Memory Used: \d+ MB\n"
)


def env_without_aws(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **extra}


def env_with_endpoint(endpoint: str) -> dict[str, str]:
    """The session's fake credentials and region (set by the s3_endpoint fixture)."""
    return {**os.environ, "AWS_ENDPOINT_URL_S3": endpoint}


def cli(
    *args: str | Path, env: dict[str, str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chalice_loop", *map(str, args)],
        cwd=PROJECT,
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def default_sigint() -> None:
    """In the child, before it runs: SIGINT as a terminal's foreground process has it.

    A job a non-interactive shell starts in the background (a CI runner may) inherits
    SIGINT ignored, and Python then never raises KeyboardInterrupt; the tests' SIGINT
    stands for a user's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """A long-running CLI process whose output is collected as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chalice_loop", *args],
            cwd=PROJECT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=default_sigint,
        )
        self.output = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.output += line

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(re.findall(pattern, self.output)) >= count:
                    return self.output
            if self.process.poll() is not None:
                self._reader.join(5)
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} (x{count}) in output:\n{self.output}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def interrupt(self, timeout: float = 15) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdin:
            self.process.stdin.close()
        self._reader.join(5)
        if self.process.stdout:
            self.process.stdout.close()

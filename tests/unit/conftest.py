"""The unit tier holds itself to its rule: no server, no network, no subprocess.

Asking for moto's server (``s3_endpoint`` and every fixture built on it: ``s3``,
``bucket``, ``app_module``...) or its child process fails the test, naming the tier it
belongs in. So does opening an internet socket (connecting or binding, to any address)
or starting a subprocess while the test runs: those calls raise :class:`NotAUnitTest`.
"""

import socket
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

MOVE = "move it to tests/integration (moto's server) or tests/e2e (processes, packaging)"


class NotAUnitTest(RuntimeError):
    """A unit test reached for the network or a process."""


def _refused(what: str, original: Callable[..., Any] | None = None) -> Callable[..., Any]:
    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        if original is not None and self.family not in (socket.AF_INET, socket.AF_INET6):
            return original(self, *args, **kwargs)  # a local (AF_UNIX) socket pair is fine
        raise NotAUnitTest(f"tests/unit {what}: {MOVE}")

    return refuse


@pytest.fixture(autouse=True)
def _no_network_no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    for method in ("connect", "connect_ex", "bind"):
        refuse = _refused(f"opens no socket ({method})", getattr(socket.socket, method))
        monkeypatch.setattr(socket.socket, method, refuse)
    # Popen's one way to start a program (run, call, check_output go through it).
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refused("starts no subprocess"))


@pytest.fixture(scope="session")
def s3_endpoint() -> None:
    pytest.fail(f"tests/unit runs with no server, yet this test asks for moto's: {MOVE}")


@pytest.fixture(scope="session")
def s3_child() -> None:
    pytest.fail(f"tests/unit runs with no server, yet this test asks for moto's child: {MOVE}")

"""The tool's unit tier holds itself to its rule: no server, no network, no subprocess.

Asking for a CLI process (``running``) fails the test, naming the tier it belongs in. So
does opening an internet socket (connecting or binding, to any address) or starting a
subprocess while the test runs: those calls raise :class:`NotAUnitTest`. (The app's
tests/unit/conftest.py holds its own tier the same way; the tool's tests import
nothing from the app's.)
"""

import socket
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

MOVE = "move it to tests/integration (the CLI, its servers) or tests/e2e (install, slice)"


class NotAUnitTest(RuntimeError):
    """A unit test reached for the network or a process."""


def _refused(what: str, original: Callable[..., Any] | None = None) -> Callable[..., Any]:
    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        if original is not None and self.family not in (socket.AF_INET, socket.AF_INET6):
            return original(self, *args, **kwargs)  # a local (AF_UNIX) socket pair is fine
        raise NotAUnitTest(f"chalice-loop/tests/unit {what}: {MOVE}")

    return refuse


@pytest.fixture(autouse=True)
def _no_network_no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    for method in ("connect", "connect_ex", "bind"):
        refuse = _refused(f"opens no socket ({method})", getattr(socket.socket, method))
        monkeypatch.setattr(socket.socket, method, refuse)
    # Popen's one way to start a program (run, call, check_output go through it).
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refused("starts no subprocess"))


@pytest.fixture
def running() -> None:
    pytest.fail(f"chalice-loop/tests/unit runs no process, yet this test asks for one: {MOVE}")

"""Fixtures of the tool's tests: CLI processes stopped at teardown."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loop_testing import Running


@pytest.fixture
def running() -> Iterator[Any]:
    """Starts CLI processes; every one is stopped at teardown."""
    started: list[Running] = []

    def start(*args: str | Path, env: dict[str, str], cwd: Path | None = None) -> Running:
        process = Running([str(a) for a in args], env, cwd)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()

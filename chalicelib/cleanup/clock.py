"""The time the cleanup reads and waits on, injectable so tests run on a fake clock."""

import time
from collections.abc import Collection
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds, for intervals only."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wait_any(self, futures: Collection[Future], timeout: float | None) -> set[Future]:
        """Wait until one of ``futures`` is done or ``timeout`` s pass; the done ones."""
        ...


class SystemClock:
    """``time.monotonic``, ``time.sleep`` and ``concurrent.futures.wait``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait_any(self, futures: Collection[Future], timeout: float | None) -> set[Future]:
        return wait(futures, timeout, FIRST_COMPLETED).done


SYSTEM_CLOCK = SystemClock()

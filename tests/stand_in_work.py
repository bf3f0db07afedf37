"""The template's tests' own work, standing in for ``chalicelib.work.perform_work``.

The tests of the plumbing (validation, the key scheme, retry-safe writes,
privileges, faults) must hold whatever work an adopter puts in, so they never
run the adopter's: in this process the ``work`` fixture (tests/conftest.py) puts
a :class:`StandInWork` in its place; a test that runs the app in another process
(Lambda's runtime client, the deployment zip) uses a copy of the project whose
``chalicelib/work.py`` is this file (:func:`install`).
"""

import shutil
import threading
from pathlib import Path
from typing import Any

from chalicelib.worker_event import WorkerEvent

MARK = "stand-in"


def perform_work(event: WorkerEvent) -> dict[str, Any]:
    """A result that shows the work received the validated event."""
    return {"work": MARK, "source_ip": event.source_ip}


_UNSET = object()


class StandInWork:
    """Records each event it is given and returns :func:`perform_work`'s result,
    or ``result`` once set (to anything, ``None`` included), or raises ``error``."""

    def __init__(self) -> None:
        self.events: list[WorkerEvent] = []
        self.result: Any = _UNSET
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def __call__(self, event: WorkerEvent) -> Any:
        with self._lock:
            self.events.append(event)
        if self.error is not None:
            raise self.error
        return perform_work(event) if self.result is _UNSET else self.result


def install(project: Path) -> Path:
    """Make this file the ``chalicelib/work.py`` of a copy of the project; return it."""
    shutil.copyfile(Path(__file__), project / "chalicelib" / "work.py")
    return project

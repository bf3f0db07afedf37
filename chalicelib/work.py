"""Your work: what the worker does with each validated event.

``perform_work`` is the one place to put it. It receives the validated event (a
:class:`~chalicelib.worker_event.WorkerEvent`) and returns a dict, which the
worker stores in the report under ``"result"``. The result must be JSON: dicts
with string keys, lists, strings, numbers, booleans and ``None``. If it raises,
or returns anything else, the invocation fails and no report is written.

See docs/adapting.md ("Put your work in").
"""

from typing import Any

from chalicelib.worker_event import WorkerEvent


def perform_work(event: WorkerEvent) -> dict[str, Any]:
    """The seed leaves the work empty ("perform work here"), and so does this
    default: it does nothing and returns an empty result."""
    return {}

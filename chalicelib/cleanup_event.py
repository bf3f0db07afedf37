"""The cleanup's options from its EventBridge event's ``detail``.

A scheduled event carries ``"detail": {}``. Invoked by hand, ``{"dry_run": true}``
reports what would be deleted and deletes nothing. Anything else is refused
before any request: a typo such as ``{"dry_rn": true}`` must not turn a dry
run into a real one.
"""

from typing import Any

from chalicelib.worker_event import InvalidEventError, shown

OPTIONS = ("dry_run",)


def dry_run_requested(detail: Any) -> bool:
    """``detail.dry_run`` (default false); raises :class:`InvalidEventError` on anything else."""
    if detail is None:
        return False
    if not isinstance(detail, dict):
        raise InvalidEventError("detail", f"expected a JSON object, got {type(detail).__name__}")
    unknown = sorted(set(detail) - set(OPTIONS))
    if unknown:
        raise InvalidEventError(
            "detail", f"unknown option {shown(unknown[0], 40)} (expected only {', '.join(OPTIONS)})"
        )
    dry_run = detail.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidEventError(
            "detail.dry_run", f"expected true or false, got {shown(dry_run, 40)}"
        )
    return dry_run

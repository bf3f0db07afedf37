"""The worker's custom event: ``{"source_ip", "time_start", "time_end"}``.

Every field is optional. Times are RFC 3339 with a zone and are stored
normalised to UTC with millisecond precision (``2018-02-21T15:00:43.511Z``);
``source_ip`` is an IPv4 or IPv6 address. Anything else is rejected with an
:class:`InvalidEventError` naming the field, before any work is done.
"""

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_EVENT_BYTES = 64 * 1024
# Lists and objects, counted from the event object itself (a valid event is 1 deep).
# Checked before anything recursive (json.dumps) sees the payload, so a deep one is
# refused the same way on every Python, whatever its recursion limit and C stack.
MAX_NESTING = 32
FIELDS = ("source_ip", "time_start", "time_end")

# RFC 3339 section 5.6 "date-time"; "T"/"Z" may be lowercase (section 5.6 note).
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt]"
    r"(?P<hms>\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?"
    r"(?P<zone>[Zz]|[+-]\d{2}:[0-5]\d)",
    re.ASCII,
)


class InvalidEventError(ValueError):
    """The event is not a valid worker event; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class WorkerEvent:
    source_ip: str | None = None
    time_start: datetime | None = None
    time_end: datetime | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "source_ip": self.source_ip,
            "time_start": format_time(self.time_start) if self.time_start else None,
            "time_end": format_time(self.time_end) if self.time_end else None,
        }


def shown(value: Any, limit: int = 60) -> str:
    """A short, single-line, escaped rendering of a bad value for messages."""
    text = json.dumps(value, ensure_ascii=True, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_time(field: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidEventError(
            field, f"expected an RFC 3339 time string, got {type(value).__name__}"
        )
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise InvalidEventError(
            field,
            f"not an RFC 3339 time with a zone (like 2018-02-21T15:00:43.511Z): {shown(value)}",
        )
    if match["hms"].endswith(":60"):
        raise InvalidEventError(field, f"leap seconds (:60) cannot be represented: {shown(value)}")
    frac = (match["frac"] or ".0")[1:7].ljust(6, "0")  # microseconds, truncated
    zone = match["zone"].upper()
    try:
        parsed = datetime.fromisoformat(
            f"{match['date']}T{match['hms']}.{frac}{'+00:00' if zone == 'Z' else zone}"
        )
        if parsed.utcoffset() is not None and abs(parsed.utcoffset()) >= timedelta(hours=24):
            raise ValueError("offset out of range")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidEventError(field, f"not a valid time ({exc}): {shown(value)}") from None


def format_time(value: datetime) -> str:
    """UTC, millisecond precision, ``Z`` suffix: ``2018-02-21T15:00:43.511Z``."""
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def parse_source_ip(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidEventError(
            "source_ip", f"expected an IP address string, got {type(value).__name__}"
        )
    if "%" in value:  # ipaddress accepts IPv6 zone ids ("fe80::1%<any text>")
        raise InvalidEventError(
            "source_ip", f"scoped IPv6 addresses (with a %zone) are not accepted: {shown(value)}"
        )
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidEventError(
            "source_ip", f"not an IPv4 or IPv6 address: {shown(value)}"
        ) from None


def nesting(value: Any, limit: int) -> int:
    """How many lists and objects deep ``value`` goes (a scalar is 0), walked without
    recursion; the walk stops at the first container deeper than ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            if level > limit:
                return level
            deepest = max(deepest, level)
            stack.extend(
                (child, level + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def parse_event(payload: Any) -> WorkerEvent:
    """Validate a raw invocation payload. ``None`` (an empty payload) means ``{}``."""
    if payload is None:
        return WorkerEvent()
    if not isinstance(payload, dict):
        raise InvalidEventError("event", f"expected a JSON object, got {type(payload).__name__}")
    if nesting(payload, MAX_NESTING) > MAX_NESTING:
        raise InvalidEventError("event", "payload is nested too deeply")
    size = len(json.dumps(payload, separators=(",", ":")).encode())
    if size > MAX_EVENT_BYTES:
        raise InvalidEventError(
            "event", f"payload is {size} bytes, over the {MAX_EVENT_BYTES}-byte limit"
        )
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        name = unknown[0]
        label = name if re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", name) else shown(name)
        raise InvalidEventError(label, f"unknown field (expected only {', '.join(FIELDS)})")
    parsers = {
        "source_ip": parse_source_ip,
        "time_start": lambda value: parse_time("time_start", value),
        "time_end": lambda value: parse_time("time_end", value),
    }
    return WorkerEvent(
        **{name: parsers[name](value) for name, value in payload.items() if value is not None}
    )

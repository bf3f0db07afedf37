"""Configuration read from the function's environment."""

import os
import re
from datetime import timedelta

_SECONDS = re.compile(r"\d+(?:\.\d+)?", re.ASCII)
# ISO 8601 durations in weeks, or days and time (P1D, PT1H30M, P1DT12H, PT90S).
_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W|(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?)",
    re.ASCII,
)
_CALENDAR = re.compile(r"P[^T]*[YM]", re.ASCII)  # years or months: no fixed length


class ConfigurationError(RuntimeError):
    """The function is deployed without a setting it needs, or with a bad one."""


def bucket_name() -> str:
    """The reports bucket, from ``BUCKET`` (set per stage in config.json)."""
    name = os.environ.get("BUCKET", "").strip()
    if not name:
        raise ConfigurationError(
            "BUCKET is not set: set environment_variables.BUCKET for this stage "
            "in .chalice/config.json (or export BUCKET when running locally)"
        )
    return name


def parse_duration(text: str) -> timedelta:
    """Seconds (``86400``) or an ISO 8601 duration (``PT1H``, ``P1D``, ``P2W``).

    Raises ``ValueError`` saying what is wrong. A non-zero duration must be at
    least one second, the resolution of S3's ``LastModified``.
    """
    value = text.strip().upper()
    match = _DURATION.fullmatch(value)
    if _SECONDS.fullmatch(value):
        duration = timedelta(seconds=float(value))
    elif match and any(match.groupdict().values()):
        parts = {k: float(v.replace(",", ".")) for k, v in match.groupdict(default="0").items()}
        duration = timedelta(**parts)
    elif _CALENDAR.match(value):
        raise ValueError(f"years and months have no fixed length, use days or weeks: {text!r}")
    else:
        raise ValueError(f"expected seconds or an ISO 8601 duration like PT1H, P1D, P2W: {text!r}")
    if timedelta(0) < duration < timedelta(seconds=1):
        raise ValueError(f"must be 0 or at least 1 second (S3 times are to the second): {text!r}")
    return duration


def cleanup_max_age() -> timedelta:
    """``CLEANUP_MAX_AGE``: reports younger than this are kept; unset or 0 deletes them all."""
    text = os.environ.get("CLEANUP_MAX_AGE", "")
    if not text.strip():
        return timedelta(0)
    try:
        return parse_duration(text)
    except (ValueError, OverflowError) as exc:
        raise ConfigurationError(f"CLEANUP_MAX_AGE: {exc}") from None

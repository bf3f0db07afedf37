"""moto's responses, with their timestamps read without dateutil.

moto 5.2.5 turns every timestamp it answers with (each ``LastModified`` of a
``ListObjectsV2`` page, for one) back into a ``datetime`` through botocore's
``parse_to_aware_datetime``, which parses the ISO 8601 string moto stored with
dateutil's general parser. That was a third of the server's time on a
1,000-key page. :func:`read_iso_timestamps_directly` reads ISO 8601 strings with
``datetime.fromisoformat`` and hands everything else to botocore as before;
the answers are the same to the character.
"""

from datetime import UTC, datetime
from typing import Any


def read_iso_timestamps_directly() -> None:
    """Patch moto's response serializer (idempotent); call before its server serves."""
    import moto.core.serialize as serialize

    current = serialize.parse_to_aware_datetime
    general = getattr(current, "general", current)

    def aware_datetime(value: Any) -> datetime:
        if not isinstance(value, str) or _is_number(value):
            return general(value)  # botocore reads a number as epoch seconds
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return general(value)
        # As botocore: no zone means UTC; any other zone is converted to UTC.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

    aware_datetime.general = general  # type: ignore[attr-defined]
    serialize.parse_to_aware_datetime = aware_datetime


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True

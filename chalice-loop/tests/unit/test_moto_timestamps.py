"""The embedded endpoint formats every timestamp exactly as moto's own code does."""

from datetime import UTC, datetime, timedelta, timezone

import moto.core.serialize as serialize
import pytest
from botocore.utils import parse_to_aware_datetime
from chalice_loop.moto_timestamps import read_iso_timestamps_directly

FORMATS = ["iso8601", "iso8601_zeroed", "rfc822", "unixtimestamp"]
VALUES = [
    "2026-12-02T04:14:42.000Z",  # as moto stores an object's LastModified
    "2026-12-02T04:14:42Z",
    "2026-12-02T04:14:42.123456Z",
    "2026-12-02T04:14:42.5+02:00",
    "2026-12-02T04:14:42",  # no zone: UTC, as botocore reads it
    "2026-12-02",
    "Wed, 02 Dec 2026 04:14:42 GMT",  # not ISO 8601: botocore's general parser
    "1796184882",
    "20261202",  # digits: epoch seconds to botocore, a date to fromisoformat
    1796184882,
    1796184882.25,
    datetime(2026, 12, 2, 4, 14, 42, 7000, tzinfo=UTC),
    datetime(2026, 12, 2, 4, 14, 42, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 12, 2, 4, 14, 42),
]


@pytest.fixture
def patched():
    read_iso_timestamps_directly()
    read_iso_timestamps_directly()  # idempotent: patching twice wraps nothing twice
    return serialize.TimestampSerializer("iso8601")


@pytest.mark.parametrize("value", VALUES, ids=repr)
@pytest.mark.parametrize("form", FORMATS)
def test_each_timestamp_is_answered_as_moto_answers_it(patched, value, form):
    read = serialize.parse_to_aware_datetime
    assert read.general is parse_to_aware_datetime
    try:
        serialize.parse_to_aware_datetime = parse_to_aware_datetime
        expected = patched._convert_timestamp_to_str(value, form)
    finally:
        serialize.parse_to_aware_datetime = read
    assert patched._convert_timestamp_to_str(value, form) == expected
    assert read(value) == parse_to_aware_datetime(value)


def test_what_is_not_a_timestamp_is_refused_as_botocore_refuses_it(patched):
    for value in ("not a time", "2026-13-45T00:00:00Z"):
        with pytest.raises(ValueError) as theirs:
            parse_to_aware_datetime(value)
        with pytest.raises(ValueError) as ours:
            serialize.parse_to_aware_datetime(value)
        assert str(ours.value) == str(theirs.value)

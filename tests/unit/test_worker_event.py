"""Parsing the worker event: RFC 3339 times, IP addresses, limits."""

from datetime import UTC, datetime

import pytest

from chalicelib.worker_event import InvalidEventError, format_time, parse_event, parse_time


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2018-02-21T15:00:43.511Z", "2018-02-21T15:00:43.511Z"),
        ("2018-02-21t15:00:43.511z", "2018-02-21T15:00:43.511Z"),
        ("2018-02-21T20:45:43+05:45", "2018-02-21T15:00:43.000Z"),
        ("2018-02-21T15:00:43.123456789-00:00", "2018-02-21T15:00:43.123Z"),
        ("1969-07-20T20:17:40Z", "1969-07-20T20:17:40.000Z"),
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
    ],
)
def test_rfc3339_times_parse_and_normalise_to_utc_milliseconds(text, utc):
    assert format_time(parse_time("time_start", text)) == utc


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2016-12-31T23:59:60Z", "leap seconds"),
        ("9999-12-31T23:00:00-01:00", "not a valid time"),  # year 10000 in UTC
        ("0001-01-01T00:00:00+01:00", "not a valid time"),  # year 0 in UTC
        ("2018-02-21 15:00:43Z", "not an RFC 3339"),
        ("2018-02-21T15:00Z", "not an RFC 3339"),
        ("2018-02-21T15:00:43+0545", "not an RFC 3339"),
        ("2018-02-21T15:00:43+25:00", "not a valid time"),
        ("\uff12\uff1018-02-21T15:00:43Z", "not an RFC 3339"),  # full-width digits
    ],
)
def test_invalid_times_name_the_field(text, problem):
    with pytest.raises(InvalidEventError) as raised:
        parse_time("time_end", text)
    assert raised.value.field == "time_end"
    assert problem in str(raised.value)


def test_event_round_trips_and_defaults():
    event = parse_event({"source_ip": "192.0.2.1", "time_start": "2018-02-21T15:00:43.511Z"})
    assert event.time_start == datetime(2018, 2, 21, 15, 0, 43, 511000, tzinfo=UTC)
    assert parse_event(None) == parse_event({})
    assert event.to_json()["time_end"] is None


def test_hostile_unknown_field_names_are_escaped_in_the_message():
    with pytest.raises(InvalidEventError) as raised:
        parse_event({"evil\n\x1b[31mfield": 1})
    message = str(raised.value)
    assert "\n" not in message and "\x1b" not in message
    assert "unknown field" in message


def test_bad_values_are_shown_escaped_and_short():
    with pytest.raises(InvalidEventError) as raised:
        parse_event({"source_ip": "x\n" * 500})
    message = str(raised.value)
    assert "\n" not in message and len(message) < 200

"""Hostile input, fuzzed through the real worker handler against the local S3.

For any payload, the worker either stores a report whose fields round-trip, or
raises ``InvalidEventError`` naming a field, and then writes nothing. What it
should do is decided by an oracle written here from RFC 3339 and docs/worker.md,
independently of ``chalicelib/worker_event.py``: it must accept exactly what
the oracle accepts and store exactly what the oracle computes.

Hypothesis runs derandomized, with no example database and no deadline, so
timing cannot flake. Derandomized is not "the same examples on every run":
Hypothesis (6.170 here) also draws literals it finds in the project's loaded
modules, so the examples change with the code and with which test modules a
session imports. The totals are therefore shown as measured, not compared.
"""

import ipaddress
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.worker_event import InvalidEventError
from tests.reliability_figures import record_figures
from tests.report_schema import check_report

FIELDS = ("source_ip", "time_start", "time_end")
MAX_EVENT_BYTES = 64 * 1024
MAX_NESTING = 32  # lists and objects, the event object included


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --- the oracle -------------------------------------------------------------------------

# RFC 3339 section 5.6: date-time = full-date "T" full-time; "T" and "Z" may be lowercase.
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def expected_time(text: str) -> str | None:
    """The stored form (UTC, milliseconds truncated, Z) of a valid time; None if invalid.

    Leap seconds are valid RFC 3339 but cannot be represented, so they are
    rejected (docs/worker.md); so are times outside years 1-9999 once in UTC.
    """
    m = _DATE_TIME.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    offset_hours, offset_minutes = int(m[9] or 0), int(m[10] or 0)
    if hour > 23 or minute > 59 or second > 59 or offset_hours > 23 or offset_minutes > 59:
        return None
    offset = timedelta(hours=offset_hours, minutes=offset_minutes) * (-1 if m[8] == "-" else 1)
    try:
        utc = datetime(year, month, day, hour, minute, second) - offset
    except (ValueError, OverflowError):
        return None
    millis = int((m[7] or "0")[:3].ljust(3, "0"))
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{millis:03d}Z"
    )


def verdict(payload: Any) -> tuple[dict[str, Any] | None, set[str]]:
    """The report fields (time_end aside) a payload must produce, or None and the
    names the refusal may give (any culprit, when several fields are bad)."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        return None, {"event"}
    if depth(payload) > MAX_NESTING:
        return None, {"event"}  # "event: payload is nested too deeply"
    size = len(json.dumps(payload, separators=(",", ":")).encode())
    if size > MAX_EVENT_BYTES:
        return None, {"event"}
    unknown = set(payload) - set(FIELDS)
    if unknown:
        return None, unknown | {json.dumps(k, ensure_ascii=True) for k in unknown}
    report: dict[str, Any] = {}
    for name in FIELDS:
        value = payload.get(name)
        if value is None:
            report[name] = None
        elif not isinstance(value, str):
            report[name] = "invalid"
        elif name == "source_ip":
            try:
                report[name] = "invalid" if "%" in value else str(ipaddress.ip_address(value))
            except ValueError:
                report[name] = "invalid"
        else:
            report[name] = expected_time(value) or "invalid"
    culprits = {name for name, value in report.items() if value == "invalid"}
    return (None, culprits) if culprits else (report, set())


def depth(value: Any) -> int:
    """How many lists and objects nest in a JSON value ({} is 1), without recursing."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, level + 1)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


# --- the property -----------------------------------------------------------------------


class Worker:
    """Invokes the real handler; checks one payload against the oracle."""

    def __init__(self, lambda_handler: Any, s3: Any, bucket: str, s3_requests: Any) -> None:
        self.invoke, self.s3, self.bucket, self.requests = lambda_handler, s3, bucket, s3_requests
        self.stored = self.refused = self.writes_on_error = 0

    def check(self, payload: Any) -> None:
        expected, culprits = verdict(payload)
        puts_before = self.requests["PutObject"]
        try:
            result = self.invoke("worker", payload)
        except InvalidEventError as exc:
            assert expected is None, f"refused a valid event: {exc}"
            self.writes_on_error += self.requests["PutObject"] - puts_before
            assert self.requests["PutObject"] == puts_before, "wrote on error"
            assert exc.field in culprits or (
                exc.field.endswith("...") and any(c.startswith(exc.field[:-3]) for c in culprits)
            ), f"{exc} does not name one of {culprits}"
            assert str(exc).startswith(f"{exc.field}: ") and "\n" not in str(exc)
            self.refused += 1
            return
        assert expected is not None, f"accepted an invalid event: {payload!r}"
        assert self.requests["PutObject"] == puts_before + 1
        report = result["report"]
        assert {k: report[k] for k in ("source_ip", "time_start")} == {
            k: expected[k] for k in ("source_ip", "time_start")
        }
        stored = json.loads(
            self.s3.get_object(Bucket=self.bucket, Key=result["key"])["Body"].read()
        )
        assert stored == report
        check_report(stored)  # read back as a report: normalised fields, the work's result
        assert stored["result"]["source_ip"] == expected["source_ip"]  # what the work got
        self.stored += 1


@pytest.fixture
def worker(lambda_handler, s3, bucket, s3_requests, fuzz_figures) -> Iterator[Worker]:
    worker = Worker(lambda_handler, s3, bucket, s3_requests)
    yield worker
    fuzz_figures["examples stored"] += worker.stored
    fuzz_figures["examples refused"] += worker.refused
    fuzz_figures["writes on error"] += worker.writes_on_error


def as_delivered(value: Any) -> Any:
    """What the Lambda runtime hands the handler: the value through JSON."""
    return json.loads(json.dumps(value))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(FIELDS) | st.text(max_size=12)


@pytest.mark.slow
@fuzz_settings(250)
@given(payload=json_values | st.dictionaries(field_names, json_values, max_size=4))
def test_arbitrary_json_is_stored_faithfully_or_refused_naming_a_field(worker, payload):
    worker.check(as_delivered(payload))


@st.composite
def rfc3339_times(draw: Any) -> str:
    """A valid time in any RFC 3339 spelling: offsets, lowercase, 0-9 fraction digits."""
    utc = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    minutes = draw(st.integers(-(23 * 60 + 59), 23 * 60 + 59))
    local = utc.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=minutes)))
    digits = draw(st.integers(0, 9))
    fraction = f"{local.microsecond:06d}{draw(st.integers(0, 999)):03d}"[:digits]
    if minutes:
        sign = "-" if minutes < 0 else "+"
        zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    else:
        zone = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"]))
    return (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}{draw(st.sampled_from('Tt'))}"
        f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
        f"{'.' if digits else ''}{fraction}{zone}"
    )


ip_addresses = st.ip_addresses().map(str) | st.ip_addresses(v=6).map(lambda ip: ip.exploded.upper())
valid_events = st.fixed_dictionaries(
    {},
    optional={
        "source_ip": ip_addresses,
        "time_start": rfc3339_times(),
        "time_end": rfc3339_times(),
    },
)


@st.composite
def near_valid_events(draw: Any) -> Any:
    """A valid event with exactly one field mutated (or added, or removed)."""
    event = draw(valid_events)
    name = draw(st.sampled_from(FIELDS))
    value = event.get(name)
    how = draw(st.sampled_from(["drop", "null", "json", "edit", "case", "space", "typo", "whole"]))
    if how == "drop":
        event.pop(name, None)
    elif how == "null":
        event[name] = None
    elif how == "json":
        event[name] = draw(json_values)
    elif how in ("edit", "case", "space") and isinstance(value, str) and value:
        i = draw(st.integers(0, len(value) - 1))
        if how == "edit":
            char = draw(st.characters())
            edit = draw(st.sampled_from(["delete", "insert", "replace"]))
            tail = value[i + 1 :] if edit != "insert" else value[i:]
            event[name] = value[:i] + ("" if edit == "delete" else char) + tail
        elif how == "case":
            event[name] = value[:i] + value[i].swapcase() + value[i + 1 :]
        else:
            event[name] = value[:i] + draw(st.sampled_from([" ", "\t", "\n", "\u00a0"])) + value[i:]
    elif how == "typo":
        event[name[:-1] + draw(st.sampled_from("stx_"))] = value if value is not None else "x"
    elif how == "whole":
        return draw(st.sampled_from([[event], json.dumps(event), 0, True, ""]))
    return event


@pytest.mark.slow
@fuzz_settings(400)
@given(payload=near_valid_events())
def test_near_valid_events_are_stored_faithfully_or_refused_naming_the_field(worker, payload):
    worker.check(as_delivered(payload))


@pytest.mark.slow
@fuzz_settings(150)
@given(event=valid_events)
def test_every_valid_event_is_stored(worker, event):
    assert verdict(event)[0] is not None  # the generator and the oracle agree
    worker.check(as_delivered(event))
    assert worker.refused == 0


# --- RFC 3339 corners, by name ----------------------------------------------------------

CORNERS = [
    ("2018-02-21T20:45:43+05:45", "2018-02-21T15:00:43.000Z"),  # Nepal
    ("2018-02-21T05:30:00.5-09:30", "2018-02-21T15:00:00.500Z"),  # Marquesas
    ("2018-02-21t15:00:43.511z", "2018-02-21T15:00:43.511Z"),  # lowercase t and z
    ("2018-02-21T15:00:43.123456789-00:00", "2018-02-21T15:00:43.123Z"),  # beyond microseconds
    ("1969-07-20T20:17:40Z", "1969-07-20T20:17:40.000Z"),  # before 1970
    ("1900-01-01T00:00:00-00:30", "1900-01-01T00:30:00.000Z"),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
    ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),  # year 9999
    ("2020-02-29T12:00:00Z", "2020-02-29T12:00:00.000Z"),  # leap day
    ("2016-12-31T23:59:60Z", None),  # leap second: valid RFC 3339, not representable
    ("2016-12-31T23:59:60.5+01:00", None),
    ("9999-12-31T23:59:59.999-00:01", None),  # year 10000 once in UTC
    ("0001-01-01T00:00:00+00:01", None),  # year 0 once in UTC
    ("2019-02-29T12:00:00Z", None),
    ("2018-02-21T15:00:43+05:60", None),  # offset minute 60
    ("2018-02-21T15:00:43+24:00", None),
    ("2018-02-21T24:00:00Z", None),
    ("2018-02-21T15:00:43,5Z", None),  # ISO 8601's comma is not RFC 3339
    ("2018-02-21T15:00:43Z ", None),
    ("2018-02-21T15:00:43.Z", None),
    ("20180221T150043Z", None),  # ISO 8601 basic format
]


@pytest.mark.parametrize(("text", "stored"), CORNERS)
def test_rfc3339_corners_through_the_worker(worker, text, stored):
    assert expected_time(text) == stored  # the oracle itself, pinned
    worker.check({"time_start": text})
    if stored is None:
        with pytest.raises(InvalidEventError, match=r"^time_start: "):
            worker.invoke("worker", {"time_start": text})


def test_leap_seconds_are_refused_with_a_clear_message(worker):
    with pytest.raises(InvalidEventError) as raised:
        worker.invoke("worker", {"time_end": "2016-12-31T23:59:60Z"})
    assert raised.value.field == "time_end"
    assert "leap seconds (:60) cannot be represented" in str(raised.value)


@pytest.mark.parametrize(
    "levels",
    [
        MAX_NESTING - 1,  # 32 deep in all: refused for its field, not for its depth
        MAX_NESTING,  # 33 deep: the first depth refused as such
        pytest.param(None, id="deepest-json.loads-accepts"),
    ],
)
def test_a_deeply_nested_payload_is_refused_with_a_clear_message(worker, levels):
    # The depth is checked before anything recursive sees the payload, so the same
    # message comes on every Python. The deepest payload json.loads accepts here is
    # what used to overflow json.dumps in the size check on 3.11 (not on 3.12+).
    if levels is None:
        levels = max(d for d in range(100, sys.getrecursionlimit()) if nested(d) is not None)
    payload = nested(levels)
    assert depth(payload) == levels + 1  # the event object, then the lists
    with pytest.raises(InvalidEventError) as raised:
        worker.invoke("worker", payload)
    if levels + 1 <= MAX_NESTING:
        assert str(raised.value) == "source_ip: expected an IP address string, got list"
    else:
        assert str(raised.value) == "event: payload is nested too deeply"
    worker.check(payload)  # and the oracle agrees; nothing written


def nested(levels: int) -> Any:
    """``{"source_ip": [[...]]}`` with ``levels`` lists, as json.loads decodes it (or None)."""
    try:
        return json.loads('{"source_ip": ' + "[" * levels + "]" * levels + "}")
    except RecursionError:
        return None


@pytest.fixture(scope="module", autouse=True)
def fuzz_figures(request: pytest.FixtureRequest) -> Any:
    """Totals over the module, for the docs' table: recorded only when every test
    of the module ran (a -k selection would record a part as the whole)."""
    totals = {"examples stored": 0, "examples refused": 0, "writes on error": 0}
    yield totals
    selected = {item.nodeid for item in request.session.items}
    if all(item.nodeid in selected for item in request.node.collect()):
        writes = totals.pop("writes on error")
        record_figures("fuzz: hostile and near-valid events", {"writes on error": writes}, totals)

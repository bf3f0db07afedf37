"""The cleanup's settings and its event, read with no server: CLEANUP_MAX_AGE as seconds or an
ISO 8601 duration (a bad one refused naming the problem), and the scheduled event the
schedule sends."""

from datetime import timedelta

import pytest
from chalice_loop import rule_name

from chalicelib.settings import parse_duration
from tests.conftest import (
    APP_NAME,
    SCHEDULED_EVENT,
    STAGE,
)  # fmt: skip


def test_scheduled_event_payload_is_eventbridge_shaped():
    assert set(SCHEDULED_EVENT) == {
        "version", "id", "detail-type", "source", "account", "time", "region", "resources",
        "detail",
    }  # fmt: skip
    assert SCHEDULED_EVENT["detail-type"] == "Scheduled Event"
    assert SCHEDULED_EVENT["source"] == "aws.events"
    assert SCHEDULED_EVENT["resources"][0].endswith(
        f":rule/{rule_name(APP_NAME, STAGE, 'cleanup')}"
    )
    assert SCHEDULED_EVENT["detail"] == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("86400", timedelta(days=1)),
        ("90.5", timedelta(seconds=90.5)),
        ("PT1H", timedelta(hours=1)),
        ("pt90m", timedelta(minutes=90)),
        ("P1D", timedelta(days=1)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("P2W", timedelta(weeks=2)),
        ("PT1.5S", timedelta(seconds=1.5)),
        (" P7D ", timedelta(days=7)),
    ],
)
def test_max_age_accepts_seconds_and_iso_8601_durations(text, expected):
    assert parse_duration(text) == expected

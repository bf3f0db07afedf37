"""Report keys, with no server: ``reports/<UTC day of time_end>/<request id>.json``, one per
request id (a retried invocation overwrites its own report), and a request id can never
steer a key out of the reports prefix."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib.reports import REPORTS_PREFIX, report_key

REQUEST_ID = "8f507cfc-3f6a-4a51-9c4e-1a2b3c4d5e6f"


def test_the_key_is_the_utc_day_of_time_end_and_the_request_id():
    end = datetime(2026, 11, 30, 17, 24, 49, 120000, tzinfo=UTC)
    assert report_key(REQUEST_ID, end) == f"reports/2026-11-30/{REQUEST_ID}.json"
    assert report_key(REQUEST_ID, end).startswith(REPORTS_PREFIX)


def test_the_day_is_utcs_whatever_zone_time_end_is_given_in():
    # 23:30 on 30 November at UTC-5 is 04:30 on 1 December in UTC.
    end = datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert report_key(REQUEST_ID, end) == f"reports/2026-12-01/{REQUEST_ID}.json"


def test_a_retry_with_the_same_request_id_gets_the_same_key_another_id_another():
    end = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert report_key(REQUEST_ID, end) == report_key(REQUEST_ID, end + timedelta(minutes=5))
    assert report_key(REQUEST_ID, end) != report_key(REQUEST_ID.replace("8", "9"), end)


@pytest.mark.parametrize("request_id", ["../x", "a/b", "a%2Fb", "a\nb", "", "x" * 65])
def test_a_report_key_never_leaves_the_reports_prefix(request_id):
    # The key's only inputs are Lambda's request id and the clock; the id is checked.
    with pytest.raises(ValueError, match="unexpected Lambda request id"):
        report_key(request_id, datetime.now(UTC))

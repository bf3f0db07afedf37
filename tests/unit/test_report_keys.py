"""Report keys, with no server: a request id can never steer a key out of the reports prefix."""

from datetime import UTC, datetime

import pytest

from chalicelib.reports import report_key


@pytest.mark.parametrize("request_id", ["../x", "a/b", "a%2Fb", "a\nb", "", "x" * 65])
def test_a_report_key_never_leaves_the_reports_prefix(request_id):
    # The key's only inputs are Lambda's request id and the clock; the id is checked.
    with pytest.raises(ValueError, match="unexpected Lambda request id"):
        report_key(request_id, datetime.now(UTC))

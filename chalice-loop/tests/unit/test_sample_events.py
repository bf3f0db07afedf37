"""Sample events: what `invoke NAME` sends an event-source handler given no payload,
built from the handler's declaration, accepted by chalice's event classes, and, for
EventBridge, matched by moto's pattern matcher (in-process; `invoke` sending one:
tests/integration/test_invoke_samples.py)."""

import pytest
from chalice import Chalice
from chalice_loop import LocalLambda
from chalice_loop.lambda_events import NoSampleError
from loop_testing import chalice_project
from moto.events.models import EventPattern
from sample_apps import PATTERNS, sample, sources_app


@pytest.fixture(scope="module")
def app() -> Chalice:
    return sources_app()


def test_s3_samples_name_the_bucket_a_key_passing_the_filters_and_the_event_type(app, tmp_path):
    local = LocalLambda(app, "dev", str(chalice_project(tmp_path / "p", "", {"version": "2.0",
                        "app_name": "samples", "stages": {"dev": {}}})))  # fmt: skip
    upload = local.call("on_upload", sample(app, "on_upload"))
    assert upload["bucket"] == "uploads"
    assert upload["key"].startswith("incoming/") and upload["key"].endswith(".csv")
    assert local.call("on_delete", sample(app, "on_delete")) == "ObjectRemoved:Delete"
    orders = local.call("on_order", sample(app, "on_order"))
    assert orders == [("{}", "arn:aws:sqs:us-east-1:123456789012:orders")]
    alert = sample(app, "on_alert")
    assert alert["Records"][0]["Sns"]["TopicArn"] == "arn:aws:sns:us-east-1:123456789012:alerts"
    assert local.call("on_alert", alert) == {"message": "{}", "subject": "chalice-loop sample"}
    assert local.call("hourly", sample(app, "hourly")) == "Scheduled Event"
    assert sample(app, "plain") == {}  # a lambda_function still gets {}


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_eventbridge_samples_match_their_pattern_as_moto_matches(app, name):
    pattern = PATTERNS[name]
    event = sample(app, f"cw_{name.replace('-', '_')}")
    assert EventPattern(None, pattern).matches_event(event), event
    assert event["detail-type"] and event["source"] and event["account"]


def test_a_pattern_no_event_can_match_says_so(app):
    impossible = Chalice(app_name="samples")

    @impossible.on_cw_event({"detail": {"n": [{"numeric": [">", 5, "<", 3]}]}}, name="never")
    def never(event):  # pragma: no cover
        return None

    with pytest.raises(NoSampleError, match="give one with --payload"):
        sample(impossible, "never")

"""The daily cleanup: paginated listing, 1,000-key batches, failures surfaced."""

import json
import math

import pytest
from botocore.stub import Stubber

from chalicelib.cleanup import CleanupError, empty_bucket
from tests.conftest import PROJECT, object_keys, seed_objects

SCHEDULED_EVENT = json.loads((PROJECT / "events" / "scheduled.json").read_text())


def test_scheduled_event_payload_is_eventbridge_shaped():
    assert set(SCHEDULED_EVENT) == {
        "version", "id", "detail-type", "source", "account", "time", "region", "resources",
        "detail",
    }  # fmt: skip
    assert SCHEDULED_EVENT["detail-type"] == "Scheduled Event"
    assert SCHEDULED_EVENT["source"] == "aws.events"
    assert SCHEDULED_EVENT["resources"][0].endswith(":rule/worker-functions-dev-cleanup-event")


def test_cleanup_receives_the_payload_as_a_cloudwatch_event(app_module, chalice_client, bucket):
    seen = []
    handler = app_module.app.handler_map["cleanup"]
    original = handler.func

    def spy(event):
        seen.append(event)
        return original(event)

    handler.func = spy
    try:
        chalice_client.lambda_.invoke("cleanup", SCHEDULED_EVENT)
    finally:
        handler.func = original
    event = seen[0]
    assert event.detail_type == "Scheduled Event"
    assert event.resources == SCHEDULED_EVENT["resources"]
    assert event.context.function_name == "cleanup"


def test_cleanup_of_an_empty_bucket(chalice_client, bucket, s3_requests):
    summary = chalice_client.lambda_.invoke("cleanup", SCHEDULED_EVENT).payload
    assert summary["deleted"] == 0 and summary["failed"] == 0
    assert summary["elapsed_ms"] >= 0
    assert dict(s3_requests) == {"ListObjectsV2": 1}


@pytest.mark.parametrize("count", [999, 1000, 2345])
def test_cleanup_costs_two_requests_per_started_thousand(
    chalice_client, s3, bucket, s3_requests, count
):
    seed_objects(bucket, count)
    summary = chalice_client.lambda_.invoke("cleanup", SCHEDULED_EVENT).payload
    assert summary["deleted"] == count and summary["failed"] == 0
    assert object_keys(s3, bucket) == []
    batches = math.ceil(count / 1000)
    assert s3_requests["DeleteObjects"] == batches
    assert s3_requests["ListObjectsV2"] == batches
    assert sum(s3_requests.values()) == 2 * batches


def test_listing_errors_fail_the_cleanup(chalice_client, s3, s3_requests):
    # The stage's bucket does not exist: ListObjectsV2 answers NoSuchBucket.
    with pytest.raises(CleanupError, match="listing s3://worker-functions-reports-dev failed"):
        chalice_client.lambda_.invoke("cleanup", SCHEDULED_EVENT)


def page(keys):
    return {"Contents": [{"Key": k} for k in keys], "KeyCount": len(keys)}


def test_per_key_delete_errors_are_collected_across_every_batch(app_module):
    # moto never reports per-key errors for plain-key deletes, so the two
    # DeleteObjects answers are stubbed here (the fault proxy tests cover the
    # same over HTTP). The stub also checks each batch's exact request.
    s3 = app_module.make_client()
    first, second = [f"a/{i}" for i in range(1000)], [f"b/{i}" for i in range(7)]
    errors = [
        {"Key": f"a/{i}", "Code": "AccessDenied", "Message": "Access Denied"} for i in range(6)
    ]
    with Stubber(s3) as stub:
        stub.add_response(
            "list_objects_v2",
            {**page(first), "IsTruncated": True, "NextContinuationToken": "t"},
            {"Bucket": "b"},
        )
        stub.add_response(
            "delete_objects",
            {"Errors": errors},
            {"Bucket": "b", "Delete": {"Objects": [{"Key": k} for k in first], "Quiet": True}},
        )
        stub.add_response(
            "list_objects_v2", {**page(second), "IsTruncated": False},
            {"Bucket": "b", "ContinuationToken": "t"},
        )  # fmt: skip
        stub.add_response(
            "delete_objects",
            {"Errors": [{"Key": "b/3", "Code": "InternalError", "Message": "try again"}]},
            {"Bucket": "b", "Delete": {"Objects": [{"Key": k} for k in second], "Quiet": True}},
        )
        with pytest.raises(CleanupError) as raised:
            empty_bucket(s3, "b")
        stub.assert_no_pending_responses()
    message = str(raised.value)
    assert message.startswith("7 objects could not be deleted from s3://b (1000 deleted): ")
    assert '"a/0" (AccessDenied: Access Denied)' in message
    assert "and 2 more" in message
    assert raised.value.result.summary()["failed"] == 7
    assert [f.key for f in raised.value.result.failures][-1] == "b/3"

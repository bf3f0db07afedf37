"""`invoke NAME` with no payload, in a subprocess: it sends the handler's sample event and
says so."""

import json
from pathlib import Path

import pytest
from chalice import Chalice
from chalice_loop.handlers import app_handlers, find
from chalice_loop.lambda_events import sample_event
from loop_testing import chalice_project, cli

PATTERNS = {
    "numeric": {"detail": {"amount": [{"numeric": [">", 10, "<=", 20]}]}},
    "anything-but": {"detail": {"env": [{"anything-but": ["test", "dev"]}]}},
    "anything-but-number": {"detail": {"code": [{"anything-but": [1, 2]}]}},
    "exists": {"detail": {"id": [{"exists": True}], "error": [{"exists": False}]}},
    "prefix-suffix": {"source": [{"prefix": "com.shop"}], "detail-type": [{"suffix": "Placed"}]},
    "ignore-case": {"detail": {"state": [{"equals-ignore-case": "READY"}]}},
    "wildcard": {"detail": {"path": [{"wildcard": "orders/*/paid"}]}},
    "cidr": {"detail": {"ip": [{"cidr": "10.0.0.0/24"}]}},
    "or": {"$or": [{"detail": {"a": [1]}}, {"detail": {"b": [2]}}]},
    "values": {"source": ["aws.s3"], "resources": ["arn:aws:s3:::bucket"]},
}


def sources_app() -> Chalice:
    app = Chalice(app_name="samples")

    @app.on_s3_event(bucket="uploads", prefix="incoming/", suffix=".csv", name="on_upload")
    def on_upload(event):
        return {"bucket": event.bucket, "key": event.key}

    @app.on_s3_event(bucket="uploads", events=["s3:ObjectRemoved:*"], name="on_delete")
    def on_delete(event):
        return event.to_dict()["Records"][0]["eventName"]

    @app.on_sqs_message(queue="orders", batch_size=5, name="on_order")
    def on_order(event):
        return [(r.body, r.to_dict()["eventSourceARN"]) for r in event]

    @app.on_sns_message(topic="arn:aws:sns:us-east-1:123456789012:alerts", name="on_alert")
    def on_alert(event):
        return {"message": event.message, "subject": event.subject}

    @app.schedule("rate(1 hour)", name="hourly")
    def hourly(event):
        return event.to_dict()["detail-type"]

    for name, pattern in PATTERNS.items():

        @app.on_cw_event(pattern, name=f"cw_{name.replace('-', '_')}")
        def on_event(event):
            return event.to_dict()

    @app.lambda_function(name="plain")
    def plain(event, context):
        return event

    return app


@pytest.fixture(scope="module")
def app() -> Chalice:
    return sources_app()


def sample(app: Chalice, name: str) -> object:
    handler = find(app_handlers(app), name)
    assert handler is not None
    return sample_event(handler, "samples", "dev", "us-east-1")


APP = """
from chalice import Chalice

app = Chalice(app_name="samples")


@app.on_s3_event(bucket="uploads", prefix="incoming/", suffix=".csv", name="on_upload")
def on_upload(event):
    return {"bucket": event.bucket, "key": event.key}
"""


def test_invoke_without_a_payload_sends_the_sample_and_says_so(tmp_path: Path):
    config = {"version": "2.0", "app_name": "samples", "stages": {"dev": {}}}
    project = chalice_project(tmp_path / "samples", APP, config)
    done = cli("--project-dir", project, "invoke", "on_upload")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "bucket": "uploads",
        "key": "incoming/chalice-loop-sample.csv",
    }
    assert (
        "(no payload: on_upload gets a sample ObjectCreated:Put event for "
        "s3://uploads/incoming/chalice-loop-sample.csv)"
    ) in done.stderr
    given = cli("--project-dir", project, "invoke", "on_upload", "--payload", "{}")
    assert given.returncode == 1  # the payload as given: chalice's S3Event needs Records
    assert json.loads(given.stdout)["errorType"] == "KeyError"

"""Apps the tool's tests share between tiers: ``sources_app``, one handler of each event
source and an EventBridge handler per pattern operator (tests/unit/test_sample_events.py
in-process, tests/integration/test_invoke_samples.py through `invoke`); ``TINY_APP``, functions
that sleep past their timeout, read their context and schedules (tests/unit/test_runner.py,
tests/integration/test_cli.py)."""

from chalice import Chalice
from chalice_loop.handlers import app_handlers, find
from chalice_loop.lambda_events import sample_event

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


def sample(app: Chalice, name: str) -> object:
    handler = find(app_handlers(app), name)
    assert handler is not None
    return sample_event(handler, "samples", "dev", "us-east-1")


TINY_APP = """
import os
import time

from chalice import Chalice, Cron

app = Chalice(app_name="tiny")


@app.lambda_function(name="sleepy")
def sleepy(event, context):
    app.log.error("going to sleep")
    time.sleep(30)  # far past the 1 s lambda_timeout
    return "woke up"


@app.lambda_function(name="clock")
def clock(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    second = context.get_remaining_time_in_millis()
    return {"first": first, "second": second, "greeting": os.environ.get("GREETING"),
            "event": event}


@app.schedule(Cron(0, 12, "*", "*", "?", "*"), name="noon")
def noon(event):
    return event.to_dict()


@app.schedule("cron(0/15 8-17 ? * MON-FRI *)", name="office", description="office hours")
def office(event):
    return None
"""
TINY_CONFIG = {
    "version": "2.0",
    "app_name": "tiny",
    "lambda_timeout": 1,
    "lambda_memory_size": 256,
    "stages": {
        "dev": {
            "environment_variables": {"GREETING": "hi"},
            "lambda_functions": {"clock": {"lambda_timeout": 60}},
        }
    },
}

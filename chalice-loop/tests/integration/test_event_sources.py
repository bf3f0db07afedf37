"""`up` runs the whole app: each event source end to end over HTTP, boto3 against
the embedded endpoint as any client would talk to it, the handlers recording what
they were given. One `up` serves the module; each test uses its own resources."""

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice_loop.event_sources import POLL_WAIT_S
from loop_testing import Running, chalice_project, cli, client, env_without_aws, free_port

APP = """
import json
import os

from chalice import Chalice, Rate

app = Chalice(app_name="sources")
app.experimental_feature_flags.update(["WEBSOCKETS"])
app.log.setLevel("INFO")
failed_once = set()


def record(handler, event, **extra):
    line = {
        "handler": handler,
        "event": event.to_dict(),
        "remaining_ms": event.context.get_remaining_time_in_millis(),
        "greeting": os.environ.get("GREETING"),
        **extra,
    }
    with open(os.environ["RECORDS"], "a") as records:
        records.write(json.dumps(line) + "\\n")


@app.route("/")
def index():
    return {"hello": "world"}


@app.route("/echo", methods=["POST"])
def echo():
    return {"got": app.current_request.json_body}


@app.schedule(Rate(1, unit=Rate.DAYS), name="nightly")
def nightly(event):
    record("nightly", event)


@app.on_s3_event(bucket="sources-uploads", prefix="in/", suffix=".csv", name="on_csv")
def on_csv(event):
    app.log.info("on_csv got %s", event.key)
    record("on_csv", event, key=event.key)


@app.on_s3_event(bucket="sources-uploads", events=["s3:ObjectRemoved:*"], name="on_removed")
def on_removed(event):
    record("on_removed", event, key=event.key)


@app.on_sqs_message(queue="sources-small", batch_size=3, name="on_small")
def on_small(event):
    record("on_small", event)


@app.on_sqs_message(
    queue="sources-window", batch_size=10, maximum_batching_window_in_seconds=2, name="on_window"
)
def on_window(event):
    record("on_window", event)


@app.on_sqs_message(queue="sources-flaky", name="on_flaky")
def on_flaky(event):
    record("on_flaky", event)
    ids = {r.to_dict()["messageId"] for r in event}
    if not ids <= failed_once:
        failed_once.update(ids)
        raise RuntimeError("first delivery fails")


@app.on_sqs_message(queue="sources-poison", name="on_poison")
def on_poison(event):
    record("on_poison", event)
    raise RuntimeError("never handled")


@app.on_sns_message(topic="sources-alerts", name="on_alert")
def on_alert(event):
    record("on_alert", event, subject=event.subject, message=event.message)


BIG_ORDER = {
    "source": ["shop"],
    "detail": {"amount": [{"numeric": [">", 100]}], "kind": [{"prefix": "ord"}]},
}


@app.on_cw_event(BIG_ORDER, name="on_big_order")
def on_big_order(event):
    record("on_big_order", event)


@app.lambda_function(name="resize")
def resize(event, context):
    return {"got": event}


@app.on_ws_message(name="chat")
def chat(event):
    pass


@app.on_kinesis_record(stream="clicks", name="on_click")
def on_click(event):
    pass
"""


def config(records: Path) -> dict[str, Any]:
    return {
        "version": "2.0",
        "app_name": "sources",
        "stages": {
            "dev": {
                "environment_variables": {"RECORDS": str(records), "GREETING": "hi"},
                "lambda_functions": {"on_csv": {"lambda_timeout": 7}},
            }
        },
    }


class Up:
    def __init__(self, process: Running, endpoint: str, http: str, records: Path, state: Path):
        self.process, self.endpoint, self.http = process, endpoint, http
        self.records_path, self.state = records, state

    def client(self, service: str) -> Any:
        return client(service, self.endpoint)

    def records(self, handler: str) -> list[dict[str, Any]]:
        if not self.records_path.exists():
            return []
        lines = self.records_path.read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["handler"] == handler]

    def wait(self, handler: str, until: Any, timeout: float = 20) -> list[dict[str, Any]]:
        """The handler's records once ``until(records)`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.records(handler)
            if until(found):
                return found
            time.sleep(0.05)
        raise AssertionError(f"{handler}: {self.records(handler)}\n{self.process.output}")

    def queue_url(self, name: str) -> str:
        return self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("sources")
    records = root / "records.jsonl"
    project = chalice_project(root / "sources", APP, config(records))
    port, http_port = free_port(), free_port()
    process = Running(
        ["--project-dir", str(project), "up", "--port", str(port), "--http-port", str(http_port)],
        env_without_aws(),
    )
    try:
        process.wait_for("Type a handler's name")
        yield Up(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{http_port}", records,
                 project / ".local")  # fmt: skip
    finally:
        process.stop()


def messages(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for r in records for m in r["event"]["Records"]]


def set_queue_attributes(up: Up, url: str, attributes: dict[str, str]) -> None:
    """Set attributes, then let the poller's current long poll (which moto answers with
    the attributes it began with) end: its next receive uses them."""
    up.client("sqs").set_queue_attributes(QueueUrl=url, Attributes=attributes)
    time.sleep(POLL_WAIT_S + 0.2)


def queue_is_empty(up: Up, name: str, timeout: float = 10) -> bool:
    sqs, url = up.client("sqs"), up.queue_url(name)
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if all(counts[n] == "0" for n in names):
            return True
        time.sleep(0.1)
    return False


# -- the start-up list


def test_every_handler_is_listed_with_how_it_fires_or_why_not(up):
    listed = up.process.output
    for name in ("index", "echo", "nightly", "on_csv", "on_removed", "on_small", "on_window",
                 "on_flaky", "on_poison", "on_alert", "on_big_order", "resize"):  # fmt: skip
        line = re.search(rf"\n  {name} +\w+ +.*\n +-> (.*)\n", listed)
        assert line is not None, name
        assert "NOT RUN" not in line[1], name
    assert re.search(
        r"\n  chat +websocket +route \$default\n +-> NOT RUN LOCALLY: websocket", listed
    )
    assert re.search(r"\n  on_click +kinesis +stream clicks\n +-> NOT RUN LOCALLY: Kinesis", listed)
    declared = "s3://sources-uploads s3:ObjectCreated:* (prefix 'in/', suffix '.csv')"
    assert re.search(rf"\n  on_csv +s3 +{re.escape(declared)}\n", listed)
    assert f"HTTP: the app's routes, served as `chalice local` serves them, at {up.http}" in listed


def test_invoke_names_a_handler_it_cannot_run_with_the_reason(up):
    project = up.state.parent
    done = cli("--project-dir", project, "--state-dir", up.state, "invoke", "chat")
    assert done.returncode == 2
    assert "chat is not run locally: websocket handlers need API Gateway's websocket API" in (
        done.stderr
    )


# -- HTTP


def test_routes_are_answered_as_chalice_local_answers_them(up):
    with urllib.request.urlopen(f"{up.http}/", timeout=10) as answer:
        assert answer.status == 200 and json.load(answer) == {"hello": "world"}
    request = urllib.request.Request(
        f"{up.http}/echo", data=b'{"n": 1}', headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.load(answer) == {"got": {"n": 1}}


# -- S3


def test_s3_fires_once_for_a_key_passing_prefix_and_suffix_and_never_for_the_others(up):
    s3 = up.client("s3")
    for key in ("in/a.csv", "in/a.txt", "out/a.csv", "in/sub/b.csv"):
        s3.put_object(Bucket="sources-uploads", Key=key, Body=b"x,y\n")
    # in/sub/b.csv matches and was written last: once it is in, the others had their turn.
    found = up.wait("on_csv", lambda r: "in/sub/b.csv" in {x["key"] for x in r})
    assert sorted(r["key"] for r in found) == ["in/a.csv", "in/sub/b.csv"]
    (first, _) = found
    record = first["event"]["Records"][0]
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == "sources-uploads"
    assert {"userIdentity", "requestParameters", "responseElements"} <= record.keys()
    assert first["greeting"] == "hi"  # the function's environment
    assert 3000 < first["remaining_ms"] <= 7000  # its own lambda_timeout, 7 s
    assert up.records("on_removed") == []  # writes are not deletes

    s3.delete_object(Bucket="sources-uploads", Key="in/a.csv")
    (removed,) = up.wait("on_removed", lambda r: len(r) >= 1)
    assert removed["key"] == "in/a.csv"
    assert removed["event"]["Records"][0]["eventName"] == "ObjectRemoved:Delete"
    assert len(up.records("on_csv")) == 2  # a delete is not a create


def test_each_delivery_is_in_the_logs_with_start_end_report(up):
    up.client("s3").put_object(Bucket="sources-uploads", Key="in/logged.csv", Body=b"")
    up.wait("on_csv", lambda r: "in/logged.csv" in {x["key"] for x in r})
    args = ("--project-dir", up.state.parent, "logs", "-n", "on_csv")
    deadline = time.monotonic() + 10
    while "on_csv got in/logged.csv" not in (logs := cli(*args).stdout):
        assert time.monotonic() < deadline, logs
        time.sleep(0.2)
    everything = cli(*args, "--include-lambda-messages").stdout
    assert re.search(r"START RequestId: \S+ Version: \$LATEST\n.*on_csv got in/logged.csv\n"
                     r".*END RequestId: \S+\n.*REPORT RequestId: ", everything)  # fmt: skip


# -- SQS


def test_sqs_delivers_12_messages_once_each_in_batches_of_at_most_batch_size(up):
    sqs, url = up.client("sqs"), up.queue_url("sources-small")
    bodies = [f"order {n}" for n in range(12)]
    for start in (0, 6):
        entries = [{"Id": str(n), "MessageBody": bodies[n]} for n in range(start, start + 6)]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
    found = up.wait("on_small", lambda r: len(messages(r)) >= 12)
    assert all(1 <= len(r["event"]["Records"]) <= 3 for r in found)  # batch_size=3
    assert sorted(m["body"] for m in messages(found)) == sorted(bodies)  # each exactly once
    assert all(m["eventSource"] == "aws:sqs" for m in messages(found))
    assert messages(found)[0]["eventSourceARN"].endswith(":sources-small")
    assert queue_is_empty(up, "sources-small")  # deleted after success
    time.sleep(0.5)
    assert len(messages(up.records("on_small"))) == 12  # and never delivered again


def test_the_batching_window_gathers_messages_sent_apart_into_one_batch(up):
    sqs, url = up.client("sqs"), up.queue_url("sources-window")
    for n in range(3):  # without the 2 s window each would be a batch of its own
        sqs.send_message(QueueUrl=url, MessageBody=f"w{n}")
        time.sleep(0.4)
    (batch,) = up.wait("on_window", lambda r: len(messages(r)) >= 3)
    assert [m["body"] for m in batch["event"]["Records"]] == ["w0", "w1", "w2"]


def test_a_failed_batch_comes_back_after_the_visibility_timeout_and_then_is_deleted(up):
    sqs, url = up.client("sqs"), up.queue_url("sources-flaky")
    set_queue_attributes(up, url, {"VisibilityTimeout": "1"})
    message_id = sqs.send_message(QueueUrl=url, MessageBody="retry me")["MessageId"]
    first, second = up.wait("on_flaky", lambda r: len(r) >= 2)
    delivered = [r["event"]["Records"][0] for r in (first, second)]
    assert [m["messageId"] for m in delivered] == [message_id, message_id]
    assert [m["attributes"]["ApproximateReceiveCount"] for m in delivered] == ["1", "2"]
    assert queue_is_empty(up, "sources-flaky")
    time.sleep(1.5)  # past another visibility timeout: it succeeded, so it never comes back
    assert len(up.records("on_flaky")) == 2
    assert "the 1 message(s) stay in sources-flaky and are received again after its " in (
        up.process.output
    )


def test_after_max_receive_count_failures_the_message_moves_to_the_dead_letter_queue(up):
    sqs, url = up.client("sqs"), up.queue_url("sources-poison")
    dlq = sqs.create_queue(QueueName="sources-poison-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]
    redrive = {"deadLetterTargetArn": dlq_arn["QueueArn"], "maxReceiveCount": "2"}
    set_queue_attributes(up, url, {"VisibilityTimeout": "1", "RedrivePolicy": json.dumps(redrive)})
    message_id = sqs.send_message(QueueUrl=url, MessageBody="poison")["MessageId"]
    moved: list[dict[str, Any]] = []
    deadline = time.monotonic() + 15
    while not moved and time.monotonic() < deadline:
        moved = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1).get("Messages", [])
    assert [m["MessageId"] for m in moved] == [message_id]
    assert [r["event"]["Records"][0]["messageId"] for r in up.records("on_poison")] == [
        message_id,
        message_id,
    ]  # maxReceiveCount deliveries, then no more
    assert "moved to sources-poison-dlq after 2 receives" in up.process.output


# -- SNS


def test_a_publish_to_the_topic_is_delivered_as_lambdas_sns_event(up):
    sns = up.client("sns")
    topic = sns.create_topic(Name="sources-alerts")["TopicArn"]
    attributes = {"level": {"DataType": "String", "StringValue": "high"}}
    sent = sns.publish(TopicArn=topic, Message="disk full", Subject="alarm",
                       MessageAttributes=attributes)  # fmt: skip
    (found,) = up.wait("on_alert", lambda r: len(r) >= 1)
    assert (found["subject"], found["message"]) == ("alarm", "disk full")  # chalice's SNSEvent
    record = found["event"]["Records"][0]
    assert record["EventSource"] == "aws:sns" and record["EventVersion"] == "1.0"
    assert record["EventSubscriptionArn"].startswith(f"{topic}:")
    assert record["Sns"]["MessageId"] == sent["MessageId"] and record["Sns"]["TopicArn"] == topic
    assert record["Sns"]["MessageAttributes"] == {"level": {"Type": "String", "Value": "high"}}
    assert {"SigningCertUrl", "UnsubscribeUrl", "Timestamp", "Signature"} <= record["Sns"].keys()


# -- EventBridge


def test_only_events_matching_the_pattern_are_delivered(up):
    events = up.client("events")

    def put(detail: dict[str, Any], source: str = "shop") -> str:
        entry = {"Source": source, "DetailType": "order", "Detail": json.dumps(detail)}
        answer = events.put_events(Entries=[entry])
        assert answer["FailedEntryCount"] == 0
        return answer["Entries"][0]["EventId"]

    matched = put({"amount": 150, "kind": "order"})
    put({"amount": 50, "kind": "order"})  # numeric > 100 fails
    put({"amount": 500, "kind": "refund"})  # prefix "ord" fails
    put({"amount": 500, "kind": "order"}, source="elsewhere")  # source fails
    last = put({"amount": 101, "kind": "ordinary"})  # matches, and comes last
    found = up.wait("on_big_order", lambda r: last in {x["event"]["id"] for x in r})
    assert [r["event"]["id"] for r in found] == [matched, last]
    assert found[0]["event"]["detail"] == {"amount": 150, "kind": "order"}
    assert found[0]["event"]["source"] == "shop" and found[0]["event"]["account"]


# -- typed names


def test_a_typed_name_fires_a_schedule_or_sends_the_sample_event(up):
    up.process.send("nightly")
    up.process.send("on_csv")
    up.process.send("chat")
    (scheduled,) = up.wait("nightly", lambda r: len(r) >= 1)
    assert scheduled["event"]["detail-type"] == "Scheduled Event"
    assert scheduled["event"]["resources"][0].endswith(":rule/sources-dev-nightly-event")
    up.wait("on_csv", lambda r: "in/chalice-loop-sample.csv" in {x["key"] for x in r})
    up.process.wait_for("chat is not run locally: websocket handlers need")

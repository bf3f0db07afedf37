"""The app's event sources on the embedded endpoint, wired the way AWS wires them.

Each source is bridged through moto's own implementation of it, so what fires
and what does not is moto's (AWS-shaped) decision, not a matcher written here:

- **S3** (``on_s3_event``): the bucket gets a notification configuration (one
  QueueConfiguration per handler, with its event types and its prefix/suffix
  filter rules) that sends to an internal queue; moto decides which writes and
  deletes notify. Its ``s3:TestEvent`` is skipped, as Lambda never sees it.
- **SNS** (``on_sns_message``): an internal queue subscribes to the topic; each
  envelope becomes Lambda's SNS event.
- **EventBridge** (``on_cw_event``): a rule with the handler's pattern on the
  default bus, its target an internal queue; moto's pattern matcher decides.
- **SQS** (``on_sqs_message``): the user's queue itself is polled as Lambda's
  event source mapping polls it (:class:`QueuePoller`).

The first three are asynchronous invocations: their events go into Lambda's
async queue (retries, event age, on-failure destination) in ``up``. An SQS
batch is a synchronous invocation: ``up`` runs it and settles it here (deleted
on success; left to reappear after the visibility timeout on failure, where the
queue's redrive policy, which moto applies on receive, moves it to the DLQ).

Internal queues are named ``chalice-loop-<function>-<source>``.
"""

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from chalice_loop.embedded_s3 import LOCAL_CREDENTIALS
from chalice_loop.handlers import EVENTBRIDGE, S3, SNS, SQS, Handler, queue_name, topic_name
from chalice_loop.lambda_events import (
    completed_s3_record,
    eventbridge_event,
    sns_event,
    sqs_event,
)
from chalice_loop.lambda_runner import Invocation
from chalice_loop.naming import rule_name

POLL_WAIT_S = 1  # long-poll length: how soon a stopping `up` is noticed
SQS_RECEIVE_MAX = 10  # ReceiveMessage's own limit


class SourceError(Exception):
    """An event source that cannot be set up as declared (the message says why)."""


Submit = Callable[[str, Any, str], None]  # (function name, event, label) into the async queue


def endpoint_client(service: str, endpoint: str, region: str) -> Any:
    """A client of the embedded endpoint, with its local credentials whatever the
    environment holds."""
    import boto3  # here: `logs` and `failures`, which import this module's users, start fast

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@dataclass
class SqsBatch:
    """A batch an SQS poller received, waiting for ``up`` to invoke the handler."""

    handler: Handler
    queue: str
    queue_url: str
    messages: list[dict[str, Any]]
    payload: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def label(self) -> str:
        return f"SQS batch of {len(self.messages)} message(s) from {self.queue}"


@dataclass
class _Bridge:
    """An internal queue that moto fills for one handler, and how its messages
    become the handler's events."""

    handler: Handler
    queue_url: str
    convert: Callable[[dict[str, Any]], list[tuple[Any, str]]]  # body -> (event, label)s


def _s3_events(body: dict[str, Any]) -> list[tuple[Any, str]]:
    if body.get("Event") == "s3:TestEvent":
        return []
    events = []
    for record in body.get("Records", []):
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        label = f"s3:{record['eventName']} s3://{bucket}/{key}"
        events.append(({"Records": [completed_s3_record(record)]}, label))
    return events


class Worker(threading.Thread):
    """A daemon thread running ``step`` until ``stopping`` is set; an error is
    printed (once while it repeats) and the step retried a second later."""

    def __init__(self, name: str, step: Callable[[], None], stopping: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.step, self.stopping = step, stopping

    def run(self) -> None:
        last_error = ""
        while not self.stopping.is_set():
            try:
                self.step()
                last_error = ""
            except Exception as exc:  # a poller must outlive any one failed call
                if self.stopping.is_set():
                    return
                if str(exc) != last_error:
                    print(f"({self.name}: {exc}; trying again)", flush=True)
                last_error = str(exc)
                self.stopping.wait(1)


class EventSources:
    """Every S3, SQS, SNS and EventBridge handler of an app, on one embedded endpoint."""

    def __init__(
        self,
        handlers: list[Handler],
        endpoint: str,
        region: str,
        app_name: str,
        stage: str,
        s3_embedded: bool = True,
    ) -> None:
        self.handlers = [h for h in handlers if h.kind in (S3, SQS, SNS, EVENTBRIDGE)]
        if not s3_embedded:
            self.handlers = [h for h in self.handlers if h.kind != S3]
        self.region, self.app_name, self.stage = region, app_name, stage
        self.sqs = endpoint_client("sqs", endpoint, region)
        self.s3 = endpoint_client("s3", endpoint, region)
        self.sns = endpoint_client("sns", endpoint, region)
        self.events = endpoint_client("events", endpoint, region)
        self.stopping = threading.Event()
        self._bridges: list[_Bridge] = []
        self._pollers: list[QueuePoller] = []
        self._threads: list[Worker] = []

    # -- set-up

    def _queue(self, name: str, attributes: dict[str, str] | None = None) -> tuple[str, str]:
        """``(url, arn)`` of a queue, created if it does not exist."""
        if name.endswith(".fifo"):
            attributes = {"FifoQueue": "true", **(attributes or {})}
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes or {})["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def _internal_queue(self, handler: Handler, source: str) -> tuple[str, str]:
        return self._queue(f"chalice-loop-{handler.name}-{source}"[:80])

    def create(self) -> list[str]:
        """Create what the handlers name and wire each source; returns what was made,
        one line each. Raises :class:`SourceError` for a declaration AWS would refuse."""
        made: list[str] = []
        by_bucket: dict[str, list[Handler]] = {}
        for handler in self.handlers:
            if handler.kind == S3:
                by_bucket.setdefault(handler.source.bucket, []).append(handler)
        for bucket, handlers in by_bucket.items():
            made.append(self._wire_bucket(bucket, handlers))
        for handler in self.handlers:
            try:
                if handler.kind == SQS:
                    made.append(self._wire_queue(handler))
                elif handler.kind == SNS:
                    made.append(self._wire_topic(handler))
                elif handler.kind == EVENTBRIDGE:
                    made.append(self._wire_rule(handler))
            except ClientError as exc:
                raise SourceError(f"{handler.name} ({handler.declaration}): {exc}") from None
        return made

    def _wire_bucket(self, bucket: str, handlers: list[Handler]) -> str:
        with contextlib.suppress(self.s3.exceptions.BucketAlreadyOwnedByYou):
            self.s3.create_bucket(Bucket=bucket)
        configurations = []
        for handler in handlers:
            url, arn = self._internal_queue(handler, "s3")
            rules = [
                {"Name": name, "Value": value}
                for name, value in (
                    ("prefix", handler.source.prefix),
                    ("suffix", handler.source.suffix),
                )
                if value
            ]
            configuration: dict[str, Any] = {
                "Id": handler.name,
                "QueueArn": arn,
                "Events": list(handler.source.events),
            }
            if rules:
                configuration["Filter"] = {"Key": {"FilterRules": rules}}
            configurations.append(configuration)
            self._bridges.append(_Bridge(handler, url, _s3_events))
        try:
            self.s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
            )
        except ClientError as exc:
            names = ", ".join(h.name for h in handlers)
            raise SourceError(
                f"{names}: S3 refuses the notification of s3://{bucket}: {exc}"
            ) from None
        return f"s3://{bucket} (notifies {', '.join(h.name for h in handlers)})"

    def _wire_queue(self, handler: Handler) -> str:
        name = queue_name(handler.source)
        url, arn = self._queue(name)
        self._pollers.append(QueuePoller(handler, name, url, arn, self.region, self.sqs))
        return f"SQS queue {name} (polled for {handler.name})"

    def _wire_topic(self, handler: Handler) -> str:
        name = topic_name(handler.source)
        topic = self.sns.create_topic(Name=name)["TopicArn"]
        url, arn = self._internal_queue(handler, "sns")
        subscription = self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        subscription_arn = subscription["SubscriptionArn"]

        def convert(envelope: dict[str, Any]) -> list[tuple[Any, str]]:
            label = f"SNS message {envelope['MessageId']} on topic {name}"
            return [(sns_event(envelope, subscription_arn), label)]

        self._bridges.append(_Bridge(handler, url, convert))
        return f"SNS topic {name} (subscribed for {handler.name})"

    def _wire_rule(self, handler: Handler) -> str:
        rule = rule_name(self.app_name, self.stage, handler.name)
        url, arn = self._internal_queue(handler, "events")
        self.events.put_rule(
            Name=rule, EventPattern=json.dumps(handler.source.event_pattern), State="ENABLED"
        )
        self.events.put_targets(Rule=rule, Targets=[{"Id": "chalice-loop", "Arn": arn}])

        def convert(event: dict[str, Any]) -> list[tuple[Any, str]]:
            label = (
                f"EventBridge event {event.get('id')} ({event.get('source')}, "
                f"{event.get('detail-type')}), rule {rule}"
            )
            return [(eventbridge_event(event), label)]

        self._bridges.append(_Bridge(handler, url, convert))
        return f"EventBridge rule {rule} on the default bus (for {handler.name})"

    # -- running

    def start(self, submit: Submit, run_batch: Callable[[SqsBatch], None]) -> None:
        """Start a thread per bridge (its events go to ``submit``) and per SQS handler
        (its batches go to ``run_batch``, which returns once ``up`` has settled them)."""
        for bridge in self._bridges:
            step = self._bridge_step(bridge, submit)
            self._threads.append(Worker(f"{bridge.handler.name} bridge", step, self.stopping))
        for poller in self._pollers:
            step = poller.step_with(run_batch, self.stopping)
            self._threads.append(Worker(f"{poller.handler.name} poller", step, self.stopping))
        for thread in self._threads:
            thread.start()

    def _bridge_step(self, bridge: _Bridge, submit: Submit) -> Callable[[], None]:
        def step() -> None:
            answer = self.sqs.receive_message(
                QueueUrl=bridge.queue_url,
                MaxNumberOfMessages=SQS_RECEIVE_MAX,
                WaitTimeSeconds=POLL_WAIT_S,
            )
            messages = answer.get("Messages", [])
            for message in messages:
                for event, label in bridge.convert(json.loads(message["Body"])):
                    submit(bridge.handler.name, event, label)
            if messages:
                self.sqs.delete_message_batch(
                    QueueUrl=bridge.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )

        return step

    def poller_for(self, function_name: str) -> "QueuePoller | None":
        return next((p for p in self._pollers if p.handler.name == function_name), None)

    def stop(self) -> None:
        """Stop every thread (each notices within one long poll) and wait for them."""
        self.stopping.set()
        for poller in self._pollers:
            poller.release()
        for thread in self._threads:
            thread.join(POLL_WAIT_S + 5)


class QueuePoller:
    """Lambda's SQS event source mapping for one handler, one batch in flight.

    A batch is at most ``batch_size`` messages. With no batching window it is what
    one long poll returns; with a window of W seconds, receiving goes on until the
    batch is full or W seconds have passed since its first message. Messages are
    received with the queue's own visibility timeout, and stay in flight while
    ``up`` runs the handler.
    """

    def __init__(
        self, handler: Handler, queue: str, url: str, arn: str, region: str, sqs: Any
    ) -> None:
        self.handler, self.queue, self.url, self.arn = handler, queue, url, arn
        self.region, self.sqs = region, sqs
        self.batch_size = max(1, int(handler.source.batch_size))
        self.window_s = float(handler.source.maximum_batching_window_in_seconds or 0)
        self._waiting: SqsBatch | None = None

    def _receive(self, count: int, wait_s: int) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=min(SQS_RECEIVE_MAX, count),
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return answer.get("Messages", [])

    def gather(self, stopping: threading.Event) -> list[dict[str, Any]]:
        """One batch (possibly empty if nothing came within one long poll)."""
        batch = self._receive(self.batch_size, POLL_WAIT_S)
        if not batch or self.window_s <= 0:
            return batch
        first = time.monotonic()
        while len(batch) < self.batch_size and not stopping.is_set():
            left = self.window_s - (time.monotonic() - first)
            if left <= 0:
                break
            wait_s = min(POLL_WAIT_S, math.floor(left))
            more = self._receive(self.batch_size - len(batch), wait_s)
            batch += more
            if not more and wait_s == 0:
                stopping.wait(min(left, 0.05))
        return batch

    def step_with(
        self, run_batch: Callable[[SqsBatch], None], stopping: threading.Event
    ) -> Callable[[], None]:
        def step() -> None:
            messages = self.gather(stopping)
            if not messages or stopping.is_set():
                return
            payload = sqs_event(messages, self.arn, self.region)
            batch = SqsBatch(self.handler, self.queue, self.url, messages, payload)
            self._waiting = batch
            run_batch(batch)
            batch.done.wait()
            self._waiting = None

        return step

    def release(self) -> None:
        """``up`` is stopping: a batch waiting for its turn is given up (its messages
        reappear after the visibility timeout, as after a failure)."""
        if self._waiting is not None:
            self._waiting.done.set()

    def settle(self, batch: SqsBatch, invocation: Invocation) -> str:
        """Delete a batch that succeeded; leave one that failed. Returns what happened."""
        count = len(batch.messages)
        if not invocation.failed:
            failed = []
            for start in range(0, count, SQS_RECEIVE_MAX):
                chunk = batch.messages[start : start + SQS_RECEIVE_MAX]
                answer = self.sqs.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(chunk)
                    ],
                )
                failed += answer.get("Failed", [])
            deleted = count - len(failed)
            note = f" ({len(failed)} could not be: {failed[0].get('Message')})" if failed else ""
            return f"-> succeeded: {deleted} message(s) deleted from {self.queue}{note}"
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
        )["Attributes"]
        receives = max(int(m["Attributes"]["ApproximateReceiveCount"]) for m in batch.messages)
        what = "timed out" if invocation.timed_out else "failed"
        line = (
            f"-> {what}: the {count} message(s) stay in {self.queue} and are received again "
            f"after its visibility timeout ({attributes['VisibilityTimeout']} s); received "
            f"{receives} time(s) so far"
        )
        if "RedrivePolicy" in attributes:
            redrive = json.loads(attributes["RedrivePolicy"])
            dlq = str(redrive.get("deadLetterTargetArn", "")).rsplit(":", 1)[-1]
            line += f", moved to {dlq} after {redrive.get('maxReceiveCount')} receives"
        return line

"""The events Lambda hands a function, per event source, and a sample of each.

The bridges in :mod:`chalice_loop.event_sources` turn what moto delivers into
these shapes: an SQS message into a record of Lambda's SQS event, the envelope SNS
puts on an SQS subscription into Lambda's SNS event, moto's S3 notification into
Lambda's S3 event (with the fields moto leaves out filled with local stand-ins).
EventBridge events reach a function as they are.

A *sample* is what ``invoke NAME`` sends an event-source handler when no payload
is given: the source's shape, built from the handler's own declaration (its
bucket and a key passing its filters, its queue, its topic, an event matching its
pattern: moto's matcher checks that it does).
"""

import base64
import hashlib
import itertools
import json
import uuid
from datetime import UTC, datetime
from ipaddress import ip_network
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from chalice.app import CloudWatchEventConfig, S3EventConfig, SNSEventConfig, SQSEventConfig

from chalice_loop.handlers import (
    EVENTBRIDGE,
    S3,
    SCHEDULE,
    SNS,
    SQS,
    Handler,
    queue_name,
    topic_name,
)
from chalice_loop.lambda_runner import lambda_time
from chalice_loop.naming import rule_name
from chalice_loop.scheduler import LOCAL_ACCOUNT_ID, scheduled_event

SAMPLE_BODY = "{}"  # an SQS body or SNS message that parses as JSON
_SEQUENCE = itertools.count(1)


class NoSampleError(ValueError):
    """No sample event can be built for this handler (the message says why)."""


def queue_arn(region: str, name: str, account: str = LOCAL_ACCOUNT_ID) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def topic_arn(region: str, name: str, account: str = LOCAL_ACCOUNT_ID) -> str:
    return f"arn:aws:sns:{region}:{account}:{name}"


# -- SQS


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """An SQS message attribute as Lambda's SQS event writes it (camelCase, base64)."""
    binary = value.get("BinaryValue")
    attribute: dict[str, Any] = {
        "stringValue": value.get("StringValue"),
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    if binary is not None:
        attribute["binaryValue"] = base64.b64encode(binary).decode()
    return {k: v for k, v in attribute.items() if v is not None}


def sqs_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event, from a ReceiveMessage answer's message."""
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def sqs_event(messages: list[dict[str, Any]], arn: str, region: str) -> dict[str, Any]:
    return {"Records": [sqs_record(message, arn, region) for message in messages]}


# -- SNS


def sns_event(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """Lambda's SNS event from the JSON envelope SNS sends an SQS subscription
    (Lambda spells the two URLs ``...Url``; the envelope ``...URL``)."""
    sns = {
        "Type": envelope.get("Type", "Notification"),
        "MessageId": envelope["MessageId"],
        "TopicArn": envelope["TopicArn"],
        "Subject": envelope.get("Subject"),
        "Message": envelope["Message"],
        "Timestamp": envelope["Timestamp"],
        "SignatureVersion": envelope.get("SignatureVersion", "1"),
        "Signature": envelope.get("Signature", ""),
        "SigningCertUrl": envelope.get("SigningCertURL", ""),
        "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
        "MessageAttributes": envelope.get("MessageAttributes", {}),
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": sns,
            }
        ]
    }


# -- S3


def completed_s3_record(record: dict[str, Any]) -> dict[str, Any]:
    """moto's S3 notification record with the fields AWS documents and moto leaves out
    (who made the request, from where, the request ids, the key's sequencer), filled
    with local stand-ins so a handler reading them finds them."""
    record = json.loads(json.dumps(record))
    record.setdefault("userIdentity", {"principalId": "AWS:LOCAL"})
    record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
    request_id = uuid.uuid4().hex[:16].upper()
    record.setdefault(
        "responseElements", {"x-amz-request-id": request_id, "x-amz-id-2": request_id}
    )
    s3 = record.setdefault("s3", {})
    s3.setdefault("bucket", {}).setdefault("ownerIdentity", {"principalId": "LOCAL"})
    s3.setdefault("object", {}).setdefault("sequencer", f"{next(_SEQUENCE):016X}")
    return record


def _concrete_event_name(event_type: str) -> str:
    """An S3 event name a declared type covers: ``s3:ObjectCreated:*`` -> ``ObjectCreated:Put``."""
    name = event_type.removeprefix("s3:")
    if not name.endswith(":*"):
        return name
    family = name.removesuffix(":*")
    return {"ObjectCreated": "ObjectCreated:Put", "ObjectRemoved": "ObjectRemoved:Delete"}.get(
        family, f"{family}:Post"
    )


def s3_event(bucket: str, key: str, event_name: str, region: str, size: int = 0) -> dict[str, Any]:
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": lambda_time(datetime.now(UTC)),
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "chalice-loop-sample",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": quote_plus(key),
                "size": size,
                "eTag": hashlib.md5(b"", usedforsecurity=False).hexdigest(),
            },
        },
    }
    return {"Records": [completed_s3_record(record)]}


# -- EventBridge


def eventbridge_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge delivers it to a target (moto omits ``account``)."""
    return {"account": LOCAL_ACCOUNT_ID, **event}


_OMIT = object()  # a field that must not be in the event ({"exists": false})


def _numeric_value(conditions: list[Any]) -> float | None:
    low, high, equal = float("-inf"), float("inf"), None
    for operator, value in zip(conditions[::2], conditions[1::2], strict=False):
        if operator == "=":
            equal = value
        elif operator in (">", ">="):
            low = max(low, value)
        elif operator in ("<", "<="):
            high = min(high, value)
    if equal is not None:
        return equal
    if low == float("-inf"):
        return high - 1 if high != float("inf") else 0
    if high == float("inf"):
        return low + 1
    return (low + high) / 2


def _value_for(filters: list[Any]) -> Any:
    """A value that one of the filters (a list of values and named filters) accepts."""
    for candidate in filters:
        if not isinstance(candidate, dict):
            return candidate
        (name, value), *_ = candidate.items()
        if name == "exists":
            return "sample" if value else _OMIT
        if name == "prefix":
            text = value.get("equals-ignore-case", "") if isinstance(value, dict) else value
            return f"{text[0] if isinstance(text, list) else text}sample"
        if name == "suffix":
            text = value.get("equals-ignore-case", "") if isinstance(value, dict) else value
            return f"sample{text[0] if isinstance(text, list) else text}"
        if name == "equals-ignore-case":
            return value[0] if isinstance(value, list) else value
        if name == "wildcard":
            text = value[0] if isinstance(value, list) else value
            return text.replace("\\*", "\0").replace("*", "").replace("\0", "*")
        if name == "numeric":
            number = _numeric_value(value)
            if number is not None:
                return number
        if name == "cidr":
            return str(next(iter(ip_network(value, strict=False).hosts()), value.split("/")[0]))
        if name == "anything-but":
            excluded = value if isinstance(value, list) else [value]
            if all(isinstance(v, (int, float)) for v in excluded):
                return max(excluded, default=0) + 1
            return "chalice-loop-sample"
    return "sample"


def _fill(pattern: dict[str, Any], into: dict[str, Any]) -> None:
    for key, value in pattern.items():
        if key == "$or":
            _fill(value[0], into)
        elif isinstance(value, dict):
            nested = into.get(key) if isinstance(into.get(key), dict) else {}
            _fill(value, nested)
            into[key] = nested
        elif isinstance(value, list):
            chosen = _value_for(value)
            if chosen is _OMIT:
                into.pop(key, None)
            else:
                into[key] = [chosen] if key == "resources" else chosen


def sample_eventbridge_event(pattern: dict[str, Any], region: str) -> dict[str, Any]:
    """An event that the pattern matches, as moto's EventBridge matcher decides."""
    from moto.events.models import EventPattern  # moto's matcher, which `up` uses

    event: dict[str, Any] = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "chalice-loop sample",
        "source": "chalice-loop.sample",
        "account": LOCAL_ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": {},
    }
    _fill(pattern, event)
    if not EventPattern(None, pattern).matches_event(event):
        raise NoSampleError(
            f"no sample event matching the pattern {json.dumps(pattern)} could be built: "
            "give one with --payload"
        )
    return event


# -- samples


def sample_event(handler: Handler, app_name: str, stage: str, region: str) -> Any:
    """What ``invoke NAME`` sends an event-source handler given no payload."""
    source = handler.source
    if handler.kind == SCHEDULE:
        return scheduled_event(rule_name(app_name, stage, handler.name), datetime.now(UTC), region)
    if handler.kind == S3:
        assert isinstance(source, S3EventConfig)
        key = f"{source.prefix or ''}chalice-loop-sample{source.suffix or ''}"
        return s3_event(source.bucket, key, _concrete_event_name(source.events[0]), region)
    if handler.kind == SQS:
        assert isinstance(source, SQSEventConfig)
        body = SAMPLE_BODY.encode()
        message = {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": "chalice-loop-sample",
            "Body": SAMPLE_BODY,
            "MD5OfBody": hashlib.md5(body, usedforsecurity=False).hexdigest(),
            "Attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": str(int(datetime.now(UTC).timestamp() * 1000)),
                "SenderId": LOCAL_ACCOUNT_ID,
                "ApproximateFirstReceiveTimestamp": str(int(datetime.now(UTC).timestamp() * 1000)),
            },
        }
        return sqs_event([message], queue_arn(region, queue_name(source)), region)
    if handler.kind == SNS:
        assert isinstance(source, SNSEventConfig)
        arn = topic_arn(region, topic_name(source))
        envelope = {
            "MessageId": str(uuid.uuid4()),
            "TopicArn": arn,
            "Subject": "chalice-loop sample",
            "Message": SAMPLE_BODY,
            "Timestamp": lambda_time(datetime.now(UTC)),
        }
        return sns_event(envelope, f"{arn}:chalice-loop-sample")
    if handler.kind == EVENTBRIDGE:
        assert isinstance(source, CloudWatchEventConfig)
        return sample_eventbridge_event(source.event_pattern, region)
    return {}


def describe_sample(handler: Handler, event: Any) -> str:
    """One line on what a sample is, for the user."""
    if handler.kind == S3:
        record = event["Records"][0]
        bucket = record["s3"]["bucket"]["name"]
        key = unquote_plus(record["s3"]["object"]["key"])
        return f"a sample {record['eventName']} event for s3://{bucket}/{key}"
    if handler.kind == SQS:
        return f"a sample SQS event: 1 message from {event['Records'][0]['eventSourceARN']}"
    if handler.kind == SNS:
        return f"a sample SNS event from {event['Records'][0]['Sns']['TopicArn']}"
    if handler.kind == EVENTBRIDGE:
        detail = json.dumps(event["detail"])
        return f"a sample EventBridge event matching its pattern (source {event['source']}, " + (
            f"detail {detail})"
        )
    if handler.kind == SCHEDULE:
        return f"a sample Scheduled Event of rule {event['resources'][0].rsplit('/', 1)[-1]}"
    return "{}"

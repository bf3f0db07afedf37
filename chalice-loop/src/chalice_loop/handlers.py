"""Every handler a Chalice app registers, read from the app's own registrations.

Each one is a :class:`Handler` with its kind and its declaration (the bucket and
filters, the queue and batch settings, the topic, the pattern, the schedule...)
and, for what the local loop cannot run, the reason. Nothing the app registers
is left out: a name in ``app.handler_map`` that no known registration explains is
listed as unknown, with that reason.
"""

import json
from dataclasses import dataclass
from typing import Any

from chalice import Chalice
from chalice.app import (
    CloudWatchEventConfig,
    DynamoDBEventConfig,
    KinesisEventConfig,
    S3EventConfig,
    ScheduledEventConfig,
    ScheduleExpression,
    SNSEventConfig,
    SQSEventConfig,
)

ROUTE = "route"
AUTHORIZER = "authorizer"
SCHEDULE = "schedule"
S3 = "s3"
SQS = "sqs"
SNS = "sns"
EVENTBRIDGE = "eventbridge"
LAMBDA_FUNCTION = "lambda_function"
WEBSOCKET = "websocket"
KINESIS = "kinesis"
DYNAMODB = "dynamodb"
UNKNOWN = "unknown"

ASYNC_SOURCES = (SCHEDULE, S3, SNS, EVENTBRIDGE)  # Lambda invokes these asynchronously
EVENT_SOURCES = (*ASYNC_SOURCES, SQS)

_NOT_RUN = {
    WEBSOCKET: "websocket handlers need API Gateway's websocket API, which neither "
    "`chalice local` nor this loop serves",
    KINESIS: "Kinesis stream event sources are not modelled by this loop",
    DYNAMODB: "DynamoDB stream event sources are not modelled by this loop",
    UNKNOWN: "a registration this loop does not know",
}


@dataclass(frozen=True)
class Handler:
    """One registered handler: its function name, kind and declaration."""

    name: str
    kind: str
    declaration: str  # what it listens to, as the app declares it
    source: Any = None  # chalice's registration (an event source config, route entries...)

    @property
    def not_run_reason(self) -> str | None:
        """Why the local loop cannot run it, or None if it can."""
        return _NOT_RUN.get(self.kind)


def schedule_expression(source: ScheduledEventConfig) -> str:
    expression = source.schedule_expression
    if isinstance(expression, ScheduleExpression):
        expression = expression.to_string()
    return str(expression)


def queue_name(source: SQSEventConfig) -> str:
    """The queue's name, from ``queue`` or the last part of ``queue_arn``."""
    return source.queue or str(source.queue_arn).rsplit(":", 1)[-1]


def topic_name(source: SNSEventConfig) -> str:
    """The topic's name: chalice takes a name or an ARN."""
    return source.topic.rsplit(":", 1)[-1] if source.topic.startswith("arn:") else source.topic


def _s3_declaration(source: S3EventConfig) -> str:
    filters = [f"prefix {source.prefix!r}"] if source.prefix else []
    filters += [f"suffix {source.suffix!r}"] if source.suffix else []
    text = f"s3://{source.bucket} {', '.join(source.events)}"
    return f"{text} ({', '.join(filters)})" if filters else text


def _sqs_declaration(source: SQSEventConfig) -> str:
    window = source.maximum_batching_window_in_seconds
    return f"queue {queue_name(source)}, batch size {source.batch_size}, window {window} s"


def _event_source(source: Any) -> Handler:
    if isinstance(source, ScheduledEventConfig):
        return Handler(source.name, SCHEDULE, schedule_expression(source), source)
    if isinstance(source, CloudWatchEventConfig):
        pattern = json.dumps(source.event_pattern, separators=(",", ":"))
        return Handler(source.name, EVENTBRIDGE, f"pattern {pattern}", source)
    if isinstance(source, S3EventConfig):
        return Handler(source.name, S3, _s3_declaration(source), source)
    if isinstance(source, SQSEventConfig):
        return Handler(source.name, SQS, _sqs_declaration(source), source)
    if isinstance(source, SNSEventConfig):
        return Handler(source.name, SNS, f"topic {topic_name(source)}", source)
    if isinstance(source, KinesisEventConfig):
        return Handler(source.name, KINESIS, f"stream {source.stream}", source)
    if isinstance(source, DynamoDBEventConfig):
        return Handler(source.name, DYNAMODB, f"stream {source.stream_arn}", source)
    return Handler(source.name, UNKNOWN, type(source).__name__, source)


def _routes(app: Chalice) -> list[Handler]:
    by_view: dict[str, list[Any]] = {}
    for methods in app.routes.values():
        for entry in methods.values():
            by_view.setdefault(entry.view_name, []).append(entry)
    return [
        Handler(
            name,
            ROUTE,
            ", ".join(f"{e.method} {e.uri_pattern}" for e in entries),
            entries,
        )
        for name, entries in by_view.items()
    ]


def app_handlers(app: Chalice) -> list[Handler]:
    """Every handler the app registered (blueprints included, once registered), in the
    order: routes, event sources as registered, functions, websockets, the rest."""
    handlers = _routes(app)
    handlers += [
        Handler(auth.name, AUTHORIZER, f"header {auth.header}", auth)
        for auth in app.builtin_auth_handlers
    ]
    handlers += [_event_source(source) for source in app.event_sources]
    handlers += [
        Handler(function.name, LAMBDA_FUNCTION, "invoked by name", function)
        for function in app.pure_lambda_functions
    ]
    handlers += [
        Handler(config.name, WEBSOCKET, f"route {route}", config)
        for route, config in app.websocket_handlers.items()
    ]
    known = {handler.name for handler in handlers}
    handlers += [
        Handler(name, UNKNOWN, "in app.handler_map only")
        for name in app.handler_map
        if name not in known
    ]
    return handlers


def find(handlers: list[Handler], name: str) -> Handler | None:
    return next((handler for handler in handlers if handler.name == name), None)

"""Lambda's asynchronous delivery, for the events ``up`` fires.

Schedules, S3 notifications, SNS messages and EventBridge rules all invoke a
function asynchronously: Lambda queues the event and, when a run fails (the
handler raised, or it timed out), runs the same event again with the same
request id, 1 minute after the first attempt and 2 minutes after the second, at
most ``MaximumRetryAttempts`` times (0-2) and only while the event is younger
than ``MaximumEventAgeInSeconds`` (60-21,600). Both come from the function's
``EventInvokeConfig`` in the file ``up --lambda-settings`` names
(``{"<function>": {"EventInvokeConfig": {...}}}``); a function without one gets
Lambda's defaults (2 retries, 6 hours). After the last attempt the event
goes to the on-failure destination as an invocation record
(docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html).

Locally the delays and the age limit are multiplied by one scale (default 1/60:
a Lambda minute is a local second), and the destination is a JSON-lines file in
the state directory.
"""

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

from chalice_loop.lambda_runner import lambda_time
from chalice_loop.paths import shown

LAMBDA_RETRY_DELAYS_S = (60, 120)  # before the first retry, before the second
DEFAULT_RETRY_ATTEMPTS = 2
DEFAULT_MAX_EVENT_AGE_S = 21_600
RETRY_ATTEMPTS_RANGE = (0, 2)  # what Lambda's API accepts
EVENT_AGE_RANGE_S = (60, 21_600)
DEFAULT_DELAY_SCALE = Fraction(1, 60)
FAILURES_FILE = "failures.jsonl"
RETRIES_EXHAUSTED = "RetriesExhausted"
EVENT_AGE_EXCEEDED = "EventAgeExceeded"


class SettingsError(ValueError):
    """The Lambda settings file holds something Lambda would refuse."""


@dataclass(frozen=True)
class RetryPolicy:
    """A function's EventInvokeConfig, as Lambda applies it."""

    max_retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    max_event_age_s: int = DEFAULT_MAX_EVENT_AGE_S
    source: str = "Lambda's defaults"

    @property
    def max_attempts(self) -> int:
        return 1 + self.max_retry_attempts


def _setting(config: Mapping[str, Any], name: str, default: int, bounds: tuple[int, int]) -> int:
    value = config.get(name, default)
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingsError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return value


def retry_policy(settings_path: Path | None, function_name: str) -> RetryPolicy:
    """The function's EventInvokeConfig from ``settings_path``, else Lambda's defaults."""
    if settings_path is None:
        return RetryPolicy(source="Lambda's defaults: no --lambda-settings")
    where = shown(settings_path)
    if not settings_path.is_file():
        return RetryPolicy(source=f"Lambda's defaults: no {where}")
    try:
        settings = json.loads(settings_path.read_text())
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{where}: not valid JSON: {exc}") from None
    config = (settings.get(function_name) or {}).get("EventInvokeConfig")
    if config is None:
        return RetryPolicy(source=f"Lambda's defaults: no EventInvokeConfig in {where}")
    try:
        return RetryPolicy(
            _setting(config, "MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS, RETRY_ATTEMPTS_RANGE),
            _setting(
                config, "MaximumEventAgeInSeconds", DEFAULT_MAX_EVENT_AGE_S, EVENT_AGE_RANGE_S
            ),
            where,
        )
    except SettingsError as exc:
        raise SettingsError(f"{where}: {function_name}.EventInvokeConfig: {exc}") from None


def parse_scale(text: str) -> Fraction:
    """``--retry-delay-scale``: a positive number or fraction (``1``, ``0.01``, ``1/60``)."""
    try:
        scale = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} is not a number or a fraction such as 1/60") from None
    if scale <= 0:
        raise ValueError(f"{text} must be above 0")
    return scale


@dataclass
class AsyncEvent:
    """One queued event: the request id stays the same on every attempt."""

    function_name: str
    payload: Any
    label: str  # what fired it, for the user
    accepted_at: datetime
    due_at: datetime
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: int = 0
    last_response: dict[str, Any] | None = None  # the last failed attempt's error document


@dataclass(frozen=True)
class Settled:
    """What happened to an event after an attempt."""

    outcome: str  # "succeeded", "retrying", or the destination condition
    delay_s: float = 0.0  # before the next attempt, when retrying


class AsyncQueue:
    """Lambda's async event queue for one ``up``: attempts run one at a time, earliest
    due first, so a retry waiting out its delay never holds back another event.
    Event sources submit from their own threads."""

    def __init__(
        self,
        policies: Mapping[str, RetryPolicy],
        clock: Callable[[], datetime],
        scale: Fraction = DEFAULT_DELAY_SCALE,
    ) -> None:
        self.policies = dict(policies)
        self.clock = clock
        self.scale = scale
        self._pending: list[AsyncEvent] = []
        self._lock = threading.Lock()

    def policy(self, function_name: str) -> RetryPolicy:
        return self.policies.get(function_name, RetryPolicy())

    def scaled(self, seconds: float) -> float:
        return float(seconds * self.scale)

    def submit(self, function_name: str, payload: Any, label: str) -> AsyncEvent:
        now = self.clock()
        event = AsyncEvent(function_name, payload, label, now, now)
        with self._lock:
            self._pending.append(event)
        return event

    def take_due(self) -> AsyncEvent | None:
        """The event whose attempt is due soonest (first come first), if any is due."""
        now = self.clock()
        with self._lock:
            due = [event for event in self._pending if event.due_at <= now]
            if not due:
                return None
            event = min(due, key=lambda e: e.due_at)  # min keeps the earliest submitted on ties
            self._pending.remove(event)
        return event

    def seconds_until_next(self) -> float | None:
        with self._lock:
            if not self._pending:
                return None
            soonest = min(event.due_at for event in self._pending)
        return max(0.0, (soonest - self.clock()).total_seconds())

    def age_exceeded(self, event: AsyncEvent) -> bool:
        """Older than MaximumEventAgeInSeconds (scaled) when its attempt comes up."""
        limit = self.scaled(self.policy(event.function_name).max_event_age_s)
        return (self.clock() - event.accepted_at).total_seconds() > limit

    def settle(self, event: AsyncEvent, error_document: dict[str, Any] | None) -> Settled:
        """Record an attempt's outcome (None: it succeeded); requeue it if a retry is left."""
        event.attempts += 1
        if error_document is None:
            return Settled("succeeded")
        event.last_response = error_document
        if event.attempts >= self.policy(event.function_name).max_attempts:
            return Settled(RETRIES_EXHAUSTED)
        delay = self.scaled(LAMBDA_RETRY_DELAYS_S[event.attempts - 1])
        event.due_at = self.clock() + timedelta(seconds=delay)
        with self._lock:
            self._pending.append(event)
        return Settled("retrying", delay)

    def drain(self) -> list[AsyncEvent]:
        """Every pending event, removed (``up`` is stopping)."""
        with self._lock:
            pending, self._pending = sorted(self._pending, key=lambda e: e.due_at), []
        return pending


def function_arn(region: str, account: str, deployed: str) -> str:
    """The unqualified function's ARN as Lambda writes it in a record (``$LATEST``)."""
    return f"arn:aws:lambda:{region}:{account}:function:{deployed}:$LATEST"


def invocation_record(
    event: AsyncEvent, condition: str, function_arn: str, now: datetime
) -> dict[str, Any]:
    """The JSON document Lambda sends to an on-failure destination (the SQS message body)."""
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": lambda_time(now),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": event.attempts,
        },
        "requestPayload": event.payload,
    }
    if event.last_response is not None:
        record["responseContext"] = {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        }
        record["responsePayload"] = event.last_response
    return record


class FailureStore:
    """The local on-failure destination: one line per record, with where it was sent::

    {"function": "cleanup", "stage": "dev", "destination": "...-cleanup-failures", "record": {...}}
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(
        self, function_name: str, stage: str, destination: str, record: dict[str, Any]
    ) -> None:
        line = {"function": function_name, "stage": stage, "destination": destination}
        data = (json.dumps({**line, "record": record}) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)  # one write, as the log store does
        finally:
            os.close(fd)

    def read(self, function_name: str | None, stage: str | None) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as source:
            for text in source:
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:
                    continue  # a torn line from an interrupted writer
                if function_name and line.get("function") != function_name:
                    continue
                if stage and line.get("stage") != stage:
                    continue
                yield line


def print_failure(line: dict[str, Any], out: IO[str]) -> None:
    """One destination record, readably."""
    record = line["record"]
    context = record.get("requestContext", {})
    response = record.get("responsePayload") or {}
    error = response.get("errorMessage", "(no attempt ran)")
    if "errorType" in response:
        error = f"{response['errorType']}: {error}"
    payload = record.get("requestPayload")
    out.write(
        f"{record.get('timestamp')}  {line.get('function')} ({line.get('stage')})  "
        f"{context.get('condition')} after {context.get('approximateInvokeCount')} attempt(s)\n"
        f"  request id:  {context.get('requestId')}\n"
        f"  function:    {context.get('functionArn')}\n"
        f"  destination: {line.get('destination')} (local)\n"
        f"  event:       {json.dumps(payload)}\n"
        f"  last error:  {error}\n"
    )
    out.flush()

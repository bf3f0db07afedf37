"""``up``'s delivery loop: every event that fires reaches its handler here, one
invocation at a time, in this (the main) thread.

What arrives, from where:

- schedules fall due (the :class:`~chalice_loop.scheduler.Scheduler`), and S3,
  SNS and EventBridge events come from their bridges' threads: all of them go
  into Lambda's async queue (:class:`~chalice_loop.async_delivery.AsyncQueue`:
  retries, event age, on-failure destination);
- SQS batches come from their pollers' threads, each waiting until its batch is
  settled (synchronous, as Lambda's event source mapping invokes);
- names typed on stdin.

Turns alternate between a waiting SQS batch and a due async attempt, so neither
kind can hold the other back; each invocation is bounded by its function's
timeout, so no handler holds up delivery for longer than that.
"""

import contextlib
import json
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from chalice_loop.async_delivery import (
    EVENT_AGE_EXCEEDED,
    LAMBDA_RETRY_DELAYS_S,
    AsyncEvent,
    AsyncQueue,
    FailureStore,
    function_arn,
    invocation_record,
)
from chalice_loop.event_sources import EventSources, SqsBatch
from chalice_loop.handlers import (
    ASYNC_SOURCES,
    AUTHORIZER,
    LAMBDA_FUNCTION,
    ROUTE,
    SCHEDULE,
    SQS,
    Handler,
)
from chalice_loop.lambda_events import NoSampleError, describe_sample, sample_event
from chalice_loop.lambda_runner import Invocation, LocalLambda
from chalice_loop.local_logs import LogStore
from chalice_loop.local_stack import Project, region
from chalice_loop.naming import deployed_name, failure_queue_name, rule_name
from chalice_loop.paths import shown
from chalice_loop.scheduler import LOCAL_ACCOUNT_ID, Scheduler, event_time, scheduled_event

MAX_IDLE_S = 30.0  # `up` re-reads the clock at least this often


def utc_now() -> datetime:
    return datetime.now(UTC)


def report(invocation: Invocation, block: IO[str], result: IO[str]) -> None:
    """What Lambda prints: the log block, then the result or the error document."""
    block.write("\n".join(invocation.lambda_lines()) + "\n")
    block.flush()
    payload = invocation.error_document() if invocation.failed else invocation.result
    result.write(json.dumps(payload, indent=2) + "\n")
    result.flush()


def _timed_out_note(invocation: Invocation) -> None:
    if invocation.timed_out:
        print(
            "(the timed-out handler goes on in a background thread until it returns: "
            "Python cannot stop a thread; restart `up` if it holds on to something)"
        )


class Stack:
    """``up``'s delivery side for one app and stage."""

    def __init__(
        self,
        project: Project,
        local: LocalLambda,
        handlers: list[Handler],
        scheduler: Scheduler,
        async_queue: AsyncQueue,
        sources: EventSources | None = None,
        http_url: str | None = None,
    ) -> None:
        self.project = project
        self.local = local
        self.handlers = {handler.name: handler for handler in handlers}
        self.scheduler = scheduler
        self.queue = async_queue
        self.sources = sources
        self.http_url = http_url
        self.region = region()
        self.logs = LogStore(project.logs_path)
        self.failures = FailureStore(project.failures_path)
        self.inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.batches: deque[SqsBatch] = deque()
        self.in_flight: AsyncEvent | None = None

    # -- what arrives

    def submit(self, function_name: str, event: Any, label: str) -> None:
        """An asynchronous invocation from an event source's thread."""
        self.queue.submit(function_name, event, label)
        self.inbox.put(("wake", None))

    def run_batch_later(self, batch: SqsBatch) -> None:
        """An SQS poller's batch: run on this loop's thread; the poller waits for it."""
        self.inbox.put(("batch", batch))

    def type(self, name: str) -> None:
        self.inbox.put(("typed", name))

    # -- firing

    def fire_schedule(self, name: str, when: datetime, why: str) -> None:
        """EventBridge's asynchronous invoke of a scheduled rule: queued, not run here."""
        rule = rule_name(self.project.app_name, self.project.stage, name)
        event = scheduled_event(rule, when, self.region)
        self.queue.submit(name, event, f"{why}, rule {rule}, time {event_time(when)}")

    def typed(self, name: str) -> None:
        """A name typed at ``up``: a schedule fires now; any other handler it can run
        gets its sample event, by the path its source takes."""
        handler = self.handlers.get(name)
        if handler is None:
            known = ", ".join(self.handlers) or "none"
            print(f"no handler named {name!r} (handlers: {known})")
            return
        if handler.not_run_reason:
            print(f"{name} is not run locally: {handler.not_run_reason}")
            return
        if handler.kind == ROUTE:
            print(f"{name} is an HTTP route ({handler.declaration}): request it at {self.http_url}")
            return
        if handler.kind == AUTHORIZER:
            print(f"{name} is an authorizer: it runs with the routes that use it")
            return
        if handler.kind == SCHEDULE:
            self.fire_schedule(name, utc_now(), "fired now")
            return
        try:
            event = sample_event(handler, self.project.app_name, self.project.stage, self.region)
        except NoSampleError as exc:
            print(f"{name}: {exc}")
            return
        if handler.kind in ASYNC_SOURCES:
            self.queue.submit(name, event, f"typed: {describe_sample(handler, event)}")
            return
        what = "{}" if handler.kind == LAMBDA_FUNCTION else describe_sample(handler, event)
        print(f"\n== {name}: typed: {what}")
        self._run(name, event)

    def _run(self, name: str, payload: Any, request_id: str | None = None) -> Invocation:
        invocation = self.local.invoke(name, payload, request_id)
        self.logs.append(invocation, self.project.stage)
        report(invocation, sys.stdout, sys.stdout)
        _timed_out_note(invocation)
        return invocation

    # -- delivering

    def run_batch(self, batch: SqsBatch) -> None:
        """Invoke the handler with an SQS batch, then delete it or leave it (as Lambda)."""
        try:
            print(f"\n== {batch.handler.name}: {batch.label}")
            invocation = self._run(batch.handler.name, batch.payload)
            poller = self.sources.poller_for(batch.handler.name) if self.sources else None
            if poller is not None:
                print(poller.settle(batch, invocation))
        finally:
            batch.done.set()

    def deliver_next(self) -> bool:
        """Run the async attempt that is due soonest; False if none is due."""
        event = self.queue.take_due()
        if event is None:
            return False
        if self.queue.age_exceeded(event):
            self._to_destination(event, EVENT_AGE_EXCEEDED)
            return True
        policy = self.queue.policy(event.function_name)
        print(
            f"\n== {event.function_name}: {event.label} "
            f"(attempt {event.attempts + 1} of {policy.max_attempts}, request {event.request_id})"
        )
        self.in_flight = event
        invocation = self._run(event.function_name, event.payload, event.request_id)
        self.in_flight = None
        settled = self.queue.settle(
            event, invocation.error_document() if invocation.failed else None
        )
        if settled.outcome == "retrying":
            lambda_delay = LAMBDA_RETRY_DELAYS_S[event.attempts - 1]
            what = "timed out" if invocation.timed_out else "failed"
            print(
                f"-> {what}: attempt {event.attempts + 1} of {policy.max_attempts} in "
                f"{settled.delay_s:g} s (Lambda waits {lambda_delay} s; "
                f"--retry-delay-scale {self.queue.scale}), same event and request id"
            )
        elif settled.outcome != "succeeded":
            self._to_destination(event, settled.outcome)
        return True

    def _to_destination(self, event: AsyncEvent, condition: str) -> None:
        app, stage = self.project.app_name, self.project.stage
        deployed = deployed_name(app, stage, event.function_name)
        arn = function_arn(self.region, LOCAL_ACCOUNT_ID, deployed)
        destination = failure_queue_name(app, stage, event.function_name)
        record = invocation_record(event, condition, arn, utc_now())
        self.failures.send(event.function_name, stage, destination, record)
        print(
            f"-> {condition} after {event.attempts} attempt(s): {event.function_name} request "
            f"{event.request_id} sent to the on-failure destination {destination} "
            f"({shown(self.failures.path)}); `chalice-loop failures` shows it"
        )

    # -- the loop

    def _take(self, wait_s: float) -> None:
        """Handle what has arrived, waiting up to ``wait_s`` for the first item."""
        try:
            item = self.inbox.get(timeout=wait_s) if wait_s > 0 else self.inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            kind, value = item
            if kind == "typed":
                self.typed(value)
            elif kind == "batch":
                self.batches.append(value)
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return

    def serve(self, fire_now: list[str], stdin: IO[str]) -> None:
        """Deliver until interrupted (KeyboardInterrupt), then drop what is pending."""
        for name in fire_now:
            self.type(name)
        threading.Thread(target=_read_lines, args=(stdin, self.type), daemon=True).start()
        batch_turn = True
        try:
            while True:
                for due in self.scheduler.due():
                    name = due.schedule.name
                    self.fire_schedule(name, due.when, f"{due.schedule.expression} is due")
                self._take(0)
                async_waiting = self.queue.seconds_until_next() == 0
                if self.batches and (batch_turn or not async_waiting):
                    self.run_batch(self.batches.popleft())
                    batch_turn = False
                    continue
                if self.deliver_next():
                    batch_turn = True
                    continue
                waits = [self.scheduler.seconds_until_next(), self.queue.seconds_until_next()]
                wait = min([w for w in waits if w is not None], default=MAX_IDLE_S)
                self._take(min(wait, MAX_IDLE_S))
        except KeyboardInterrupt:
            self.drop_pending()
            raise

    def drop_pending(self) -> None:
        """``up`` is stopping: queued events are not kept (a new ``up`` starts empty)."""
        dropped = self.queue.drain()
        if self.in_flight is not None:
            dropped.insert(0, self.in_flight)
        for batch in self.batches:
            batch.done.set()
        if dropped:
            print(f"\ndropped {len(dropped)} queued event(s) (not kept across `up` runs):")
        for event in dropped:
            state = (
                "interrupted during its attempt"
                if event is self.in_flight
                else f"attempt {event.attempts + 1} was due at {event_time(event.due_at)}"
            )
            print(f"  {event.function_name} request {event.request_id}: {state}")
        for batch in self.batches:
            print(
                f"  {batch.handler.name}: {batch.label} not run (its messages come back "
                "after the queue's visibility timeout)"
            )
        self.batches.clear()


def _read_lines(stream: IO[str], take: Callable[[str], None]) -> None:
    with contextlib.suppress(ValueError, OSError):  # stdin closed under us
        for line in stream:
            if line.strip():
                take(line.strip())


def how_fired(
    handler: Handler, scheduler: Scheduler, http_url: str | None, s3_embedded: bool
) -> str:
    """How ``up`` fires a handler, or why it does not, for the start-up list."""
    if handler.not_run_reason:
        return f"NOT RUN LOCALLY: {handler.not_run_reason}"
    kind = handler.kind
    if kind == ROUTE:
        return f"HTTP at {http_url}" if http_url else "not served (no HTTP server)"
    if kind == AUTHORIZER:
        return "runs with the routes that use it"
    if kind == SCHEDULE:
        upcoming = scheduler.next_fire(handler.name)
        shown = event_time(upcoming) if upcoming else "never"
        return f"next {shown}; typed: fires now"
    if kind == LAMBDA_FUNCTION:
        return "`chalice-loop invoke NAME`; typed: invoked with {}"
    sample = "typed: its sample event"
    if kind == "s3":
        if not s3_embedded:
            return (
                "NOT FIRED: S3 is the endpoint in AWS_ENDPOINT_URL_S3, which cannot notify "
                f"the embedded endpoint; {sample}"
            )
        return f"writes and deletes in the bucket, as S3 notifies them; {sample}"
    if kind == SQS:
        return f"messages sent to the queue, polled as Lambda polls it; {sample}"
    if kind == "sns":
        return f"publishes to the topic; {sample}"
    if kind == "eventbridge":
        return f"PutEvents on the default bus that the rule matches; {sample}"
    return "?"

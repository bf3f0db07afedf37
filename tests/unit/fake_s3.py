"""A fake clock, a pool that runs on it, and a fake S3 with programmable latency and
answers: the cleanup's scheduling logic, tested in milliseconds instead of seconds.

The pool runs each call when it is submitted (the fake S3 applies it then) and
completes its future when the fake clock reaches the call's latency, which the
fake S3 draws from ``latency(operation, keys, in_flight)``. Only what the real
server would decide is faked: the listing order, continuation, delimiters,
``StartAfter`` and ``DeleteObjects`` follow S3's documented behaviour.
"""

import bisect
import heapq
import itertools
import math
import random
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

NOW = datetime(2020, 1, 1, tzinfo=UTC)  # stored objects are old unless a test says so


class Deadlock(AssertionError):
    """Waiting forever: nothing in flight would ever end."""


class FakeClock:
    """Time that moves only when the code under test sleeps or waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def at(self, when: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._seq), callback))

    def advance_to(self, when: float) -> None:
        while self._events and self._events[0][0] <= when:
            at, _, callback = heapq.heappop(self._events)
            self.now = max(self.now, at)
            callback()
        self.now = max(self.now, when)

    def sleep(self, seconds: float) -> None:
        self.advance_to(self.now + seconds)

    def wait_any(self, futures: Collection[Future], timeout: float | None) -> set[Future]:
        until = math.inf if timeout is None else self.now + timeout
        while True:
            done = {f for f in futures if f.done()}
            if done:
                return done
            if not self._events or self._events[0][0] > until:
                if timeout is None:
                    raise Deadlock("waiting on futures that never end")
                self.advance_to(until)
                return set()
            at, _, callback = heapq.heappop(self._events)
            self.now = max(self.now, at)
            callback()

    def remaining_ms(self, timeout_s: float) -> Callable[[], float]:
        """A Lambda context's ``get_remaining_time_in_millis``, ``timeout_s`` from now."""
        ends = self.now + timeout_s
        return lambda: (ends - self.now) * 1000


class FakePool:
    """``Executor.submit`` on the fake clock: the call runs now, its answer arrives later."""

    def __init__(self, clock: FakeClock, s3: "FakeS3") -> None:
        self.clock, self.s3 = clock, s3

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        future.set_running_or_notify_cancel()
        try:
            value, error = fn(*args), None
        except Exception as exc:
            value, error = None, exc
        latency = self.s3.take_latency()
        ends = self.clock.now + latency
        heapq.heappush(self.s3.ends, ends)
        self.s3.call_ends.append(ends)

        def answer() -> None:
            if error is None:
                future.set_result(value)
            else:
                future.set_exception(error)

        self.clock.at(ends, answer)
        return future


def report_keys(count: int, day: str = "2026-11-30", seed: int = 0) -> list[str]:
    """``reports/<day>/<request id>.json`` with ids shaped as Lambda's (random UUIDs)."""
    rng = random.Random(f"{seed}|{day}")
    ids = (f"{rng.getrandbits(128):032x}" for _ in range(count))
    return [f"reports/{day}/{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}.json" for h in ids]


def _past(prefix: str) -> str:
    """The first name above every name that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def client_error(operation: str, code: str, status: int, message: str = "") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message or code}, "ResponseMetadata": {
            "HTTPStatusCode": status, "RetryAttempts": 2}},
        operation,
    )  # fmt: skip


@dataclass
class Call:
    operation: str
    params: dict[str, Any]
    at: float
    in_flight: int  # calls in flight at the server when this one arrived (itself excluded)
    keys: int = 0


def flat(seconds: float) -> Callable[[str, int, int], float]:
    """Every call takes ``seconds``, however many are in flight (a slow but healthy server)."""
    return lambda operation, keys, in_flight: seconds


def saturating(seconds: float, capacity: int) -> Callable[[str, int, int], float]:
    """Serves ``capacity`` calls at once; beyond that, latency grows with the calls in flight."""
    return lambda operation, keys, in_flight: seconds * max(1.0, (in_flight + 1) / capacity)


@dataclass
class FakeS3:
    """A bucket's keys, ``ListObjectsV2`` and ``DeleteObjects`` as S3 answers them.

    ``latency(operation, keys, in_flight)`` decides how long each call takes;
    ``fault(call)`` may return an exception to raise (after botocore's retries) or,
    for a delete, ``{key: code}`` to refuse in a 200 answer."""

    clock: FakeClock
    latency: Callable[[str, int, int], float] = field(default=flat(0.05))
    fault: Callable[[Call], Any] = lambda call: None
    calls: list[Call] = field(default_factory=list)
    call_ends: list[float] = field(default_factory=list)  # when each call answered
    ends: list[float] = field(default_factory=list)  # a heap: calls still in flight
    _keys: list[str] = field(default_factory=list)  # sorted, deleted ones included
    _live: dict[str, datetime] = field(default_factory=dict)
    _tokens: dict[str, tuple[str, bool]] = field(default_factory=dict)
    _latency: float = 0.0
    listed_not_deleted: set[str] = field(default_factory=set)
    most_outstanding: int = 0  # listed and not yet deleted, at most

    def put(self, keys: Iterable[str] | dict[str, datetime], modified: datetime = NOW) -> None:
        """Store ``keys`` last modified at ``modified``, or each at its time in a dict."""
        times = dict(keys) if isinstance(keys, dict) else dict.fromkeys(keys, modified)
        new = [key for key in times if key not in self._live]
        self._live.update(times)
        self._keys = sorted([*self._keys, *new])

    def stored(self) -> list[str]:
        return [k for k in self._keys if k in self._live]

    def in_flight(self) -> int:
        while self.ends and self.ends[0] <= self.clock.now:
            heapq.heappop(self.ends)
        return len(self.ends)

    def take_latency(self) -> float:
        return self._latency

    def _call(self, operation: str, params: dict[str, Any], keys: int = 0) -> Any:
        """Record the call, draw its latency; raise its fault, or return it (refusals)."""
        call = Call(operation, params, self.clock.now, self.in_flight(), keys)
        self.calls.append(call)
        self._latency = self.latency(operation, keys, call.in_flight)
        outcome = self.fault(call)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def list_objects_v2(
        self,
        Bucket: str,
        Prefix: str = "",
        Delimiter: str | None = None,
        ContinuationToken: str | None = None,
        StartAfter: str | None = None,
        MaxKeys: int = 1000,
    ) -> dict[str, Any]:
        params = {k: v for k, v in locals().items() if k not in ("self", "Bucket") and v}
        self._call("ListObjectsV2", params)
        after, after_prefix = "", False
        if ContinuationToken is not None:
            after, after_prefix = self._tokens[ContinuationToken]
        elif StartAfter is not None:
            after = StartAfter
        i = max(bisect.bisect_right(self._keys, after), bisect.bisect_left(self._keys, Prefix))
        if after_prefix:  # resume past every key under the common prefix returned last
            i = max(i, bisect.bisect_left(self._keys, _past(after)))
        contents: list[dict[str, Any]] = []
        prefixes: list[str] = []
        last: tuple[str, bool] | None = None
        truncated = False
        while i < len(self._keys):
            key = self._keys[i]
            if not key.startswith(Prefix):
                break
            if key not in self._live:
                i += 1
                continue
            if len(contents) + len(prefixes) == MaxKeys:
                truncated = True
                break
            cut = key.find(Delimiter, len(Prefix)) if Delimiter else -1
            if cut >= 0:
                common = key[: cut + len(Delimiter)]
                i = bisect.bisect_left(self._keys, _past(common))
                if not any(self._keys[j] in self._live for j in range(
                        bisect.bisect_left(self._keys, common), i)):  # fmt: skip
                    continue
                prefixes.append(common)
                last = (common, True)
                continue
            contents.append({"Key": key, "LastModified": self._live[key]})
            last = (key, False)
            i += 1
        page: dict[str, Any] = {"IsTruncated": truncated, "KeyCount": len(contents) + len(prefixes)}
        if contents:
            page["Contents"] = contents
        if prefixes:
            page["CommonPrefixes"] = [{"Prefix": p} for p in prefixes]
        if truncated:
            assert last is not None
            token = f"t{len(self._tokens)}"
            self._tokens[token] = last
            page["NextContinuationToken"] = token
        self.listed_not_deleted.update(o["Key"] for o in contents)
        self.most_outstanding = max(self.most_outstanding, len(self.listed_not_deleted))
        return page

    def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
        keys = [o["Key"] for o in Delete["Objects"]]
        assert len(keys) <= 1000 and Delete.get("Quiet") is True
        refused = self._call("DeleteObjects", {"keys": keys}, len(keys)) or {}
        for key in keys:
            if key not in refused:
                self._live.pop(key, None)
                self.listed_not_deleted.discard(key)
        errors = [{"Key": k, "Code": code, "Message": code} for k, code in refused.items()]
        return {"Errors": errors, "ResponseMetadata": {"RetryAttempts": 0}}

    def count(self, operation: str) -> int:
        return sum(1 for c in self.calls if c.operation == operation)

"""botocore event hooks that count requests, time calls and simulate a network
round trip. Shared by the benchmark and the tests, so both count the same way."""

import threading
import time
from collections import Counter, defaultdict
from typing import Any


class RequestCounter:
    """HTTP requests sent by a client, by operation (each retry counts), thread-safe."""

    def __init__(self) -> None:
        self._sent: list[str] = []  # list.append is atomic: no lock on the hot path

    def attach(self, client: Any) -> "RequestCounter":
        client.meta.events.register("before-send.s3", self._on_send, unique_id=f"count-{id(self)}")
        return self

    def detach(self, client: Any) -> None:
        client.meta.events.unregister("before-send.s3", unique_id=f"count-{id(self)}")

    def _on_send(self, event_name: str, **_: Any) -> None:
        self._sent.append(event_name.rsplit(".", 1)[-1])

    @property
    def counts(self) -> Counter:
        return Counter(self._sent)

    @property
    def total(self) -> int:
        return len(self._sent)

    def reset(self) -> None:
        self._sent.clear()


class CallTimer:
    """Wall time of each API call (retries and simulated round trips included), by operation."""

    def __init__(self) -> None:
        self.durations_ms: dict[str, list[float]] = defaultdict(list)
        self._started = threading.local()

    def attach(self, client: Any) -> "CallTimer":
        events = client.meta.events
        events.register("before-call.s3", self._before, unique_id=f"time-before-{id(self)}")
        events.register("after-call.s3", self._after, unique_id=f"time-after-{id(self)}")
        return self

    def _before(self, event_name: str, **_: Any) -> None:
        self._started.at = time.perf_counter()

    def _after(self, event_name: str, **_: Any) -> None:
        elapsed = (time.perf_counter() - self._started.at) * 1000
        self.durations_ms[event_name.rsplit(".", 1)[-1]].append(elapsed)


class SimulatedRoundTrip:
    """Sleep before each HTTP request is sent: a fixed network round trip on top of
    the endpoint's own time. Sleeping releases the GIL, as waiting on a socket does."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def attach(self, client: Any) -> "SimulatedRoundTrip":
        if self.seconds > 0:
            events = client.meta.events
            events.register("before-send.s3", self._on_send, unique_id=f"rtt-{id(self)}")
        return self

    def detach(self, client: Any) -> None:
        client.meta.events.unregister("before-send.s3", unique_id=f"rtt-{id(self)}")

    def _on_send(self, **_: Any) -> None:
        time.sleep(self.seconds)

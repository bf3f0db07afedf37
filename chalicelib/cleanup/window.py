"""How many ``DeleteObjects`` are in flight: a window that adapts to the server.

AIMD, as TCP does it, steered by throughput. Every full-batch answer is a sample of
latency at the number of deletes in flight when it was sent. By Little's law the
throughput at ``n`` in flight is ``n / latency(n)`` batches a second, ``latency(n)``
being the median of the last :data:`SAMPLES` answers at ``n``. Each *round* is as
many answers as the window held when the round began (about one round trip). At
its end:

- **Throttled** (any answer of the round carried ``SlowDown``: a whole request
  refused, a key refused in a 200 answer, or a request botocore had to retry):
  multiplicative decrease, the window halves (not below 1).
  What was measured above the new window is forgotten: the server pushed back there.
- **Otherwise** the *best* window is the smallest whose throughput is within
  :data:`TOLERANCE` of the highest measured. In slow start (the first rounds) the
  window doubles while it is the best, and falls back to the best when doubling
  stopped paying. Then it goes to the best whenever that is another window (a wider
  one did not pay, or the latency climbed where it is), and while it is the best it
  tries a window a quarter wider or narrower every :data:`PROBE_EVERY` rounds (the
  other way after a probe that did not pay; the same way at once after one that did):
  additive steps, steered by throughput, that find the knee where more in flight
  stops paying and follow a server whose capacity changes.

So it grows while throughput grows, and shrinks when latency climbs faster than
the window (throughput falls) or the server throttles. A slow but healthy server
(every answer 3 s late however many are in flight) has throughput proportional to
the window, which grows to ``maximum``; the read timeout (``chalicelib.s3``), not
the window, is what a late answer must beat. Bounded above by ``maximum``
(threads, memory: 1,000 keys each) and below by 1.
"""

import statistics
from collections import defaultdict, deque

INITIAL_DELETES_IN_FLIGHT = 8  # the window at the start of a run
MAX_DELETES_IN_FLIGHT = 32
SAMPLES = 8  # latencies kept per number in flight
TOLERANCE = 0.05  # a window this close to the best throughput is as good (and smaller)
PROBE_EVERY = 4  # rounds at the best before trying another window
PROBE_STEP = 4  # ... a quarter wider or narrower (at least one)


class DeleteWindow:
    """The number of deletes allowed in flight; ``pinned`` keeps it at ``initial``."""

    def __init__(
        self,
        initial: int = INITIAL_DELETES_IN_FLIGHT,
        minimum: int = 1,
        maximum: int = MAX_DELETES_IN_FLIGHT,
        pinned: bool = False,
    ) -> None:
        if not minimum <= initial <= maximum:
            raise ValueError(f"window {initial} outside [{minimum}, {maximum}]")
        self.size, self.minimum, self.maximum, self.pinned = initial, minimum, maximum, pinned
        self.slow_start = True
        self.largest = initial  # the widest the window was in the run
        self.decreases = 0  # rounds that shrank it
        self._latencies: defaultdict[int, deque[float]] = defaultdict(lambda: deque(maxlen=SAMPLES))
        self._round_size = initial
        self._answers = 0
        self._throttled = False
        self._at_best = 0  # rounds in a row at the best window
        self._probed = False  # the last round tried another window
        self._direction = 1  # the next probe: wider (1) or narrower (-1)

    def on_answer(
        self, seconds: float, throttled: bool, in_flight: int | None = None, full_batch: bool = True
    ) -> None:
        """A ``DeleteObjects`` answered after ``seconds``, sent with ``in_flight`` deletes in
        flight (itself included; the window when None). A partial batch's latency says
        less about the server: only its throttling counts."""
        if self.pinned:
            return
        self._answers += 1
        self._throttled |= throttled
        if full_batch:
            self._latencies[in_flight or self.size].append(seconds)
        if self._answers >= self._round_size:
            self._end_round()

    def throughput(self) -> dict[int, float]:
        """Batches a second at each number in flight measured (Little's law)."""
        return {n: n / statistics.median(ls) for n, ls in self._latencies.items() if ls}

    def best(self) -> int | None:
        """The smallest window within TOLERANCE of the highest throughput measured."""
        rates = self.throughput()
        if not rates:
            return None
        top = max(rates.values())
        return min(n for n, rate in rates.items() if rate >= (1 - TOLERANCE) * top)

    def _end_round(self) -> None:
        probed, self._probed = self._probed, False
        if self._throttled:
            self.slow_start = False
            self._resize(self.size // 2)
            for n in [n for n in self._latencies if n > self.size]:
                del self._latencies[n]  # measured where the server pushed back: not to go back
        elif (best := self.best()) is None:
            pass  # no full batch this round: hold
        elif self.slow_start:
            if best >= self.size:
                self._resize(self.size * 2)
                self.slow_start = self.size < self.maximum
            else:
                self.slow_start = False
                self._resize(best)
        elif best != self.size:  # a probe that did not pay, or the latency climbed
            self._at_best = 0
            self._direction = -self._direction if probed else self._direction
            self._resize(best)
        elif probed:  # the last probe paid: try further the same way
            self._probe()
        else:
            self._at_best += 1
            if self._at_best >= PROBE_EVERY:
                self._probe()
        self._round_size, self._answers, self._throttled = self.size, 0, False

    def _probe(self) -> None:
        bound = self.maximum if self._direction > 0 else self.minimum
        if self.size == bound:
            self._direction = -self._direction
        self._at_best, self._probed = 0, True
        self._resize(self.size + self._direction * max(1, self.size // PROBE_STEP))

    def _resize(self, size: int) -> None:
        size = max(self.minimum, min(self.maximum, size))
        self.decreases += size < self.size
        self.size = size
        self.largest = max(self.largest, size)

"""Deleting: one ``DeleteObjects`` and its answer, and the plan for keys it refused.

``DeleteObjects`` may answer 200 and refuse single keys; botocore retries whole
requests, never keys inside an answer. Keys refused with a transient code
(:data:`RETRYABLE_KEY_CODES`) are batched again into later deletes after a jittered
exponential backoff (one draw per answer, so keys refused together go again
together), at most :data:`KEY_ATTEMPTS` sends per key, and only while the deadline
allows. A key refused with any other code, or with its attempts used up, is
reported with its last code. A request that failed whole (botocore's attempts used
up) is not sent again: its keys are reported.
"""

import heapq
import random
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.cleanup.result import DeleteFailure

DELETE_BATCH = 1000  # the most keys one DeleteObjects takes
# Transient per the S3 error code list (retry "SlowDown", 500 "InternalError", 503
# "ServiceUnavailable", 400 "RequestTimeout"), the codes botocore's standard mode
# retries for whole requests; anything else (AccessDenied, ...) will not pass by waiting.
RETRYABLE_KEY_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"}
)
THROTTLING_CODES = frozenset({"SlowDown", "ServiceUnavailable"})
KEY_ATTEMPTS = 4  # sends per key, the first included
KEY_BACKOFF_BASE_S = 0.1  # re-send n waits rand(0, 1) * min(cap, base * 2**(n-1))
KEY_BACKOFF_CAP_S = 2.0


@dataclass(frozen=True)
class Answer:
    failed: list[DeleteFailure]
    refused: bool  # the failures are keys refused in a 200 answer, not a failed request
    # The server pushed back: SlowDown (whole or per key), or botocore had to retry.
    throttled: bool = False


def delete_batch(s3: Any, bucket: str, keys: list[str]) -> Answer:
    """Delete up to 1,000 keys in one request; the keys that failed.

    A failed request has already been retried by botocore (``chalicelib.s3``)."""
    try:
        response = s3.delete_objects(
            Bucket=bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", "ClientError"), error.get("Message", str(exc))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        failed = [DeleteFailure(key, code, message, status >= 500) for key in keys]
        return Answer(failed, False, code in THROTTLING_CODES or status == 503)
    except BotoCoreError as exc:  # timeouts, connections: after botocore's retries
        failed = [DeleteFailure(key, type(exc).__name__, str(exc), True) for key in keys]
        return Answer(failed, False, True)
    # After a retry, an earlier attempt whose answer was lost may have deleted them.
    retried = response.get("ResponseMetadata", {}).get("RetryAttempts", 0) > 0
    failed = [
        DeleteFailure(e.get("Key", "?"), e.get("Code", "?"), e.get("Message", ""), retried)
        for e in response.get("Errors", [])
    ]
    throttled = retried or any(f.code in THROTTLING_CODES for f in failed)
    return Answer(failed, True, throttled)


def backoff_s(resend: int, draw: float) -> float:
    """Full jitter: ``draw`` (in [0, 1)) * min(cap, base * 2**(n-1)) before the n-th re-send."""
    return draw * min(KEY_BACKOFF_CAP_S, KEY_BACKOFF_BASE_S * 2 ** (resend - 1))


@dataclass(order=True)
class _Waiting:
    ready: float  # clock seconds
    keys: list[str] = field(compare=False)


class KeyRetries:
    """The keys refused so far: how often each was sent, which wait for a re-send and
    until when, and which are reported. Pure bookkeeping: the caller sends."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.sends: dict[str, int] = {}  # keys refused at least once: sends so far
        self.unknown: set[str] = set()  # refused keys a send of which may have deleted
        self._waiting: list[_Waiting] = []  # a heap, by ready time
        self.waiting_keys = 0

    def sending(self, keys: list[str]) -> int:
        """``keys`` go out in one request: count the re-sends among them."""
        resent = [key for key in keys if key in self.sends]
        for key in resent:
            self.sends[key] += 1
        return len(resent)

    def answered(self, answer: Answer, now: float) -> list[DeleteFailure]:
        """Plan re-sends for the transient refusals of ``answer``; the failures to report."""
        retryable = RETRYABLE_KEY_CODES if answer.refused else frozenset()
        retry, report = [], []
        for failure in answer.failed:
            sends = self.sends.setdefault(failure.key, 1)
            if failure.outcome_unknown:
                self.unknown.add(failure.key)
            if failure.code in retryable and sends < KEY_ATTEMPTS:
                retry.append(failure.key)
                continue
            message = failure.message
            if failure.code in retryable:
                message += f" (refused {sends} times)"
            unknown = failure.key in self.unknown
            report.append(replace(failure, message=message, outcome_unknown=unknown))
        if retry:
            resend = max(self.sends[key] for key in retry)
            ready = now + backoff_s(resend, self.rng.random())
            heapq.heappush(self._waiting, _Waiting(ready, retry))
            self.waiting_keys += len(retry)
        return report

    def next_ready(self) -> float | None:
        """When the first waiting keys may go again (clock seconds), or None."""
        return self._waiting[0].ready if self._waiting else None

    def ready(self, now: float) -> list[str]:
        """The waiting keys whose backoff has passed, longest waiting first."""
        keys: list[str] = []
        while self._waiting and self._waiting[0].ready <= now:
            keys += heapq.heappop(self._waiting).keys
        self.waiting_keys -= len(keys)
        return keys

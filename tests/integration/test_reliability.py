"""Reliability: the real handlers through a fault-injecting proxy in front of S3.

The app's S3 client is rebuilt by ``make_client()`` with its endpoint at the
proxy (``AWS_ENDPOINT_URL_S3``) and swapped into the app module, so the
production retry and timeout policy is what faces the faults. Replay a run
with ``FAULT_SEED=<seed> pytest tests/integration/test_reliability.py``.
"""

import contextlib
import ipaddress
import json
import math
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import jsonschema
import pytest
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from chalice.cli.factory import CLIFactory

from bench.instrument import RequestCounter
from bench.s3_host import MotoChild
from chalicelib.cleanup import CleanupError
from chalicelib.cleanup.deadline import HANG_RESERVE_RUNS
from chalicelib.s3 import (
    CONNECT_TIMEOUT_S,
    MAX_ATTEMPTS,
    READ_TIMEOUT_S,
    WORST_CASE_CALL_S,
    WORST_CASE_DELETE_S,
    WORST_CASE_LIST_S,
    make_client,
)
from chalicelib.worker_event import format_time
from tests.conftest import (
    PROJECT,
    SCHEDULED_EVENT,
    STAGE,
    STAGES,
    age_objects,
    assert_every_listed_key_accounted,
    object_keys,
    seed_objects,
)
from tests.fault_mixes import WORKER_FAULTS
from tests.faultproxy import (
    EVERY_SEND,
    Fault,
    FaultProxy,
    Planned,
    checksum_mismatches,
    fault_proxy,
    rebody_headers,
    s3_operation,
)
from tests.reliability_figures import record_figures
from tests.report_schema import check_report

SEED = int(os.environ.get("FAULT_SEED", "7"))
PUT = frozenset({"PutObject"})
LIST = frozenset({"ListObjectsV2"})
DELETE = frozenset({"DeleteObjects"})
FAILING_KINDS = {"slowdown", "internal", "reset"}


def function_timeouts() -> dict[str, int]:
    """``lambda_timeout`` (s) of every function in every stage, as chalice resolves it."""
    factory = CLIFactory(str(PROJECT))
    timeouts = {}
    for stage in STAGES:
        config = factory.create_config_obj(chalice_stage_name=stage)
        for function in ("worker", "cleanup"):
            timeouts[f"{stage}/{function}"] = config.scope(stage, function).lambda_timeout
    return timeouts


class Calls:
    """The client's own view, by operation: API calls, HTTP attempts (the benchmark's
    ``RequestCounter``), calls that failed. Like it, each hook only appends to a
    list, so the counts stay exact with the client shared across threads."""

    def __init__(self) -> None:
        self._attempts = RequestCounter()
        self._calls: list[str] = []
        self._failed: list[str] = []

    def attach(self, client: Any) -> None:
        self._attempts.attach(client)
        events = client.meta.events
        events.register("before-call.s3", self._on_call)
        events.register("after-call.s3", self._after_call)
        events.register("after-call-error.s3", self._on_failure)

    @property
    def calls(self) -> Counter:
        return Counter(self._calls)

    @property
    def attempts(self) -> Counter:
        return self._attempts.counts

    @property
    def failed(self) -> Counter:
        return Counter(self._failed)

    def _on_call(self, event_name: str, **_: Any) -> None:
        self._calls.append(event_name.rsplit(".", 1)[-1])

    def _on_failure(self, event_name: str, **_: Any) -> None:
        self._failed.append(event_name.rsplit(".", 1)[-1])

    def _after_call(self, event_name: str, http_response: Any, **_: Any) -> None:
        if http_response.status_code >= 300:
            self._on_failure(event_name)


def failing_faults(proxy: FaultProxy, operation: str) -> int:
    """Injected faults that cost the client an attempt (a delay it waited out does not)."""
    return sum(
        1
        for i in proxy.log.injections
        if i.operation == operation and (i.kind in FAILING_KINDS or i.outcome == "abandoned")
    )


def failed_attempts(proxy: FaultProxy, operation: str) -> int:
    """Attempts that failed: the failing faults, and the 5xx answers of S3 itself (moto's
    server answers 500 now and then, listing a bucket while a delete removes its keys)."""
    return failing_faults(proxy, operation) + proxy.log.server_errors[operation]


def assert_retried_every_retryable_fault(proxy: FaultProxy, calls: Calls, operation: str) -> None:
    """Each failing fault cost one retry, except the last attempt of a call that failed."""
    assert proxy.log.requests[operation] == calls.attempts[operation]
    retries = calls.attempts[operation] - calls.calls[operation]
    assert retries == failed_attempts(proxy, operation) - calls.failed[operation]


@contextlib.contextmanager
def checked_proxy(upstream: str, seed: int = SEED) -> Iterator[FaultProxy]:
    """A fault proxy in front of ``upstream``; prints what it injected, fails on its errors."""
    with fault_proxy(upstream, seed=seed) as proxy:
        yield proxy
        proxy.wait_idle()
        print(f"\nfault proxy, FAULT_SEED={seed}: {json.dumps(proxy.summary())}")
        assert proxy.log.errors == []


@pytest.fixture
def proxy(s3_server: str) -> Iterator[FaultProxy]:
    """A fault proxy in front of the test's S3 server."""
    with checked_proxy(s3_server) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def moto_child(s3_endpoint: str) -> Iterator[MotoChild]:
    """moto's server in a child process, for the timing-sensitive tests: its CPU is
    not behind the GIL the client, the proxy and the test's threads share."""
    child = MotoChild()
    try:
        yield child
    finally:
        child.close()


@pytest.fixture
def child_s3(moto_child: MotoChild, bucket: str) -> Iterator[Any]:
    """A client for the child server, with the stage's bucket created there (empty)."""
    s3 = boto3.client("s3", endpoint_url=moto_child.endpoint)
    s3.create_bucket(Bucket=bucket)
    yield s3
    moto_child.drop(s3, bucket)


@pytest.fixture
def child_proxy(moto_child: MotoChild, child_s3: Any) -> Iterator[FaultProxy]:
    """A fault proxy in front of the child server."""
    with checked_proxy(moto_child.endpoint) as proxy:
        yield proxy


def point_app_at(proxy: FaultProxy, app_module: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app's S3 client, built by the app's own factory, with its endpoint at the proxy."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    client = make_client()
    monkeypatch.setattr(app_module, "S3", client)
    return client


@pytest.fixture
def faulty_s3(proxy: FaultProxy, app_module: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    return point_app_at(proxy, app_module, monkeypatch)


@pytest.fixture
def calls(faulty_s3: Any) -> Calls:
    counter = Calls()
    counter.attach(faulty_s3)
    return counter


# --- the policy -------------------------------------------------------------------------


def test_client_uses_the_documented_retry_and_timeout_policy(s3_endpoint):
    config = make_client().meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}
    assert (config.connect_timeout, config.read_timeout) == (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
    assert (MAX_ATTEMPTS, CONNECT_TIMEOUT_S, READ_TIMEOUT_S) == (3, 1, 2)
    assert WORST_CASE_CALL_S == 3 * (1 + 2) + (1 + 2) == 12
    assert WORST_CASE_LIST_S == 3 * (1 + 5) + (1 + 2) == 21
    assert WORST_CASE_DELETE_S == 3 * (1 + 15) + (1 + 2) == 51


def test_worst_case_of_one_call_ends_inside_every_function_timeout():
    timeouts = function_timeouts()
    assert timeouts  # every stage, worker and cleanup
    for function, timeout in timeouts.items():
        assert timeout > WORST_CASE_CALL_S, function  # the worker only puts
        if function.endswith("/cleanup"):  # lists and deletes; and keeps one in reserve
            assert timeout * 1000 >= HANG_RESERVE_RUNS * WORST_CASE_DELETE_S * 1000, function


# --- the proxy itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "operation"),
    [
        ("PUT", "/b/reports/2026-01-01/x.json", "PutObject"),
        ("GET", "/b/k", "GetObject"),
        ("HEAD", "/b/k", "HeadObject"),
        ("DELETE", "/b/k", "DeleteObject"),
        ("GET", "/b?list-type=2&encoding-type=url", "ListObjectsV2"),
        ("GET", "/b?list-type=2&continuation-token=abc", "ListObjectsV2"),
        ("GET", "/b", "ListObjects"),
        ("GET", "/b?versions", "ListObjectVersions"),
        ("POST", "/b?delete", "DeleteObjects"),
        ("PUT", "/b", "CreateBucket"),
        ("HEAD", "/b", "HeadBucket"),
        ("DELETE", "/b", "DeleteBucket"),
        ("GET", "/", "ListBuckets"),
        ("POST", "/moto-api/reset", "MotoApi"),
    ],
)
def test_operation_names(method, target, operation):
    assert s3_operation(method, target) == operation


def test_proxy_names_operations_as_botocore_does(proxy, faulty_s3, s3, bucket):
    client = faulty_s3
    seen = RequestCounter().attach(client)
    client.put_object(Bucket=bucket, Key="a/b.json", Body=b"{}")
    client.head_object(Bucket=bucket, Key="a/b.json")
    client.get_object(Bucket=bucket, Key="a/b.json")["Body"].read()
    client.copy_object(Bucket=bucket, Key="a/c.json", CopySource=f"{bucket}/a/b.json")
    client.list_objects_v2(Bucket=bucket)
    client.list_objects(Bucket=bucket)
    client.head_bucket(Bucket=bucket)
    client.delete_object(Bucket=bucket, Key="a/c.json")
    client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a/b.json"}]})
    proxy.wait_idle()
    assert dict(proxy.log.requests) == dict(seen.counts)
    assert object_keys(s3, bucket) == []


@pytest.mark.parametrize(
    ("fault", "error", "stored"),
    [
        (Fault("slowdown", 1.0, PUT), "SlowDown", False),
        (Fault("internal", 1.0, PUT), "InternalError", False),
        (Fault("internal", 1.0, PUT, after=True), "InternalError", True),
        (Fault("reset", 1.0, PUT), "ConnectionClosedError", False),
        (Fault("reset", 1.0, PUT, after=True), "ConnectionClosedError", True),
        (Fault("delay", 1.0, PUT, seconds=0.2), None, True),
    ],
    ids=lambda v: f"{v.kind}{'-after' if v.after else ''}" if isinstance(v, Fault) else None,
)
def test_each_fault_as_the_client_sees_it(proxy, faulty_s3, s3, bucket, fault, error, stored):
    client = faulty_s3
    proxy.set_faults([fault])
    try:
        client.put_object(Bucket=bucket, Key="k.json", Body=b"{}")
        raised = None
    except ClientError as exc:
        raised = exc.response["Error"]["Code"]
    except BotoCoreError as exc:
        raised = type(exc).__name__
    proxy.wait_idle()
    assert raised == error
    assert proxy.log.requests["PutObject"] == (1 if error is None else MAX_ATTEMPTS)
    assert (object_keys(s3, bucket) == ["k.json"]) is stored


def test_failed_keys_are_really_kept_and_the_rewritten_request_checksums_match(
    proxy, faulty_s3, s3, bucket
):
    keys = seed_objects(bucket, 300)
    client = faulty_s3
    proxy.set_faults([Fault("fail_keys", 1.0, DELETE, key_rate=0.1)])
    response = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
    )
    proxy.wait_idle()
    reported = {e["Key"]: e["Code"] for e in response["Errors"]}
    # Each of the 300 keys refused with a chance of 0.1: none or all, under 1e-13 for a seed.
    assert 0 < len(reported) < len(keys)
    assert set(reported.values()) == {"AccessDenied"}
    assert sorted(reported) == sorted(proxy.failed_keys()) == object_keys(s3, bucket)
    assert proxy.log.errors == []  # the forwarded body matched its recomputed checksums


def test_checksums_are_checked_and_recomputed_for_a_new_body():
    body, new_body = b"<Delete>one</Delete>", b"<Delete>two</Delete>"
    headers = rebody_headers(
        [
            ("Content-Length", "0"),
            ("Content-MD5", "x"),
            ("x-amz-checksum-crc32", "x"),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
            ("X-Amz-Content-SHA256", "x"),
        ],
        body,
    )
    assert checksum_mismatches(headers, body) == []
    assert checksum_mismatches(headers, new_body) == [
        "Content-MD5", "x-amz-checksum-crc32", "X-Amz-Content-SHA256",
    ]  # fmt: skip
    rewritten = rebody_headers(headers, new_body)
    assert checksum_mismatches(rewritten, new_body) == []
    assert ("Content-Length", str(len(new_body))) in rewritten
    crc32c = rebody_headers(
        [("x-amz-checksum-crc32c", "x"), ("x-amz-sdk-checksum-algorithm", "CRC32C")], new_body
    )
    assert crc32c == []  # cannot recompute CRC32C with the standard library: dropped


REPLAY_FAULTS = [Fault("internal", 0.2, PUT), Fault("reset", 0.2, PUT, after=True)]
REPLAY_PUTS = 40
# Each kind the draws give, made sure of whatever the seed: on the first send of two keys.
REPLAY_PLAN = [Planned("PutObject", REPLAY_FAULTS[0], key="r/0.json")]
REPLAY_PLAN += [Planned("PutObject", REPLAY_FAULTS[1], key="r/1.json")]


class ArrivalOrderProxy(FaultProxy):
    """The control: every request draws from one generator, in arrival order. Its
    faults cannot follow a request once the order changes, yet each run injects
    the same sequence of faults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shared = random.Random(self.seed)

    def rng_for(self, identity: str, occurrence: int) -> random.Random:
        return self._shared


def replay_run(
    proxy_class: type[FaultProxy],
    order: list[int],
    threads: int,
    s3_server: str,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    plan: list[Planned] = REPLAY_PLAN,
) -> FaultProxy:
    """PUT ``r/<i>.json`` (body ``<i>``) for each i in ``order`` through a fresh proxy."""
    proxy = proxy_class(s3_server, REPLAY_FAULTS, seed=SEED, plan=plan).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
        client = make_client()

        def put(i: int) -> None:
            with contextlib.suppress(ClientError, BotoCoreError):
                client.put_object(Bucket=bucket, Key=f"r/{i}.json", Body=str(i).encode())

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, order))
        proxy.wait_idle()
        assert proxy.log.errors == []
        return proxy
    finally:
        proxy.stop()


def test_the_same_seed_gives_each_request_the_same_fault_even_from_concurrent_clients(
    s3_server, bucket, monkeypatch
):
    forward = list(range(REPLAY_PUTS))
    runs = [
        replay_run(FaultProxy, order, 4, s3_server, bucket, monkeypatch)
        for order in (forward, forward[::-1])  # 4 clients at a time, the order turned around
    ]
    first, second = (run.faults_by_request() for run in runs)
    assert first == second  # which request (method, target, body, occurrence) got which fault
    faulted = Counter(fault for _, fault, _ in first if fault)
    assert set(faulted) == {"internal", "reset after"}, faulted  # both planned; no other drawn
    assert {identity.method for identity, _, _ in first} == {"PUT"}
    assert len({identity.body_sha256 for identity, _, _ in first}) == REPLAY_PUTS
    retried = [identity for identity, _, _ in first if identity.occurrence > 1]
    assert retried  # a faulted request's retry is the next occurrence of the same request


def test_the_replay_comparison_catches_faults_drawn_in_arrival_order(
    s3_server, bucket, monkeypatch
):
    # One client, so both runs are deterministic: the n-th request to arrive draws the
    # n-th number in both, whichever request it is. The plan, in arrival order too, makes
    # sure something is injected: the first request to arrive fails, and draws nothing.
    forward = list(range(REPLAY_PUTS))
    first_arrival = [Planned("PutObject", REPLAY_FAULTS[0])]
    runs = [
        replay_run(ArrivalOrderProxy, order, 1, s3_server, bucket, monkeypatch, first_arrival)
        for order in (forward, forward[::-1])
    ]
    multisets = [sorted((i.operation, i.kind, i.after) for i in r.log.injections) for r in runs]
    assert multisets[0] == multisets[1]  # the old comparison: fooled
    assert multisets[0]  # something was injected
    first, second = (run.faults_by_request() for run in runs)
    # The per-request comparison: not fooled. Both runs give the n-th call the same
    # attempts' outcomes, so the lists are equal only if those read the same backwards
    # (call 40 failing first as call 1 does, and so on): each pair of calls agrees with a
    # chance under 0.4 at these rates, all 20 pairs with one of about 1e-8, for any seed.
    assert first != second


def test_a_renamed_bucket_draws_the_same_faults(s3_server, s3, bucket, monkeypatch):
    """The bucket's name is no part of a request's identity: renaming the bucket in
    config.json changes no fault, so no figure in docs/reliability-figures.json."""
    renamed = f"{bucket}-renamed"
    s3.create_bucket(Bucket=renamed)
    forward = list(range(REPLAY_PUTS))
    runs = [
        replay_run(FaultProxy, forward, 4, s3_server, name, monkeypatch)
        for name in (bucket, renamed)
    ]
    first, second = (run.faults_by_request() for run in runs)
    assert first == second and any(fault for _, fault, _ in first)  # planned: some fault
    assert {identity.target.split("/")[1] for identity, _, _ in first} == {"<bucket>"}


# --- the worker -------------------------------------------------------------------------


def worker_events(count: int, seed: int) -> list[tuple[str, dict[str, str]]]:
    """(request id, payload) pairs, already in canonical form so a report must equal them."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        ip = (
            ipaddress.IPv4Address(rng.getrandbits(32))
            if i % 2
            else ipaddress.IPv6Address(rng.getrandbits(128))
        )
        start = datetime(2018, 2, 21, tzinfo=UTC) + timedelta(milliseconds=rng.getrandbits(38))
        events.append((request_id, {"source_ip": str(ip), "time_start": format_time(start)}))
    return events


@dataclass
class Delivery:
    request_id: str
    result: dict[str, Any] | None = None
    error: Exception | None = None


def read_reports(s3: Any, bucket: str) -> dict[str, list[tuple[str, Any]]]:
    """Every stored object by request id: ``{id: [(key, parsed body or the raw bytes)]}``."""
    by_id: dict[str, list[tuple[str, Any]]] = {}
    for key in object_keys(s3, bucket):
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        by_id.setdefault(key.rsplit("/", 1)[-1].removesuffix(".json"), []).append((key, body))
    return by_id


def is_complete_report(body: Any, payload: dict[str, str]) -> bool:
    """A whole stored report of ``payload`` (read as a report, not as an event)."""
    try:
        check_report(body)
    except jsonschema.ValidationError:
        return False
    return (body["source_ip"], body["time_start"]) == (payload["source_ip"], payload["time_start"])


def worker_plan(events: list[tuple[str, dict[str, str]]], timeout_s: int) -> list[Planned]:
    """One fault of each kind made sure of, whatever the seed: on the first PUT of each of
    the first events (a hang lasts until the function timeout, if the client waits)."""
    faults = [replace(f, seconds=timeout_s) if f.kind == "hang" else f for f in WORKER_FAULTS]
    return [
        Planned("PutObject", fault, key=request_id)
        for fault, (request_id, _) in zip(faults, events, strict=False)
    ]


def assert_drawn_at_rate(hits: int, draws: int, rate: float) -> None:
    """``hits`` of ``draws`` independent draws, each a hit with ``rate``: within 5 standard
    deviations of the rate (a false alarm under 1e-6, for any seed). The rates
    themselves are checked over 50,000 draws in tests/unit/test_fault_plan.py."""
    deviation = 5 * math.sqrt(rate * (1 - rate) / draws)
    assert abs(hits / draws - rate) < deviation, f"{hits} of {draws}, expected {rate:.0%}"


def check_worker_under_faults(
    proxy: FaultProxy,
    s3: Any,
    app_module: Any,
    monkeypatch: pytest.MonkeyPatch,
    lambda_handler: Any,
    bucket: str,
    count: int,
    seed: int,
) -> dict[str, Any]:
    """``count`` events delivered 8 at a time through ``proxy`` (``WORKER_FAULTS`` drawn by
    ``seed``, one of each planned), the failures and one success in ten delivered again:
    each report stored once or the invocation failed. Returns the figures."""
    calls = Calls()
    calls.attach(point_app_at(proxy, app_module, monkeypatch))
    timeout_s = function_timeouts()[f"{STAGE}/worker"]
    events = worker_events(count, seed)
    plan = worker_plan(events, timeout_s)
    proxy.set_faults(
        [replace(f, seconds=timeout_s) if f.kind == "hang" else f for f in WORKER_FAULTS], plan
    )
    payloads = dict(events)

    def deliver(event: tuple[str, dict[str, str]]) -> Delivery:
        request_id, payload = event
        try:
            return Delivery(request_id, result=lambda_handler("worker", payload, request_id))
        except (ClientError, BotoCoreError) as exc:
            return Delivery(request_id, error=exc)

    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(deliver, events))
    proxy.wait_idle()
    reports = read_reports(s3, bucket)

    # Every invocation: success with its report stored as returned, or an exception.
    for d in first:
        stored = reports.get(d.request_id, [])
        if d.result is not None:
            assert stored == [(d.result["key"], d.result["report"])], d.request_id
            assert is_complete_report(d.result["report"], payloads[d.request_id])
        else:  # raised; if S3 applied the write before the fault, the report is whole
            assert all(is_complete_report(body, payloads[d.request_id]) for _, body in stored)
    assert set(reports) <= set(payloads)  # nothing stray
    assert all(len(stored) == 1 for stored in reports.values())  # never two per request id
    raised_but_stored = sum(1 for d in first if d.error is not None and d.request_id in reports)

    # Lambda retries a failed async invocation (up to twice, same request id) and
    # may deliver any event twice: redeliver the failures and one success in ten.
    rng = random.Random(seed)
    again = [d.request_id for d in first if d.error is not None]
    succeeded_first = [d.request_id for d in first if d.result is not None]
    again += rng.sample(succeeded_first, min(len(succeeded_first), count // 10))
    last = {d.request_id: d for d in first}
    redeliveries = 0
    for _ in range(2):
        with ThreadPoolExecutor(8) as pool:
            batch = list(pool.map(deliver, [(rid, payloads[rid]) for rid in again]))
        redeliveries += len(batch)
        last.update({d.request_id: d for d in batch})
        again = [d.request_id for d in batch if d.error is not None]
    proxy.wait_idle()
    reports = read_reports(s3, bucket)
    succeeded = {d.request_id for d in first} - {
        rid for rid, d in last.items() if d.error is not None
    }
    lost = [rid for rid in succeeded if rid not in reports]
    duplicates = [rid for rid, stored in reports.items() if len(stored) > 1]
    partial = [
        rid
        for rid, stored in reports.items()
        if not all(is_complete_report(body, payloads[rid]) for _, body in stored)
    ]
    for rid, d in last.items():
        if d.result is not None:  # the last delivery succeeded: its write is the last one
            assert reports[rid] == [(d.result["key"], d.result["report"])]
    assert (lost, duplicates, partial) == ([], [], [])
    assert_retried_every_retryable_fault(proxy, calls, "PutObject")
    hangs = [i.outcome for i in proxy.log.injections if i.kind == "hang"]
    assert hangs and set(hangs) == {"abandoned"}  # each ended by the client's read timeout

    injected = proxy.injected()
    requests = proxy.log.requests["PutObject"]
    planned = [i for i in proxy.log.injections if i.planned]
    assert len(planned) == len(plan)  # each planned fault happened, once
    assert {k.split(" ", 1)[1] for k in injected} == {
        "slowdown", "internal", "internal after", "reset", "reset after", "delay", "hang after",
    }  # fmt: skip
    drawn_rate = sum(f.rate for f in WORKER_FAULTS)
    assert_drawn_at_rate(sum(injected.values()) - len(planned), requests - len(planned), drawn_rate)
    return {
        "seed": seed,
        "invocations": len(first) + redeliveries,
        "first deliveries": len(first),
        "redeliveries (Lambda retries + duplicate events)": redeliveries,
        "requests": requests,
        "faults injected": sum(injected.values()),
        "faults planned": len(planned),
        "faults by kind": dict(sorted(injected.items())),
        "succeeded first time": sum(1 for d in first if d.result is not None),
        "raised first time": sum(1 for d in first if d.error is not None),
        "raised although S3 had stored the report": raised_but_stored,
        "still failed after 3 deliveries": len(payloads) - len(succeeded),
        "reports stored": len(reports),
        "reports lost": len(lost),
        "duplicate reports": len(duplicates),
        "partial objects": len(partial),
    }


@pytest.mark.slow
def test_worker_under_30_percent_faults_stores_each_report_once_or_fails(
    child_proxy, child_s3, app_module, monkeypatch, lambda_handler, bucket
):
    # moto in its own process: under load, only the client's read timeout (2 s) decides
    # when a hang ends, never how long a PUT waits for the GIL behind the server.
    figures = check_worker_under_faults(
        child_proxy, child_s3, app_module, monkeypatch, lambda_handler, bucket, 200, SEED
    )
    record_figures("worker, 30 % of requests faulted", figures)


@pytest.mark.slow
def test_worker_against_a_hanging_s3_fails_with_a_timeout_before_the_function_timeout(
    proxy, faulty_s3, lambda_handler, s3, bucket
):
    timeout_s = function_timeouts()[f"{STAGE}/worker"]
    # The proxy answers anyway at the function timeout: a client without timeouts would succeed.
    proxy.set_faults([Fault("hang", 1.0, PUT, seconds=timeout_s)])
    outcome: dict[str, Any] = {}

    def invoke() -> None:
        try:
            outcome["result"] = lambda_handler("worker", {"source_ip": "192.0.2.1"})
        except Exception as exc:
            outcome["error"] = exc
        outcome["elapsed_s"] = time.monotonic() - started

    started = time.monotonic()
    thread = threading.Thread(target=invoke, daemon=True)
    thread.start()
    thread.join(timeout_s)  # what Lambda allows
    assert not thread.is_alive(), "still running at the function timeout: Lambda would kill it"
    proxy.wait_idle()
    assert isinstance(outcome.get("error"), ReadTimeoutError), outcome
    assert "Read timeout on endpoint URL" in str(outcome["error"])
    assert proxy.injected() == {"PutObject hang": MAX_ATTEMPTS}
    assert {i.outcome for i in proxy.log.injections} == {"abandoned"}  # the client gave up
    assert object_keys(s3, bucket) == []
    record_figures(
        "worker, S3 hangs",
        {
            "invocations": 1,
            "attempts": proxy.log.requests["PutObject"],
            "error": type(outcome["error"]).__name__,
            "function timeout s": timeout_s,
            "worst case by the arithmetic s": WORST_CASE_CALL_S,
            "reports written": len(object_keys(s3, bucket)),
        },
        measured={"failed after s": round(outcome["elapsed_s"], 2)},
    )


# --- the cleanup ------------------------------------------------------------------------

CLEANUP_FAULTS = [
    Fault("slowdown", 0.15, LIST),
    Fault("internal", 0.1, LIST),
    Fault("reset", 0.1, LIST, after=True),
    Fault("slowdown", 0.2, DELETE),
    Fault("internal", 0.15, DELETE),
    Fault("reset", 0.15, DELETE, after=True),
    Fault("fail_keys", 0.3, DELETE, key_rate=0.005),
]


@pytest.fixture
def one_list_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """List one range at a time, so every run sends the same requests. The proxy draws a
    DeleteObjects fault from the keys in its body, and with ranges listed side by side
    which keys share a batch depends on which page lands first; the figures would move
    from run to run. The parallel listing's guarantee is swept in
    tests/unit/test_cleanup_guarantee.py and tests/integration/test_cleanup_guarantee.py."""
    monkeypatch.setattr("chalicelib.cleanup.run.LISTS_IN_FLIGHT", 1)


def run_cleanup(lambda_handler: Any) -> tuple[dict[str, Any], CleanupError | None]:
    """The cleanup's summary, and its error if it raised (the error carries the summary)."""
    try:
        return lambda_handler("cleanup", SCHEDULED_EVENT), None
    except CleanupError as exc:
        return exc.result.summary(), exc


def failed_keys(error: CleanupError | None) -> set[str]:
    return {f.key for f in error.result.failures} if error else set()


def cleanup_plan(first_key: str) -> list[Planned]:
    """What the cleanup scenario needs to happen, whatever the seed draws: a retried list
    fault, a first page of keys listed (so deletes are sent), a retried delete fault and
    a key reported failed. The lists go one at a time (``one_list_at_a_time``): the top
    level, ``reports/``, then the day's pages. The delete holding ``first_key`` (the first
    key of that first page) fails once, then S3 refuses that key for good."""
    return [
        Planned("ListObjectsV2", Fault("slowdown", 1.0, LIST)),  # the top level, first send
        Planned("ListObjectsV2", None, sends=range(2, 5)),  # its retry, reports/, page 1
        Planned("DeleteObjects", Fault("internal", 1.0, DELETE), key=first_key),
        Planned("DeleteObjects", Fault("fail_keys", 1.0, DELETE), first_key, EVERY_SEND),
    ]


def check_cleanup_under_faults(
    proxy: FaultProxy, calls: Calls, lambda_handler: Any, s3: Any, bucket: str, count: int
) -> dict[str, Any]:
    """Empty a bucket of ``count`` objects under ``CLEANUP_FAULTS`` (and the plan): every
    listed key deleted or reported, every retryable fault retried; a rerun without faults
    empties the bucket. Returns the figures."""
    keys = seed_objects(bucket, count)
    plan = cleanup_plan(min(keys))
    proxy.set_faults(CLEANUP_FAULTS, plan)
    summary, error = run_cleanup(lambda_handler)
    proxy.wait_idle()
    remaining = set(object_keys(s3, bucket))
    reported = failed_keys(error)

    assert error is not None, summary
    assert min(keys) in reported  # the planned refusal, reported
    assert summary["failed"] == len(reported) > 0
    assert set(proxy.failed_keys()) <= reported  # every key S3 refused is reported
    failures = error.result.failures if error else []
    assert_every_listed_key_accounted(summary, failures, remaining, attempted_all=False)
    if summary["complete"]:
        assert summary["deleted"] + summary["failed"] == len(keys)
    for operation in ("ListObjectsV2", "DeleteObjects"):
        assert_retried_every_retryable_fault(proxy, calls, operation)
        assert failing_faults(proxy, operation) > 0, f"seed {proxy.seed} faulted no {operation}"
    first = {"summary": summary, "injected": dict(proxy.injected())}
    planned = sum(1 for i in proxy.log.injections if i.planned)

    proxy.set_faults([])
    rerun, rerun_error = run_cleanup(lambda_handler)
    assert rerun_error is None
    assert rerun["complete"] and rerun["failed"] == 0
    assert rerun["deleted"] == len(remaining)
    assert object_keys(s3, bucket) == []
    return {
        "seed": proxy.seed,
        "objects": len(keys),
        "faults injected": sum(first["injected"].values()),
        "faults planned": planned,
        "faults by kind": first["injected"],
        "requests": dict(proxy.log.requests),
        "first run": {k: first["summary"][k] for k in ("complete", "deleted", "failed")},
        "first run raised": type(error).__name__,
        "keys refused by S3": len(proxy.failed_keys()),
        "left behind unreported": len(remaining - reported),
        "rerun without faults": {k: rerun[k] for k in ("complete", "deleted", "failed")},
        "objects after rerun": len(object_keys(s3, bucket)),
    }


@pytest.mark.slow
def test_cleanup_under_faults_retries_reports_the_rest_and_a_rerun_empties_the_bucket(
    proxy, faulty_s3, calls, lambda_handler, s3, bucket, one_list_at_a_time
):
    figures = check_cleanup_under_faults(proxy, calls, lambda_handler, s3, bucket, 8000)
    record_figures("cleanup, faulted List/Delete and per-key failures", figures)


@pytest.mark.slow
def test_cleanup_with_a_retention_window_never_deletes_a_younger_object(
    proxy, faulty_s3, lambda_handler, s3, bucket, monkeypatch, one_list_at_a_time
):
    monkeypatch.setenv("CLEANUP_MAX_AGE", "PT1H")
    keys = seed_objects(bucket, 3000)
    old = [k for i, k in enumerate(keys) if i % 6]  # young and old interleave in every page
    age_objects(bucket, old, timedelta(days=2))
    age_objects(bucket, keys[::6], timedelta(minutes=50))
    young = set(keys[::6])
    written = {lambda_handler("worker", {})["key"] for _ in range(5)}  # brand new reports
    young |= written

    runs, young_deleted = [], set()
    for faults in (CLEANUP_FAULTS, CLEANUP_FAULTS, []):
        proxy.set_faults(faults)
        summary, error = run_cleanup(lambda_handler)
        proxy.wait_idle()
        remaining = set(object_keys(s3, bucket))
        young_deleted |= young - remaining
        assert young <= remaining, "a younger object was deleted"
        failures = error.result.failures if error else []
        assert_every_listed_key_accounted(summary, failures, remaining - young, False)
        runs.append({k: summary[k] for k in ("complete", "deleted", "failed", "kept")})
    assert runs[-1]["failed"] == 0
    assert remaining == young
    record_figures(
        "cleanup with CLEANUP_MAX_AGE=PT1H, faulted twice then clean",
        {
            "seed": SEED,
            "objects older": len(old),
            "objects younger": len(young),
            "faults injected": sum(proxy.injected().values()),
            "runs": runs,
            "younger objects deleted": len(young_deleted),
        },
    )


# --- any seed ---------------------------------------------------------------------------
# The scenarios above hold for any FAULT_SEED (their plans make sure of what they need).
# So that the next assertion true for only some seeds fails in CI, not in a user's hands,
# every `make test` runs them again, small, over a few seeds (16 listed its first page,
# then failed for good, before any key was refused). They record no figures.
SWEEP_SEEDS = (0, 1, 2, 3, 16)


@pytest.mark.parametrize("seed", SWEEP_SEEDS)
def test_the_cleanup_scenario_holds_for_any_seed(
    seed, s3_server, s3, bucket, app_module, lambda_handler, monkeypatch, one_list_at_a_time
):
    with checked_proxy(s3_server, seed) as proxy:
        calls = Calls()
        calls.attach(point_app_at(proxy, app_module, monkeypatch))
        check_cleanup_under_faults(proxy, calls, lambda_handler, s3, bucket, 1500)


@pytest.mark.parametrize("seed", SWEEP_SEEDS)
def test_the_worker_scenario_holds_for_any_seed(
    seed, moto_child, child_s3, app_module, lambda_handler, monkeypatch, bucket
):
    with checked_proxy(moto_child.endpoint, seed) as proxy:
        check_worker_under_faults(
            proxy, child_s3, app_module, monkeypatch, lambda_handler, bucket, 20, seed
        )

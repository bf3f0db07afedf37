"""A slow but healthy server has every key deleted and none reported; a dead one still
fails visibly within the deadline. Over HTTP, through the fault proxy, in front of moto
in a child process, with the production client (``make_client``)."""

import socket
import time
from typing import Any

import boto3
import pytest

from chalicelib.cleanup import CleanupError, empty_bucket
from chalicelib.s3 import DELETE_READ_TIMEOUT_S, MAX_ATTEMPTS, READ_TIMEOUT_S, make_client
from tests.conftest import object_keys
from tests.faultproxy import Fault, fault_proxy

DELETE = frozenset({"DeleteObjects"})
HELD_S = 3.0  # each DeleteObjects answer, complete and correct, only this late


class Deadline:
    """``get_remaining_time_in_millis`` of a function with ``timeout_s``, from now."""

    def __init__(self, timeout_s: float) -> None:
        self.ends = time.monotonic() + timeout_s

    def __call__(self) -> float:
        return (self.ends - time.monotonic()) * 1000


def seeded(host: Any, endpoint: str, bucket: str, days: dict[str, int]) -> list[str]:
    admin = boto3.client("s3", endpoint_url=endpoint)
    admin.create_bucket(Bucket=bucket)
    for day, count in days.items():
        host.seed(admin, bucket, count, f"reports/{day}/")
    return object_keys(admin, bucket)


def test_a_slow_but_healthy_server_has_every_key_deleted_and_none_reported(
    s3_child_endpoint, s3_child
):
    # Before: each 3 s answer came after the 2 s read timeout, three times, and the keys,
    # deleted by the server, were all reported failed. Four days of 500 keys: four
    # list pages side by side, two deletes of 1,000 keys held. (That the window opens for such a
    # server, over many rounds, is tests/unit/test_cleanup_deletes.py's.)
    assert READ_TIMEOUT_S < HELD_S < DELETE_READ_TIMEOUT_S
    days = {f"2026-11-{day}": 500 for day in (27, 28, 29, 30)}
    keys = seeded(s3_child, s3_child_endpoint, "slow-server", days)
    hold = Fault("delay", 1.0, DELETE, after=True, seconds=HELD_S)  # after S3 applied it
    deadline = Deadline(20)
    with fault_proxy(s3_child_endpoint, [hold]) as proxy:
        result = empty_bucket(make_client(endpoint_url=proxy.url), "slow-server", None, deadline)
        left_ms = deadline()
        proxy.wait_idle()
    assert proxy.log.errors == []
    assert (result.deleted, result.failures, result.complete) == (len(keys), [], True)
    assert left_ms > 0  # returned before its deadline
    deletes = proxy.log.requests["DeleteObjects"]
    assert deletes == len(keys) // 1000  # each sent once: no timeout, no retry
    assert proxy.injected() == {"DeleteObjects delay after": deletes}  # every answer held
    assert result.slowest_request_ms >= HELD_S * 1000
    assert object_keys(boto3.client("s3", endpoint_url=s3_child_endpoint), "slow-server") == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


def test_a_server_that_refuses_connections_fails_the_run_at_once(s3_endpoint):
    deadline = Deadline(15)
    with pytest.raises(CleanupError) as raised:
        empty_bucket(
            make_client(endpoint_url=f"http://127.0.0.1:{closed_port()}"), "b", None, deadline
        )
    assert deadline() > 0
    message = str(raised.value)
    assert message.startswith("listing s3://b failed after 0 pages (0 keys listed; ")
    assert "Could not connect to the endpoint URL" in message
    assert raised.value.result.complete is False


@pytest.mark.slow
def test_a_server_where_every_request_hangs_fails_the_run_within_its_deadline(
    s3_child_endpoint, s3_child
):
    # Each list page waits out its read timeout on each of its 3 attempts (~15 s):
    # the run raises, having deleted nothing, long before its deadline.
    keys = seeded(s3_child, s3_child_endpoint, "hanging", {"2026-11-30": 10})
    deadline = Deadline(40)
    with fault_proxy(s3_child_endpoint, [Fault("hang", 1.0)]) as proxy:
        with pytest.raises(CleanupError) as raised:
            empty_bucket(make_client(endpoint_url=proxy.url), "hanging", None, deadline)
        left_ms = deadline()
        proxy.wait_idle()
    assert left_ms > 0
    assert "Read timeout on endpoint URL" in str(raised.value)
    assert raised.value.result.deleted == 0
    hangs = [i.outcome for i in proxy.log.injections]
    assert hangs and set(hangs) == {"abandoned"}  # the client gave up on each
    assert len(hangs) == proxy.log.requests["ListObjectsV2"] == 2 * MAX_ATTEMPTS  # two lists
    admin = boto3.client("s3", endpoint_url=s3_child_endpoint)
    assert sorted(object_keys(admin, "hanging")) == keys

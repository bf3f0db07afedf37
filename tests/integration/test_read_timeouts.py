"""Read timeouts fitted to the request: the cleanup's 1,000-key requests wait longer
than a small request, through HTTP sessions built as the client's own."""

import time

import boto3

from chalicelib.s3 import (
    LIST_READ_TIMEOUT_S,
    READ_TIMEOUT_S,
    READ_TIMEOUTS_S,
    ReadTimeouts,
    make_client,
)
from tests.conftest import object_keys, seed_objects
from tests.faultproxy import Fault, fault_proxy

# URLLib3Session's settings, by attribute (a test may look inside; the code does not).
SETTINGS = ("_verify", "_cert_file", "_key_file", "_max_pool_connections", "_socket_options")


def test_each_session_is_the_clients_own_but_for_its_read_timeout(s3_endpoint):
    client = make_client()
    own = client._endpoint.http_session
    sessions = ReadTimeouts(client, boto3.Session()._session).sessions
    assert set(sessions) == set(READ_TIMEOUTS_S) == {"ListObjectsV2", "DeleteObjects"}
    for operation, http in sessions.items():
        assert {s: getattr(http, s) for s in SETTINGS} == {s: getattr(own, s) for s in SETTINGS}
        assert vars(http._proxy_config) == vars(own._proxy_config)
        assert http._timeout.connect_timeout == own._timeout.connect_timeout
        assert http._timeout.read_timeout == READ_TIMEOUTS_S[operation]
    assert own._timeout.read_timeout == READ_TIMEOUT_S  # everything else: S3's 2 s


def test_a_list_page_later_than_a_small_requests_timeout_is_still_an_answer(s3_server, bucket):
    seed_objects(bucket, 10)
    late = READ_TIMEOUT_S + 1
    assert late < LIST_READ_TIMEOUT_S
    hold = Fault("delay", 1.0, frozenset({"ListObjectsV2"}), seconds=late)
    with fault_proxy(s3_server, [hold]) as proxy:
        client = make_client(endpoint_url=proxy.url)
        started = time.monotonic()
        assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 10
        took = time.monotonic() - started
        proxy.wait_idle()
    assert proxy.log.requests["ListObjectsV2"] == 1 and took >= late  # no timeout, no retry


def test_hooks_registered_on_the_client_still_run_before_the_request_goes(s3_server, s3, bucket):
    # The fitted session sends last, after every other before-send handler: a hook that
    # writes before a list is sent sees its write in the page.
    client = make_client(endpoint_url=s3_server)

    def write_first(**_) -> None:  # returns nothing: a handler's return is a response
        s3.put_object(Bucket=bucket, Key="written-first", Body=b"{}")

    client.meta.events.register("before-send.s3.ListObjectsV2", write_first)
    page = client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in page["Contents"]] == ["written-first"] == object_keys(s3, bucket)

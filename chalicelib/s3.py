"""The S3 client both functions share, and its retry and timeout policy.

Endpoint, credentials and region come from the standard AWS settings
(``AWS_ENDPOINT_URL_S3``, ``AWS_PROFILE``, ``AWS_REGION``/``AWS_DEFAULT_REGION``),
so the same code talks to AWS, to moto's server or to any S3-compatible endpoint.

Policy: botocore's *standard* retry mode (not *adaptive*, whose client-side
rate limiter may sleep for an unbounded time) with 3 attempts in all. It
retries throttling (``503 SlowDown``), ``500``/``502``/``503``/``504``,
connection errors and timeouts, backing off ``rand(0, 1) * base * 2**(i-1)``
seconds before retry ``i``, where ``base`` is 1 s after a throttling error and
50 ms after any other. 1 s to connect is generous inside a region.

Read timeouts are fitted to the request. Small requests (``PutObject``, the
worker's only call) get 2 s, S3's guidance for small requests ("retry a GET or
PUT after 2 seconds"). The cleanup's requests carry up to 1,000 keys: the server
reads or applies 1,000 entries before it answers, and a healthy but loaded
server takes seconds (measured on SeaweedFS, docs/cleanup.md#timeouts-fitted-to-the-request:
up to 2.1 s a list page and 10.7 s a ``DeleteObjects`` with 32 in flight). A list
page gets ``LIST_READ_TIMEOUT_S``, a ``DeleteObjects`` ``DELETE_READ_TIMEOUT_S``,
each through an HTTP session of its own (:class:`ReadTimeouts`, on botocore's
``before-send`` event, so the client's hooks, retries and counters see them as
any other request). Worst case for one call, every attempt timing out and every
backoff at its longest::

    small:          3 attempts x (1 s connect +  2 s read) + (1 s + 2 s) backoff = 12 s  < 15 s
    ListObjectsV2:  3 attempts x (1 s connect +  5 s read) + (1 s + 2 s) backoff = 21 s
    DeleteObjects:  3 attempts x (1 s connect + 15 s read) + (1 s + 2 s) backoff = 51 s  < 900 s

so an S3 call that cannot succeed fails with botocore's ``ReadTimeoutError``
/ ``ConnectTimeoutError`` (or the last error S3 sent) inside the function's
timeout: the worker (``PutObject`` only) with 3 s of its 15 s to spare, instead
of Lambda killing the invocation; the cleanup keeps the longer worst case in
reserve (``chalicelib.cleanup.deadline``).

Not bounded by this arithmetic: DNS resolution (no timeout in botocore), a
server that trickles bytes slower than one per read timeout (the timeout is
per socket read, not per response), and an ``x-amz-retry-after`` header, which
botocore >= 1.44 honours up to 5 s more per retry (S3 does not send it).
"""

import os
import socket
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.config import Config
from botocore.httpsession import URLLib3Session
from botocore.utils import get_environ_proxies, parse_timestamp

MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 1
READ_TIMEOUT_S = 2  # small requests
LIST_READ_TIMEOUT_S = 5  # a page of up to 1,000 keys
DELETE_READ_TIMEOUT_S = 15  # a DeleteObjects of up to 1,000 keys
READ_TIMEOUTS_S = {"ListObjectsV2": LIST_READ_TIMEOUT_S, "DeleteObjects": DELETE_READ_TIMEOUT_S}
# Connections kept per HTTP session: more than the cleanup's requests in flight at once.
MAX_POOL_CONNECTIONS = 48
# The longest standard-mode backoff before each retry: 1 s * 2**(i-1), throttling base.
MAX_BACKOFF_S = sum(2**i for i in range(MAX_ATTEMPTS - 1))


def worst_case_call_s(read_timeout_s: float) -> float:
    """One call's longest: every attempt connects and reads to its timeout, every backoff
    at its longest."""
    return MAX_ATTEMPTS * (CONNECT_TIMEOUT_S + read_timeout_s) + MAX_BACKOFF_S


WORST_CASE_CALL_S = worst_case_call_s(READ_TIMEOUT_S)  # 12 s
WORST_CASE_LIST_S = worst_case_call_s(LIST_READ_TIMEOUT_S)  # 21 s
WORST_CASE_DELETE_S = worst_case_call_s(DELETE_READ_TIMEOUT_S)  # 51 s

# Parameters are built by this code, never taken from input: botocore's validation
# of a 1,000-key DeleteObjects costs ~6 ms of CPU per call and could only catch our bugs.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    max_pool_connections=MAX_POOL_CONNECTIONS,
    parameter_validation=False,
)


def parse_s3_timestamp(value: str) -> datetime:
    """S3's ISO 8601 times (``2026-11-30T17:00:00.000Z``) by ``datetime.fromisoformat``;
    anything else (an HTTP date, epoch seconds) by botocore's own parser.

    botocore's default runs dateutil, about 40 µs a time: half the CPU of parsing a
    1,000-key ListObjectsV2 page. Both give timezone-aware datetimes in UTC.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return parse_timestamp(value)
    return parsed if parsed.tzinfo is not None else parse_timestamp(value)


_loaders: list[Any] = []  # the first session's loader of botocore's service models


def _session() -> botocore.session.Session:
    """A session whose response parsers read timestamps with :func:`parse_s3_timestamp`.

    New for each client, as ``boto3.client`` resolves credentials afresh; later ones
    share the first one's model loader, so each model is read from disk once (and
    the first, at cold start, costs no extra session)."""
    session = botocore.session.get_session()
    if _loaders:
        session.register_component("data_loader", _loaders[0])
    else:
        _loaders.append(session.get_component("data_loader"))
    parsers = session.get_component("response_parser_factory")
    parsers.set_parser_defaults(timestamp_parser=parse_s3_timestamp)
    return session


class ReadTimeouts:
    """Send the operations of :data:`READ_TIMEOUTS_S` through HTTP sessions with those read
    timeouts, and every other request as the client does.

    On ``before-send``, botocore's supported hook: a handler that returns a response is
    the request's response. botocore still signs the request, calls every other handler
    (counters, fault hooks), retries what fails and parses the answer; a timeout raised
    here is retried like the client's own. Each session is built as botocore builds the
    client's (``EndpointCreator.create_endpoint``), from the same settings, and costs
    ~0.5 ms where a second client would cost ~25 ms of CPU at cold start.
    """

    def __init__(self, client: Any, session: botocore.session.Session) -> None:
        config, url = client.meta.config, client.meta.endpoint_url
        keepalive = config.tcp_keepalive or session.get_config_variable("tcp_keepalive")
        options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        options += [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)] if keepalive else []
        verify = session.get_config_variable("ca_bundle") or os.environ.get(
            "REQUESTS_CA_BUNDLE", True
        )
        self.sessions = {
            operation: URLLib3Session(
                verify=verify,
                proxies=config.proxies or get_environ_proxies(url),
                timeout=(config.connect_timeout, read_timeout),
                max_pool_connections=config.max_pool_connections,
                socket_options=options,
                client_cert=config.client_cert,
                proxies_config=config.proxies_config,
            )
            for operation, read_timeout in READ_TIMEOUTS_S.items()
        }

    def attach(self, client: Any) -> None:
        # Last, and on the least specific name: every other before-send handler (counters,
        # a test's hooks, a simulated round trip) runs before the request goes.
        client.meta.events.register_last("before-send", self.send, unique_id="read-timeouts")

    def send(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse | None:
        http = self.sessions.get(event_name.rsplit(".", 1)[-1])
        return None if http is None else http.send(request)


def make_client(endpoint_url: str | None = None):
    """Create an S3 client; Lambda sets AWS_REGION, botocore only reads AWS_DEFAULT_REGION.

    Built on its own botocore session whose response parsers use
    :func:`parse_s3_timestamp`, as the AWS CLI sets its parser (botocore's
    supported hook, ``ResponseParserFactory.set_parser_defaults``), with read
    timeouts fitted to the request (:class:`ReadTimeouts`).
    ``endpoint_url`` overrides ``AWS_ENDPOINT_URL_S3`` (the benchmark's servers).
    """
    session = _session()
    client = boto3.Session(botocore_session=session).client(
        "s3",
        region_name=os.environ.get("AWS_REGION") or None,
        endpoint_url=endpoint_url,
        config=CLIENT_CONFIG,
    )
    ReadTimeouts(client, session).attach(client)
    return client

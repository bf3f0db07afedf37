"""The S3 client both functions share, and its retry and timeout policy.

Endpoint, credentials and region come from the standard AWS settings
(``AWS_ENDPOINT_URL_S3``, ``AWS_PROFILE``, ``AWS_REGION``/``AWS_DEFAULT_REGION``),
so the same code talks to AWS, to moto's server or to any S3-compatible endpoint.

Policy: botocore's *standard* retry mode (not *adaptive*, whose client-side
rate limiter may sleep for an unbounded time) with 3 attempts in all. It
retries throttling (``503 SlowDown``), ``500``/``502``/``503``/``504``,
connection errors and timeouts, backing off ``rand(0, 1) * base * 2**(i-1)``
seconds before retry ``i``, where ``base`` is 1 s after a throttling error and
50 ms after any other. A 2 s read timeout follows S3's guidance for small
requests ("retry a GET or PUT after 2 seconds"); 1 s to connect is generous
inside a region. Worst case for one call, every attempt timing out and
every backoff at its longest::

    3 attempts x (1 s connect + 2 s read) + (1 s + 2 s) backoff = 12 s  < 15 s

so an S3 call that cannot succeed fails with botocore's ``ReadTimeoutError``
/ ``ConnectTimeoutError`` (or the last error S3 sent) with 3 s of the 15 s
function timeout to spare, instead of Lambda killing the invocation.

Not bounded by this arithmetic: DNS resolution (no timeout in botocore), a
server that trickles bytes slower than one per read timeout (the timeout is
per socket read, not per response), and an ``x-amz-retry-after`` header, which
botocore >= 1.44 honours up to 5 s more per retry (S3 does not send it).
"""

import os
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.utils import parse_timestamp

MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 1
READ_TIMEOUT_S = 2
# The longest standard-mode backoff before each retry: 1 s * 2**(i-1), throttling base.
MAX_BACKOFF_S = sum(2**i for i in range(MAX_ATTEMPTS - 1))
WORST_CASE_CALL_S = MAX_ATTEMPTS * (CONNECT_TIMEOUT_S + READ_TIMEOUT_S) + MAX_BACKOFF_S

# Parameters are built by this code, never taken from input: botocore's validation
# of a 1,000-key DeleteObjects costs ~6 ms of CPU per call and could only catch our bugs.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
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


def _session() -> boto3.Session:
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
    return boto3.Session(botocore_session=session)


def make_client(endpoint_url: str | None = None):
    """Create an S3 client; Lambda sets AWS_REGION, botocore only reads AWS_DEFAULT_REGION.

    Built on its own botocore session whose response parsers use
    :func:`parse_s3_timestamp`, as the AWS CLI sets its parser (botocore's
    supported hook, ``ResponseParserFactory.set_parser_defaults``).
    ``endpoint_url`` overrides ``AWS_ENDPOINT_URL_S3`` (the benchmark's servers).
    """
    return _session().client(
        "s3",
        region_name=os.environ.get("AWS_REGION") or None,
        endpoint_url=endpoint_url,
        config=CLIENT_CONFIG,
    )

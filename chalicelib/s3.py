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

import boto3
from botocore.config import Config

MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 1
READ_TIMEOUT_S = 2
# The longest standard-mode backoff before each retry: 1 s * 2**(i-1), throttling base.
MAX_BACKOFF_S = sum(2**i for i in range(MAX_ATTEMPTS - 1))
WORST_CASE_CALL_S = MAX_ATTEMPTS * (CONNECT_TIMEOUT_S + READ_TIMEOUT_S) + MAX_BACKOFF_S

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
)


def make_client():
    """Create an S3 client; Lambda sets AWS_REGION, botocore only reads AWS_DEFAULT_REGION."""
    return boto3.client(
        "s3", region_name=os.environ.get("AWS_REGION") or None, config=CLIENT_CONFIG
    )

"""The S3 client both functions share.

Endpoint, credentials and region come from the standard AWS settings
(``AWS_ENDPOINT_URL_S3``, ``AWS_PROFILE``, ``AWS_REGION``/``AWS_DEFAULT_REGION``),
so the same code talks to AWS, to moto's server or to any S3-compatible endpoint.
"""

import os

import boto3
from botocore.config import Config

# botocore's standard retry mode (exponential backoff with jitter, retries on
# throttling, 5xx and connection errors) with an explicit attempt count, and
# timeouts short enough that the worst case ends inside the 15 s function
# timeout with an error of our own instead of a Lambda kill.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=1,
    read_timeout=3,
)


def make_client():
    """Create an S3 client; Lambda sets AWS_REGION, botocore only reads AWS_DEFAULT_REGION."""
    return boto3.client(
        "s3", region_name=os.environ.get("AWS_REGION") or None, config=CLIENT_CONFIG
    )

"""An embedded AWS endpoint: moto's server on a loopback port, in this process.

One server serves every service moto implements (S3, SQS, SNS, EventBridge, ...);
:func:`point_aws_at` points boto3 at it for S3 only, or for every service.
"""

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

# Fake credentials for the embedded server only; never used against a real endpoint.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local-embedded-s3",
    "AWS_SECRET_ACCESS_KEY": "local-embedded-s3-secret",
}
DEFAULT_REGION = "us-east-1"


class PortInUseError(OSError):
    """The port asked for is taken (ThreadedMotoServer would wait for it forever)."""

    def __init__(self, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.port = port

    def __str__(self) -> str:
        return f"127.0.0.1:{self.port} is in use ({self.strerror})"


def ensure_port_free(port: int) -> None:
    """ThreadedMotoServer binds in its thread and hangs if that fails: check first."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(port, exc) from None


@contextmanager
def embedded_aws(port: int = 0) -> Iterator[str]:
    """Run moto's server on 127.0.0.1 (a free port unless given); yield its URL.

    Raises :class:`PortInUseError` at once if the given port is taken."""
    from moto.server import ThreadedMotoServer  # here: importing this module stays cheap

    from chalice_loop.moto_dispatch import list_backends_once
    from chalice_loop.moto_list_answer import answer_listings_directly
    from chalice_loop.moto_listing import list_from_the_copy
    from chalice_loop.moto_timestamps import read_iso_timestamps_directly

    list_from_the_copy()  # a delete during a listing must not fail it, as on S3
    # The same answers as moto's, byte for byte, for less of the server's time:
    read_iso_timestamps_directly()
    answer_listings_directly()
    list_backends_once()

    if port:
        ensure_port_free(port)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        yield f"http://{host}:{bound}"
    finally:
        server.stop()


embedded_s3 = embedded_aws  # the name scripts know it by: most use it for S3 alone


def point_aws_at(endpoint: str, every_service: bool = False) -> None:
    """Make boto3 clients created from now on use the embedded endpoint for S3, or
    (``every_service``) for every service, and its local credentials."""
    os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
    if every_service:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.update(LOCAL_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    ensure_region()


def ensure_region() -> None:
    if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        os.environ["AWS_DEFAULT_REGION"] = DEFAULT_REGION

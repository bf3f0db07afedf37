"""The app's HTTP routes, served as ``chalice local`` serves them, in a thread of ``up``.

It is chalice's own local server (``chalice.local``: the API Gateway model, its
authorizers and CORS), after the route checks ``chalice local`` makes, on
127.0.0.1. Requests are logged as that server logs them, one line each.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from chalice import Chalice
from chalice.config import Config
from chalice.deploy.validate import validate_routes
from chalice.local import create_local_server

from chalice_loop.embedded_s3 import PortInUseError, ensure_port_free


@contextmanager
def serve_routes(app: Chalice, config: Config, port: int) -> Iterator[str]:
    """Serve the app's routes on 127.0.0.1:``port`` (a free one if 0) until the block
    ends; yields the base URL. Raises ``PortInUseError`` if the port is taken, and
    ValueError for routes ``chalice deploy`` would refuse."""
    validate_routes(app.routes)
    if port:
        ensure_port_free(port)
    try:
        server = create_local_server(app, config, "127.0.0.1", port)
    except OSError as exc:
        raise PortInUseError(port, exc) from None
    bound = server.server.server_address[1]
    thread = threading.Thread(target=server.server.serve_forever, name="http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(5)

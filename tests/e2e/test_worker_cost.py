"""What importing the app costs: one S3 client, created once, and nothing else.

Lambda runs module code once per container (the init phase) and reuses it for
every invocation. Requests per invocation are pinned in test_worker.py
(``test_one_request_per_invocation``); this checks, in a fresh interpreter,
that the import itself sends nothing, connects nowhere and starts no thread,
and that invocations reuse the client made at import.
"""

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import PROJECT, object_keys

PROBE = textwrap.dedent(
    """
    import json, socket, sys, threading
    import boto3, botocore.session

    created, sent, connects = [], [], []
    create_client = botocore.session.Session.create_client
    def counting_create_client(self, *args, **kwargs):
        created.append(args[0] if args else kwargs["service_name"])
        return create_client(self, *args, **kwargs)
    botocore.session.Session.create_client = counting_create_client
    connect = socket.socket.connect
    def counting_connect(self, address):
        connects.append(str(address))
        return connect(self, address)
    socket.socket.connect = counting_connect
    import botocore.endpoint  # every client's requests, whatever session made it
    make_request = botocore.endpoint.Endpoint.make_request
    def counting_make_request(self, operation_model, request_dict):
        sent.append(operation_model.name)
        return make_request(self, operation_model, request_dict)
    botocore.endpoint.Endpoint.make_request = counting_make_request

    threads = threading.active_count()
    import app
    at_import = {
        "clients": list(created), "requests": list(sent), "connects": list(connects),
        "new_threads": threading.active_count() - threads,
    }
    client = app.S3

    class Context:
        def __init__(self, n):
            self.aws_request_id = f"0bb47628-1718-11e8-ad73-c58e72b8826{n}"

    keys = [app.worker({}, Context(n))["key"] for n in range(3)]
    print(json.dumps({
        "at_import": at_import,
        "after_invocations": {"clients": created, "requests": sent},
        "same_client": app.S3 is client,
        "keys": keys,
    }))
    """
)


def test_import_creates_one_client_and_nothing_else(s3_server, s3, bucket):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL_S3": s3_server,
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": "us-east-1",
        "BUCKET": bucket,
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=PROJECT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    nothing_else = {"requests": [], "connects": [], "new_threads": 0}
    assert seen["at_import"] == {"clients": ["s3"], **nothing_else}
    assert seen["after_invocations"] == {"clients": ["s3"], "requests": ["PutObject"] * 3}
    assert seen["same_client"] is True
    assert sorted(object_keys(s3, bucket)) == sorted(seen["keys"])

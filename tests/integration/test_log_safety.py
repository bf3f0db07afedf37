"""What an attacker can put in an event stays out of keys and log lines, and the
role's credentials stay out of the logs, even with every logger at DEBUG."""

import json
import logging
import re
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from chalicelib.log_format import TextFormatter
from chalicelib.log_safety import SIGNING_LOGGERS
from tests.conftest import APP_NAME, PROJECT, STAGE, STAGES, object_keys, seed_objects, stage_bucket
from tests.hostile_input import HOSTILE, MARK, hostile_events

SCHEDULED_EVENT = json.loads((PROJECT / "events" / "scheduled.json").read_text())
# Credentials for these runs only, recognisable wherever they might land.
ACCESS_KEY_ID = "AKIALOGSAFETY0000001"
SECRET_ACCESS_KEY = "logSafety/Secret+0123456789abcdefghijklmn"
SESSION_TOKEN = "logSafetySessionToken0123456789ABCDEFGHIJ"
SECRETS = (ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)


class _Sink(logging.Handler):
    """Each record as the text format writes it: the message and its structured fields
    (under the JSON format, the runtime's JSON encoding escapes them the same way)."""

    def __init__(self, thread: int, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.thread, self.records = thread, records

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:  # the function's, not moto's server threads
            self.records.append(
                logging.makeLogRecord({**vars(record), "message": self.format(record)})
            )


@contextmanager
def everything_logged() -> Iterator[list[logging.LogRecord]]:
    """Every record logged by this thread at any level: root at DEBUG (so botocore,
    urllib3 and the rest log all they can) and the app's logger, which does not
    propagate, at DEBUG too."""
    records: list[logging.LogRecord] = []
    sink = _Sink(threading.get_ident(), records)
    sink.setFormatter(TextFormatter())
    loggers = [logging.getLogger(), logging.getLogger(APP_NAME)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(sink)
        logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(sink)
            logger.setLevel(level)


def lambda_error_lines(exc: BaseException) -> list[str]:
    """What Lambda's runtime logs for a failed invocation: the error, then the trace."""
    return [f"[ERROR] {type(exc).__name__}: {exc}", *traceback.format_tb(exc.__traceback__)]


@pytest.mark.parametrize("payload", hostile_events())
def test_hostile_worker_events_reach_no_key_and_no_log_line_raw(
    lambda_handler, s3, bucket, payload
):
    # The default stage's bucket (as config.json sets BUCKET) and every other stage's.
    buckets = [bucket, *(stage_bucket(s) for s in STAGES if s != STAGE)]
    for other in buckets[1:]:
        s3.create_bucket(Bucket=other)
    request_id = "0bb47628-1718-11e8-ad73-c58e72b8826c"
    errors: list[str] = []
    days = {datetime.now(UTC).strftime("%Y-%m-%d")}
    with everything_logged() as records:
        try:
            stored = lambda_handler("worker", payload, request_id)
        except Exception as exc:
            stored = None
            errors = lambda_error_lines(exc)
            assert len(str(exc)) < 300  # a 64 KiB value is shown shortened
    days.add(datetime.now(UTC).strftime("%Y-%m-%d"))

    written = [key for name in buckets for key in object_keys(s3, name)]
    if stored is None:
        assert written == []
    else:  # exactly <prefix>/<date>/<request-id>.json, in the stage's bucket
        assert written == [stored["key"]] and stored["bucket"] == buckets[0]
        assert stored["key"] in {f"reports/{day}/{request_id}.json" for day in days}
    # What Lambda logs at the app's level, the error line included: one line each.
    for line in [r.message for r in records if r.levelno >= logging.INFO] + errors[:1]:
        assert "\n" not in line and "\r" not in line, line
    # At any level, nothing of the event arrives raw: no escape, no line it starts.
    for text in [r.message for r in records] + errors:
        assert "\x1b" not in text and not re.search(rf"[\n\r][^\n\r]*{MARK}", text), text


@pytest.mark.parametrize(
    "detail",
    [{"dry_run": value} for value in HOSTILE.values()] + [{value: True} for value in HOSTILE],
    ids=[f"value={n}" for n in HOSTILE] + [f"option={n}" for n in HOSTILE],
)
def test_hostile_cleanup_details_reach_no_log_line_raw(chalice_client, s3, bucket, detail):
    keys = seed_objects(bucket, 3)
    with everything_logged() as records, pytest.raises(Exception) as raised:
        chalice_client.lambda_.invoke("cleanup", {**SCHEDULED_EVENT, "detail": detail})
    error = lambda_error_lines(raised.value)[0]
    assert len(error) < 300 and "\n" not in error and "\x1b" not in error
    for record in records:
        assert "\x1b" not in record.message and MARK not in record.message
    assert sorted(object_keys(s3, bucket)) == keys  # refused before any deletion


@contextmanager
def fake_role_credentials(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app's S3 client created (as in Lambda's init phase) from the credentials
    above, given the way Lambda gives a role's credentials: in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # it caches the first credentials
    monkeypatch.setattr(app, "S3", app.make_client())
    yield


def full_run(client: Any, s3: Any, bucket: str) -> str:
    """Worker and cleanup, each succeeding and failing once, everything logged;
    returns all of it: log records, error documents and tracebacks."""
    lines: list[str] = []
    with everything_logged() as records:
        client.lambda_.invoke("worker", {"source_ip": "203.0.113.7"})
        client.lambda_.invoke("cleanup", SCHEDULED_EVENT)
        try:
            client.lambda_.invoke("worker", {"source_ip": "bad"})
        except Exception as exc:
            lines += lambda_error_lines(exc)
        s3.delete_bucket(Bucket=bucket)  # emptied above: now the cleanup's listing fails
        try:
            client.lambda_.invoke("cleanup", SCHEDULED_EVENT)
        except Exception as exc:
            lines += lambda_error_lines(exc)
    errors = [line for line in lines if line.startswith("[ERROR] ")]
    assert len(errors) == 2, "both failing invocations failed"
    return "\n".join([r.message for r in records] + [r.exc_text or "" for r in records] + lines)


def test_no_credentials_in_the_logs_of_a_full_run_at_debug(
    app_module, chalice_client, s3, bucket, monkeypatch
):
    with fake_role_credentials(app_module, monkeypatch):
        logged = full_run(chalice_client, s3, bucket)
    # The capture really saw the functions' and botocore's output...
    assert "Worker Event: " in logged and "Cleanup" in logged and "AccessDenied" not in logged
    assert "Sending http request" not in logged  # botocore.endpoint held at INFO
    assert "Event request-created.s3.PutObject" in logged  # botocore.hooks still at DEBUG
    # ...and none of the credentials (an environment dump would hold them all).
    for secret in SECRETS:
        assert secret not in logged


@contextmanager
def signing_loggers_free() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in SIGNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.NOTSET)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def test_botocore_would_log_the_credentials_without_the_guard(
    app_module, chalice_client, s3, bucket, monkeypatch
):
    """Why chalicelib/log_safety.py exists, and proof that the scan above can see a
    leak: with the signing loggers free, DEBUG carries the key id and the token."""
    with signing_loggers_free(), fake_role_credentials(app_module, monkeypatch):
        logged = full_run(chalice_client, s3, bucket)
    assert ACCESS_KEY_ID in logged and SESSION_TOKEN in logged
    assert SECRET_ACCESS_KEY not in logged  # botocore never logs the secret itself

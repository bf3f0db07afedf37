"""The app's log lines: JSON records under Lambda's JSON log format, readable text otherwise.

Chalice gives ``app.log`` its own stdout handler with ``propagate = False``, so
under Lambda's JSON log format (``AWS_LAMBDA_LOG_FORMAT=JSON``) its lines would
stay plain text without a request id. There the handler is removed and the
records propagate to the root logger, where the runtime's own handler formats
them with its ``JsonFormatter`` (``timestamp``, ``level``, ``message``,
``logger``, ``requestId``, and every ``extra`` attribute as a top-level field).
Everywhere, a filter adds ``functionName`` and ``coldStart``.

Structured data goes in ``extra`` under one name (``extra={"cleanup": summary}``):
a JSON field on Lambda, appended to the line as ``: {...}`` in text mode.
"""

import json
import logging
import os

FUNCTION_NAME = "functionName"
COLD_START = "coldStart"
# What a LogRecord holds by itself, plus what the runtime's and our filters add.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message", "asctime", "aws_request_id", "tenant_id", "_frame_type", FUNCTION_NAME, COLD_START,
}  # fmt: skip
TEXT_FORMAT = "%(name)s - %(levelname)s - %(message)s"  # Chalice's


class Sandbox:
    """Whether this process (one Lambda execution environment) has finished an invocation."""

    def __init__(self) -> None:
        self.cold_start = True

    def invocation_ended(self) -> None:
        self.cold_start = False


SANDBOX = Sandbox()


class LambdaFields(logging.Filter):
    """Adds the function's name and the cold-start flag to every record of the logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        setattr(record, FUNCTION_NAME, os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""))
        setattr(record, COLD_START, SANDBOX.cold_start)
        return True


class TextFormatter(logging.Formatter):
    """Chalice's line, then ``: `` and each structured field as JSON: still one line."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        fields = structured_fields(record)
        return ": ".join([super().format(record), *(json.dumps(v) for v in fields.values())])


def structured_fields(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES}


def runtime_formats_json() -> bool:
    """Running under a Lambda runtime (its Runtime API is set) with the JSON log format."""
    json_format = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
    return json_format and bool(os.environ.get("AWS_LAMBDA_RUNTIME_API"))


def configure_app_log(log: logging.Logger) -> None:
    """JSON through the runtime's handler, or Chalice's handler with :class:`TextFormatter`."""
    log.addFilter(LambdaFields())
    if runtime_formats_json():
        for handler in log.handlers[:]:
            log.removeHandler(handler)
        log.propagate = True
        return
    for handler in log.handlers:
        handler.setFormatter(TextFormatter())

"""chalice-loop: run a Chalice app's Lambda functions on one machine, the way Lambda would.

The command line is ``chalice-loop`` (``invoke``, ``up``, ``logs``, ``failures``,
``schedules``; :func:`build_parser` is its parser). The names below are the public
API for scripts and tests, in the style of ``chalice.test``; everything else in
the package is internal and may change.

- :class:`LocalLambda` runs an app's functions with a stage's settings:
  ``invoke`` (as Lambda would: timeout, environment, logs, START/END/REPORT, an
  :class:`Invocation` back), ``call`` (the bare handler in this thread, with a
  fresh ``context``), ``environment`` and ``settings`` (timeout, memory).
- :func:`embedded_aws` (also :func:`embedded_s3`) runs moto's server on loopback,
  and :func:`point_aws_at` points boto3 at it.
- :func:`run_in_slice` runs invocations in Lambda's CPU and memory slice.
- :func:`deployed_name`, :func:`rule_name`, :func:`failure_queue_name`: the names
  ``chalice deploy`` gives what it creates, and the on-failure queue's.
"""

import importlib
from typing import Any

# Bound here, not on first use: the function ``embedded_s3`` shares its name with its
# module, which would otherwise shadow it once imported. The module is cheap to import.
from chalice_loop.embedded_s3 import (
    DEFAULT_REGION,
    LOCAL_CREDENTIALS,
    embedded_aws,
    embedded_s3,
    ensure_region,
    point_aws_at,
)

# Each public name and the module it lives in, imported on first use: `import
# chalice_loop` stays cheap, and the Lambda-slice child (``python -m
# chalice_loop.lambda_slice``) loads only what it runs, not moto's server.
_EXPORTS = {
    "MB_PER_VCPU": "lambda_slice",
    "Invocation": "lambda_runner",
    "LocalLambda": "lambda_runner",
    "LogEvent": "lambda_runner",
    "SliceRun": "lambda_slice",
    "build_parser": "cli",
    "cpu_share": "lambda_slice",
    "deployed_name": "naming",
    "failure_queue_name": "naming",
    "function_settings": "lambda_runner",
    "rule_name": "naming",
    "run_in_slice": "lambda_slice",
}
__all__ = [
    "DEFAULT_REGION",
    "LOCAL_CREDENTIALS",
    "MB_PER_VCPU",
    "Invocation",
    "LocalLambda",
    "LogEvent",
    "SliceRun",
    "build_parser",
    "cpu_share",
    "deployed_name",
    "embedded_aws",
    "embedded_s3",
    "ensure_region",
    "failure_queue_name",
    "function_settings",
    "point_aws_at",
    "rule_name",
    "run_in_slice",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'chalice_loop' has no attribute {name!r}")
    return getattr(importlib.import_module(f"chalice_loop.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__

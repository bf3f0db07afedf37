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

from chalice_loop.cli import build_parser
from chalice_loop.embedded_s3 import (
    DEFAULT_REGION,
    LOCAL_CREDENTIALS,
    embedded_aws,
    embedded_s3,
    ensure_region,
    point_aws_at,
)
from chalice_loop.lambda_runner import Invocation, LocalLambda, LogEvent, function_settings
from chalice_loop.lambda_slice import MB_PER_VCPU, SliceRun, cpu_share, run_in_slice
from chalice_loop.naming import deployed_name, failure_queue_name, rule_name

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

"""chalice-loop: run a Chalice app's Lambda functions on one machine, the way Lambda would.

The command line is ``chalice-loop`` (``invoke``, ``up``, ``logs``, ``failures``,
``schedules``; see :mod:`chalice_loop.cli`). The names below are the public API for
scripts and tests; everything else in the package is internal.
"""

from chalice_loop.embedded_s3 import (
    DEFAULT_REGION,
    LOCAL_CREDENTIALS,
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
    "cpu_share",
    "deployed_name",
    "embedded_s3",
    "ensure_region",
    "failure_queue_name",
    "function_settings",
    "point_aws_at",
    "rule_name",
    "run_in_slice",
]

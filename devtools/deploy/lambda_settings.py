"""Apply ``infra/lambda_settings.json`` to the deployed functions (path 1).

Chalice has no setting for Lambda's log format and levels (aws/chalice#2117)
or for asynchronous retries and destinations (#1309, #967), and ``chalice
deploy`` leaves what it does not manage alone. So ``make deploy`` runs this
after it, for the stage:

- ``LoggingConfig`` through ``UpdateFunctionConfiguration``, for each function
  the file names;
- ``EventInvokeConfig`` (retries, maximum event age) through
  ``PutFunctionEventInvokeConfig``, with the on-failure destination set to the
  queue of the stage's ops stack (its ``FailureQueueArn`` output).

It reads each current value first and changes only what differs, printing
``changed`` (old -> new) or ``unchanged`` per setting: running it twice changes
nothing the second time. Deleting a function deletes its event invoke config.

Run: ``python -m devtools.deploy.lambda_settings apply --stage dev``
"""

import argparse
import sys
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from devtools.deploy.bucket_stack import describe, stack_name, stack_outputs
from devtools.deploy.merge_template import app_config, function_name, lambda_settings

QUEUE_OUTPUT = "FailureQueueArn"
# Poll a function's LastUpdateStatus every 2 s, for up to 5 minutes.
WAITER_CONFIG = {"Delay": 2, "MaxAttempts": 150}


class SettingsError(RuntimeError):
    """The settings cannot be applied (function or queue missing, update failed)."""


def failure_queue_arn(cfn: Any, config: dict[str, Any], stage: str) -> str:
    """The on-failure destination: the stage's ops stack output."""
    stack = stack_name(config, stage, "ops")
    current = describe(cfn, stack)
    arn = stack_outputs(current).get(QUEUE_OUTPUT) if current else None
    if not arn:
        raise SettingsError(
            f"stack {stack} has no {QUEUE_OUTPUT} output: deploy it first "
            f"(python -m devtools.deploy.bucket_stack deploy --stack ops --stage {stage})"
        )
    return arn


def differences(current: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """``key old -> new`` for each desired key whose current value differs."""
    return [
        f"{key} {current.get(key)} -> {value}"
        for key, value in desired.items()
        if current.get(key) != value
    ]


def wait_updated(lam: Any, name: str) -> None:
    try:
        lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=WAITER_CONFIG)
    except WaiterError as exc:
        raise SettingsError(f"{name}: the function's last update did not succeed: {exc}") from exc


def apply_logging(lam: Any, name: str, desired: dict[str, Any]) -> str:
    try:
        current = lam.get_function_configuration(FunctionName=name).get("LoggingConfig", {})
    except lam.exceptions.ResourceNotFoundException:
        raise SettingsError(f"function {name} does not exist: run chalice deploy first") from None
    changes = differences(current, desired)
    if not changes:
        return f"{name}: LoggingConfig unchanged"
    wait_updated(lam, name)  # an update still in progress refuses another
    lam.update_function_configuration(FunctionName=name, LoggingConfig=desired)
    wait_updated(lam, name)
    return f"{name}: LoggingConfig changed: {', '.join(changes)}"


def current_invoke_config(lam: Any, name: str) -> dict[str, Any]:
    """The function's event invoke config (empty destinations dropped), or {}."""
    try:
        found = lam.get_function_event_invoke_config(FunctionName=name)
    except lam.exceptions.ResourceNotFoundException:
        return {}
    destinations = {k: v for k, v in found.get("DestinationConfig", {}).items() if v}
    return {**found, "DestinationConfig": destinations}


def apply_invoke_config(lam: Any, name: str, settings: dict[str, Any], queue_arn: str) -> str:
    desired = {**settings, "DestinationConfig": {"OnFailure": {"Destination": queue_arn}}}
    changes = differences(current_invoke_config(lam, name), desired)
    if not changes:
        return f"{name}: EventInvokeConfig unchanged"
    lam.put_function_event_invoke_config(FunctionName=name, **desired)
    return f"{name}: EventInvokeConfig changed: {', '.join(changes)}"


def apply(lam: Any, cfn: Any, stage: str) -> list[str]:
    """Bring every function the settings file names to its settings; one line each."""
    config = app_config()
    settings = lambda_settings()
    unknown = set(settings) - set(config["stages"][stage]["lambda_functions"])
    if unknown:
        raise SettingsError(
            f"infra/lambda_settings.json names functions stage {stage} lacks: {unknown}"
        )
    queue_arn = None
    lines = []
    for function, values in settings.items():
        name = function_name(config, stage, function)
        if "LoggingConfig" in values:
            lines.append(apply_logging(lam, name, values["LoggingConfig"]))
        if "EventInvokeConfig" in values:
            queue_arn = queue_arn or failure_queue_arn(cfn, config, stage)
            lines.append(apply_invoke_config(lam, name, values["EventInvokeConfig"], queue_arn))
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["apply"])
    parser.add_argument("--stage", default="dev")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.stage not in app_config()["stages"]:
            raise SettingsError(f"unknown stage {args.stage!r}")
        for line in apply(boto3.client("lambda"), boto3.client("cloudformation"), args.stage):
            print(line)
    except (SettingsError, ValueError, ClientError, BotoCoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

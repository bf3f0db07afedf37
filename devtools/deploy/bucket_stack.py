"""The stage's CloudFormation stacks beside chalice's functions (path 1).

``chalice deploy`` creates no buckets, queues or alarms, so ``make deploy``
first runs ``deploy`` here for each stack, from the same templates path 2
merges into its package:

- ``bucket``: ``<app>-<stage>-bucket`` from ``infra/bucket.json`` (the stage's
  ``BUCKET``; ``RetentionDays``, checked against the cleanup's
  ``CLEANUP_MAX_AGE``);
- ``ops``: ``<app>-<stage>-ops`` from ``infra/ops.json`` (the cleanup's
  failure queue, the alarm topic with an optional e-mail subscription, the
  alarms).

Each is created, or updated, or reported unchanged, and waited for. A
parameter not given keeps the stack's current value, else the template's
default. ``make destroy`` runs ``check-empty`` before ``chalice delete`` (so
the cleanup is still there to empty the bucket, and no failed run's event is
lost with the queue) and ``delete`` for each stack after it.

Uses the standard AWS settings (profile, region, ``AWS_ENDPOINT_URL``).

Run: ``python -m devtools.deploy.bucket_stack {deploy,check-empty,delete} --stage dev
[--stack ops] [--retention-days N] [--alarm-email ADDRESS]``
"""

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from devtools.deploy.merge_template import (
    BUCKET_PARAMETER,
    BUCKET_TEMPLATE,
    CLEANUP,
    CLEANUP_PARAMETER,
    OPS_TEMPLATE,
    PROJECT,
    RETENTION_PARAMETER,
    app_config,
    check_retention,
    failure_queue_name,
    function_name,
    stage_bucket,
)

TEMPLATES = {"bucket": BUCKET_TEMPLATE, "ops": OPS_TEMPLATE}
# Real stacks settle in tens of seconds: poll every 5 s, for up to 10 minutes.
WAITER_CONFIG = {"Delay": 5, "MaxAttempts": 120}
NO_UPDATES = "No updates are to be performed"


class StackError(RuntimeError):
    """The stack could not be brought to the requested state."""


class BucketNotEmptyError(StackError):
    """Deleting would fail (and lose the chance to run the cleanup first)."""


class QueueNotEmptyError(StackError):
    """Deleting would lose failed runs' events still in the failure queue."""


@dataclass
class Outcome:
    stack: str
    action: str  # created | updated | unchanged | deleted | absent
    status: str = ""
    outputs: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        lines = [f"Stack {self.stack}: {self.action} ({self.status})"]
        lines += [f"  {key}: {value}" for key, value in sorted(self.outputs.items())]
        return lines


def stack_name(config: dict[str, Any], stage: str, kind: str = "bucket") -> str:
    return f"{config['app_name']}-{stage}-{kind}"


def describe(cfn: Any, stack: str) -> dict[str, Any] | None:
    """The live stack, or None if there is none."""
    try:
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in exc.response["Error"].get("Message", ""):
            return None
        raise


def stack_outputs(stack: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def failure_reasons(cfn: Any, stack: str) -> str:
    """The stack's failed resource events, newest first, for the error message."""
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    reasons = [
        f"{e['LogicalResourceId']}: {e['ResourceStatus']}: {e.get('ResourceStatusReason', '')}"
        for e in events
        if e["ResourceStatus"].endswith("FAILED")
    ]
    return "; ".join(reasons[:5]) or "no failed resource events"


def wait(cfn: Any, stack: str, waiter_name: str) -> dict[str, Any]:
    """Wait for a stack operation; on failure, raise with CloudFormation's reasons."""
    try:
        cfn.get_waiter(waiter_name).wait(StackName=stack, WaiterConfig=WAITER_CONFIG)
    except WaiterError as exc:
        raise StackError(
            f"stack {stack}: {exc}. Failed resources: {failure_reasons(cfn, stack)}"
        ) from exc
    return describe(cfn, stack) or {"StackStatus": "DELETE_COMPLETE"}


def resolve_parameters(
    template: dict[str, Any], current: dict[str, Any] | None, given: dict[str, Any]
) -> dict[str, str]:
    """Every template parameter's value: given, else the live stack's, else the default."""
    live = {p["ParameterKey"]: p["ParameterValue"] for p in (current or {}).get("Parameters", [])}
    values = {}
    for name, spec in template["Parameters"].items():
        value = given.get(name)
        value = value if value is not None else live.get(name, spec.get("Default"))
        if value is None:
            raise ValueError(f"parameter {name} has no value and no default")
        values[name] = str(value)
    return values


def deploy_stack(cfn: Any, stack: str, template_body: str, parameters: dict[str, str]) -> Outcome:
    """Create or update a stack, idempotently, and wait for it."""
    listed = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
    current = describe(cfn, stack)
    if current is not None and current["StackStatus"].endswith("_IN_PROGRESS"):
        raise StackError(f"stack {stack} is busy ({current['StackStatus']}); retry once it settles")
    if current is not None and current["StackStatus"] == "ROLLBACK_COMPLETE":
        # A failed first create leaves a stack that can only be deleted.
        print(f"Stack {stack} is ROLLBACK_COMPLETE from a failed create: deleting it first")
        cfn.delete_stack(StackName=stack)
        wait(cfn, stack, "stack_delete_complete")
        current = None
    if current is None:
        print(f"Creating stack {stack} ...")
        cfn.create_stack(StackName=stack, TemplateBody=template_body, Parameters=listed)
        done = wait(cfn, stack, "stack_create_complete")
        return Outcome(stack, "created", done["StackStatus"], stack_outputs(done))
    print(f"Stack {stack} exists: updating it ...")
    try:
        cfn.update_stack(StackName=stack, TemplateBody=template_body, Parameters=listed)
    except ClientError as exc:
        if NO_UPDATES in exc.response["Error"].get("Message", ""):
            return Outcome(stack, "unchanged", current["StackStatus"], stack_outputs(current))
        raise
    done = wait(cfn, stack, "stack_update_complete")
    return Outcome(stack, "updated", done["StackStatus"], stack_outputs(done))


def ensure_empty(s3: Any, bucket: str, stage: str) -> None:
    """Raise BucketNotEmptyError (naming a few keys and the fix) unless ``bucket``
    is empty or gone. The bucket is unversioned, so objects are all there is."""
    try:
        listing = s3.list_objects_v2(Bucket=bucket, MaxKeys=3)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchBucket":
            return
        raise
    keys = [o["Key"] for o in listing.get("Contents", [])]
    if keys:
        more = " and more" if listing.get("IsTruncated") else ""
        raise BucketNotEmptyError(
            f"s3://{bucket} is not empty ({', '.join(keys)}{more}); nothing was deleted. "
            f"Empty it with the cleanup: chalice invoke -n cleanup --stage {stage} "
            f"< events/scheduled.json, then run make destroy STAGE={stage} again."
        )


def ensure_drained(sqs: Any, queue: str, stage: str) -> None:
    """Raise QueueNotEmptyError (with the commands to read and purge it) unless
    the failure queue is empty or gone."""
    try:
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    except ClientError as exc:
        if "NonExistentQueue" in exc.response["Error"]["Code"]:
            return
        raise
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    held = sum(int(attributes.get(name, 0)) for name in names)
    if held:
        raise QueueNotEmptyError(
            f"the cleanup's failure queue {queue} holds {held} failed run(s); nothing was "
            f"deleted. Read them (aws sqs receive-message --queue-url {url} "
            f"--max-number-of-messages 10), purge it (aws sqs purge-queue --queue-url {url}), "
            f"then run make destroy STAGE={stage} again."
        )


def delete_stack(cfn: Any, stack: str, guard: Any = None) -> Outcome:
    """Delete a stack once ``guard(outputs)`` (if given) has not raised; wait."""
    current = describe(cfn, stack)
    if current is None:
        return Outcome(stack, "absent", "no such stack: nothing to delete")
    if guard is not None:
        guard(stack_outputs(current))
    print(f"Deleting stack {stack} ...")
    cfn.delete_stack(StackName=current["StackId"])
    done = wait(cfn, current["StackId"], "stack_delete_complete")
    return Outcome(stack, "deleted", done["StackStatus"])


def delete_bucket(cfn: Any, s3: Any, stack: str, stage: str) -> Outcome:
    """Delete the bucket stack if the bucket is empty; check the bucket is gone."""
    bucket = ""

    def guard(outputs: dict[str, str]) -> None:
        nonlocal bucket
        bucket = outputs.get("BucketName", "")
        if bucket:
            ensure_empty(s3, bucket, stage)

    outcome = delete_stack(cfn, stack, guard)
    if bucket and bucket_exists(s3, bucket):
        raise StackError(f"stack {stack} is {outcome.status} but s3://{bucket} still exists")
    return outcome


def delete_ops(cfn: Any, sqs: Any, stack: str, queue: str, stage: str) -> Outcome:
    """Delete the ops stack unless its failure queue still holds failed runs."""
    return delete_stack(cfn, stack, lambda _outputs: ensure_drained(sqs, queue, stage))


def bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchBucket"):
            return False
        raise
    return True


def deploy(
    cfn: Any,
    config: dict[str, Any],
    stage: str,
    kind: str,
    retention_days: int | None = None,
    alarm_email: str | None = None,
) -> Outcome:
    """Deploy the stage's ``kind`` stack with its parameters resolved and checked."""
    stack = stack_name(config, stage, kind)
    template_body = (PROJECT / TEMPLATES[kind]).read_text()
    if kind == "bucket":
        given = {BUCKET_PARAMETER: stage_bucket(config, stage), RETENTION_PARAMETER: retention_days}
    else:
        given = {
            CLEANUP_PARAMETER: function_name(config, stage, CLEANUP),
            "AlarmEmail": alarm_email,
        }
    parameters = resolve_parameters(json.loads(template_body), describe(cfn, stack), given)
    if kind == "bucket":
        check_retention(int(parameters[RETENTION_PARAMETER]), config, stage)
    return deploy_stack(cfn, stack, template_body, parameters)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The stage's bucket and ops stacks")
    parser.add_argument("command", choices=["deploy", "check-empty", "delete"])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--stack", choices=sorted(TEMPLATES), default="bucket")
    parser.add_argument(
        "--retention-days", type=int, help="bucket: the lifecycle backstop, in days"
    )
    parser.add_argument("--alarm-email", help="ops: subscribe this address ('' removes it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = app_config()
        bucket = stage_bucket(config, args.stage)
        cfn, s3 = boto3.client("cloudformation"), boto3.client("s3")
        if args.command == "deploy":
            outcome = deploy(
                cfn, config, args.stage, args.stack, args.retention_days, args.alarm_email
            )
            print("\n".join(outcome.lines()))
        elif args.command == "check-empty":
            ensure_empty(s3, bucket, args.stage)
            ensure_drained(boto3.client("sqs"), failure_queue_name(config, args.stage), args.stage)
            print(f"s3://{bucket} and {failure_queue_name(config, args.stage)} are empty or absent")
        elif args.stack == "bucket":
            stack = stack_name(config, args.stage)
            print("\n".join(delete_bucket(cfn, s3, stack, args.stage).lines()))
        else:
            stack = stack_name(config, args.stage, "ops")
            queue = failure_queue_name(config, args.stage)
            outcome = delete_ops(cfn, boto3.client("sqs"), stack, queue, args.stage)
            print("\n".join(outcome.lines()))
    except (StackError, ValueError, ClientError, BotoCoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

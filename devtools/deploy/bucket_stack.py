"""The stage's reports bucket as its own CloudFormation stack (path 1).

``chalice deploy`` does not create buckets, so ``make deploy`` first runs
``deploy`` here: it creates the stack ``worker-functions-<stage>-bucket`` from
``infra/bucket.json`` (named by the stage's ``BUCKET`` in config.json), or
updates it, or reports that nothing changed, and waits for the result.
``make destroy`` runs ``check-empty`` before ``chalice delete`` (so the cleanup
is still there to empty the bucket) and ``delete`` after it.

Uses the standard AWS settings (profile, region, ``AWS_ENDPOINT_URL``).

Run: ``python -m devtools.deploy.bucket_stack {deploy,check-empty,delete} --stage dev``
"""

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from devtools.deploy.merge_template import (
    BUCKET_PARAMETER,
    BUCKET_TEMPLATE,
    PROJECT,
    app_config,
    stage_bucket,
)

# Real stacks settle in tens of seconds: poll every 5 s, for up to 10 minutes.
WAITER_CONFIG = {"Delay": 5, "MaxAttempts": 120}
NO_UPDATES = "No updates are to be performed"


class StackError(RuntimeError):
    """The stack could not be brought to the requested state."""


class BucketNotEmptyError(StackError):
    """Deleting would fail (and lose the chance to run the cleanup first)."""


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


def stack_name(config: dict[str, Any], stage: str) -> str:
    return f"{config['app_name']}-{stage}-bucket"


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


def deploy_bucket(cfn: Any, stack: str, bucket: str, template_body: str) -> Outcome:
    """Create or update the bucket stack, idempotently, and wait for it."""
    parameters = [{"ParameterKey": BUCKET_PARAMETER, "ParameterValue": bucket}]
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
        print(f"Creating stack {stack} for s3://{bucket} ...")
        cfn.create_stack(StackName=stack, TemplateBody=template_body, Parameters=parameters)
        done = wait(cfn, stack, "stack_create_complete")
        return Outcome(stack, "created", done["StackStatus"], stack_outputs(done))
    print(f"Stack {stack} exists: updating it for s3://{bucket} ...")
    try:
        cfn.update_stack(StackName=stack, TemplateBody=template_body, Parameters=parameters)
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


def delete_bucket(cfn: Any, s3: Any, stack: str, stage: str) -> Outcome:
    """Delete the bucket stack if the bucket is empty; check the bucket is gone."""
    current = describe(cfn, stack)
    if current is None:
        return Outcome(stack, "absent", "no such stack: nothing to delete")
    bucket = stack_outputs(current).get("BucketName")
    if bucket:
        ensure_empty(s3, bucket, stage)
    print(f"Deleting stack {stack} (s3://{bucket}) ...")
    cfn.delete_stack(StackName=current["StackId"])
    done = wait(cfn, current["StackId"], "stack_delete_complete")
    if bucket and bucket_exists(s3, bucket):
        raise StackError(f"stack {stack} is {done['StackStatus']} but s3://{bucket} still exists")
    return Outcome(stack, "deleted", done["StackStatus"])


def bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchBucket"):
            return False
        raise
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The stage's reports bucket stack")
    parser.add_argument("command", choices=["deploy", "check-empty", "delete"])
    parser.add_argument("--stage", default="dev")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = app_config()
        stack, bucket = stack_name(config, args.stage), stage_bucket(config, args.stage)
        cfn, s3 = boto3.client("cloudformation"), boto3.client("s3")
        if args.command == "deploy":
            template_body = (PROJECT / BUCKET_TEMPLATE).read_text()
            print("\n".join(deploy_bucket(cfn, stack, bucket, template_body).lines()))
        elif args.command == "check-empty":
            ensure_empty(s3, bucket, args.stage)
            print(f"s3://{bucket} is empty or absent")
        else:
            print("\n".join(delete_bucket(cfn, s3, stack, args.stage).lines()))
    except (StackError, ValueError, ClientError, BotoCoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

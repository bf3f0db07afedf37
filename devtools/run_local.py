"""``make run``: the whole story on one machine.

Starts an embedded S3 (unless ``AWS_ENDPOINT_URL_S3`` is set), creates the
stage's bucket, invokes the worker with ``events/worker.json``, reads the
report back, fires the cleanup with ``events/scheduled.json``, shows its metrics
document and checks the bucket is empty. Exits non-zero if any step fails.
"""

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import boto3
from chalice_loop import LocalLambda, embedded_s3, ensure_region, point_aws_at

PROJECT = Path(__file__).resolve().parents[1]


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _invoke(local: Any, name: str, payload: Any) -> Any:
    """Run one invocation, print its log and result; returns the invocation."""
    invocation = local.invoke(name, payload)
    print("\n".join(invocation.lambda_lines()))
    if invocation.error is not None:
        print(json.dumps(invocation.error_document(), indent=2))
        raise SystemExit(f"{name} failed: {invocation.error}")
    print(json.dumps(invocation.result, indent=2))
    return invocation


def _show_metrics(invocation: Any) -> None:
    """The invocation's Embedded Metric Format document (the JSON line in its log), as a table."""
    for event in invocation.events:
        if not (event.record and "_aws" in event.record):
            continue
        doc = event.record
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            dimensions = ", ".join(
                f"{d}={doc[d]}" for names in directive["Dimensions"] for d in names
            )
            _step(f"Metrics of {invocation.function_name}: {directive['Namespace']} ({dimensions})")
            for metric in directive["Metrics"]:
                print(f"{metric['Name']:<18} {doc[metric['Name']]:>8} {metric['Unit']}")


def run(stage: str) -> None:
    from app import app  # imported only once the endpoint is configured

    local = LocalLambda(app, stage=stage, project_dir=str(PROJECT))
    bucket = local.config.scope(stage, "worker").environment_variables["BUCKET"]
    s3 = boto3.client("s3", region_name=os.environ.get("AWS_REGION") or None)

    _step(f"Bucket s3://{bucket}")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    print(f"ready at {s3.meta.endpoint_url}")

    _step("Invoke worker with events/worker.json")
    payload = json.loads((PROJECT / "events" / "worker.json").read_text())
    stored = _invoke(local, "worker", payload).result

    _step(f"Report read back from s3://{bucket}/{stored['key']}")
    body = s3.get_object(Bucket=bucket, Key=stored["key"])["Body"].read()
    print(body.decode())
    if json.loads(body) != stored["report"]:
        raise SystemExit("the stored report differs from what the worker returned")

    _step("Fire cleanup with events/scheduled.json")
    scheduled = json.loads((PROJECT / "events" / "scheduled.json").read_text())
    _show_metrics(_invoke(local, "cleanup", scheduled))

    left = s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
    _step(f"Bucket s3://{bucket} after cleanup: {left} objects")
    if left:
        raise SystemExit("the cleanup left objects behind")
    print("OK")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    sys.path.insert(0, str(PROJECT))
    if os.environ.get("AWS_ENDPOINT_URL_S3"):
        ensure_region()
        run(args.stage)
        return
    with embedded_s3() as endpoint:
        point_aws_at(endpoint)
        print(f"embedded S3 (moto server) at {endpoint}")
        run(args.stage)


if __name__ == "__main__":
    main()

"""Path 1 rehearsed against moto's server: ``make deploy`` (the bucket stack,
then ``chalice deploy``), a second ``make deploy``, ``make destroy`` refused
while the bucket holds a report, then ``make destroy`` for real. It runs in a
temporary copy of the project, so ``.chalice/deployed/`` stays out of the work
tree, with fake credentials and ``AWS_ENDPOINT_URL`` pointing at moto."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from devtools.deploy.bucket_stack import (
    BucketNotEmptyError,
    StackError,
    delete_bucket,
    deploy_bucket,
)
from devtools.deploy.merge_template import app_config
from tests.conftest import PROJECT, stage_bucket, stage_config
from tests.packaging import copy_deployable

VENV = Path(sys.executable).parent.parent
STAGE = "dev"
APP = app_config()["app_name"]
BUCKET = stage_bucket(STAGE)
STACK = f"{APP}-{STAGE}-bucket"
FUNCTIONS = ("worker", "cleanup")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "rehearsal", "AWS_SECRET_ACCESS_KEY": "rehearsal-secret"}
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server in its own process (its own backends, apart from the
    session's S3 server), with Lambda's Docker use off before any deploy."""
    log = (tmp_path_factory.mktemp("moto") / "server.log").open("w")
    port = free_port()
    server = subprocess.Popen(
        [str(VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{endpoint}/moto-api/config", timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                assert server.poll() is None, f"moto_server exited: {server.returncode}"
                assert time.monotonic() < deadline, "moto_server did not start in 30 s"
                time.sleep(0.1)
        config = {"lambda": {"use_docker": False}}
        requests.post(f"{endpoint}/moto-api/config", json=config, timeout=5).raise_for_status()
        assert requests.get(f"{endpoint}/moto-api/config", timeout=5).json()["lambda"] == {
            "use_docker": False
        }
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def client(service: str, endpoint: str | None) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def optional(call: Any, *missing: str) -> Any:
    """The call's result, or None when S3 says the configuration is not set."""
    try:
        return call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in missing:
            return None
        raise


def snapshot(endpoint: str) -> dict[str, Any]:
    """Everything a deploy can leave behind, in comparable form."""
    lam, iam, events = (client(s, endpoint) for s in ("lambda", "iam", "events"))
    s3, cfn, logs = (client(s, endpoint) for s in ("s3", "cloudformation", "logs"))
    keys = ("Runtime", "Handler", "Timeout", "MemorySize", "Environment", "Role")
    functions = {
        f["FunctionName"]: {k: f.get(k) for k in keys} for f in lam.list_functions()["Functions"]
    }
    permissions = {
        name: json.loads(policy["Policy"])["Statement"]
        for name in functions
        if (
            policy := optional(
                lambda n=name: lam.get_policy(FunctionName=n), "ResourceNotFoundException"
            )
        )
    }
    roles = {}
    for role in iam.list_roles()["Roles"]:
        name = role["RoleName"]
        inline = iam.list_role_policies(RoleName=name)["PolicyNames"]
        roles[name] = {
            "trust": role["AssumeRolePolicyDocument"],
            "inline": {
                p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
                for p in inline
            },
            "attached": iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"],
        }
    rules = {
        r["Name"]: {
            "Arn": r["Arn"],
            "ScheduleExpression": r.get("ScheduleExpression"),
            "State": r["State"],
            "targets": [t["Arn"] for t in events.list_targets_by_rule(Rule=r["Name"])["Targets"]],
        }
        for r in events.list_rules()["Rules"]
    }
    buckets = {}
    for b in s3.list_buckets()["Buckets"]:
        name = b["Name"]
        buckets[name] = {
            "encryption": s3.get_bucket_encryption(Bucket=name)[
                "ServerSideEncryptionConfiguration"
            ]["Rules"],
            "versioning": s3.get_bucket_versioning(Bucket=name).get("Status"),
            "public_access_block": optional(
                lambda n=name: s3.get_public_access_block(Bucket=n),
                "NoSuchPublicAccessBlockConfiguration",
            ),
            "ownership": optional(
                lambda n=name: s3.get_bucket_ownership_controls(Bucket=n),
                "OwnershipControlsNotFoundError",
            ),
            "policy": optional(lambda n=name: s3.get_bucket_policy(Bucket=n), "NoSuchBucketPolicy"),
        }
    stacks = {
        s["StackName"]: {
            "status": s["StackStatus"],
            "outputs": {o["OutputKey"]: o["OutputValue"] for o in s.get("Outputs", [])},
            # moto lists a resource it skipped with an empty id: left out.
            "resources": sorted(
                r["LogicalResourceId"]
                for r in cfn.list_stack_resources(StackName=s["StackName"])[
                    "StackResourceSummaries"
                ]
                if r["LogicalResourceId"]
            ),
        }
        for s in cfn.describe_stacks()["Stacks"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    }
    return {
        "functions": functions,
        "permissions": permissions,
        "roles": roles,
        "rules": rules,
        "buckets": buckets,
        "stacks": stacks,
        "log_groups": [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]],
    }


def project_copy(dest: Path) -> Path:
    """What a user's clone needs to run make deploy / destroy: the deployable
    files, the Makefile and the tooling it calls."""
    copy_deployable(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("devtools", "infra", "events"):
        shutil.copytree(PROJECT / name, dest / name, ignore=ignore)
    for name in ("Makefile", "requirements-dev.txt"):
        shutil.copy2(PROJECT / name, dest / name)
    return dest


@dataclass
class Rehearsal:
    project: Path
    steps: dict[str, subprocess.CompletedProcess]
    states: dict[str, dict[str, Any]]


def chalice_state(project: Path) -> list[tuple[str, float]]:
    """What chalice deploy writes: its record of deployed resources and its zips."""
    paths = [p for d in ("deployed", "deployments") for p in (project / ".chalice" / d).rglob("*")]
    return sorted((str(p), p.stat().st_mtime) for p in paths)


@pytest.fixture(scope="module")
def rehearsal(aws: str, tmp_path_factory: pytest.TempPathFactory) -> Rehearsal:
    """Run the whole path-1 lifecycle once; record each step's output and the
    resources after it."""
    work_tree_before = chalice_state(PROJECT)
    project = project_copy(tmp_path_factory.mktemp("rehearsal") / "project")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(project),
        "LANG": "C.UTF-8",
        "AWS_ENDPOINT_URL": aws,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(project / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(project / "no-aws-credentials"),
        **CREDENTIALS,
    }
    stamp = VENV / ".installed"  # the venv exists: never rebuild it from here

    def make(target: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                "make",
                "--no-print-directory",
                "-o",
                str(stamp),
                f"VENV={VENV}",
                f"STAGE={STAGE}",
                target,
            ],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    steps, states = {}, {}
    steps["deploy"] = make("deploy")
    states["deployed"] = snapshot(aws)
    steps["redeploy"] = make("deploy")
    states["redeployed"] = snapshot(aws)
    s3 = client("s3", aws)
    report = f"reports/{datetime.now(UTC):%Y-%m-%d}/rehearsal.json"
    s3.put_object(Bucket=BUCKET, Key=report, Body=b"{}")
    steps["destroy-refused"] = make("destroy")
    states["refused"] = snapshot(aws)
    s3.delete_object(Bucket=BUCKET, Key=report)
    steps["destroy"] = make("destroy")
    states["destroyed"] = snapshot(aws)
    assert chalice_state(PROJECT) == work_tree_before, "the rehearsal touched the work tree"
    return Rehearsal(project, steps, states)


def ok(step: subprocess.CompletedProcess) -> str:
    assert step.returncode == 0, step.stdout + step.stderr
    return step.stdout


def function_name(function: str) -> str:
    return f"{APP}-{STAGE}-{function}"


# -- make deploy ---------------------------------------------------------------


def test_make_deploy_creates_the_bucket_stack_then_the_functions(rehearsal):
    out = ok(rehearsal.steps["deploy"])
    assert f"Stack {STACK}: created (CREATE_COMPLETE)" in out
    assert f"  BucketName: {BUCKET}" in out
    assert f"  BucketArn: arn:aws:s3:::{BUCKET}" in out
    for function in FUNCTIONS:
        assert f"Creating lambda function: {function_name(function)}" in out
    assert out.index(f"Stack {STACK}") < out.index("Creating lambda function")
    assert (rehearsal.project / ".chalice" / "deployed" / f"{STAGE}.json").exists()


def test_a_second_deploy_changes_nothing(rehearsal):
    out = ok(rehearsal.steps["redeploy"])
    assert f"Stack {STACK}: unchanged (CREATE_COMPLETE)" in out
    assert "Creating IAM role" not in out  # chalice updates in place
    assert "Creating lambda function" not in out
    for function in FUNCTIONS:
        assert f"Updating lambda function: {function_name(function)}" in out
    assert rehearsal.states["redeployed"] == rehearsal.states["deployed"]


def test_functions_are_configured_as_in_config_json(rehearsal):
    functions = rehearsal.states["deployed"]["functions"]
    assert sorted(functions) == sorted(function_name(f) for f in FUNCTIONS)
    for function in FUNCTIONS:
        assert functions[function_name(function)] == {
            "Runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "Handler": f"app.{function}",
            "Timeout": 15,
            "MemorySize": 128,
            "Environment": {"Variables": {"BUCKET": BUCKET}},
            "Role": f"arn:aws:iam::{ACCOUNT}:role/{function_name(function)}",
        }


def test_each_function_has_its_own_role_with_exactly_its_policy_file(rehearsal):
    roles = rehearsal.states["deployed"]["roles"]
    assert sorted(roles) == sorted(function_name(f) for f in FUNCTIONS)
    for function in FUNCTIONS:
        policy_file = stage_config(STAGE)["lambda_functions"][function]["iam_policy_file"]
        expected = json.loads((PROJECT / ".chalice" / policy_file).read_text())
        role = roles[function_name(function)]
        assert role["inline"] == {function_name(function): expected}
        assert role["attached"] == []
        assert role["trust"]["Statement"] == [
            {
                "Sid": "",
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]


def test_the_schedule_rule_runs_the_cleanup_every_day(rehearsal):
    rules = rehearsal.states["deployed"]["rules"]
    cleanup_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name('cleanup')}"
    assert rules == {
        f"{function_name('cleanup')}-event": {
            "Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{function_name('cleanup')}-event",
            "ScheduleExpression": "rate(1 day)",
            "State": "ENABLED",
            "targets": [cleanup_arn],
        }
    }


def test_only_eventbridge_may_invoke_the_cleanup_and_nothing_the_worker(rehearsal):
    permissions = rehearsal.states["deployed"]["permissions"]
    rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{function_name('cleanup')}-event"
    assert sorted(permissions) == [function_name("cleanup")]
    (statement,) = permissions[function_name("cleanup")]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "lambda:InvokeFunction"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnLike": {"AWS:SourceArn": rule_arn}}


def test_the_bucket_stack_and_what_moto_applies_of_its_hardening(rehearsal):
    state = rehearsal.states["deployed"]
    assert state["stacks"] == {
        STACK: {
            "status": "CREATE_COMPLETE",
            "outputs": {"BucketName": BUCKET, "BucketArn": f"arn:aws:s3:::{BUCKET}"},
            # moto 5.2.5 skips AWS::S3::BucketPolicy ("not supported") entirely.
            "resources": ["ReportsBucket"],
        }
    }
    bucket = state["buckets"][BUCKET]
    assert bucket["encryption"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert bucket["versioning"] is None  # never enabled
    # Not applied by moto 5.2.5's CloudFormation: verified on the template only
    # (tests/test_package.py). If this fails, moto applies them now: assert their
    # values here and update the "verified where" table in docs/deploy.md.
    assert (bucket["public_access_block"], bucket["ownership"], bucket["policy"]) == (
        None,
        None,
        None,
    )


# -- make destroy --------------------------------------------------------------


def test_destroy_refuses_while_the_bucket_holds_objects_and_deletes_nothing(rehearsal):
    step = rehearsal.steps["destroy-refused"]
    assert step.returncode != 0
    assert f"error: s3://{BUCKET} is not empty (reports/" in step.stderr
    assert "nothing was deleted" in step.stderr
    assert f"chalice invoke -n cleanup --stage {STAGE} < events/scheduled.json" in step.stderr
    assert "chalice delete" not in step.stdout  # stopped before chalice delete ran
    refused, deployed = rehearsal.states["refused"], rehearsal.states["deployed"]
    assert {k: v for k, v in refused.items() if k != "buckets"} == {
        k: v for k, v in deployed.items() if k != "buckets"
    }
    assert sorted(refused["buckets"]) == [BUCKET]


def test_destroy_leaves_nothing_behind(rehearsal):
    out = ok(rehearsal.steps["destroy"])
    for function in FUNCTIONS:
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name(function)}"
        assert f"Deleting function: {arn}" in out
        assert f"Deleting IAM role: {function_name(function)}" in out
    assert f"Stack {STACK}: deleted (DELETE_COMPLETE)" in out
    assert rehearsal.states["destroyed"] == {
        "functions": {},
        "permissions": {},
        "roles": {},
        "rules": {},
        "buckets": {},
        "stacks": {},
        "log_groups": [],
    }


# -- the bucket stack's other outcomes -----------------------------------------


def test_bucket_stack_update_then_delete_guarded_and_repeatable(aws, rehearsal):
    """Runs after the rehearsal (which it needs finished), on its own stack."""
    cfn, s3 = client("cloudformation", aws), client("s3", aws)
    stack, bucket = "worker-functions-update-bucket", "worker-functions-update-test"
    template = json.loads((PROJECT / "infra" / "bucket.json").read_text())
    body = json.dumps(template)
    assert deploy_bucket(cfn, stack, bucket, body).action == "created"
    assert deploy_bucket(cfn, stack, bucket, body).action == "unchanged"
    tags = [{"Key": "team", "Value": "reports"}]
    template["Resources"]["ReportsBucket"]["Properties"]["Tags"] = tags
    updated = deploy_bucket(cfn, stack, bucket, json.dumps(template))
    assert (updated.action, updated.status) == ("updated", "UPDATE_COMPLETE")
    assert updated.outputs == {"BucketName": bucket, "BucketArn": f"arn:aws:s3:::{bucket}"}
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tags
    s3.put_object(Bucket=bucket, Key="reports/left.json", Body=b"{}")
    with pytest.raises(BucketNotEmptyError, match=r"reports/left\.json"):
        delete_bucket(cfn, s3, stack, STAGE)
    assert cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"
    s3.delete_object(Bucket=bucket, Key="reports/left.json")
    assert delete_bucket(cfn, s3, stack, STAGE).action == "deleted"
    assert delete_bucket(cfn, s3, stack, STAGE).action == "absent"
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == []


# moto never fails a create, so CloudFormation's failure answers are stubbed here.
def stack_description(status: str) -> dict[str, Any]:
    return {
        "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/1",
        "StackName": STACK,
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
        "StackStatus": status,
    }


def stubbed_cloudformation() -> tuple[Any, Stubber]:
    cfn = client("cloudformation", None)  # AWS's endpoint, never reached: stubbed
    return cfn, Stubber(cfn)


def no_such_stack(stub: Stubber) -> None:
    stub.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message=f"Stack with id {STACK} does not exist",
        http_status_code=400,
    )


def test_a_failed_create_reports_cloudformations_reasons():
    cfn, stub = stubbed_cloudformation()
    no_such_stack(stub)
    stub.add_response("create_stack", {"StackId": stack_description("")["StackId"]})
    stub.add_response("describe_stacks", {"Stacks": [stack_description("ROLLBACK_COMPLETE")]})
    reason = f"{BUCKET} already exists"
    failed = {
        "StackId": stack_description("")["StackId"],
        "EventId": "1",
        "StackName": STACK,
        "LogicalResourceId": "ReportsBucket",
        "Timestamp": datetime(2026, 1, 1, tzinfo=UTC),
        "ResourceStatus": "CREATE_FAILED",
        "ResourceStatusReason": reason,
    }
    stub.add_response("describe_stack_events", {"StackEvents": [failed]})
    with stub, pytest.raises(StackError, match=f"ReportsBucket: CREATE_FAILED: {reason}"):
        deploy_bucket(cfn, STACK, BUCKET, "{}")
    stub.assert_no_pending_responses()


def test_a_stack_left_by_a_failed_create_is_replaced():
    """ROLLBACK_COMPLETE cannot be updated: the next deploy deletes it and creates."""
    cfn, stub = stubbed_cloudformation()
    stub.add_response("describe_stacks", {"Stacks": [stack_description("ROLLBACK_COMPLETE")]})
    stub.add_response("delete_stack", {}, {"StackName": STACK})
    stub.add_response("describe_stacks", {"Stacks": [stack_description("DELETE_COMPLETE")]})
    no_such_stack(stub)
    stub.add_response("create_stack", {"StackId": stack_description("")["StackId"]})
    for _ in range(2):  # the waiter, then the final description
        stub.add_response("describe_stacks", {"Stacks": [stack_description("CREATE_COMPLETE")]})
    with stub:
        outcome = deploy_bucket(cfn, STACK, BUCKET, "{}")
    assert (outcome.action, outcome.status) == ("created", "CREATE_COMPLETE")
    stub.assert_no_pending_responses()


def test_a_busy_stack_is_not_touched():
    cfn, stub = stubbed_cloudformation()
    stub.add_response("describe_stacks", {"Stacks": [stack_description("UPDATE_IN_PROGRESS")]})
    with stub, pytest.raises(StackError, match="busy \\(UPDATE_IN_PROGRESS\\)"):
        deploy_bucket(cfn, STACK, BUCKET, "{}")
    stub.assert_no_pending_responses()

"""Path 1 rehearsed against moto's server: ``make deploy`` (the bucket and ops
stacks, ``chalice deploy``, then the Lambda settings), a second ``make deploy``,
a plain ``chalice deploy``, ``make destroy`` refused while the bucket holds a
report and while the failure queue holds a failed run, then ``make destroy``
for real. It runs in a temporary copy of the project, so ``.chalice/deployed/``
stays out of the work tree, with fake credentials and ``AWS_ENDPOINT_URL``
pointing at moto. moto's request recorder keeps every step's requests, so what
moto does not store (a function's LoggingConfig) is still checked on the wire."""

import base64
import json
import os
import re
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

from devtools.deploy import bucket_stack, lambda_settings
from devtools.deploy.bucket_stack import (
    BucketNotEmptyError,
    StackError,
    delete_bucket,
    deploy_stack,
)
from devtools.deploy.merge_template import app_config, failure_queue_name, function_config
from tests.conftest import PROJECT, STAGE, schedule_expression, stage_bucket, stage_config
from tests.packaging import copy_deployable

VENV = Path(sys.executable).parent.parent
CONFIG = app_config()
APP = CONFIG["app_name"]
BUCKET = stage_bucket(STAGE)
STACK = f"{APP}-{STAGE}-bucket"
OPS_STACK = f"{APP}-{STAGE}-ops"
QUEUE = failure_queue_name(CONFIG, STAGE)
SETTINGS = lambda_settings.lambda_settings()
RETENTION_DAYS = json.loads((PROJECT / "infra" / "bucket.json").read_text())["Parameters"][
    "RetentionDays"
]["Default"]
FUNCTIONS = tuple(stage_config(STAGE)["lambda_functions"])  # the template's two, and yours
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
    folder = tmp_path_factory.mktemp("moto")
    log = (folder / "server.log").open("w")
    port = free_port()
    server = subprocess.Popen(
        [str(VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MOTO_RECORDER_FILEPATH": str(folder / "recording.jsonl")},
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
    sqs, sns, cloudwatch = (client(s, endpoint) for s in ("sqs", "sns", "cloudwatch"))
    keys = ("Runtime", "Handler", "Timeout", "MemorySize", "Environment", "Role", "LoggingConfig")
    functions = {
        f["FunctionName"]: {k: f.get(k) for k in keys} for f in lam.list_functions()["Functions"]
    }
    invoke_configs = {}
    for name in functions:
        found = optional(
            lambda n=name: lam.get_function_event_invoke_config(FunctionName=n),
            "ResourceNotFoundException",
        )
        if found:
            invoke_configs[name] = {
                k: found[k]
                for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
            }
    queues = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        wanted = ("QueueArn", "MessageRetentionPeriod", "SqsManagedSseEnabled", "Policy")
        queues[url.rsplit("/", 1)[-1]] = {k: attributes.get(k) for k in wanted}
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
            "lifecycle": optional(
                lambda n=name: s3.get_bucket_lifecycle_configuration(Bucket=n),
                "NoSuchLifecycleConfiguration",
            ),
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
        "invoke_configs": invoke_configs,
        "queues": queues,
        "topics": [t["TopicArn"] for t in sns.list_topics()["Topics"]],
        "subscriptions": [s["Endpoint"] for s in sns.list_subscriptions()["Subscriptions"]],
        "alarms": [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]],
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
    requests: dict[str, list[dict[str, Any]]]  # each step's requests, as moto recorded them


def recorded(endpoint: str) -> list[dict[str, Any]]:
    """The requests moto recorded since the last reset: method, path and JSON body."""
    text = requests.get(f"{endpoint}/moto-api/recorder/download-recording", timeout=10).text
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body
        path = entry["url"].split("://", 1)[-1].partition("/")[2].split("?")[0]
        entries.append({"method": entry["method"], "path": "/" + path, "body": parsed})
    requests.post(f"{endpoint}/moto-api/recorder/reset-recording", timeout=10)
    return entries


def lambda_calls(step: list[dict[str, Any]], resource: str) -> list[tuple[str, str, Any]]:
    """(method, function, body) of each Lambda API request on ``resource``
    (``configuration`` or ``event-invoke-config``) of a function."""
    pattern = re.compile(rf"/20\d\d-\d\d-\d\d/functions/([^/]+)/{resource}")
    return [
        (r["method"], match.group(1), r["body"])
        for r in step
        if (match := pattern.fullmatch(r["path"]))
    ]


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

    def chalice_deploy() -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(VENV / "bin" / "chalice"), "deploy", "--stage", STAGE],
            cwd=project,
            env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )

    steps, states, calls = {}, {}, {}
    requests.post(f"{aws}/moto-api/recorder/start-recording", timeout=10).raise_for_status()

    def step(name: str, run: Any, state: str) -> None:
        steps[name] = run()
        calls[name] = recorded(aws)
        states[state] = snapshot(aws)
        recorded(aws)  # the snapshot's own requests are not the step's

    step("deploy", lambda: make("deploy"), "deployed")
    step("redeploy", lambda: make("deploy"), "redeployed")
    step("chalice-deploy", chalice_deploy, "chalice-redeployed")
    s3, sqs = client("s3", aws), client("sqs", aws)
    report = f"reports/{datetime.now(UTC):%Y-%m-%d}/rehearsal.json"
    s3.put_object(Bucket=BUCKET, Key=report, Body=b"{}")
    step("destroy-refused", lambda: make("destroy"), "refused")
    s3.delete_object(Bucket=BUCKET, Key=report)
    queue_url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"requestContext": "failed"}))
    step("destroy-refused-queue", lambda: make("destroy"), "refused-queue")
    sqs.purge_queue(QueueUrl=queue_url)
    step("destroy", lambda: make("destroy"), "destroyed")
    requests.post(f"{aws}/moto-api/recorder/stop-recording", timeout=10).raise_for_status()
    assert chalice_state(PROJECT) == work_tree_before, "the rehearsal touched the work tree"
    return Rehearsal(project, steps, states, calls)


def ok(step: subprocess.CompletedProcess) -> str:
    assert step.returncode == 0, step.stdout + step.stderr
    return step.stdout


def function_name(function: str) -> str:
    return f"{APP}-{STAGE}-{function}"


# -- make deploy ---------------------------------------------------------------

QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}"


def test_make_deploy_creates_both_stacks_then_the_functions_then_their_settings(rehearsal):
    out = ok(rehearsal.steps["deploy"])
    assert f"Stack {STACK}: created (CREATE_COMPLETE)" in out
    assert f"  BucketName: {BUCKET}" in out
    assert f"  BucketArn: arn:aws:s3:::{BUCKET}" in out
    assert f"Stack {OPS_STACK}: created (CREATE_COMPLETE)" in out
    assert f"  FailureQueueArn: {QUEUE_ARN}" in out
    for function in FUNCTIONS:
        assert f"Creating lambda function: {function_name(function)}" in out
    cleanup = function_name("cleanup")
    assert f"{cleanup}: EventInvokeConfig changed: MaximumRetryAttempts None -> 2" in out
    order = [
        f"Stack {STACK}",
        f"Stack {OPS_STACK}",
        "Creating lambda function",
        f"{function_name('worker')}: LoggingConfig changed",
        f"{cleanup}: EventInvokeConfig changed",
    ]
    assert [out.index(line) for line in order] == sorted(out.index(line) for line in order)
    assert (rehearsal.project / ".chalice" / "deployed" / f"{STAGE}.json").exists()


def test_the_settings_step_sends_each_functions_logging_config(rehearsal):
    """moto 5.2.5 drops LoggingConfig (it neither stores nor returns it), so it is
    checked on the wire: exactly one UpdateFunctionConfiguration per function,
    carrying exactly infra/lambda_settings.json's LoggingConfig and nothing else."""
    updates = lambda_calls(rehearsal.requests["deploy"], "configuration")
    ours = [(name, body) for method, name, body in updates if "LoggingConfig" in (body or {})]
    assert sorted(ours) == sorted(
        (function_name(f), {"LoggingConfig": SETTINGS[f]["LoggingConfig"]})
        for f in FUNCTIONS
        if "LoggingConfig" in SETTINGS.get(f, {})
    )
    # the gap itself: if moto starts storing it, assert it in the snapshot instead.
    for name, function in rehearsal.states["deployed"]["functions"].items():
        assert function["LoggingConfig"] is None, name


def test_the_cleanup_sends_failed_runs_to_its_queue(rehearsal):
    state = rehearsal.states["deployed"]
    assert state["invoke_configs"] == {
        function_name("cleanup"): {
            **SETTINGS["cleanup"]["EventInvokeConfig"],
            "DestinationConfig": {"OnFailure": {"Destination": QUEUE_ARN}},
        }
    }
    assert state["queues"] == {
        QUEUE: {
            "QueueArn": QUEUE_ARN,
            "MessageRetentionPeriod": str(14 * 24 * 3600),
            "SqsManagedSseEnabled": "true",
            # moto 5.2.5 skips AWS::SQS::QueuePolicy: verified on the template only.
            "Policy": None,
        }
    }


def test_the_ops_stack_and_what_moto_holds_of_it(rehearsal):
    state = rehearsal.states["deployed"]
    ops = state["stacks"][OPS_STACK]
    assert ops["status"] == "CREATE_COMPLETE"
    assert ops["outputs"]["FailureQueueArn"] == QUEUE_ARN
    assert ops["outputs"]["FailureQueueUrl"].endswith(f"/{ACCOUNT}/{QUEUE}")
    (topic,) = state["topics"]
    assert ops["outputs"]["AlarmTopicArn"] == topic
    assert topic.startswith(f"arn:aws:sns:{REGION}:{ACCOUNT}:{OPS_STACK}-AlarmTopic-")
    assert state["subscriptions"] == []  # no ALARM_EMAIL given: the Condition holds it back
    # moto 5.2.5's CloudFormation skips AWS::CloudWatch::Alarm, AWS::SNS::TopicPolicy and
    # AWS::SQS::QueuePolicy ("not supported"): they are verified on the template
    # (tests/e2e/test_package.py) and by cfn-lint. If this fails, moto creates them now:
    # assert them here and update the "verified where" table in docs/deploy.md.
    assert ops["resources"] == ["AlarmTopic", "CleanupFailureQueue"]
    assert state["alarms"] == []


# moto 5.2.5 resolves a Number parameter (the bucket stack's RetentionDays) to an
# int and compares it with the incoming string, so it never answers "No updates
# are to be performed" for that stack (moto/cloudformation/responses.py,
# _validate_different_update): it runs an update that changes nothing. AWS
# answers "No updates". The ops stack, without a Number parameter, shows the
# unchanged path. If a test pinning this fails, moto is fixed: expect "unchanged".
MOTO_REUPDATES_BUCKET_STACK = f"Stack {STACK}: updated (UPDATE_COMPLETE)"


def settled(state: dict[str, Any]) -> dict[str, Any]:
    """A snapshot without the stacks' statuses (see MOTO_REUPDATES_BUCKET_STACK)."""
    stacks = {
        name: {k: v for k, v in stack.items() if k != "status"}
        for name, stack in state["stacks"].items()
    }
    return {**state, "stacks": stacks}


def test_a_second_deploy_changes_nothing(rehearsal):
    out = ok(rehearsal.steps["redeploy"])
    assert MOTO_REUPDATES_BUCKET_STACK in out
    assert f"Stack {OPS_STACK}: unchanged (CREATE_COMPLETE)" in out
    assert "Creating IAM role" not in out  # chalice updates in place
    assert "Creating lambda function" not in out
    for function in FUNCTIONS:
        assert f"Updating lambda function: {function_name(function)}" in out
    assert f"{function_name('cleanup')}: EventInvokeConfig unchanged" in out
    # moto returns no LoggingConfig, so against moto the step always re-sends it;
    # against AWS's answer it reports "unchanged" (test_logging_config_*, below).
    assert f"{function_name('worker')}: LoggingConfig changed: LogFormat None -> JSON" in out
    assert settled(rehearsal.states["redeployed"]) == settled(rehearsal.states["deployed"])


@pytest.mark.parametrize("step", ["redeploy", "chalice-deploy"])
def test_chalice_deploy_never_touches_what_the_settings_step_set(rehearsal, step):
    """UpdateFunctionConfiguration changes only the fields a request carries. chalice's
    own updates carry no LoggingConfig, and nothing deletes or replaces the event
    invoke config: a redeploy (or a plain chalice deploy) leaves both as set."""
    out = ok(rehearsal.steps[step])
    for function in FUNCTIONS:
        assert f"Updating lambda function: {function_name(function)}" in out
    updates = lambda_calls(rehearsal.requests[step], "configuration")
    chalice_updates = [u for u in updates if "Environment" in (u[2] or {})]
    assert sorted(name for _, name, _ in chalice_updates) == sorted(map(function_name, FUNCTIONS))
    for _, _, body in chalice_updates:
        assert "LoggingConfig" not in body
    invoke_calls = lambda_calls(rehearsal.requests[step], "event-invoke-config")
    assert [m for m, _, _ in invoke_calls] == (["GET"] if step == "redeploy" else [])
    after = {"redeploy": "redeployed", "chalice-deploy": "chalice-redeployed"}[step]
    assert settled(rehearsal.states[after]) == settled(rehearsal.states["deployed"])


def test_functions_are_configured_as_in_config_json(rehearsal):
    functions = rehearsal.states["deployed"]["functions"]
    assert sorted(functions) == sorted(function_name(f) for f in FUNCTIONS)
    for function in FUNCTIONS:
        resolved = function_config(CONFIG, STAGE, function)  # per function, as chalice reads it
        assert functions[function_name(function)] == {
            "Runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "Handler": f"app.{function}",
            "Timeout": resolved.lambda_timeout,
            "MemorySize": resolved.lambda_memory_size,
            "Environment": {"Variables": resolved.environment_variables},
            "Role": f"arn:aws:iam::{ACCOUNT}:role/{function_name(function)}",
            "LoggingConfig": None,  # dropped by moto: see the settings step's test
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


def test_the_schedule_rule_runs_the_cleanup_on_the_apps_schedule(rehearsal, app_module):
    rules = rehearsal.states["deployed"]["rules"]
    cleanup_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name('cleanup')}"
    assert rules == {
        f"{function_name('cleanup')}-event": {
            "Arn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{function_name('cleanup')}-event",
            "ScheduleExpression": schedule_expression(app_module.app, "cleanup"),
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
    assert state["stacks"][STACK] == {
        "status": "CREATE_COMPLETE",
        "outputs": {"BucketName": BUCKET, "BucketArn": f"arn:aws:s3:::{BUCKET}"},
        # moto 5.2.5 skips AWS::S3::BucketPolicy ("not supported") entirely.
        "resources": ["ReportsBucket"],
    }
    bucket = state["buckets"][BUCKET]
    assert bucket["encryption"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert bucket["versioning"] is None  # never enabled
    # Not applied by moto 5.2.5's CloudFormation: verified on the template only
    # (tests/e2e/test_package.py). If this fails, moto applies them now: assert their
    # values here and update the "verified where" table in docs/deploy.md.
    assert (
        bucket["public_access_block"],
        bucket["ownership"],
        bucket["policy"],
        bucket["lifecycle"],
    ) == (None, None, None, None)


# -- make destroy --------------------------------------------------------------


def test_destroy_refuses_while_the_bucket_holds_objects_and_deletes_nothing(rehearsal):
    step = rehearsal.steps["destroy-refused"]
    assert step.returncode != 0
    assert f"error: s3://{BUCKET} is not empty (reports/" in step.stderr
    assert "nothing was deleted" in step.stderr
    assert f"chalice invoke -n cleanup --stage {STAGE} < events/scheduled.json" in step.stderr
    assert "chalice delete" not in step.stdout  # stopped before chalice delete ran
    refused, deployed = settled(rehearsal.states["refused"]), settled(rehearsal.states["deployed"])
    assert {k: v for k, v in refused.items() if k != "buckets"} == {
        k: v for k, v in deployed.items() if k != "buckets"
    }
    assert sorted(refused["buckets"]) == [BUCKET]


def test_destroy_refuses_while_the_failure_queue_holds_a_failed_run(rehearsal):
    """Deleting the ops stack would delete the queue and the failed runs in it."""
    step = rehearsal.steps["destroy-refused-queue"]
    assert step.returncode != 0
    assert f"error: the cleanup's failure queue {QUEUE} holds 1 failed run(s)" in step.stderr
    assert "nothing was deleted" in step.stderr and "aws sqs receive-message" in step.stderr
    assert "chalice delete" not in step.stdout
    assert settled(rehearsal.states["refused-queue"]) == settled(rehearsal.states["deployed"])


def test_destroy_leaves_nothing_behind(rehearsal):
    out = ok(rehearsal.steps["destroy"])
    for function in FUNCTIONS:
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name(function)}"
        assert f"Deleting function: {arn}" in out
        assert f"Deleting IAM role: {function_name(function)}" in out
    assert f"Stack {STACK}: deleted (DELETE_COMPLETE)" in out
    assert f"Stack {OPS_STACK}: deleted (DELETE_COMPLETE)" in out
    assert out.index("Deleting function") < out.index(f"Stack {STACK}: deleted")
    assert out.index(f"Stack {STACK}: deleted") < out.index(f"Stack {OPS_STACK}: deleted")
    # The event invoke config went with the function: nothing deleted it by hand.
    assert lambda_calls(rehearsal.requests["destroy"], "event-invoke-config") == []
    assert rehearsal.states["destroyed"] == {
        "functions": {},
        "permissions": {},
        "roles": {},
        "rules": {},
        "buckets": {},
        "stacks": {},
        "log_groups": [],
        "invoke_configs": {},
        "queues": {},
        "topics": [],
        "subscriptions": [],
        "alarms": [],
    }


def test_path_1_refuses_a_retention_the_cleanup_outlives(aws, rehearsal, monkeypatch, capsys):
    """The bucket stack's RetentionDays is checked before any stack is touched."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    assert bucket_stack.main(["deploy", "--stage", STAGE, "--retention-days", "0"]) == 1
    err = capsys.readouterr().err
    assert "error: RetentionDays=0 must exceed the cleanup's CLEANUP_MAX_AGE" in err
    stacks = client("cloudformation", aws).describe_stacks()["Stacks"]
    assert [s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"] == []
    # and the settings step names what is missing once the functions are gone.
    assert lambda_settings.main(["apply", "--stage", STAGE]) == 1
    err = capsys.readouterr().err
    assert f"function {function_name('worker')} does not exist: run chalice deploy first" in err


# -- the bucket stack's other outcomes -----------------------------------------


def test_bucket_stack_update_then_delete_guarded_and_repeatable(aws, rehearsal):
    """Runs after the rehearsal (which it needs finished), on its own stack."""
    cfn, s3 = client("cloudformation", aws), client("s3", aws)
    stack, bucket = "worker-functions-update-bucket", "worker-functions-update-test"
    template = json.loads((PROJECT / "infra" / "bucket.json").read_text())
    body = json.dumps(template)
    parameters = {"BucketName": bucket, "RetentionDays": str(RETENTION_DAYS)}
    assert deploy_stack(cfn, stack, body, parameters).action == "created"
    # "unchanged" on AWS; see MOTO_REUPDATES_BUCKET_STACK.
    assert deploy_stack(cfn, stack, body, parameters).action == "updated"
    tags = [{"Key": "team", "Value": "reports"}]
    template["Resources"]["ReportsBucket"]["Properties"]["Tags"] = tags
    updated = deploy_stack(cfn, stack, json.dumps(template), parameters)
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
        deploy_stack(cfn, STACK, "{}", {"BucketName": BUCKET})
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
        outcome = deploy_stack(cfn, STACK, "{}", {"BucketName": BUCKET})
    assert (outcome.action, outcome.status) == ("created", "CREATE_COMPLETE")
    stub.assert_no_pending_responses()


def test_a_busy_stack_is_not_touched():
    cfn, stub = stubbed_cloudformation()
    stub.add_response("describe_stacks", {"Stacks": [stack_description("UPDATE_IN_PROGRESS")]})
    with stub, pytest.raises(StackError, match="busy \\(UPDATE_IN_PROGRESS\\)"):
        deploy_stack(cfn, STACK, "{}", {"BucketName": BUCKET})
    stub.assert_no_pending_responses()


# -- the settings step against AWS's answers (moto keeps no LoggingConfig) ------

WORKER = function_name("worker")
DESIRED_LOGGING = SETTINGS["worker"]["LoggingConfig"]


def stubbed_lambda() -> tuple[Any, Stubber]:
    lam = client("lambda", None)  # AWS's endpoint, never reached: stubbed
    return lam, Stubber(lam)


def aws_configuration(logging_config: dict[str, str]) -> dict[str, Any]:
    """What GetFunctionConfiguration answers: AWS always includes LoggingConfig."""
    return {
        "FunctionName": WORKER,
        "LastUpdateStatus": "Successful",
        "LoggingConfig": {**logging_config, "LogGroup": f"/aws/lambda/{WORKER}"},
    }


def test_logging_config_already_as_set_is_left_alone():
    lam, stub = stubbed_lambda()
    stub.add_response(
        "get_function_configuration", aws_configuration(DESIRED_LOGGING), {"FunctionName": WORKER}
    )
    with stub:  # any update call would fail here: none is queued
        line = lambda_settings.apply_logging(lam, WORKER, DESIRED_LOGGING)
    assert line == f"{WORKER}: LoggingConfig unchanged"
    stub.assert_no_pending_responses()


def test_logging_config_that_differs_is_updated_with_exactly_the_settings():
    lam, stub = stubbed_lambda()
    text = {"LogFormat": "Text"}
    stub.add_response("get_function_configuration", aws_configuration(text))
    stub.add_response("get_function", {"Configuration": aws_configuration(text)})  # waiter
    stub.add_response(
        "update_function_configuration",
        {"FunctionName": WORKER},
        {"FunctionName": WORKER, "LoggingConfig": DESIRED_LOGGING},
    )
    updated = aws_configuration(DESIRED_LOGGING)
    stub.add_response("get_function", {"Configuration": updated})  # waiter
    with stub:
        line = lambda_settings.apply_logging(lam, WORKER, DESIRED_LOGGING)
    assert line.startswith(f"{WORKER}: LoggingConfig changed: LogFormat Text -> JSON")
    stub.assert_no_pending_responses()


def test_parameters_keep_the_live_stacks_value_unless_given():
    template = {"Parameters": {"A": {"Default": "a"}, "B": {"Default": 7}, "C": {}}}
    live = {"Parameters": [{"ParameterKey": "B", "ParameterValue": "30"}]}
    resolve = bucket_stack.resolve_parameters
    assert resolve(template, None, {"C": "c"}) == {"A": "a", "B": "7", "C": "c"}
    assert resolve(template, live, {"C": "c"}) == {"A": "a", "B": "30", "C": "c"}
    assert resolve(template, live, {"B": "9", "C": "c"}) == {"A": "a", "B": "9", "C": "c"}
    with pytest.raises(ValueError, match="parameter C has no value"):
        resolve(template, None, {})

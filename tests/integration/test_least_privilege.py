"""Least privilege, enforced: each function's real role, assumed through STS on
moto's server with IAM authentication switched on, can do its job and nothing else.

The roles are the ones ``chalice deploy`` would create (chalice's own application
graph: one role per function, its policy read from the stage's file in .chalice/),
never a copy kept here. tests/unit/test_config.py pins the files' exact statements;
this module proves what they allow and refuse, the way an attacker holding a
function's credentials would probe them.
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from chalice.cli.factory import CLIFactory
from chalice.deploy import models
from chalice.deploy.appgraph import ApplicationGraphBuilder

from devtools.deploy.merge_template import (
    app_config,
    failure_queue_name,
    function_config,
    function_name,
)
from tests.conftest import PROJECT, seed_objects, stage_bucket
from tests.runtime_api import Outcome, lambda_runtime

CONFIG = app_config()
STAGES = sorted(CONFIG["stages"])
DEPLOYED = sorted({f for s in STAGES for f in CONFIG["stages"][s]["lambda_functions"]})
REGION = "us-east-1"
HARNESS_USER = "least-privilege-harness"
UNSHIMMED = "unshimmed-cleanup"  # the cleanup policy without the moto shim (see below)
PROBE_KEY = "reports/probe/000000.json"
SCHEDULED_EVENT = json.loads((PROJECT / "events" / "scheduled.json").read_text())

# What each function needs, on its own stage's bucket only. IAM has one action,
# s3:DeleteObject, for both DeleteObject and DeleteObjects: the cleanup needs the
# batch call, so the single call necessarily comes with it.
NEEDS = {
    "worker": {"PutObject"},
    "cleanup": {"ListObjectsV2", "DeleteObject", "DeleteObjects"},
}
# The functions whose every probed action is checked: those NEEDS describes. A function
# you add gets its role and policy checked below; say here what it needs to have the
# tables probe it too (docs/adapting.md).
FUNCTIONS = [f for f in DEPLOYED if f in NEEDS]


def _delete_objects(s3: Any, bucket: str) -> str:
    # S3 answers a denied batch delete with 200 and an AccessDenied per key.
    response = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": PROBE_KEY}], "Quiet": False}
    )
    errors = response.get("Errors", [])
    return errors[0]["Code"] if errors else "allowed"


def _call(operation: Callable[[Any, str], Any]) -> Callable[[Any, str], str]:
    def probe(s3: Any, bucket: str) -> str:
        operation(s3, bucket)
        return "allowed"

    return probe


HARMLESS_BUCKET_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:PutBucketWebsite", "Resource": "*"}
    ],
}

# One probe per S3 API call: each returns "allowed", an error code, or raises ClientError.
PROBES: dict[str, Callable[[Any, str], str]] = {
    "PutObject": _call(lambda s3, b: s3.put_object(Bucket=b, Key=PROBE_KEY, Body=b"{}")),
    "GetObject": _call(lambda s3, b: s3.get_object(Bucket=b, Key=PROBE_KEY)["Body"].read()),
    "DeleteObject": _call(lambda s3, b: s3.delete_object(Bucket=b, Key=PROBE_KEY)),
    "DeleteObjects": _delete_objects,
    "ListObjectsV2": _call(lambda s3, b: s3.list_objects_v2(Bucket=b)),
    "GetBucketPolicy": _call(lambda s3, b: s3.get_bucket_policy(Bucket=b)),
    "PutBucketPolicy": _call(
        lambda s3, b: s3.put_bucket_policy(Bucket=b, Policy=json.dumps(HARMLESS_BUCKET_POLICY))
    ),
    "PutBucketAcl": _call(lambda s3, b: s3.put_bucket_acl(Bucket=b, ACL="private")),
    "PutObjectAcl": _call(lambda s3, b: s3.put_object_acl(Bucket=b, Key=PROBE_KEY, ACL="private")),
    "DeleteBucket": _call(lambda s3, b: s3.delete_bucket(Bucket=b)),
    "CreateBucket": _call(lambda s3, b: s3.create_bucket(Bucket=b)),
}
ACCOUNT_PROBES: dict[str, Callable[[Any, str], str]] = {
    "ListBuckets": _call(lambda s3, _: s3.list_buckets()),
}

# The cleanup's on-failure destination: Lambda sends a failed run's event with the
# function's role, so the cleanup needs sqs:SendMessage on its stage's queue, only.
QUEUE_NEEDS = {"worker": set(), "cleanup": {"SendMessage"}}
QUEUE_PROBES: dict[str, Callable[[Any, str], str]] = {
    "SendMessage": _call(lambda sqs, url: sqs.send_message(QueueUrl=url, MessageBody="{}")),
    "ReceiveMessage": _call(lambda sqs, url: sqs.receive_message(QueueUrl=url)),
    "PurgeQueue": _call(lambda sqs, url: sqs.purge_queue(QueueUrl=url)),
}


def attempt(probe: Callable[[Any, str], str], s3: Any, bucket: str) -> str:
    try:
        return probe(s3, bucket)
    except ClientError as exc:
        return exc.response["Error"]["Code"]


def attempt_on_queue(action: str, sqs: Any, url: str) -> str:
    """Like ``attempt``, for SQS. moto 5.2 answers a denied SQS call (a JSON-protocol
    API) with AWS's XML error document, which botocore cannot parse: the code comes
    back as "403" with the document as the message. Read the code from it, and
    insist that it names the action probed."""
    try:
        return QUEUE_PROBES[action](sqs, url)
    except ClientError as exc:
        error = exc.response["Error"]
        if error["Code"] == "403" and "<Code>AccessDenied</Code>" in error.get("Message", ""):
            assert f"sqs:{action}" in error["Message"], error["Message"]
            return "AccessDenied"
        return error["Code"]


def moto_delete_objects_shim(policy: dict[str, Any]) -> dict[str, Any] | None:
    """The harness-only allowance that makes moto judge DeleteObjects as AWS does.

    AWS authorises DeleteObjects key by key, as s3:DeleteObject on
    ``arn:aws:s3:::<bucket>/<key>``. moto 5.2 checks s3:DeleteObject once against
    the *bucket* ARN: ``S3Response._bucket_response_post`` in moto/s3/responses.py
    calls ``_authenticate_and_authorize_s3_action(bucket_name=...)`` (moto/core/
    authorization.py builds the resource from the bucket name alone) and, when that
    is denied, answers AccessDenied for every key. So where a role's real policy
    lets it delete every object of a bucket (an action matching s3:DeleteObject on
    ``<bucket>/*``, the bucket part possibly a pattern), the role also gets
    s3:DeleteObject on ``arn:aws:s3:::<bucket>`` here. In moto that statement
    matters to DeleteObjects only; in AWS it would match nothing. It is never
    written to a production policy: ``test_moto_still_needs_the_shim`` pins the gap.
    """
    resources = []
    for statement in policy["Statement"]:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        deletes = any(fnmatchcase("s3:deleteobject", a.lower()) for a in actions)
        if statement.get("Effect") != "Allow" or not deletes:
            continue
        listed = statement.get("Resource", [])
        for resource in [listed] if isinstance(listed, str) else listed:
            bucket, _, keys = resource.removeprefix("arn:aws:s3:::").partition("/")
            if resource.startswith("arn:aws:s3:::") and keys == "*":
                resources.append(f"arn:aws:s3:::{bucket}")
    if not resources:
        return None
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": resources}],
    }


@dataclass(frozen=True)
class DeployedRole:
    stage: str
    function: str
    role_name: str
    policy_file: Path


def deployed_roles(stage: str) -> list[DeployedRole]:
    """Each function's role as ``chalice deploy`` builds it for the stage."""
    config = CLIFactory(str(PROJECT)).create_config_obj(chalice_stage_name=stage)
    roles = []
    for resource in ApplicationGraphBuilder().build(config, stage).resources:
        function = resource if isinstance(resource, models.LambdaFunction) else None
        function = function or getattr(resource, "lambda_function", None)
        if function is None:
            continue
        role = function.role
        assert isinstance(role, models.ManagedIAMRole), "every function gets its own role"
        assert isinstance(role.policy, models.FileBasedIAMPolicy), "policies come from files"
        short_name = function.function_name.removeprefix(f"{CONFIG['app_name']}-{stage}-")
        roles.append(
            DeployedRole(stage, short_name, role.role_name, PROJECT / role.policy.filename)
        )
    return roles


@contextmanager
def iam_enforced(endpoint: str) -> Iterator[None]:
    """Switch the (shared, process-wide) IAM check on, and back to what it was.

    ``/moto-api/reset-auth`` sets moto's INITIAL_NO_AUTH_ACTION_COUNT: 0 checks
    every request; the default, ``inf``, checks none. Every test shares one
    server, so the previous value is restored however the block ends.
    """
    answer = requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
    answer.raise_for_status()
    previous = answer.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
    try:
        yield
    finally:
        requests.post(
            f"{endpoint}/moto-api/reset-auth", data=previous.encode(), timeout=10
        ).raise_for_status()


@dataclass
class World:
    endpoint: str
    harness: boto3.Session
    credentials: dict[str, dict[str, str]]  # role name -> STS credentials
    roles: dict[tuple[str, str], DeployedRole]
    queues: dict[str, str]  # stage -> its failure queue's URL
    project: Path  # the app the functions run from: the stand-in work's copy
    _clients: dict[str, Any]

    def session(self, role_name: str) -> boto3.Session:
        c = self.credentials[role_name]
        return boto3.Session(
            aws_access_key_id=c["AccessKeyId"],
            aws_secret_access_key=c["SecretAccessKey"],
            aws_session_token=c["SessionToken"],
            region_name=REGION,
        )

    def client(self, service: str, role_name: str) -> Any:
        if (service, role_name) not in self._clients:
            self._clients[(service, role_name)] = self.session(role_name).client(
                service, endpoint_url=self.endpoint
            )
        return self._clients[(service, role_name)]

    def s3(self, role_name: str) -> Any:
        return self.client("s3", role_name)

    def role(self, stage: str, function: str) -> str:
        return self.roles[(stage, function)].role_name


def s3_backend() -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def stored_keys(bucket: str) -> list[str]:
    return sorted(s3_backend().get_bucket(bucket).keys.keys())


def reset_probe_state() -> None:
    """Every stage's bucket exists and holds the probe object (straight into moto)."""
    backend = s3_backend()
    for stage in STAGES:
        bucket = stage_bucket(stage)
        if bucket not in backend.buckets:
            backend.create_bucket(bucket, REGION)
        backend.put_object(bucket, PROBE_KEY, b"{}")


@pytest.fixture(scope="module")
def world(s3_endpoint: str, stand_in_project: Path) -> Iterator[World]:
    """Buckets, one role per deployed function and a harness user that may only
    assume them, created while auth is off; then every request is checked."""
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    admin = boto3.Session(region_name=REGION)
    iam = admin.client("iam", endpoint_url=s3_endpoint)
    sqs = admin.client("sqs", endpoint_url=s3_endpoint)
    queues = {}
    for stage in STAGES:
        admin.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=stage_bucket(stage))
        queue = failure_queue_name(CONFIG, stage)
        queues[stage] = sqs.create_queue(QueueName=queue)["QueueUrl"]

    user = iam.create_user(UserName=HARNESS_USER)["User"]
    key = iam.create_access_key(UserName=HARNESS_USER)["AccessKey"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}
        ],
    }
    roles = {(r.stage, r.function): r for stage in STAGES for r in deployed_roles(stage)}
    policies: dict[str, list[tuple[str, str]]] = {}
    for role in roles.values():
        real = role.policy_file.read_text()
        policies[role.role_name] = [("policy", real)]
        shim = moto_delete_objects_shim(json.loads(real))
        if shim is not None:
            policies[role.role_name].append(("moto-delete-objects-shim", json.dumps(shim)))
    policies[UNSHIMMED] = [("policy", roles[(STAGES[0], "cleanup")].policy_file.read_text())]

    arns = {}
    for role_name, documents in policies.items():
        created = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
        arns[role_name] = created["Role"]["Arn"]
        for policy_name, document in documents:
            iam.put_role_policy(RoleName=role_name, PolicyName=policy_name, PolicyDocument=document)
    only_assume = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": sorted(arns.values())}
        ],
    }
    iam.put_user_policy(
        UserName=HARNESS_USER, PolicyName="assume-only", PolicyDocument=json.dumps(only_assume)
    )
    harness = boto3.Session(
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
        region_name=REGION,
    )

    with iam_enforced(s3_endpoint):
        sts = harness.client("sts", endpoint_url=s3_endpoint)
        credentials = {
            name: sts.assume_role(RoleArn=arn, RoleSessionName="least-privilege")["Credentials"]
            for name, arn in arns.items()
        }
        yield World(s3_endpoint, harness, credentials, roles, queues, stand_in_project, {})

    # Auth is off again for every later test: the default credentials work.
    admin.client("s3", endpoint_url=s3_endpoint).list_buckets()
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()


def invoke_as(
    world: World, stage: str, function: str, role_name: str, event: Any
) -> tuple[Outcome, str]:
    """One invocation of the stage's function under a role, as Lambda runs it: served
    by awslambdaric in its own process whose environment holds the role's session
    credentials (the function's execution role), the stage's environment from
    config.json and the function's memory and timeout as chalice resolves them
    (the cleanup honours its deadline). Returns the outcome and the log stream."""
    credentials = world.credentials[role_name]
    config = function_config(CONFIG, stage, function)
    env = {
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
        "AWS_ENDPOINT_URL_S3": world.endpoint,
        **config.environment_variables,
    }
    with lambda_runtime(
        world.project,
        f"app.{function}",
        function_name(CONFIG, stage, function),
        env,
        config.lambda_timeout,
        memory_mb=config.lambda_memory_size,
    ) as (api, runtime):
        outcome = api.wait(api.invoke(event), timeout_s=60)
        return outcome, runtime.output()


def table() -> list[Any]:
    cases = []
    for stage in STAGES:
        for function in FUNCTIONS:
            for action in PROBES:
                for target in STAGES:
                    needed = target == stage and action in NEEDS[function]
                    cases.append(
                        pytest.param(
                            stage, function, action, target, needed,
                            id=f"{stage}-{function}-{action}-on-{target}",
                        )
                    )  # fmt: skip
            for action in ACCOUNT_PROBES:
                cases.append(
                    pytest.param(
                        stage, function, action, None, False, id=f"{stage}-{function}-{action}"
                    )
                )
    return cases


TABLE = table()


def queue_table() -> list[Any]:
    return [
        pytest.param(
            stage,
            function,
            action,
            target,
            target == stage and action in QUEUE_NEEDS.get(function, set()),
            id=f"{stage}-{function}-{action}-on-{target}-queue",
        )
        for stage in STAGES
        for function in FUNCTIONS
        for action in QUEUE_PROBES
        for target in STAGES
    ]  # fmt: skip


QUEUE_TABLE = queue_table()


def test_the_table_covers_the_issues_actions_for_every_function_and_bucket():
    assert set(PROBES) | set(ACCOUNT_PROBES) >= {
        "PutObject", "GetObject", "DeleteObject", "DeleteObjects", "ListObjectsV2",
        "ListBuckets", "GetBucketPolicy", "PutBucketPolicy", "PutBucketAcl", "PutObjectAcl",
        "DeleteBucket", "CreateBucket",
    }  # fmt: skip
    covered = {(case.values[0], case.values[1], case.values[3]) for case in TABLE}
    assert covered == {(s, f, t) for s in STAGES for f in FUNCTIONS for t in [*STAGES, None]}
    assert len(TABLE) == 92


@pytest.mark.parametrize(("stage", "function", "action", "target", "needed"), TABLE)
def test_enforcement_table(world, stage, function, action, target, needed):
    """Allowed exactly where the function needs it, AccessDenied everywhere else."""
    reset_probe_state()
    probe = PROBES.get(action) or ACCOUNT_PROBES[action]
    bucket = stage_bucket(target) if target else ""
    outcome = attempt(probe, world.s3(world.role(stage, function)), bucket)
    assert outcome == ("allowed" if needed else "AccessDenied")


@pytest.mark.parametrize(("stage", "function", "action", "target", "needed"), QUEUE_TABLE)
def test_queue_enforcement_table(world, stage, function, action, target, needed):
    """Only the cleanup may send, and only to its own stage's failure queue; no
    role may read or purge a queue (operators do that with their own rights)."""
    sqs = world.client("sqs", world.role(stage, function))
    outcome = attempt_on_queue(action, sqs, world.queues[target])
    assert outcome == ("allowed" if needed else "AccessDenied")


def test_the_queue_table_covers_every_function_and_queue():
    assert len(QUEUE_TABLE) == len(STAGES) * len(FUNCTIONS) * len(QUEUE_PROBES) * len(STAGES)
    allowed = [case.id for case in QUEUE_TABLE if case.values[4]]
    assert allowed == [f"{s}-cleanup-SendMessage-on-{s}-queue" for s in STAGES]


def test_each_deployed_function_has_its_own_role_and_policy_file(world):
    assert set(world.roles) == {(s, f) for s in STAGES for f in DEPLOYED}
    names = [r.role_name for r in world.roles.values()]
    files = [r.policy_file for r in world.roles.values()]
    assert len(set(names)) == len(names) and len(set(files)) == len(files)
    for (stage, function), role in world.roles.items():
        expected = CONFIG["stages"][stage]["lambda_functions"][function]["iam_policy_file"]
        assert role.policy_file.resolve() == (PROJECT / ".chalice" / expected).resolve()


def test_iam_is_really_enforced(world):
    # The session's default (fake) credentials name no IAM principal...
    with pytest.raises(ClientError) as raised:
        boto3.client("s3", endpoint_url=world.endpoint).list_buckets()
    assert raised.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    # ...and the harness user may assume the roles but touch no bucket itself.
    harness_s3 = world.harness.client("s3", endpoint_url=world.endpoint)
    reset_probe_state()
    for stage in STAGES:
        assert attempt(PROBES["PutObject"], harness_s3, stage_bucket(stage)) == "AccessDenied"
    assert attempt(ACCOUNT_PROBES["ListBuckets"], harness_s3, "") == "AccessDenied"


def test_moto_still_needs_the_shim(world):
    """The gap the shim covers: with the real cleanup policy alone, moto refuses
    DeleteObjects (checked against the bucket ARN) while it allows DeleteObject on
    the same key (checked against bucket/key, as AWS checks both). If this fails,
    moto now judges DeleteObjects per key: delete the shim."""
    reset_probe_state()
    s3 = world.s3(UNSHIMMED)
    bucket = stage_bucket(STAGES[0])
    assert attempt(PROBES["DeleteObjects"], s3, bucket) == "AccessDenied"
    assert PROBE_KEY in stored_keys(bucket)
    assert attempt(PROBES["DeleteObject"], s3, bucket) == "allowed"
    assert PROBE_KEY not in stored_keys(bucket)


@pytest.mark.parametrize("stage", STAGES)
def test_the_worker_code_succeeds_with_the_worker_role(world, stage):
    reset_probe_state()
    role = world.role(stage, "worker")
    outcome, log = invoke_as(world, stage, "worker", role, {"source_ip": "203.0.113.7"})
    assert outcome.kind == "response", (outcome, log)
    stored = outcome.body
    assert stored["bucket"] == stage_bucket(stage)
    assert stored["key"] in stored_keys(stage_bucket(stage))


@pytest.mark.parametrize("stage", STAGES)
def test_the_cleanup_code_succeeds_with_the_cleanup_role(world, stage):
    reset_probe_state()
    own, others = stage_bucket(stage), [stage_bucket(s) for s in STAGES if s != stage]
    seed_objects(own, 1500)  # two pages, two DeleteObjects batches
    count = len(stored_keys(own))
    before = {bucket: stored_keys(bucket) for bucket in others}
    role = world.role(stage, "cleanup")
    outcome, log = invoke_as(world, stage, "cleanup", role, SCHEDULED_EVENT)
    assert outcome.kind == "response", (outcome, log)
    summary = outcome.body
    assert summary["deleted"] == count and summary["failed"] == 0
    assert stored_keys(own) == []
    assert {bucket: stored_keys(bucket) for bucket in others} == before


WRONG_ROLES = [
    pytest.param(stage, function, role_stage, role_function, id=f"{stage}-{function}-as-"
                 f"{role_stage}-{role_function}")
    for stage in STAGES
    for function in FUNCTIONS
    for role_stage in STAGES
    for role_function in FUNCTIONS
    if (role_stage, role_function) != (stage, function)
]  # fmt: skip


@pytest.mark.parametrize(("stage", "function", "role_stage", "role_function"), WRONG_ROLES)
def test_each_function_fails_with_any_other_role(world, stage, function, role_stage, role_function):
    """The worker cannot write with the cleanup's role (or another stage's), the
    cleanup cannot list or delete with the worker's; and nothing changes."""
    reset_probe_state()
    before = {stage_bucket(s): stored_keys(stage_bucket(s)) for s in STAGES}
    role_name = world.role(role_stage, role_function)
    event = SCHEDULED_EVENT if function == "cleanup" else {}
    outcome, log = invoke_as(world, stage, function, role_name, event)
    # The invocation fails, and the error Lambda reports is S3's refusal.
    assert outcome.kind == "error", (outcome, log)
    assert "AccessDenied" in outcome.body["errorMessage"], (outcome, log)
    assert {stage_bucket(s): stored_keys(stage_bucket(s)) for s in STAGES} == before

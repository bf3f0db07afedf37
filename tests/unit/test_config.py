"""config.json and the per-function policies: every stage is least-privileged.

The expected statements are written here from what each function does, independently
of infra/policies.json (the generator's input), with the names read from config.json.
"""

import json

import pytest

from devtools.deploy.merge_template import failure_queue_name, function_config, function_name
from devtools.deploy.policies import bucket_pattern
from tests.conftest import PROJECT
from tests.packaging import evaluate

CONFIG = json.loads((PROJECT / ".chalice" / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
APP = CONFIG["app_name"]
LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
# Lambda's own limits (not this app's settings): memory in MB, timeout in seconds.
LAMBDA_MEMORY_MB = (128, 10240)
LAMBDA_TIMEOUT_S = (1, 900)


def policy(stage: str, function: str) -> dict:
    name = CONFIG["stages"][stage]["lambda_functions"][function]["iam_policy_file"]
    return json.loads((PROJECT / ".chalice" / name).read_text())


def expected_statements(stage: str, function: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    bucket = CONFIG["stages"][stage]["environment_variables"]["BUCKET"]
    group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{APP}-{stage}-{function}"
    logs = (tuple(LOG_ACTIONS), (group, f"{group}:*"))
    if function == "worker":
        return [(("s3:PutObject",), (f"arn:aws:s3:::{bucket}/*",)), logs]
    # The on-failure destination: Lambda sends a failed run's event with the
    # function's own role, so the cleanup may send to its stage's queue, only.
    queue = f"arn:aws:sqs:*:*:{failure_queue_name(CONFIG, stage)}"
    return [
        (("s3:ListBucket",), (f"arn:aws:s3:::{bucket}",)),
        (("s3:DeleteObject",), (f"arn:aws:s3:::{bucket}/*",)),
        logs,
        (("sqs:SendMessage",), (queue,)),
    ]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", ["worker", "cleanup"])
def test_each_function_resolves_memory_and_timeout_within_lambdas_limits(stage, function):
    """Read as chalice resolves them (per function, then stage, then top level):
    whatever the values, every check and deploy path follows this resolution."""
    resolved = function_config(CONFIG, stage, function)
    assert LAMBDA_MEMORY_MB[0] <= resolved.lambda_memory_size <= LAMBDA_MEMORY_MB[1]
    assert LAMBDA_TIMEOUT_S[0] <= resolved.lambda_timeout <= LAMBDA_TIMEOUT_S[1]


def test_every_stage_has_its_own_bucket_with_an_s3_bucket_name():
    buckets = [CONFIG["stages"][s]["environment_variables"]["BUCKET"] for s in STAGES]
    assert all(bucket_pattern().fullmatch(b) for b in buckets), buckets  # no wildcard either
    assert len(set(buckets)) == len(buckets)


@pytest.mark.parametrize("stage", STAGES)
def test_the_cleanups_policy_names_the_queue_the_ops_stack_creates(stage):
    """Path 1 deploys infra/ops.json with CleanupFunctionName, the deployed cleanup's
    name: the queue it creates is the one the cleanup's role may send to."""
    ops = json.loads((PROJECT / "infra" / "ops.json").read_text())
    ops["Parameters"]["CleanupFunctionName"]["Default"] = function_name(CONFIG, stage, "cleanup")
    queue = evaluate(ops["Resources"]["CleanupFailureQueue"]["Properties"]["QueueName"], ops)
    assert queue == failure_queue_name(CONFIG, stage)
    (send,) = [
        s for s in policy(stage, "cleanup")["Statement"] if s["Action"] == ["sqs:SendMessage"]
    ]
    assert send["Resource"] == [f"arn:aws:sqs:*:*:{queue}"]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", ["worker", "cleanup"])
def test_policy_is_exactly_least_privilege_for_its_stage(stage, function):
    document = policy(stage, function)
    assert document["Version"] == "2012-10-17"
    actual = [
        (tuple(sorted(s["Action"])), tuple(sorted(s["Resource"]))) for s in document["Statement"]
    ]
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}
    assert actual == [
        (tuple(sorted(a)), tuple(sorted(r))) for a, r in expected_statements(stage, function)
    ]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", ["worker", "cleanup"])
def test_policy_names_no_other_stage_and_nothing_wider(stage, function):
    text = json.dumps(policy(stage, function))
    for other in STAGES:
        if other != stage:
            assert CONFIG["stages"][other]["environment_variables"]["BUCKET"] not in text
            assert f"-{other}-" not in text
    for statement in policy(stage, function)["Statement"]:
        for action in statement["Action"]:
            assert "*" not in action
        for resource in statement["Resource"]:
            assert resource not in ("*", "arn:aws:s3:::*", "arn:aws:s3:::*/*")

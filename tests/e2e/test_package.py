"""Path 2 offline: the packaged template (chalice package with the generated merge
template), cfn-lint on it and on infra/, the deployment.zip, and the zip's handlers run as
Lambda runs them: served by awslambdaric (Lambda's Python runtime interface client) from
the unpacked zip, through tests/runtime_api.py. The templates as written are checked with
no packaging in tests/unit/test_templates.py."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from chalice.utils import to_cfn_resource_name
from chalice_loop import DEFAULT_REGION, LOCAL_CREDENTIALS

from bench.limits import ZIP_LIMIT_BYTES as ZIP_LIMIT
from devtools.deploy.merge_template import (
    BUCKET_PARAMETER,
    CLEANUP_PARAMETER,
    RETENTION_PARAMETER,
    app_config,
    bucket_logical_id,
    failure_queue_name,
    function_config,
    lambda_settings,
    min_retention_days,
)
from tests.conftest import (
    PROJECT,
    object_keys,
    schedule_expression,
    seed_objects,
    stage_bucket,
    stage_config,
)
from tests.packaging import PSEUDO, STAGES, evaluate, sam_template
from tests.report_schema import check_report
from tests.runtime_api import Outcome, lambda_runtime, runtime_launch
from tests.stand_in_work import MARK, install

pytest_plugins = ["tests.packaging"]  # `packages`, shared with test_policy_lint.py
CONFIG = app_config()
APP = CONFIG["app_name"]
BUCKET_TEMPLATE = json.loads((PROJECT / "infra" / "bucket.json").read_text())
OPS_TEMPLATE = json.loads((PROJECT / "infra" / "ops.json").read_text())
BUCKET_ID = bucket_logical_id(BUCKET_TEMPLATE)
QUEUE_ID = "CleanupFailureQueue"
# The stage whose zip is run as Lambda runs it: the last (prod here), another than
# the default stage the other tests use.
RUN_STAGE = STAGES[-1]
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
# What the Lambda Python runtime provides besides the standard library.
RUNTIME_LIBS = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
# ... and the runtime interface client that runs the handler, with its dependencies.
RUNTIME_LIBS += ("awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py")


def of_type(tmpl: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tmpl["Resources"].items() if v["Type"] == cfn_type}


def resolve(value: Any, tmpl: dict[str, Any], bucket: str) -> Any:
    """Evaluate the template's references, as CloudFormation would, with
    ``bucket`` as the BucketName parameter's value."""
    parameters = {**tmpl["Parameters"], BUCKET_PARAMETER: {"Default": bucket}}
    return evaluate(value, {**tmpl, "Parameters": parameters})


def run_cfn_lint(*paths: Path) -> subprocess.CompletedProcess:
    """cfn-lint with informational checks too: "nothing" means nothing."""
    return subprocess.run(
        [str(CFN_LINT), "--include-checks", "I", "--", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cfn_lint_reports_nothing_on_the_infra_and_packaged_templates(packages):
    infra = [PROJECT / "infra" / "bucket.json", PROJECT / "infra" / "ops.json"]
    paths = infra + [packages[s] / "sam.json" for s in STAGES]
    result = run_cfn_lint(*paths)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_cfn_lint_does_report_a_broken_template(tmp_path):
    """The lint above is not vacuous: one wrong value is found."""
    broken = json.loads(json.dumps(BUCKET_TEMPLATE))
    rule = broken["Resources"][BUCKET_ID]["Properties"]["BucketEncryption"]
    rule["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
        "SSEAlgorithm"
    ] = "AES512"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    result = run_cfn_lint(path)
    assert result.returncode != 0
    assert "AES512" in result.stdout


@pytest.mark.parametrize("stage", STAGES)
def test_packaged_template_holds_exactly_the_app_its_bucket_and_ops(packages, stage):
    tmpl = sam_template(packages, stage)
    infra = {**BUCKET_TEMPLATE["Resources"], **OPS_TEMPLATE["Resources"]}
    functions = stage_config(stage)["lambda_functions"]  # worker, cleanup and any you add
    app = [to_cfn_resource_name(n) for f in functions for n in (f, f"{f}_role")]
    assert sorted(tmpl["Resources"]) == sorted([*app, *infra])
    assert {"Worker", "WorkerRole", "Cleanup", "CleanupRole"} <= set(app)
    for logical_id, resource in infra.items():
        assert tmpl["Resources"][logical_id] == resource  # one definition, shared with path 1
    assert tmpl["Conditions"] == OPS_TEMPLATE["Conditions"]
    assert tmpl["Outputs"] == {**BUCKET_TEMPLATE["Outputs"], **OPS_TEMPLATE["Outputs"]}
    parameters = tmpl["Parameters"]
    assert sorted(parameters) == sorted(
        [*BUCKET_TEMPLATE["Parameters"], *OPS_TEMPLATE["Parameters"]]
    )
    assert parameters[BUCKET_PARAMETER]["Default"] == stage_bucket(stage)
    # CloudFormation itself refuses a RetentionDays override the cleanup outlives.
    assert parameters[RETENTION_PARAMETER]["MinValue"] == min_retention_days(CONFIG, stage)
    cleanup = f"{APP}-{stage}-cleanup"
    assert parameters[CLEANUP_PARAMETER]["Default"] == cleanup
    assert parameters[CLEANUP_PARAMETER]["AllowedValues"] == [cleanup]  # the alarms' function
    queue = evaluate(tmpl["Resources"][QUEUE_ID]["Properties"]["QueueName"], tmpl)
    assert queue == failure_queue_name(CONFIG, stage) == f"{cleanup}-failures"


@pytest.mark.parametrize("stage", STAGES)
def test_packaged_functions_match_config(packages, app_module, stage):
    tmpl = sam_template(packages, stage)
    functions = of_type(tmpl, "AWS::Serverless::Function")
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    settings = lambda_settings()
    assert {f["Properties"]["Handler"] for f in functions.values()} == {
        f"app.{name}" for name in stage_config(stage)["lambda_functions"]
    }
    for name in ("worker", "cleanup"):
        props = functions[name.capitalize()]["Properties"]
        resolved = function_config(CONFIG, stage, name)  # chalice's resolution, per function
        assert props["Handler"] == f"app.{name}"
        assert props["Runtime"] == runtime
        assert (props["Timeout"], props["MemorySize"]) == (
            resolved.lambda_timeout,
            resolved.lambda_memory_size,
        )
        assert props["FunctionName"] == f"{APP}-{stage}-{name}"
        assert props["Environment"] == {"Variables": {"BUCKET": {"Ref": BUCKET_ID}}}
        assert props["Role"] == {"Fn::GetAtt": [f"{name.capitalize()}Role", "Arn"]}
        assert props["LoggingConfig"] == settings[name]["LoggingConfig"]
    assert "Events" not in functions["Worker"]["Properties"]
    assert "EventInvokeConfig" not in functions["Worker"]["Properties"]
    schedule = schedule_expression(app_module.app, "cleanup")  # as app.py's decorator has it
    assert functions["Cleanup"]["Properties"]["Events"] == {
        "CleanupEvent": {"Type": "Schedule", "Properties": {"Schedule": schedule}}
    }
    assert functions["Cleanup"]["Properties"]["EventInvokeConfig"] == {
        **settings["cleanup"]["EventInvokeConfig"],
        "DestinationConfig": {
            "OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": [QUEUE_ID, "Arn"]}}
        },
    }


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", ["worker", "cleanup"])
def test_each_role_carries_exactly_its_policy_file(packages, stage, function):
    tmpl = sam_template(packages, stage)
    role = tmpl["Resources"][f"{function.capitalize()}Role"]["Properties"]
    assert sorted(role) == ["AssumeRolePolicyDocument", "Policies"]  # no managed policies
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Sid": "",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]
    (inline,) = role["Policies"]
    policy_file = stage_config(stage)["lambda_functions"][function]["iam_policy_file"]
    expected = json.loads((PROJECT / ".chalice" / policy_file).read_text())
    document = inline["PolicyDocument"]
    # The bucket and the queue are referenced, never named: renaming rewires the policy.
    assert "arn:aws:s3:::" not in json.dumps(document)
    assert "arn:aws:sqs:" not in json.dumps(document)
    # The queue's ARN is concrete here, where the policy file has to use wildcards.
    concrete = f"arn:aws:sqs:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:"
    expected = json.loads(json.dumps(expected).replace("arn:aws:sqs:*:*:", concrete))
    assert resolve(document, tmpl, stage_bucket(stage)) == expected
    # and the resolved statements follow the BucketName parameter.
    assert resolve(document, tmpl, "another-bucket") == json.loads(
        json.dumps(expected).replace(stage_bucket(stage), "another-bucket")
    )


def app_sources() -> dict[str, bytes]:
    files = [PROJECT / "app.py", *sorted((PROJECT / "chalicelib").rglob("*.py"))]
    return {str(f.relative_to(PROJECT)): f.read_bytes() for f in files}


@pytest.mark.parametrize("stage", STAGES)
def test_zip_holds_only_the_app_and_chalices_runtime(packages, stage):
    path = packages[stage] / "deployment.zip"
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        sources = app_sources()
        assert names == {"chalice/__init__.py", "chalice/app.py", *sources}
        for name, content in sources.items():
            assert zf.read(name) == content, f"{name} in the zip differs from the work tree"
    assert path.stat().st_size < ZIP_LIMIT


@pytest.fixture(scope="session")
def lambda_task(packages, tmp_path_factory) -> Path:
    """The zip of ``RUN_STAGE`` unpacked into an empty folder (Lambda's /var/task), with
    the tests' stand-in work in place of yours (tests/stand_in_work.py)."""
    task = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(packages[RUN_STAGE] / "deployment.zip") as zf:
        zf.extractall(task)
    return install(task)


@pytest.fixture(scope="session")
def runtime_libs(tmp_path_factory) -> Path:
    """A folder of links to what Lambda's Python runtime adds to the standard
    library (its /var/runtime): boto3 and its dependencies, and the runtime
    interface client with its own."""
    import importlib.util

    libs = tmp_path_factory.mktemp("runtime-libs")
    for name in RUNTIME_LIBS:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        source = Path(spec.origin)
        if spec.submodule_search_locations:
            source = source.parent
        (libs / source.name).symlink_to(source)
    return libs


def function_env(
    tmpl: dict[str, Any], logical_id: str, task: Path, endpoint: str
) -> dict[str, str]:
    """What Lambda sets for the function (besides the runtime's own variables),
    plus the local endpoint and fake credentials: nothing of this process's."""
    props = tmpl["Resources"][logical_id]["Properties"]
    name = props["FunctionName"]
    return {
        "AWS_REGION": DEFAULT_REGION,
        "AWS_DEFAULT_REGION": DEFAULT_REGION,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "LAMBDA_TASK_ROOT": str(task),
        "_HANDLER": props["Handler"],
        "TZ": ":UTC",
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL_S3": endpoint,
        **evaluate(props["Environment"]["Variables"], tmpl),
    }


# Run with no site-packages: only the unpacked zip and the runtime's libraries import.
PYTHON_FLAGS = ("-S",)
# Where each import resolves from (None: not importable) for the runtime.
IMPORT_PROBES = ("chalice", "chalice.cli", "boto3", "botocore", "awslambdaric")
IMPORT_PROBES += ("moto", "pytest", "devtools", "chalice_loop", "tests")
PROBE = """import importlib.util, json, sys
def origin(name):
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None
    return spec.origin if spec else None
print(json.dumps({name: origin(name) for name in sys.argv[1:]}))
"""


def run_zip_handler(
    task: Path, libs: Path, tmpl: dict[str, Any], logical_id: str, event: Any, endpoint: str
) -> tuple[Outcome, str, str]:
    """The template's handler for ``logical_id`` served by awslambdaric from the
    unpacked zip, with chalice's memory and timeout for the function; one
    invocation. Returns (its outcome, the log stream, its request id)."""
    props = tmpl["Resources"][logical_id]["Properties"]
    name = logical_id.lower()
    config = function_config(CONFIG, RUN_STAGE, name)  # chalice's resolution, per function
    env = function_env(tmpl, logical_id, task, endpoint)
    with lambda_runtime(
        task,
        props["Handler"],
        props["FunctionName"],
        env,
        config.lambda_timeout,
        memory_mb=config.lambda_memory_size,
        python_flags=PYTHON_FLAGS,
        import_path=[task, libs],
    ) as (api, runtime):
        request_id = api.invoke(event)
        outcome = api.wait(request_id, timeout_s=60)
        log = runtime.output()
    return outcome, log, request_id


def importable_from(task: Path, libs: Path) -> dict[str, str | None]:
    """Where each probed import resolves from for an interpreter launched as the
    runtime is (same flags, import path, working folder)."""
    interpreter, env = runtime_launch(task, {}, PYTHON_FLAGS, [task, libs])
    result = subprocess.run(
        [*interpreter, "-c", PROBE, *IMPORT_PROBES],
        cwd=task,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_zip_worker_runs_as_lambda_and_its_report_lands(
    packages, lambda_task, runtime_libs, s3_server, s3
):
    tmpl = sam_template(packages, RUN_STAGE)
    bucket = stage_bucket(RUN_STAGE)
    s3.create_bucket(Bucket=bucket)
    event = json.loads((PROJECT / "events" / "worker.json").read_text())
    outcome, log, request_id = run_zip_handler(
        lambda_task, runtime_libs, tmpl, "Worker", event, s3_server
    )
    assert outcome.kind == "response", (outcome, log)
    report = outcome.body["report"]
    key = f"reports/{report['time_end'][:10]}/{request_id}.json"
    assert outcome.body["bucket"] == bucket
    assert outcome.body["key"] == key
    assert f"Report stored: s3://{bucket}/{key}" in log
    assert object_keys(s3, bucket) == [key]
    stored = check_report(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    assert stored == report
    assert stored["source_ip"] == event["source_ip"]
    assert stored["result"] == {"work": MARK, "source_ip": event["source_ip"]}


def test_the_zips_runtime_imports_only_the_zip_and_the_runtimes_libraries(
    lambda_task, runtime_libs
):
    modules = importable_from(lambda_task, runtime_libs)
    assert modules["chalice"].startswith(str(lambda_task))
    for name in ("boto3", "botocore", "awslambdaric"):
        assert modules[name].startswith(str(runtime_libs)), (name, modules[name])
    assert modules["chalice.cli"] is None  # chalice's CLI is not in the zip
    assert [modules[m] for m in ("moto", "pytest", "devtools", "chalice_loop", "tests")] == [
        None
    ] * 5


def test_zip_cleanup_runs_as_lambda_and_empties_the_bucket(
    packages, lambda_task, runtime_libs, s3_server, s3
):
    tmpl = sam_template(packages, RUN_STAGE)
    bucket = stage_bucket(RUN_STAGE)
    s3.create_bucket(Bucket=bucket)
    seed_objects(bucket, 1500)
    event = json.loads((PROJECT / "events" / "scheduled.json").read_text())
    outcome, log, _ = run_zip_handler(lambda_task, runtime_libs, tmpl, "Cleanup", event, s3_server)
    assert outcome.kind == "response", (outcome, log)
    assert outcome.body["deleted"] == 1500
    assert outcome.body["failed"] == 0
    assert "Cleanup" in log
    assert object_keys(s3, bucket) == []

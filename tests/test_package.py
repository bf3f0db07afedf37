"""Path 2 offline: the bucket template, the packaged template (chalice package
with the generated merge template), the deployment.zip, and the zip's handlers
run as Lambda would run them."""

import json
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bench.limits import ZIP_LIMIT_BYTES as ZIP_LIMIT
from devtools.embedded_s3 import DEFAULT_REGION, LOCAL_CREDENTIALS
from devtools.merge_template import BUCKET_PARAMETER, app_config, bucket_logical_id, rewire_arn
from tests.conftest import PROJECT, object_keys, seed_objects, stage_bucket, stage_config
from tests.packaging import STAGES, evaluate, sam_template

pytest_plugins = ["tests.packaging"]  # `packages`, shared with test_policy_lint.py
APP = app_config()["app_name"]
BUCKET_TEMPLATE = json.loads((PROJECT / "infra" / "bucket.json").read_text())
BUCKET_ID = bucket_logical_id(BUCKET_TEMPLATE)
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
# What the Lambda Python runtime provides besides the standard library.
RUNTIME_LIBS = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


def of_type(tmpl: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tmpl["Resources"].items() if v["Type"] == cfn_type}


def resolve(value: Any, bucket: str) -> Any:
    """Evaluate the template's references to the bucket, as CloudFormation would,
    with ``bucket`` as the BucketName parameter's value."""
    parameters = {BUCKET_PARAMETER: {"Default": bucket}}
    return evaluate(value, {**BUCKET_TEMPLATE, "Parameters": parameters})


def run_cfn_lint(*paths: Path) -> subprocess.CompletedProcess:
    """cfn-lint with informational checks too: "nothing" means nothing."""
    return subprocess.run(
        [str(CFN_LINT), "--include-checks", "I", "--", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- cfn-lint ---------------------------------------------------------------


def test_cfn_lint_reports_nothing_on_the_bucket_and_packaged_templates(packages):
    paths = [PROJECT / "infra" / "bucket.json"] + [packages[s] / "sam.json" for s in STAGES]
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


# -- the bucket template (verified here; see the README's table) -------------


def test_bucket_template_is_hardened_and_unversioned():
    bucket = BUCKET_TEMPLATE["Resources"][BUCKET_ID]
    props = bucket["Properties"]
    assert props["BucketName"] == {"Ref": BUCKET_PARAMETER}
    assert props["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
    }
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # No versioning: the cleanup's deletes must really remove the data.
    assert "VersioningConfiguration" not in props
    assert "LifecycleConfiguration" not in props
    assert bucket["DeletionPolicy"] == "Delete"


def test_bucket_policy_denies_every_request_without_tls():
    policies = of_type(BUCKET_TEMPLATE, "AWS::S3::BucketPolicy")
    assert len(policies) == 1
    (policy,) = policies.values()
    assert policy["Properties"]["Bucket"] == {"Ref": BUCKET_ID}
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [
                {"Fn::GetAtt": [BUCKET_ID, "Arn"]},
                {"Fn::Sub": f"${{{BUCKET_ID}.Arn}}/*"},
            ],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]


def test_bucket_template_outputs_name_and_arn():
    assert BUCKET_TEMPLATE["Outputs"] == {
        "BucketName": {"Description": "The reports bucket", "Value": {"Ref": BUCKET_ID}},
        "BucketArn": {
            "Description": "The reports bucket's ARN",
            "Value": {"Fn::GetAtt": [BUCKET_ID, "Arn"]},
        },
    }


# -- the packaged template (path 2) -------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_packaged_template_holds_exactly_the_app_and_its_bucket(packages, stage):
    tmpl = sam_template(packages, stage)
    assert sorted(tmpl["Resources"]) == sorted(
        ["Worker", "WorkerRole", "Cleanup", "CleanupRole", *BUCKET_TEMPLATE["Resources"]]
    )
    for logical_id, resource in BUCKET_TEMPLATE["Resources"].items():
        assert tmpl["Resources"][logical_id] == resource  # one definition, shared with path 1
    assert tmpl["Parameters"][BUCKET_PARAMETER]["Default"] == stage_bucket(stage)
    assert tmpl["Outputs"] == BUCKET_TEMPLATE["Outputs"]


@pytest.mark.parametrize("stage", STAGES)
def test_packaged_functions_match_config(packages, stage):
    tmpl = sam_template(packages, stage)
    functions = of_type(tmpl, "AWS::Serverless::Function")
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert {f["Properties"]["Handler"] for f in functions.values()} == {
        "app.worker",
        "app.cleanup",
    }
    for name in ("worker", "cleanup"):
        props = functions[name.capitalize()]["Properties"]
        assert props["Handler"] == f"app.{name}"
        assert props["Runtime"] == runtime
        assert (props["Timeout"], props["MemorySize"]) == (15, 128)
        assert props["FunctionName"] == f"{APP}-{stage}-{name}"
        assert props["Environment"] == {"Variables": {"BUCKET": {"Ref": BUCKET_ID}}}
        assert props["Role"] == {"Fn::GetAtt": [f"{name.capitalize()}Role", "Arn"]}
    assert "Events" not in functions["Worker"]["Properties"]
    assert functions["Cleanup"]["Properties"]["Events"] == {
        "CleanupEvent": {"Type": "Schedule", "Properties": {"Schedule": "rate(1 day)"}}
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
    # The bucket is referenced, never named: renaming it rewires the policy.
    assert "arn:aws:s3:::" not in json.dumps(document)
    assert resolve(document, stage_bucket(stage)) == expected
    # and the resolved statements follow the BucketName parameter.
    assert resolve(document, "another-bucket") == json.loads(
        json.dumps(expected).replace(stage_bucket(stage), "another-bucket")
    )


def test_rewiring_refuses_a_policy_naming_another_bucket():
    with pytest.raises(ValueError, match="names a bucket other than"):
        rewire_arn("arn:aws:s3:::someone-elses/*", "worker-functions-reports-dev", BUCKET_ID)
    assert rewire_arn("arn:aws:logs:*:*:log-group:x", "b", BUCKET_ID) == (
        "arn:aws:logs:*:*:log-group:x"
    )
    assert rewire_arn("arn:aws:s3:::b/${aws:username}/*", "b", BUCKET_ID) == {
        "Fn::Sub": f"${{{BUCKET_ID}.Arn}}/${{!aws:username}}/*"
    }


# -- deployment.zip -----------------------------------------------------------


def app_sources() -> dict[str, bytes]:
    files = [PROJECT / "app.py", *sorted((PROJECT / "chalicelib").glob("*.py"))]
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


# -- runs as Lambda would -----------------------------------------------------


@pytest.fixture(scope="session")
def lambda_task(packages, tmp_path_factory) -> Path:
    """The prod zip unpacked into an empty folder (Lambda's /var/task)."""
    task = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(packages["prod"] / "deployment.zip") as zf:
        zf.extractall(task)
    return task


@pytest.fixture(scope="session")
def runtime_libs(tmp_path_factory) -> Path:
    """A folder of links to boto3 and its dependencies only: what the Lambda
    runtime adds to the standard library."""
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


def invoke_as_lambda(
    task: Path, libs: Path, tmpl: dict[str, Any], logical_id: str, event: Path, endpoint: str
) -> tuple[dict[str, Any], str, str]:
    """Run the template's handler for ``logical_id`` in a fresh interpreter with
    no site-packages; return (last JSON line, all stdout, request id)."""
    props = tmpl["Resources"][logical_id]["Properties"]
    env = {  # what Lambda sets, plus the local endpoint and fake credentials
        "AWS_REGION": DEFAULT_REGION,
        "AWS_LAMBDA_FUNCTION_NAME": props["FunctionName"],
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props["MemorySize"]),
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL_S3": endpoint,
        **evaluate(props["Environment"]["Variables"], tmpl),
    }
    request_id = str(uuid.uuid4())
    bootstrap = PROJECT / "tests" / "lambda_bootstrap.py"
    args = [str(task), str(libs), props["Handler"], str(event), request_id, str(props["Timeout"])]
    result = subprocess.run(
        [sys.executable, "-S", "-I", str(bootstrap), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.splitlines()[-1]), result.stdout, request_id


def test_zip_worker_runs_as_lambda_and_its_report_lands(
    packages, lambda_task, runtime_libs, s3_server, s3
):
    tmpl = sam_template(packages, "prod")
    bucket = stage_bucket("prod")
    s3.create_bucket(Bucket=bucket)
    event = PROJECT / "events" / "worker.json"
    out, stdout, request_id = invoke_as_lambda(
        lambda_task, runtime_libs, tmpl, "Worker", event, s3_server
    )
    report = out["result"]["report"]
    key = f"reports/{report['time_end'][:10]}/{request_id}.json"
    assert out["result"]["bucket"] == bucket
    assert out["result"]["key"] == key
    assert f"Report stored: s3://{bucket}/{key}" in stdout
    assert object_keys(s3, bucket) == [key]
    stored = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert stored == report
    assert stored["source_ip"] == json.loads(event.read_text())["source_ip"]
    # Only the zip and the runtime's libraries were importable.
    modules = out["modules"]
    assert modules["chalice"].startswith(str(lambda_task))
    assert modules["boto3"].startswith(str(runtime_libs))
    assert modules["botocore"].startswith(str(runtime_libs))
    assert modules["chalice.cli"] is None  # chalice's CLI is not in the zip
    assert [modules[m] for m in ("moto", "pytest", "devtools", "tests")] == [None] * 4


def test_zip_cleanup_runs_as_lambda_and_empties_the_bucket(
    packages, lambda_task, runtime_libs, s3_server, s3
):
    tmpl = sam_template(packages, "prod")
    bucket = stage_bucket("prod")
    s3.create_bucket(Bucket=bucket)
    seed_objects(bucket, 1500)
    out, stdout, _ = invoke_as_lambda(
        lambda_task, runtime_libs, tmpl, "Cleanup", PROJECT / "events" / "scheduled.json", s3_server
    )
    assert out["result"]["deleted"] == 1500
    assert out["result"]["failed"] == 0
    assert "Cleanup" in stdout
    assert object_keys(s3, bucket) == []

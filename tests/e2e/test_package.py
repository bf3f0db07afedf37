"""Path 2 offline: the bucket template, the packaged template (chalice package
with the generated merge template), the deployment.zip, and the zip's handlers
run as Lambda runs them: served by awslambdaric (Lambda's Python runtime
interface client) from the unpacked zip, through tests/runtime_api.py."""

import json
import shutil
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
    Owned,
    app_config,
    bucket_logical_id,
    check_retention,
    failure_queue_name,
    function_config,
    lambda_settings,
    merge_template,
    min_retention_days,
    rewire_arn,
)
from tests.conftest import (
    PROJECT,
    STAGE,
    object_keys,
    schedule_expression,
    seed_objects,
    stage_bucket,
    stage_config,
)
from tests.packaging import PSEUDO, STAGES, copy_deployable, evaluate, sam_template
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
OWNED = Owned(stage_bucket(STAGE), BUCKET_ID, failure_queue_name(CONFIG, STAGE), QUEUE_ID)
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


# -- cfn-lint ---------------------------------------------------------------


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


# -- the bucket template (verified here; see the table in docs/deploy.md) -------------


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
    assert bucket["DeletionPolicy"] == "Delete"


def test_bucket_lifecycle_is_a_whole_bucket_backstop():
    """Every object expires RetentionDays after it was written, whatever the cleanup
    did; an upload left incomplete is aborted after a day. No filter: the cleanup
    empties the whole bucket too."""
    props = BUCKET_TEMPLATE["Resources"][BUCKET_ID]["Properties"]
    assert props["LifecycleConfiguration"] == {
        "Rules": [
            {
                "Id": "ExpireReportsBackstop",
                "Status": "Enabled",
                "ExpirationInDays": {"Ref": RETENTION_PARAMETER},
            },
            {
                "Id": "AbortIncompleteMultipartUploads",
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            },
        ]
    }
    retention = BUCKET_TEMPLATE["Parameters"][RETENTION_PARAMETER]
    assert (retention["Type"], retention["MinValue"]) == ("Number", 1)
    for stage in STAGES:  # the shipped default passes the check on every stage
        assert check_retention(retention["Default"], CONFIG, stage) == retention["Default"]


def config_with_max_age(max_age: str) -> dict[str, Any]:
    config = json.loads(json.dumps(CONFIG))
    cleanup = config["stages"][STAGE]["lambda_functions"]["cleanup"]
    cleanup["environment_variables"] = {"CLEANUP_MAX_AGE": max_age}
    return config


@pytest.mark.parametrize(
    ("max_age", "least"),
    [("", 1), ("0", 1), ("86399", 1), ("P1D", 2), ("PT36H", 2), ("P2W", 15)],
)
def test_retention_must_exceed_the_cleanups_max_age(max_age, least):
    config = config_with_max_age(max_age)
    assert min_retention_days(config, STAGE) == least
    assert check_retention(least, config, STAGE) == least
    with pytest.raises(ValueError) as refused:
        check_retention(least - 1, config, STAGE)
    message = str(refused.value)
    assert f"RetentionDays={least - 1} must exceed the cleanup's CLEANUP_MAX_AGE" in message
    assert f"stage {STAGE}" in message and f"Use at least {least} day(s)" in message


def test_retention_check_refuses_a_bad_max_age_by_name():
    with pytest.raises(ValueError, match=f"stage {STAGE}: CLEANUP_MAX_AGE: years and months"):
        min_retention_days(config_with_max_age("P1M"), STAGE)


def test_merge_template_refuses_a_retention_the_cleanup_outlives(tmp_path):
    """Path 2 checks the template's default against the stage's config (path 1's
    check is in tests/test_deploy_rehearsal.py)."""
    project = copy_deployable(tmp_path / "project")
    shutil.copytree(PROJECT / "infra", project / "infra")
    default = BUCKET_TEMPLATE["Parameters"][RETENTION_PARAMETER]["Default"]
    config = config_with_max_age(f"P{default}D")
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"RetentionDays={default} must exceed"):
        merge_template(STAGE, project)
    config = config_with_max_age(f"P{default - 1}D")
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    merged = merge_template(STAGE, project)
    assert merged["Parameters"][RETENTION_PARAMETER]["MinValue"] == default


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


# -- the ops template (verified here; moto's CloudFormation drops most of it) --


def alarm(name: str) -> dict[str, Any]:
    return OPS_TEMPLATE["Resources"][name]["Properties"]


def test_failure_queue_keeps_failed_runs_14_days_encrypted():
    queue = OPS_TEMPLATE["Resources"][QUEUE_ID]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"] == {
        "QueueName": {"Fn::Sub": f"${{{CLEANUP_PARAMETER}}}-failures"},
        "MessageRetentionPeriod": 14 * 24 * 3600,  # SQS's maximum
        "SqsManagedSseEnabled": True,
    }


def test_queue_policy_grants_nothing_and_denies_plain_http_and_other_accounts():
    (policy,) = [
        r for r in OPS_TEMPLATE["Resources"].values() if r["Type"] == "AWS::SQS::QueuePolicy"
    ]
    assert policy["Properties"]["Queues"] == [{"Ref": QUEUE_ID}]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert {s["Effect"] for s in statements} == {"Deny"}  # senders come from IAM: the cleanup role
    arn = {"Fn::GetAtt": [QUEUE_ID, "Arn"]}
    assert [(s["Action"], s["Resource"], s["Condition"]) for s in statements] == [
        ("sqs:*", arn, {"Bool": {"aws:SecureTransport": "false"}}),
        ("sqs:*", arn, {"StringNotEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}),
    ]


def test_only_this_accounts_cleanup_alarms_may_publish_to_the_topic():
    (policy,) = [
        r for r in OPS_TEMPLATE["Resources"].values() if r["Type"] == "AWS::SNS::TopicPolicy"
    ]
    allow, deny = policy["Properties"]["PolicyDocument"]["Statement"]
    assert allow == {
        "Sid": "ThisAccountsAlarmsMayPublish",
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": "sns:Publish",
        "Resource": {"Ref": "AlarmTopic"},
        "Condition": {
            "ArnLike": {
                "aws:SourceArn": {
                    "Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}"
                    f":alarm:${{{CLEANUP_PARAMETER}}}-*"
                }
            },
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        },
    }
    assert (deny["Effect"], deny["Action"]) == ("Deny", "sns:Publish")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # Every alarm's name falls under the allowed pattern, and notifies the topic.
    alarms = [
        r for r in OPS_TEMPLATE["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert len(alarms) == 3
    for resource in alarms:
        props = resource["Properties"]
        assert props["AlarmName"]["Fn::Sub"].startswith(f"${{{CLEANUP_PARAMETER}}}-")
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_the_email_subscription_exists_only_when_an_address_is_given():
    subscription = OPS_TEMPLATE["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlarmEmail"},
    }
    assert OPS_TEMPLATE["Parameters"]["AlarmEmail"]["Default"] == ""
    assert OPS_TEMPLATE["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }


def metric(props: dict[str, Any]) -> tuple[Any, ...]:
    (dimension,) = props["Dimensions"]
    assert dimension == {"Name": "FunctionName", "Value": {"Ref": CLEANUP_PARAMETER}}
    return (props["Namespace"], props["MetricName"], props["Statistic"])


def test_alarm_failed_fires_on_any_error_of_the_cleanup():
    props = alarm("CleanupFailedAlarm")
    assert metric(props) == ("AWS/Lambda", "Errors", "Sum")
    assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)
    assert (props["Period"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (3600, 1, 1)
    assert props["TreatMissingData"] == "notBreaching"  # no run is the not-run alarm's case


def test_alarm_incomplete_reads_our_emf_metric():
    """The shared EMF contract: namespace WorkerFunctions, dimension FunctionName,
    CleanupComplete 1 or 0 per run, emitted on failure too."""
    props = alarm("CleanupIncompleteAlarm")
    assert metric(props) == ("WorkerFunctions", "CleanupComplete", "Minimum")
    assert (props["ComparisonOperator"], props["Threshold"]) == ("LessThanThreshold", 1)
    assert (props["Period"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (3600, 1, 1)
    assert props["TreatMissingData"] == "notBreaching"


def test_alarm_not_run_fires_after_25_hours_without_an_invocation():
    props = alarm("CleanupNotRunAlarm")
    assert metric(props) == ("AWS/Lambda", "Invocations", "Sum")
    assert (props["ComparisonOperator"], props["Threshold"]) == ("LessThanThreshold", 1)
    # 25 hourly periods, all of them empty: a daily run always lands in one of them.
    assert (props["Period"], props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (
        3600,
        25,
        25,
    )
    # CloudWatch allows up to 7 days of evaluation range for periods of an hour or more.
    assert props["Period"] * props["EvaluationPeriods"] <= 7 * 86400
    assert props["TreatMissingData"] == "breaching"  # Lambda publishes nothing when not invoked
    assert props["OKActions"] == [{"Ref": "AlarmTopic"}]


# -- the packaged template (path 2) -------------------------------------------


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


def test_rewiring_refuses_a_policy_naming_another_bucket_or_queue():
    with pytest.raises(ValueError, match="names a bucket other than"):
        rewire_arn("arn:aws:s3:::someone-elses/*", OWNED)
    with pytest.raises(ValueError, match="names a queue other than"):
        rewire_arn(f"arn:aws:sqs:*:*:{OWNED.queue}-not", OWNED)
    assert rewire_arn("arn:aws:logs:*:*:log-group:x", OWNED) == "arn:aws:logs:*:*:log-group:x"
    assert rewire_arn(f"arn:aws:sqs:*:*:{OWNED.queue}", OWNED) == {"Fn::GetAtt": [QUEUE_ID, "Arn"]}
    assert rewire_arn(f"arn:aws:s3:::{OWNED.bucket}/${{aws:username}}/*", OWNED) == {
        "Fn::Sub": f"${{{BUCKET_ID}.Arn}}/${{!aws:username}}/*"
    }


# -- deployment.zip -----------------------------------------------------------


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


# -- runs as Lambda runs it ---------------------------------------------------


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

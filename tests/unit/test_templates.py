"""The templates as written, with no server and no packaging: the bucket stack hardened
(TLS only, no public access, encrypted, unversioned, a whole-bucket lifecycle backstop
that must outlive the cleanup's CLEANUP_MAX_AGE), the ops stack's queue, topic and
alarms, and the rewiring of policies into the packaged template. The packaged template,
the zip and cfn-lint are checked in tests/e2e/test_package.py."""

import json
import shutil
from typing import Any

import pytest

from devtools.deploy.merge_template import (
    BUCKET_PARAMETER,
    CLEANUP_PARAMETER,
    RETENTION_PARAMETER,
    Owned,
    app_config,
    bucket_logical_id,
    check_retention,
    failure_queue_name,
    merge_template,
    min_retention_days,
    rewire_arn,
)
from tests.conftest import PROJECT, STAGE, stage_bucket
from tests.packaging import STAGES, copy_deployable

CONFIG = app_config()
BUCKET_TEMPLATE = json.loads((PROJECT / "infra" / "bucket.json").read_text())
OPS_TEMPLATE = json.loads((PROJECT / "infra" / "ops.json").read_text())
BUCKET_ID = bucket_logical_id(BUCKET_TEMPLATE)
QUEUE_ID = "CleanupFailureQueue"
OWNED = Owned(stage_bucket(STAGE), BUCKET_ID, failure_queue_name(CONFIG, STAGE), QUEUE_ID)


def of_type(tmpl: dict[str, Any], cfn_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in tmpl["Resources"].items() if v["Type"] == cfn_type}


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
    check is in tests/e2e/test_deploy_rehearsal.py)."""
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


# Where each import resolves from (None: not importable) for the runtime.
IMPORT_PROBES = ("chalice", "chalice.cli", "boto3", "botocore", "awslambdaric")
IMPORT_PROBES += ("moto", "pytest", "devtools", "chalice_loop", "tests")

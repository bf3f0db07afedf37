"""Generate the ``chalice package --merge-template`` for one stage (path 2).

Everything comes from the single definitions path 1 deploys too, so nothing
here is maintained by hand:

- ``infra/bucket.json`` and ``infra/ops.json`` (also deployed alone by
  ``devtools.deploy.bucket_stack``): their parameters, conditions, resources and
  outputs are added to the template. ``BucketName`` defaults to the stage's
  ``BUCKET``; ``RetentionDays`` is checked against the cleanup's
  ``CLEANUP_MAX_AGE`` and gets that bound as its ``MinValue``;
  ``CleanupFunctionName`` is pinned to the name the functions get;
- ``infra/lambda_settings.json``: each function's ``LoggingConfig``, and the
  cleanup's ``EventInvokeConfig`` with its on-failure destination, the ops
  template's queue;
- ``.chalice/config.json``: each function's ``BUCKET`` becomes
  ``{"Ref": <bucket>}`` and its ``FunctionName`` is pinned to the name
  ``chalice deploy`` uses, which the log-group ARNs in the policy files name;
- the stage's policy files: each role's ``Policies`` list is regenerated with
  the bucket's and the queue's ARNs rewritten to ``Fn::GetAtt``/``Fn::Sub``.
  ``--merge-template`` replaces lists instead of merging them, so the whole
  list is given.

Run: ``python -m devtools.deploy.merge_template --stage prod`` (writes
``out/merge-prod.json``).
"""

import argparse
import copy
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import chalice_loop
from chalice.config import Config
from chalice.utils import to_cfn_resource_name

from chalicelib.settings import parse_duration

PROJECT = Path(__file__).resolve().parents[2]
BUCKET_TEMPLATE = Path("infra") / "bucket.json"  # relative to the project
OPS_TEMPLATE = Path("infra") / "ops.json"
LAMBDA_SETTINGS = Path("infra") / "lambda_settings.json"
BUCKET_PARAMETER = "BucketName"
RETENTION_PARAMETER = "RetentionDays"
CLEANUP_PARAMETER = "CleanupFunctionName"
CLEANUP = "cleanup"  # the function whose failures go to the ops queue
S3_ARN_PREFIX = "arn:aws:s3:::"
SQS_ARN_PREFIX = "arn:aws:sqs:"
# What each deploy path can apply from infra/lambda_settings.json.
SETTINGS_KEYS = {"LoggingConfig", "EventInvokeConfig"}


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def app_config(project: Path = PROJECT) -> dict[str, Any]:
    return load_json(project / ".chalice" / "config.json")


def stage_bucket(config: dict[str, Any], stage: str) -> str:
    """The stage's bucket name: ``environment_variables.BUCKET`` in config.json."""
    stages = config["stages"]
    if stage not in stages:
        raise ValueError(f"unknown stage {stage!r}: config.json has {', '.join(sorted(stages))}")
    return stages[stage]["environment_variables"]["BUCKET"]


def function_config(config: dict[str, Any], stage: str, function: str) -> Config:
    """One function's settings as chalice resolves them (per-function values over
    the stage's over the top level): memory, timeout, environment."""
    return Config(chalice_stage=stage, function_name=function, config_from_disk=config)


def function_name(config: dict[str, Any], stage: str, function: str) -> str:
    """The deployed name: ``<app>-<stage>-<function>``, as chalice names it."""
    return chalice_loop.deployed_name(config["app_name"], stage, function)


def failure_queue_name(config: dict[str, Any], stage: str) -> str:
    """The cleanup's on-failure queue, as ``infra/ops.json`` names it."""
    return chalice_loop.failure_queue_name(config["app_name"], stage, CLEANUP)


def min_retention_days(config: dict[str, Any], stage: str) -> int:
    """The smallest lifecycle ``RetentionDays`` that exceeds the cleanup's
    ``CLEANUP_MAX_AGE`` for the stage (unset: 0, so 1 day)."""
    environment = function_config(config, stage, CLEANUP).environment_variables
    text = environment.get("CLEANUP_MAX_AGE", "").strip() or "0"
    try:
        max_age = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"stage {stage}: CLEANUP_MAX_AGE: {exc}") from None
    return max_age // timedelta(days=1) + 1


def check_retention(days: int, config: dict[str, Any], stage: str) -> int:
    """Refuse a lifecycle retention that would expire reports the cleanup keeps."""
    least = min_retention_days(config, stage)
    if days < least:
        environment = function_config(config, stage, CLEANUP).environment_variables
        max_age = environment.get("CLEANUP_MAX_AGE") or "unset, so 0"
        raise ValueError(
            f"{RETENTION_PARAMETER}={days} must exceed the cleanup's CLEANUP_MAX_AGE "
            f"({max_age} for stage {stage}): the lifecycle backstop would expire reports "
            f"the cleanup keeps. Use at least {least} day(s)."
        )
    return days


def lambda_settings(project: Path = PROJECT) -> dict[str, dict[str, Any]]:
    """``infra/lambda_settings.json``, refusing a setting neither path applies."""
    settings = load_json(project / LAMBDA_SETTINGS)
    for function, values in settings.items():
        unknown = set(values) - SETTINGS_KEYS
        if unknown:
            raise ValueError(
                f"{LAMBDA_SETTINGS}: {function}: unsupported {sorted(unknown)}; "
                f"the deploy paths apply {sorted(SETTINGS_KEYS)}"
            )
    return settings


def logical_id(template: dict[str, Any], cfn_type: str) -> str:
    """The logical id of the template's one resource of ``cfn_type``."""
    ids = [k for k, v in template["Resources"].items() if v["Type"] == cfn_type]
    if len(ids) != 1:
        raise ValueError(f"expected exactly one {cfn_type} in the template, found {ids}")
    return ids[0]


def bucket_logical_id(template: dict[str, Any]) -> str:
    return logical_id(template, "AWS::S3::Bucket")


@dataclass(frozen=True)
class Owned:
    """The stack's bucket and queue, by name (in the policy files) and logical id."""

    bucket: str
    bucket_id: str
    queue: str
    queue_id: str


def rewire_arn(resource: str, owned: Owned) -> Any:
    """Point a policy resource at the template's bucket or queue instead of its name.

    Other resources are returned unchanged; an S3 or SQS ARN naming a bucket or
    queue other than the stack's is an error, since the stack would grant access
    to something it does not own.
    """
    if resource.startswith(SQS_ARN_PREFIX):
        name = resource.split(":", 5)[-1]
        if name != owned.queue:
            raise ValueError(
                f"policy resource {resource!r} names a queue other than {owned.queue!r}"
            )
        return {"Fn::GetAtt": [owned.queue_id, "Arn"]}
    if not resource.startswith(S3_ARN_PREFIX):
        return resource
    name, sep, key = resource[len(S3_ARN_PREFIX) :].partition("/")
    if name != owned.bucket:
        raise ValueError(f"policy resource {resource!r} names a bucket other than {owned.bucket!r}")
    if not sep:
        return {"Fn::GetAtt": [owned.bucket_id, "Arn"]}
    return {"Fn::Sub": f"${{{owned.bucket_id}.Arn}}/{key.replace('${', '${!')}"}


def rewire_policy(policy: dict[str, Any], owned: Owned) -> dict[str, Any]:
    """A copy of an IAM policy document with its bucket and queue ARNs rewired."""
    rewired = copy.deepcopy(policy)
    for statement in rewired["Statement"]:
        resources = statement["Resource"]
        if isinstance(resources, str):
            statement["Resource"] = rewire_arn(resources, owned)
        else:
            statement["Resource"] = [rewire_arn(r, owned) for r in resources]
    return rewired


def combined(section: str, *templates: dict[str, Any]) -> dict[str, Any]:
    """One section (Parameters, Resources, ...) of several templates, copied;
    a name defined twice is an error (the merge would silently keep one)."""
    merged: dict[str, Any] = {}
    for template in templates:
        for name, value in template.get(section, {}).items():
            if name in merged:
                raise ValueError(f"{section}.{name} is defined by more than one template")
            merged[name] = copy.deepcopy(value)
    return merged


def invoke_config(settings: dict[str, Any], queue_id: str) -> dict[str, Any]:
    """SAM's ``EventInvokeConfig``: the settings file's retries and event age,
    failures sent to the ops template's queue."""
    return {
        **settings,
        "DestinationConfig": {
            "OnFailure": {"Type": "SQS", "Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}
        },
    }


def merge_template(stage: str, project: Path = PROJECT) -> dict[str, Any]:
    """The merge template for ``chalice package --stage <stage>``."""
    config = app_config(project)
    bucket_template = load_json(project / BUCKET_TEMPLATE)
    ops_template = load_json(project / OPS_TEMPLATE)
    owned = Owned(
        bucket=stage_bucket(config, stage),
        bucket_id=bucket_logical_id(bucket_template),
        queue=failure_queue_name(config, stage),
        queue_id=logical_id(ops_template, "AWS::SQS::Queue"),
    )
    settings = lambda_settings(project)

    parameters = combined("Parameters", bucket_template, ops_template)
    parameters[BUCKET_PARAMETER]["Default"] = owned.bucket
    retention = parameters[RETENTION_PARAMETER]
    check_retention(retention["Default"], config, stage)
    retention["MinValue"] = max(retention["MinValue"], min_retention_days(config, stage))
    cleanup_name = function_name(config, stage, CLEANUP)
    parameters[CLEANUP_PARAMETER].update(Default=cleanup_name, AllowedValues=[cleanup_name])

    resources = combined("Resources", bucket_template, ops_template)
    functions = config["stages"][stage]["lambda_functions"]
    missing = set(settings) - set(functions)
    if missing:
        raise ValueError(f"{LAMBDA_SETTINGS} names functions stage {stage} lacks: {missing}")
    for name, function in functions.items():
        function_id = to_cfn_resource_name(name)
        role_id = to_cfn_resource_name(f"{name}_role")  # chalice's per-function role
        policy = load_json(project / ".chalice" / function["iam_policy_file"])
        properties: dict[str, Any] = {
            "FunctionName": function_name(config, stage, name),
            "Environment": {"Variables": {"BUCKET": {"Ref": owned.bucket_id}}},
        }
        own = settings.get(name, {})
        if "LoggingConfig" in own:
            properties["LoggingConfig"] = copy.deepcopy(own["LoggingConfig"])
        if "EventInvokeConfig" in own:
            if name != CLEANUP:
                raise ValueError(f"{LAMBDA_SETTINGS}: only {CLEANUP} has a failure destination")
            properties["EventInvokeConfig"] = invoke_config(
                own["EventInvokeConfig"], owned.queue_id
            )
        resources[function_id] = {"Properties": properties}
        resources[role_id] = {
            "Properties": {
                "Policies": [
                    {
                        "PolicyName": f"{role_id}Policy",
                        "PolicyDocument": rewire_policy(policy, owned),
                    }
                ]
            }
        }
    return {
        "Parameters": parameters,
        "Conditions": combined("Conditions", bucket_template, ops_template),
        "Resources": resources,
        "Outputs": combined("Outputs", bucket_template, ops_template),
    }


def write_merge_template(stage: str, out: Path, project: Path = PROJECT) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merge_template(stage, project), indent=2) + "\n")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--out", type=Path, help="default: out/merge-<stage>.json")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    out = write_merge_template(args.stage, args.out or PROJECT / "out" / f"merge-{args.stage}.json")
    print(out)


if __name__ == "__main__":
    main()

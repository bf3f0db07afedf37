"""Generate the ``chalice package --merge-template`` for one stage (path 2).

The bucket comes from ``infra/bucket.json`` (the single definition, also
deployed alone by ``devtools.deploy.bucket_stack`` for path 1), and the rest from
``.chalice/config.json`` and the stage's policy files, so nothing here is
maintained by hand:

- the bucket's parameter (defaulting to the stage's ``BUCKET``), resources and
  outputs are added to the template;
- each function's ``BUCKET`` becomes ``{"Ref": <bucket>}`` and its
  ``FunctionName`` is pinned to the name ``chalice deploy`` uses, which the
  log-group ARNs in the policy files name;
- each role's ``Policies`` list is regenerated from its policy file with the
  bucket's ARNs rewritten to ``Fn::GetAtt``/``Fn::Sub``. ``--merge-template``
  replaces lists instead of merging them, so the whole list is given.

Run: ``python -m devtools.deploy.merge_template --stage prod`` (writes
``out/merge-prod.json``).
"""

import argparse
import copy
import json
from pathlib import Path
from typing import Any

from chalice.utils import to_cfn_resource_name

PROJECT = Path(__file__).resolve().parents[2]
BUCKET_TEMPLATE = Path("infra") / "bucket.json"  # relative to the project
BUCKET_PARAMETER = "BucketName"
S3_ARN_PREFIX = "arn:aws:s3:::"


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


def bucket_logical_id(template: dict[str, Any]) -> str:
    """The logical id of the template's one ``AWS::S3::Bucket``."""
    ids = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::S3::Bucket"]
    if len(ids) != 1:
        raise ValueError(f"expected exactly one AWS::S3::Bucket in the template, found {ids}")
    return ids[0]


def rewire_arn(resource: str, bucket: str, bucket_id: str) -> Any:
    """Point a policy resource at the template's bucket instead of its name.

    Non-S3 resources are returned unchanged; an S3 ARN naming another bucket is
    an error, since the stack would grant access to a bucket it does not own.
    """
    if not resource.startswith(S3_ARN_PREFIX):
        return resource
    name, sep, key = resource[len(S3_ARN_PREFIX) :].partition("/")
    if name != bucket:
        raise ValueError(f"policy resource {resource!r} names a bucket other than {bucket!r}")
    if not sep:
        return {"Fn::GetAtt": [bucket_id, "Arn"]}
    return {"Fn::Sub": f"${{{bucket_id}.Arn}}/{key.replace('${', '${!')}"}


def rewire_policy(policy: dict[str, Any], bucket: str, bucket_id: str) -> dict[str, Any]:
    """A copy of an IAM policy document with its bucket ARNs rewired."""
    rewired = copy.deepcopy(policy)
    for statement in rewired["Statement"]:
        resources = statement["Resource"]
        if isinstance(resources, str):
            statement["Resource"] = rewire_arn(resources, bucket, bucket_id)
        else:
            statement["Resource"] = [rewire_arn(r, bucket, bucket_id) for r in resources]
    return rewired


def merge_template(stage: str, project: Path = PROJECT) -> dict[str, Any]:
    """The merge template for ``chalice package --stage <stage>``."""
    config = app_config(project)
    bucket = stage_bucket(config, stage)
    bucket_template = load_json(project / BUCKET_TEMPLATE)
    bucket_id = bucket_logical_id(bucket_template)

    parameters = copy.deepcopy(bucket_template["Parameters"])
    parameters[BUCKET_PARAMETER]["Default"] = bucket
    resources = copy.deepcopy(bucket_template["Resources"])
    for name, settings in config["stages"][stage]["lambda_functions"].items():
        function_id = to_cfn_resource_name(name)
        role_id = to_cfn_resource_name(f"{name}_role")  # chalice's per-function role
        policy = load_json(project / ".chalice" / settings["iam_policy_file"])
        resources[function_id] = {
            "Properties": {
                "FunctionName": f"{config['app_name']}-{stage}-{name}",
                "Environment": {"Variables": {"BUCKET": {"Ref": bucket_id}}},
            }
        }
        resources[role_id] = {
            "Properties": {
                "Policies": [
                    {
                        "PolicyName": f"{role_id}Policy",
                        "PolicyDocument": rewire_policy(policy, bucket, bucket_id),
                    }
                ]
            }
        }
    return {
        "Parameters": parameters,
        "Resources": resources,
        "Outputs": copy.deepcopy(bucket_template["Outputs"]),
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

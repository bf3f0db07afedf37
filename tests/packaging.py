"""The stable import point for tests that need the deployment package.

``package_app(stage, out_dir, merge_template=None) -> out_dir`` runs
``chalice package`` offline on a clean copy of the project's deployable files
and returns the directory holding ``sam.json`` and ``deployment.zip``; the
implementation (shared with ``make package``) is in ``devtools/deploy/package.py``.

``packages`` is a session fixture: every stage packaged once for the whole run, shared
by the pytest-xdist workers.
A module uses it with ``pytest_plugins = ["tests.packaging"]`` (registered once,
so every module shares the one run; importing the fixture into each module
would define, and package, it once per module). ``sam_template`` reads one
stage's packaged template and ``evaluate`` resolves the CloudFormation
references its policies use.

PYTEST_DONT_REWRITE: the modules import this one before pytest registers it as
a plugin, too late for assertion rewriting (which it never had).
"""

import json
import os
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from devtools.deploy.merge_template import app_config, write_merge_template
from devtools.deploy.package import copy_deployable, package_app

__all__ = [
    "PSEUDO",
    "STAGES",
    "copy_deployable",
    "evaluate",
    "package_app",
    "packages",
    "sam_template",
    "write_merge_template",
]

STAGES = tuple(sorted(app_config()["stages"]))


def _package_every_stage(root: Path) -> dict[str, Path]:
    return {
        stage: package_app(
            stage, root / stage, write_merge_template(stage, root / f"merge-{stage}.json")
        )
        for stage in STAGES
    }


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each stage packaged once per run, as ``make package`` does it. Under pytest-xdist
    the workers share one packaging: the first to take the lock packages into the run's
    common temporary folder, the others wait for it and read it (the tests only read)."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return _package_every_stage(tmp_path_factory.mktemp("package"))
    shared = tmp_path_factory.getbasetemp().parent / "package"  # this run's, every worker's
    done = shared / "packaged.json"
    with FileLock(f"{shared}.lock"):
        if not done.exists():
            packaged = _package_every_stage(shared)
            done.write_text(json.dumps({stage: str(path) for stage, path in packaged.items()}))
    return {stage: Path(path) for stage, path in json.loads(done.read_text()).items()}


def sam_template(packages: dict[str, Path], stage: str) -> dict[str, Any]:
    return json.loads((packages[stage] / "sam.json").read_text())


# The pseudo parameters, as a deploy to moto's default account would see them.
PSEUDO = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}


def evaluate(value: Any, template: dict[str, Any]) -> Any:
    """Evaluate the CloudFormation references the template's policies and settings
    use (``Ref`` to a parameter, a pseudo parameter, the bucket, the queue or the
    topic; ``Fn::GetAtt`` of the bucket's or the queue's Arn; ``Fn::Sub`` of those)
    with the parameters' defaults, as a deploy with defaults would."""
    if isinstance(value, list):
        return [evaluate(v, template) for v in value]
    if not isinstance(value, dict):
        return value

    def ref(name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in template.get("Parameters", {}):
            return template["Parameters"][name]["Default"]
        resource = template["Resources"][name]
        if resource["Type"] == "AWS::SNS::Topic":  # a generated name: the logical id stands in
            return f"arn:aws:sns:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:{name}"
        assert resource["Type"] == "AWS::S3::Bucket", f"cannot evaluate a Ref to {name}"
        return evaluate(resource["Properties"]["BucketName"], template)

    def get_att(name: str, attribute: str) -> str:
        assert attribute == "Arn", f"cannot evaluate {name}.{attribute}"
        resource = template["Resources"][name]
        if resource["Type"] == "AWS::SQS::Queue":
            queue = evaluate(resource["Properties"]["QueueName"], template)
            return f"arn:aws:sqs:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:{queue}"
        return f"arn:aws:s3:::{ref(name)}"

    if set(value) == {"Ref"}:
        return ref(value["Ref"])
    if set(value) == {"Fn::GetAtt"}:
        return get_att(*value["Fn::GetAtt"])
    if set(value) == {"Fn::Sub"}:
        text = value["Fn::Sub"]
        assert isinstance(text, str), "only the one-argument form of Fn::Sub is used"
        parts = text.split("${")
        out = parts[0]
        for part in parts[1:]:
            if part.startswith("!"):
                out += "${" + part[1:]
                continue
            name, _, rest = part.partition("}")
            out += get_att(*name.split(".")) if "." in name else ref(name)
            out += rest
        return out
    return {k: evaluate(v, template) for k, v in value.items()}

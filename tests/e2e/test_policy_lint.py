"""Policy lint in ``make test``: parliament, with its community auditors, over every
IAM policy either deploy path creates.

- Path 1 (``chalice deploy``) puts each ``.chalice/policy-*.json`` file in its
  function's role as is: every file is linted.
- Path 2 (``chalice package`` with the generated merge template) carries the roles'
  inline policies, their trust policies and the bucket, queue and topic policies
  (from infra/, which path 1 deploys as they are) in the template:
  each document is linted after evaluating its CloudFormation references.

Zero findings at any severity, except those justified in tests/parliament.yaml.
"""

import json
import re
from pathlib import Path
from typing import Any

import parliament
import pytest
from parliament.cli import is_finding_filtered

from devtools.deploy.merge_template import app_config
from tests.conftest import PROJECT
from tests.packaging import STAGES, evaluate, sam_template

pytest_plugins = ["tests.packaging"]  # `packages`, shared with test_package.py
POLICY_FILES = sorted((PROJECT / ".chalice").glob("policy-*.json"))
LINT_CONFIG = PROJECT / "tests" / "parliament.yaml"
COMMUNITY_CONFIG = Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"

parliament.override_config(str(COMMUNITY_CONFIG))  # what --include-community-auditors loads
parliament.override_config(str(LINT_CONFIG))  # then ours, as --config would


def silenced(finding: Any) -> bool:
    """Whether an ``ignore_locations`` rule of the config matches the finding, with
    the semantics parliament documents (every key of a rule matches one of its
    regexes, case-insensitively). parliament 1.6.4's own check in
    ``cli.is_finding_filtered`` never matches: ``misc.make_list`` turns a plain
    string or list from the YAML into ``[]`` (it expects jsoncfg nodes).
    ``test_parliament_still_ignores_nothing_itself`` pins that."""
    for rule in finding.ignore_locations or []:
        if all(
            any(
                re.fullmatch(pattern.lower(), str(finding.location.get(key, "")).lower())
                for pattern in ([patterns] if isinstance(patterns, str) else patterns)
            )
            for key, patterns in rule.items()
        ):
            return True
    return False


def analyze(document: dict[str, Any], location: str) -> list[Any]:
    """All of parliament's findings on one policy document, severity INFO and up."""
    policy = parliament.analyze_policy_string(
        json.dumps(document, indent=2),
        location,
        include_community_auditors=True,
        config=parliament.config,
    )
    enhanced = [parliament.enhance_finding(f) for f in policy.findings]
    return [f for f in enhanced if not is_finding_filtered(f, "INFO")]


def findings(document: dict[str, Any], location: str, *, ignored: bool = False) -> list[Any]:
    """The findings tests/parliament.yaml does not justify (or, ``ignored``, those it does)."""
    return [f for f in analyze(document, location) if silenced(f) == ignored]


def show(found: list[Any]) -> str:
    return "\n".join(f"{f.severity} {f.issue}: {f.detail} at {f.location}" for f in found)


def template_policies(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every policy document in the template, by where it sits."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                here = f"{path}.{key}"
                if key in ("PolicyDocument", "AssumeRolePolicyDocument"):
                    found[here] = evaluate(child, template)
                else:
                    walk(child, here)
        elif isinstance(node, list):
            for index, child in enumerate(node):
                walk(child, f"{path}[{index}]")

    walk(template["Resources"], "Resources")
    return found


@pytest.fixture(scope="module")
def packaged(packages: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Path 2's template for each stage, packaged as ``make package`` does."""
    return {stage: sam_template(packages, stage) for stage in STAGES}


def all_documents(packaged: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    documents = {str(f.relative_to(PROJECT)): json.loads(f.read_text()) for f in POLICY_FILES}
    for stage, template in packaged.items():
        for where, document in template_policies(template).items():
            documents[f"package-{stage}/sam.json:{where}"] = document
    return documents


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.name)
def test_policy_files_lint_clean(path):
    found = findings(json.loads(path.read_text()), str(path.relative_to(PROJECT)))
    assert found == [], show(found)


def test_every_configured_policy_file_is_linted():
    config = app_config()
    used = {
        PROJECT / ".chalice" / settings["iam_policy_file"]
        for stage in config["stages"].values()
        for settings in stage["lambda_functions"].values()
    }
    assert used <= set(POLICY_FILES)


@pytest.mark.parametrize("stage", STAGES)
def test_packaged_policies_lint_clean(packaged, stage):
    documents = template_policies(packaged[stage])
    # Each role's inline policy and trust policy, the bucket's, the queue's and the topic's.
    roles = [k for k, v in packaged[stage]["Resources"].items() if v["Type"] == "AWS::IAM::Role"]
    assert len(documents) == 2 * len(roles) + 3, sorted(documents)
    assert "arn:aws:s3:::" + packaged[stage]["Parameters"]["BucketName"]["Default"] in (
        json.dumps(documents)
    )
    for where, document in documents.items():
        found = findings(document, f"package-{stage}/sam.json:{where}")
        assert found == [], show(found)


def test_every_ignore_is_still_needed(packaged):
    """Each ignore in tests/parliament.yaml silences something real, and only that."""
    documents = all_documents(packaged)
    silenced = {
        (f.issue, f.detail)
        for where, document in documents.items()
        for f in findings(document, where, ignored=True)
    }
    assert silenced == {("MALFORMED", "Statement contains neither Resource nor NotResource")}
    trust = [w for w in documents if w.endswith(".AssumeRolePolicyDocument")]
    functions = [f for stage in STAGES for f in app_config()["stages"][stage]["lambda_functions"]]
    assert len(trust) == len(functions)  # one role per function and stage


def mutated(path: Path, statement: dict[str, Any]) -> dict[str, Any]:
    document = json.loads(path.read_text())
    document["Statement"].append(statement)
    return document


WORKER_POLICY = PROJECT / ".chalice" / "policy-dev-worker.json"


@pytest.mark.parametrize(
    ("statement", "issue"),
    [
        ({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"}, "RESOURCE_STAR"),
        (
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b/*"},
            "RESOURCE_MISMATCH",
        ),
        (
            {"Effect": "Allow", "Action": "s3:PutObjects", "Resource": "arn:aws:s3:::b/*"},
            "UNKNOWN_ACTION",
        ),
        (
            {"Effect": "Allow", "Action": "s3:PutBucketPolicy", "Resource": "arn:aws:s3:::b"},
            "PERMISSIONS_MANAGEMENT_ACTIONS",
        ),
        ({"Effect": "Allow", "Action": "s3:PutObject"}, "MALFORMED"),
    ],
    ids=["resource-star", "resource-mismatch", "unknown-action", "policy-write", "no-resource"],
)
def test_the_lint_catches_a_widened_or_broken_policy(statement, issue):
    found = findings(mutated(WORKER_POLICY, statement), "policy-dev-worker.json (mutated)")
    assert issue in {f.issue for f in found}, show(found)


def test_parliament_still_ignores_nothing_itself():
    """Why ``silenced`` exists: a finding the config ignores gets through parliament's
    own filter. If this fails, parliament fixed ``make_list``: use its filter alone."""
    (finding,) = analyze(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject"}]},
        "x.AssumeRolePolicyDocument",
    )
    assert finding.issue == "MALFORMED" and finding.ignore_locations
    assert silenced(finding)

"""Generate the per-function policy files in ``.chalice/`` (``make policies``).

The names live in ``.chalice/config.json`` only: the app name, the stages and each
stage's ``BUCKET``. What each function may do lives in ``infra/policies.json``: its
IAM statements, written once for every stage with placeholders:

- ``{bucket}``: the stage's ``BUCKET``;
- ``{function}``: the deployed function, ``<app>-<stage>-<function>``, whose log
  group is ``/aws/lambda/{function}``;
- ``{failure_queue}``: the function's on-failure queue, ``<app>-<stage>-<function>-failures``
  (the ops stack's, for the cleanup).

For every stage and function this writes ``.chalice/policy-<stage>-<function>.json``,
the ``iam_policy_file`` config.json names for it, which ``chalice deploy`` reads as
it is. A file is rewritten only when its content changes. ``make test``, ``run``,
``deploy`` and ``package`` run this first; ``tests/unit/test_policies.py`` fails when a
policy file is not what the two inputs imply.

Least privilege cannot widen here: a bucket name must be an S3 bucket name (the
pattern of ``infra/bucket.json``, so no wildcard), an S3 resource must be the
stage's bucket or keys in it, an SQS resource the function's own queue, and no
action or resource may be a wildcard.

Run: ``python -m devtools.deploy.policies [--check]``
"""

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import chalice_loop

from devtools.deploy.merge_template import BUCKET_PARAMETER, BUCKET_TEMPLATE, PROJECT, load_json

STATEMENTS = Path("infra") / "policies.json"  # relative to the project
CHALICE_DIR = Path(".chalice")
PLACEHOLDER = re.compile(r"(?<!\$)\{(\w*)\}")  # not an IAM policy variable, ${aws:username}
S3_ARN = "arn:aws:s3:::"
SQS_ARN = re.compile(r"arn:aws:sqs:[^:]*:[^:]*:(?P<name>.*)")


class PolicyError(ValueError):
    """The inputs cannot make least-privileged policy files; says what to fix."""


def policy_file_name(stage: str, function: str) -> str:
    return f"policy-{stage}-{function}.json"


def statements(project: Path = PROJECT) -> dict[str, list[dict[str, Any]]]:
    """``infra/policies.json``: each function's statement templates."""
    return load_json(project / STATEMENTS)


def bucket_pattern(project: Path = PROJECT) -> re.Pattern[str]:
    template = load_json(project / BUCKET_TEMPLATE)
    return re.compile(template["Parameters"][BUCKET_PARAMETER]["AllowedPattern"])


def stage_names(config: dict[str, Any], stage: str, function: str) -> dict[str, str]:
    """What the placeholders stand for in ``stage``'s policy of ``function``."""
    app = config["app_name"]
    bucket = config["stages"][stage].get("environment_variables", {}).get("BUCKET", "")
    return {
        "bucket": bucket,
        "function": chalice_loop.deployed_name(app, stage, function),
        "failure_queue": chalice_loop.failure_queue_name(app, stage, function),
    }


def fill(text: str, names: dict[str, str], where: str) -> str:
    def name(match: re.Match[str]) -> str:
        if match[1] not in names:
            known = ", ".join(f"{{{n}}}" for n in names)
            raise PolicyError(f"{where}: unknown placeholder {match[0]} (known: {known})")
        return names[match[1]]

    return PLACEHOLDER.sub(name, text)


def check_statement(statement: dict[str, Any], names: dict[str, str], where: str) -> None:
    """Refuse what would grant more than the stage's own bucket and queue."""
    actions, resources = statement.get("Action", []), statement.get("Resource", [])
    for action in [actions] if isinstance(actions, str) else actions:
        if "*" in action:
            raise PolicyError(f"{where}: action {action!r}: name each action, no wildcard")
    for resource in [resources] if isinstance(resources, str) else resources:
        if resource == "*":
            raise PolicyError(f"{where}: resource '*': name the resource")
        if resource.startswith(S3_ARN):
            bucket, _, _ = resource[len(S3_ARN) :].partition("/")
            if bucket != names["bucket"]:
                raise PolicyError(
                    f"{where}: {resource!r} names a bucket other than the stage's "
                    f"({names['bucket']!r}): write arn:aws:s3:::{{bucket}}"
                )
        queue = SQS_ARN.fullmatch(resource)
        if queue and queue["name"] != names["failure_queue"]:
            raise PolicyError(
                f"{where}: {resource!r} names a queue other than the function's "
                f"({names['failure_queue']!r}): write arn:aws:sqs:*:*:{{failure_queue}}"
            )


def check_config(config: dict[str, Any], functions: list[str], project: Path) -> None:
    """Every stage names a valid bucket, and exactly these functions' policy files."""
    pattern = bucket_pattern(project)
    for stage, settings in sorted(config["stages"].items()):
        bucket = settings.get("environment_variables", {}).get("BUCKET", "")
        if not pattern.fullmatch(bucket):
            raise PolicyError(
                f"stage {stage}: environment_variables.BUCKET {bucket!r} in .chalice/config.json "
                f"is not an S3 bucket name ({pattern.pattern})"
            )
        listed = settings.get("lambda_functions", {})
        for function in functions:
            expected = policy_file_name(stage, function)
            if listed.get(function, {}).get("iam_policy_file") != expected:
                raise PolicyError(
                    f"stage {stage}: add {function!r} to its lambda_functions in "
                    f'.chalice/config.json: "{function}": {{"iam_policy_file": "{expected}"}}'
                )
        extra = sorted(
            f for f, v in listed.items() if "iam_policy_file" in v and f not in functions
        )
        if extra:
            raise PolicyError(
                f"stage {stage}: {', '.join(extra)} has an iam_policy_file but no statements "
                f"in {STATEMENTS}: add them there"
            )


def policy(config: dict[str, Any], stage: str, function: str, project: Path = PROJECT) -> str:
    """The content of ``stage``'s policy file for ``function``."""
    templates = statements(project)
    if function not in templates:
        raise PolicyError(f"{STATEMENTS} has no statements for {function!r}")
    names = stage_names(config, stage, function)
    document = {"Version": "2012-10-17", "Statement": []}
    for number, template in enumerate(templates[function], 1):
        where = f"{STATEMENTS}: {function}, statement {template.get('Sid') or number}"
        statement = json.loads(fill(json.dumps(template), names, where))
        check_statement(statement, names, f"stage {stage}: {where}")
        document["Statement"].append(statement)
    return json.dumps(document, indent=2) + "\n"


def expected_files(project: Path = PROJECT) -> dict[Path, str]:
    """Every policy file, relative to the project, with the content it must have."""
    config = load_json(project / CHALICE_DIR / "config.json")
    functions = list(statements(project))
    check_config(config, functions, project)
    return {
        CHALICE_DIR / policy_file_name(stage, function): policy(config, stage, function, project)
        for stage in sorted(config["stages"])
        for function in functions
    }


def stale(project: Path = PROJECT) -> list[str]:
    """The policy files that are missing or differ from what the inputs imply."""
    return [
        str(path)
        for path, content in expected_files(project).items()
        if not (project / path).exists() or (project / path).read_text() != content
    ]


def write(project: Path = PROJECT) -> list[str]:
    """Write the files whose content changes; return them."""
    written = []
    for path, content in expected_files(project).items():
        target = project / path
        if not target.exists() or target.read_text() != content:
            target.write_text(content)
            written.append(str(path))
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail if a file would change"
    )
    return parser


def main(argv: list[str] | None = None, project: Path = PROJECT) -> int:
    args = build_parser().parse_args(argv)
    try:
        changed = stale(project) if args.check else write(project)
        count = len(expected_files(project))
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check and changed:
        print(f"stale: {', '.join(changed)}: run make policies", file=sys.stderr)
        return 1
    for path in changed:
        print(f"policies: wrote {path}")
    if not changed:
        print(f"policies: {count} files up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

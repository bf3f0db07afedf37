"""The policy files are generated from config.json and infra/policies.json
(devtools/deploy/policies.py, ``make policies``), and the committed ones are current."""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from devtools.deploy import policies
from devtools.deploy.merge_template import app_config
from tests.conftest import PROJECT, STAGE, STAGES, stage_bucket

CONFIG = app_config()


def test_the_policy_files_are_what_config_json_implies():
    """What a bare ``chalice deploy`` reads is current (make test regenerates it first)."""
    stale = policies.stale()
    if stale:
        pytest.fail(
            f"{', '.join(stale)} differ from what .chalice/config.json and "
            f"{policies.STATEMENTS} imply: run make policies",
            pytrace=False,
        )


def test_every_function_of_every_stage_gets_its_file():
    files = policies.expected_files()
    functions = policies.statements()
    assert sorted(files) == sorted(
        Path(".chalice") / f"policy-{stage}-{function}.json"
        for stage in STAGES
        for function in functions
    )
    for stage in STAGES:
        for function in functions:
            named = CONFIG["stages"][stage]["lambda_functions"][function]["iam_policy_file"]
            assert named == f"policy-{stage}-{function}.json"


def copy(tmp_path: Path) -> Path:
    """The generator's inputs and outputs: .chalice/ and infra/."""
    for name in (".chalice", "infra"):
        shutil.copytree(PROJECT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2) + "\n")


def test_renaming_a_bucket_in_config_json_rewrites_that_stages_policies_only(tmp_path):
    project = copy(tmp_path)
    old, new = stage_bucket(STAGE), "adopters-own-reports-bucket"
    before = {p.name: p.read_text() for p in (project / ".chalice").glob("policy-*.json")}

    def rename(config: dict) -> None:
        config["stages"][STAGE]["environment_variables"]["BUCKET"] = new

    edit(project / ".chalice" / "config.json", rename)
    mine = sorted(f".chalice/policy-{STAGE}-{f}.json" for f in policies.statements(project))
    assert sorted(policies.stale(project)) == mine
    assert sorted(policies.write(project)) == mine
    assert policies.stale(project) == [] and policies.write(project) == []  # idempotent
    for name, text in before.items():
        now = (project / ".chalice" / name).read_text()
        assert now == text.replace(f":::{old}", f":::{new}")  # the bucket ARNs, nothing else
        assert old not in now
    assert new in (project / ".chalice" / f"policy-{STAGE}-worker.json").read_text()


def test_a_third_function_gets_its_own_policy_from_its_statements(tmp_path):
    """The step docs/adapting.md documents: statements in infra/policies.json and the
    function's iam_policy_file in each stage of config.json."""
    project = copy(tmp_path)
    reads = {
        "Sid": "ReadReports",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": ["arn:aws:s3:::{bucket}/reports/*"],
    }
    edit(project / policies.STATEMENTS, lambda s: s.update(mailer=[reads]))
    with pytest.raises(policies.PolicyError, match=r"add 'mailer' to its lambda_functions"):
        policies.write(project)

    def add(config: dict) -> None:
        for stage, settings in config["stages"].items():
            settings["lambda_functions"]["mailer"] = {
                "iam_policy_file": f"policy-{stage}-mailer.json"
            }

    edit(project / ".chalice" / "config.json", add)
    written = policies.write(project)
    assert sorted(written) == sorted(f".chalice/policy-{s}-mailer.json" for s in STAGES)
    for stage in STAGES:
        document = json.loads((project / ".chalice" / f"policy-{stage}-mailer.json").read_text())
        assert document["Statement"] == [
            {**reads, "Resource": [f"arn:aws:s3:::{stage_bucket(stage)}/reports/*"]}
        ]


def set_statement(function: str, index: int, **fields: Any) -> Any:
    def change(templates: dict) -> None:
        templates[function][index].update(fields)

    return change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (set_statement("worker", 0, Action=["s3:*"]), "action 's3:*': name each action"),
        (set_statement("worker", 0, Resource="*"), "resource '*': name the resource"),
        (
            set_statement("worker", 0, Resource=["arn:aws:s3:::*/*"]),
            "names a bucket other than the stage's",
        ),
        (
            set_statement("cleanup", 0, Resource=["arn:aws:s3:::someone-elses"]),
            "names a bucket other than the stage's",
        ),
        (
            set_statement("cleanup", 3, Resource=["arn:aws:sqs:*:*:any-queue"]),
            "names a queue other than the function's",
        ),
        (
            set_statement("worker", 0, Resource=["arn:aws:s3:::{bukket}/*"]),
            "unknown placeholder {bukket}",
        ),
    ],
    ids=["action", "resource", "bucket-wildcard", "other-bucket", "other-queue", "placeholder"],
)
def test_statements_that_would_widen_the_policy_are_refused(tmp_path, change, problem):
    project = copy(tmp_path)
    edit(project / policies.STATEMENTS, change)
    before = {p: p.read_text() for p in (project / ".chalice").glob("policy-*.json")}
    with pytest.raises(policies.PolicyError) as refused:
        policies.write(project)
    assert problem in str(refused.value)
    assert {p: p.read_text() for p in before} == before  # nothing written


@pytest.mark.parametrize("bucket", ["reports-*", "Reports", "", "a"])
def test_a_bucket_that_is_not_an_s3_bucket_name_is_refused(tmp_path, bucket):
    project = copy(tmp_path)

    def rename(config: dict) -> None:
        config["stages"][STAGE]["environment_variables"]["BUCKET"] = bucket

    edit(project / ".chalice" / "config.json", rename)
    with pytest.raises(policies.PolicyError, match="is not an S3 bucket name"):
        policies.write(project)


def test_a_function_with_a_policy_file_but_no_statements_is_refused(tmp_path):
    project = copy(tmp_path)
    edit(project / policies.STATEMENTS, lambda templates: templates.pop("worker"))
    with pytest.raises(policies.PolicyError, match="worker has an iam_policy_file but no"):
        policies.write(project)


def test_the_command_says_what_it_wrote_and_check_fails_in_one_line(tmp_path, capsys):
    project = copy(tmp_path)
    count = len(policies.expected_files(project))
    assert policies.main(["--check"], project) == 0
    assert capsys.readouterr().out == f"policies: {count} files up to date\n"
    (project / ".chalice" / f"policy-{STAGE}-worker.json").write_text("{}\n")
    assert policies.main(["--check"], project) == 1
    assert capsys.readouterr().err == (
        f"stale: .chalice/policy-{STAGE}-worker.json: run make policies\n"
    )
    assert policies.main([], project) == 0
    assert capsys.readouterr().out == f"policies: wrote .chalice/policy-{STAGE}-worker.json\n"
    assert policies.main([], project) == 0
    assert capsys.readouterr().out == f"policies: {count} files up to date\n"


def test_the_command_names_what_to_fix(tmp_path, capsys):
    project = copy(tmp_path)
    edit(project / policies.STATEMENTS, set_statement("worker", 0, Action=["s3:Put*"]))
    assert policies.main([], project) == 1
    assert capsys.readouterr().err == (
        f"error: stage {STAGE}: infra/policies.json: worker, statement WriteReports: "
        "action 's3:Put*': name each action, no wildcard\n"
    )

"""Build the deployment package the way a release would, offline (path 2).

``package_app`` copies only the project's deployable files into a fresh
directory, so no ``__pycache__``, ``.chalice/deployed`` or tooling from the
work tree can reach the zip, and runs ``chalice package`` there.

Run: ``python -m devtools.deploy.package --stage prod`` writes ``out/merge-prod.json``
(see ``devtools.deploy.merge_template``: the bucket and ops stacks and the Lambda
settings merged in) and ``out/prod/`` (``sam.json`` + ``deployment.zip``).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from devtools.deploy.merge_template import PROJECT, app_config, write_merge_template

CHALICE = Path(sys.executable).parent / "chalice"  # the venv's, beside its python
DEPLOYABLE = ("app.py", "requirements.txt", "chalicelib")


def copy_deployable(dest: Path, project: Path = PROJECT) -> Path:
    """Copy app.py, requirements.txt, chalicelib/ and .chalice's config.json and
    policy files into ``dest`` (created); return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in DEPLOYABLE:
        source = project / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)
    (dest / ".chalice").mkdir()
    chalice_dir = project / ".chalice"
    for source in [chalice_dir / "config.json", *sorted(chalice_dir.glob("policy-*.json"))]:
        shutil.copy2(source, dest / ".chalice" / source.name)
    return dest


def offline_env() -> dict[str, str]:
    """The environment for ``chalice package``: a region and no AWS endpoint,
    profile or credentials (packaging needs none), and no bytecode: chalice
    imports app.py before it zips chalicelib/, so a ``__pycache__`` written by
    that import would ship."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_DEFAULT_REGION"] = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def package_app(stage: str, out_dir: Path, merge_template: Path | None = None) -> Path:
    """Run ``chalice package --stage <stage> [--merge-template ...] <out_dir>`` on a
    clean copy of the project; return ``out_dir`` (``sam.json`` + ``deployment.zip``)."""
    out_dir = Path(out_dir).resolve()
    command = [str(CHALICE), "package", "--stage", stage]
    if merge_template is not None:
        command += ["--merge-template", str(Path(merge_template).resolve())]
    with tempfile.TemporaryDirectory(prefix="chalice-package-") as tmp:
        project = copy_deployable(Path(tmp) / "project")
        result = subprocess.run(
            [*command, str(out_dir)],
            cwd=project,
            env=offline_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"chalice package failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return out_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="chalice package with the bucket merged in")
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--out", type=Path, default=PROJECT / "out")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    merge = write_merge_template(args.stage, args.out / f"merge-{args.stage}.json")
    out_dir = package_app(args.stage, args.out / args.stage, merge)
    zip_kb = (out_dir / "deployment.zip").stat().st_size / 1024
    template = os.path.relpath(out_dir / "sam.json")
    print(f"merge template: {os.path.relpath(merge)}")
    print(f"template:       {template}")
    print(f"code:           {os.path.relpath(out_dir / 'deployment.zip')} ({zip_kb:.1f} KB)")
    print("next, with an artifacts bucket of yours and real credentials:")
    print(
        f"  aws cloudformation package --template-file {template} "
        "--s3-bucket <artifacts-bucket> --output-template-file "
        f"{os.path.relpath(out_dir / 'packaged.yaml')}"
    )
    print(
        f"  aws cloudformation deploy --template-file {os.path.relpath(out_dir / 'packaged.yaml')} "
        f"--stack-name {app_config()['app_name']}-{args.stage} --capabilities CAPABILITY_IAM "
        "[--parameter-overrides AlarmEmail=you@example.com RetentionDays=N]"
    )


if __name__ == "__main__":
    main()

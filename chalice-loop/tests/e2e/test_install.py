"""The package stands alone: its folder alone builds a wheel that, in a fresh virtualenv
holding only its declared dependencies, installs and runs an app; and importing it
starts no server. (Its code importing only the standard library and those dependencies
is read from the source in tests/unit/test_imports.py.)"""

import email
import json
import shutil
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import chalice_loop
import pytest
from loop_testing import chalice_project, env_without_aws
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PACKAGE = Path(chalice_loop.__file__).resolve().parent
FOLDER = PACKAGE.parents[1]  # the tool's folder: pyproject.toml, README.md, src/
APP = """
from chalice import Chalice

app = Chalice(app_name="fresh")


@app.lambda_function(name="hello")
def hello(event, context):
    left = context.get_remaining_time_in_millis()
    return {"hello": event.get("name", "world"), "remaining": left}
"""


def dependency_closure(requirements: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions that ``requirements`` (Requires-Dist strings) pull in,
    extras and environment markers followed as pip follows them; each one's version must
    satisfy every requirement on it (what ``pip check`` checks)."""
    found: dict[str, metadata.Distribution] = {}
    pending = [(Requirement(r), "") for r in requirements]
    seen: set[tuple[str, str]] = set()
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        dist = found.get(name) or metadata.distribution(name)
        assert requirement.specifier.contains(dist.version, prereleases=True), (
            f"{name} {dist.version} does not satisfy {requirement}"
        )
        found[name] = dist
        for wanted in ["", *sorted(requirement.extras)]:
            if (name, wanted) not in seen:
                seen.add((name, wanted))
                pending += [(Requirement(r), wanted) for r in dist.requires or []]
    return found


def link_into(site: Path, dists: dict[str, metadata.Distribution]) -> None:
    """Make ``dists`` importable from ``site`` (a fresh venv's site-packages) by linking
    their top-level entries (packages, modules, extension modules, ``.dist-info``), as
    installing them would place them; a folder two share (a namespace) is merged."""
    owners: dict[str, list[Path]] = {}
    for dist in dists.values():
        for file in dist.files or []:
            top = file.parts[0]
            if top != ".." and not top.endswith(".pth") and top != "__pycache__":
                source = Path(dist.locate_file(top))
                if source not in owners.setdefault(top, []):
                    owners[top].append(source)
    for top, sources in owners.items():
        if len(sources) == 1:
            (site / top).symlink_to(sources[0])
            continue
        (site / top).mkdir()
        for source in sources:
            for entry in source.iterdir():
                if not (site / top / entry.name).exists():
                    (site / top / entry.name).symlink_to(entry)


@pytest.mark.slow
def test_the_folder_builds_a_wheel_that_installs_alone_and_runs_an_app(tmp_path):
    """The wheel's declared dependencies, and nothing else, are enough to run an app.

    The wheel is built from a copy of the tool's folder alone. A fresh virtualenv (no pip,
    nothing of this repository) gets the closure of the wheel's own Requires-Dist, as this
    environment has it installed, linked into its site-packages (``pip check`` in it
    agrees that every requirement is met); the wheel is installed into it with no index
    and no dependencies, and its ``chalice-loop`` runs an app. (That the declared
    dependencies resolve from the package index is what every fresh ``make test`` does:
    requirements-dev.txt installs this folder with them.)
    """
    # Only the tool's folder (copied: the build leaves nothing in the source tree).
    source = tmp_path / "chalice-loop"
    shutil.copytree(FOLDER, source, ignore=shutil.ignore_patterns("tests", "examples", "build",
                    "*.egg-info", "__pycache__"))  # fmt: skip
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    started = time.monotonic()
    subprocess.run([*pip, "wheel", "--no-deps", "-w", tmp_path / "dist", source], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("chalice_loop-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        declared = email.message_from_bytes(zf.read(name)).get_all("Requires-Dist") or []
    assert any(r.startswith("moto[") for r in declared) and any("chalice" in r for r in declared)

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    (site,) = (tmp_path / "venv" / "lib").glob("python3*/site-packages")
    closure = dependency_closure(declared)
    assert "chalice-loop" not in closure
    link_into(site, closure)
    subprocess.run([*pip, "--python", python, "install", "--no-index", "--no-deps", wheel],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    installed = time.monotonic() - started
    check = subprocess.run([*pip, "--python", python, "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    where = subprocess.run([python, "-c", "import chalice_loop; print(chalice_loop.__file__)"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout
    project = chalice_project(tmp_path / "fresh", APP, {"version": "2.0", "app_name": "fresh",
                              "lambda_timeout": 9, "stages": {"dev": {}}})  # fmt: skip
    done = subprocess.run(
        [tmp_path / "venv" / "bin" / "chalice-loop", "--project-dir", project, "invoke", "hello",
         "--payload", '{"name": "fresh venv"}'],
        cwd=tmp_path, env=env_without_aws(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["hello"] == "fresh venv" and 3000 < result["remaining"] <= 9000
    print(f"wheel built and installed beside {len(closure)} dependencies in {installed:.1f} s")


def test_every_public_name_is_what_it_says_and_the_package_loads_no_server():
    probe = (
        "import sys, chalice_loop; assert 'moto.server' not in sys.modules; "
        "import chalice_loop.embedded_s3; from chalice_loop import *; "
        "assert callable(embedded_s3) and callable(LocalLambda) and callable(build_parser); "
        "print(sorted(n for n in chalice_loop.__all__ if not hasattr(chalice_loop, n)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

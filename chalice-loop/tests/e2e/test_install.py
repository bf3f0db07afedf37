"""The package stands alone: its code imports nothing but the standard library and its
declared dependencies, and its folder alone builds a wheel that installs into a fresh
virtualenv (dependencies from the package index pip is set up with) and runs an app."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import chalice_loop
import pytest
from loop_testing import chalice_project, env_without_aws

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


@pytest.mark.slow
def test_the_folder_builds_a_wheel_that_installs_alone_and_runs_an_app(tmp_path):
    # Only the tool's folder (copied: the build leaves nothing in the source tree).
    source = tmp_path / "chalice-loop"
    shutil.copytree(FOLDER, source, ignore=shutil.ignore_patterns("tests", "examples", "build",
                    "*.egg-info", "__pycache__"))  # fmt: skip
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    started = time.monotonic()
    subprocess.run([*pip, "wheel", "--no-deps", "-w", tmp_path / "dist", source], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("chalice_loop-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True)
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run([*pip, "--python", python, "install", wheel], check=True, capture_output=True,
                   timeout=300)  # fmt: skip
    installed = time.monotonic() - started

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
    print(f"wheel built and installed with its dependencies in {installed:.1f} s")


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

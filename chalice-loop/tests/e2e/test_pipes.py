"""Commands that print a lot stop quietly when their reader goes away (`| head`):
no traceback, and the exit status of a command ended by SIGPIPE (141)."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from chalice_loop.async_delivery import FailureStore
from loop_testing import chalice_project, env_without_aws

CHATTY = """
from chalice import Chalice, Rate

app = Chalice(app_name="chatty")


@app.lambda_function(name="chatty")
def chatty(event, context):
    for n in range(3000):
        app.log.error("line %d of a long log", n)
"""
CHATTY += "".join(
    f'\n\n@app.schedule(Rate({n + 1}, unit=Rate.MINUTES), name="every_{n}")\n'
    f"def every_{n}(event):\n    return None\n"
    for n in range(300)
)


@pytest.fixture(scope="module")
def chatty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose log, schedule list and failures each fill more than a pipe's buffer."""
    config = {"version": "2.0", "app_name": "chatty", "stages": {"dev": {}}}
    project = chalice_project(tmp_path_factory.mktemp("chatty") / "chatty", CHATTY, config)
    run = [sys.executable, "-m", "chalice_loop", "--project-dir", str(project)]
    subprocess.run([*run, "invoke", "chatty"], env=env_without_aws(), capture_output=True,
                   check=True, timeout=60)  # fmt: skip
    failures = FailureStore(project / ".local" / "failures.jsonl")
    for n in range(2000):
        record = {"requestContext": {"requestId": str(n)}, "requestPayload": {"n": n}}
        failures.send("every_0", "dev", "chatty-dev-every_0-failures", record)
    return project


@pytest.mark.parametrize("command", ["logs", "logs --include-lambda-messages", "schedules",
                                     "failures", "failures --json"])  # fmt: skip
def test_piped_into_head_it_stops_quietly(chatty, command):
    run = shlex.join([sys.executable, "-m", "chalice_loop", "--project-dir", str(chatty)])
    script = f'{run} {command} | head -n 2; echo "status ${{PIPESTATUS[0]}}" >&2'
    done = subprocess.run(["bash", "-c", script], env=env_without_aws(), capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert len(done.stdout.splitlines()) == 2
    assert done.stderr.strip() == "status 141", done.stderr  # no traceback before it

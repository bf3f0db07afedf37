"""`chalice-loop` invoke, schedules and up's start-up checks on a throwaway app, in
subprocesses (the runner behind them, in-process: tests/unit/test_runner.py)."""

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from loop_testing import LAMBDA_BLOCK, chalice_project, cli, free_port
from sample_apps import TINY_APP, TINY_CONFIG


@pytest.fixture
def tiny_app(tmp_path: Path) -> Path:
    return chalice_project(tmp_path / "tiny", TINY_APP, TINY_CONFIG)


def test_invoke_refuses_what_it_cannot_run_with_status_2(tiny_app, tmp_path):
    args = ("--project-dir", tiny_app, "--state-dir", tmp_path, "invoke")
    not_json = cli(*args, "clock", "--payload", "{oops")
    assert not_json.returncode == 2
    assert "the payload is not valid JSON" in not_json.stderr
    unknown = cli(*args, "nope")
    assert unknown.returncode == 2
    assert "no function named 'nope' in the app (functions: clock, noon, office, sleepy)" in (
        unknown.stderr
    )
    stage = cli(*args, "clock", "--stage", "prod")
    assert stage.returncode == 2
    assert "stage 'prod' is not in" in stage.stderr and "(stages: dev)" in stage.stderr


def test_a_function_running_past_its_timeout_is_reported_as_timed_out(tiny_app, tmp_path):
    # The handler sleeps 30 s; the command must end after the 1 s timeout, not wait for it.
    done = cli("--project-dir", tiny_app, "--state-dir", tmp_path, "invoke", "sleepy", timeout=20)
    assert done.returncode == 1, done.stderr
    block = LAMBDA_BLOCK.search(done.stderr)
    assert block is not None, done.stderr
    assert block["billed"] == "1000" and block["memory"] == "256"
    assert "going to sleep" in block["logs"]
    timeout_line = re.compile(
        rf"^\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {block['id']} "
        r"Task timed out after 1\.00 seconds$",
        re.MULTILINE,
    )
    assert timeout_line.search(done.stderr[block.end() :])
    assert timeout_line.fullmatch(json.loads(done.stdout)["errorMessage"])


def test_remaining_time_counts_down_from_the_configured_timeout(tiny_app, tmp_path):
    done = cli("--project-dir", tiny_app, "--state-dir", tmp_path, "invoke", "clock")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # The function's own lambda_timeout is 60 s; chalice's test client would say 3,000 ms.
    assert 3000 < result["second"] < result["first"] <= 60000
    assert result["greeting"] == "hi"  # the stage's environment variables
    assert result["event"] == {}  # a lambda_function given no payload gets {}
    assert "an ephemeral embedded endpoint" in done.stderr


def test_schedules_lists_expression_description_rule_and_next_three_times(tiny_app):
    done = cli("--project-dir", tiny_app, "schedules")
    assert done.returncode == 0, done.stderr
    noon, office = done.stdout.split("\noffice  ")
    assert noon.startswith("noon  cron(0 12 * * ? *)\n  At 12:00 (UTC)\n")
    assert "rule: tiny-dev-noon-event" in noon
    assert len(re.findall(r"\d{4}-\d\d-\d\dT12:00:00Z", noon)) == 3
    assert office.startswith("cron(0/15 8-17 ? * MON-FRI *)\n")
    assert "Every 15 minutes, between 08:00 and 17:59, Monday through Friday (UTC)" in office
    assert "note: office hours" in office and "rule: tiny-dev-office-event" in office
    times = re.findall(r"\d{4}-\d\d-\d\dT(\d\d):(\d\d):00Z", office)
    assert len(times) == 3
    assert all(8 <= int(h) <= 17 and int(m) % 15 == 0 for h, m in times)


@pytest.mark.parametrize("which", ["--port", "--http-port"])
def test_up_on_a_port_in_use_fails_clearly_instead_of_hanging(tiny_app, tmp_path, which):
    routes = tiny_app / "app.py"
    routes.write_text(routes.read_text() + '\n\n@app.route("/")\ndef index():\n    return {}\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--http-port" if which == "--port" else "--port"
        done = cli(
            "--project-dir", tiny_app, "--state-dir", tmp_path, "up", which, str(port),
            other, str(free_port()), timeout=30,
        )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"127.0.0.1:{port} is in use" in done.stderr and which in done.stderr


def test_the_command_line_loads_boto3_moto_and_chalices_cli_only_for_what_needs_them():
    # `logs` and `failures` read local files: they start without the heavy imports
    # (about 0.2 s instead of 0.8 s); `invoke`, `schedules` and `up` import them on use.
    probe = (
        "import sys, chalice_loop.cli; "
        "print([m for m in ('boto3', 'moto', 'chalice.cli', 'chalice.test', 'flask') "
        "if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"

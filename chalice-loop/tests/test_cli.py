"""`chalice-loop` invoke, schedules and up's start-up checks on a throwaway app, in
subprocesses; and the public runner (``LocalLambda``) behind them, in-process."""

import json
import os
import re
import socket
import sys
import threading
from pathlib import Path

import pytest
from chalice import Chalice
from chalice_loop import LocalLambda
from loop_testing import LAMBDA_BLOCK, chalice_project, cli, free_port

TINY_APP = """
import os
import time

from chalice import Chalice, Cron

app = Chalice(app_name="tiny")


@app.lambda_function(name="sleepy")
def sleepy(event, context):
    app.log.error("going to sleep")
    time.sleep(30)  # far past the 1 s lambda_timeout
    return "woke up"


@app.lambda_function(name="clock")
def clock(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    second = context.get_remaining_time_in_millis()
    return {"first": first, "second": second, "greeting": os.environ.get("GREETING"),
            "event": event}


@app.schedule(Cron(0, 12, "*", "*", "?", "*"), name="noon")
def noon(event):
    return event.to_dict()


@app.schedule("cron(0/15 8-17 ? * MON-FRI *)", name="office", description="office hours")
def office(event):
    return None
"""

TINY_CONFIG = {
    "version": "2.0",
    "app_name": "tiny",
    "lambda_timeout": 1,
    "lambda_memory_size": 256,
    "stages": {
        "dev": {
            "environment_variables": {"GREETING": "hi"},
            "lambda_functions": {"clock": {"lambda_timeout": 60}},
        }
    },
}


@pytest.fixture
def tiny_app(tmp_path: Path) -> Path:
    return chalice_project(tmp_path / "tiny", TINY_APP, TINY_CONFIG)


# -- invoke


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


# -- schedules


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


# -- up's start-up checks


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


# -- the runner behind invoke and up, in-process (the public API)


@pytest.mark.parametrize(
    ("body", "error_type", "message"),
    [
        (lambda: {1, 2}, "Runtime.MarshalError", "Unable to marshal response: Object of type set"),
        (lambda: sys.exit(3), "SystemExit", "3"),
    ],
    ids=["unserialisable-result", "sys-exit"],
)
def test_the_runner_reports_what_lambda_would_fail_on(tiny_app, body, error_type, message):
    app = Chalice(app_name="tiny")

    @app.lambda_function(name="clock")
    def handler(event, context):
        return body()

    invocation = LocalLambda(app, "dev", str(tiny_app)).invoke("clock", {})
    assert invocation.failed and not invocation.timed_out
    document = invocation.error_document()
    assert document["errorType"] == error_type
    assert document["errorMessage"].startswith(message)
    assert invocation.logs[-1].startswith(f"[ERROR] {error_type}: {message}")


def test_call_runs_the_handler_in_this_thread_with_a_context_per_call(tiny_app, monkeypatch):
    app = Chalice(app_name="tiny")
    seen: list[tuple[str, int, int, str, str | None]] = []

    @app.lambda_function(name="clock")
    def handler(event, context):
        seen.append(
            (
                context.aws_request_id,
                context.memory_limit_in_mb,
                context.get_remaining_time_in_millis(),
                threading.current_thread().name,
                os.environ.get("GREETING"),
            )
        )
        return event

    local = LocalLambda(app, "dev", str(tiny_app))
    assert local.settings("clock") == (60, 256)  # the function's own timeout, the app's memory
    assert local.environment("clock") == {
        "GREETING": "hi",
        "AWS_LAMBDA_FUNCTION_NAME": "tiny-dev-clock",
    }
    threads = [
        threading.Thread(target=local.call, args=("clock", {"n": n}), name=f"t{n}")
        for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({request_id for request_id, *_ in seen}) == 8  # one context each
    assert {thread for *_, thread, _ in seen} == {f"t{n}" for n in range(8)}
    assert all(memory == 256 and 59_000 < left <= 60_000 for _, memory, left, _, _ in seen)
    assert {greeting for *_, greeting in seen} == {None}  # call swaps no environment
    context = local.context("clock", "0bb47628-1718-11e8-ad73-c58e72b8826c")
    assert local.call("clock", {"x": 1}, context) == {"x": 1}
    assert seen[-1][0] == "0bb47628-1718-11e8-ad73-c58e72b8826c"
    monkeypatch.setenv("GREETING", "set once")
    local.call("clock")
    assert seen[-1][-1] == "set once"
    assert local.invoke("clock", {}).error is None and seen[-1][-1] == "hi"  # invoke swaps it

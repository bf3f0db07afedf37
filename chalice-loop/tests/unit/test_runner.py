"""The public runner (``LocalLambda``) behind `chalice-loop`, in-process: what Lambda would
fail on, reported as Lambda reports it, and each call in this thread with its own context."""

import os
import sys
import threading
from pathlib import Path

import pytest
from chalice import Chalice
from chalice_loop import LocalLambda
from loop_testing import chalice_project
from sample_apps import TINY_APP, TINY_CONFIG


@pytest.fixture
def tiny_app(tmp_path: Path) -> Path:
    return chalice_project(tmp_path / "tiny", TINY_APP, TINY_CONFIG)


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

"""`chalice-loop` (invoke, up, logs, schedules) end to end, in subprocesses."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice import Chalice
from chalice_loop.lambda_runner import LocalLambda
from chalice_loop.naming import rule_name

from tests.conftest import (
    APP_NAME,
    PROJECT,
    STAGE,
    chalice_project,
    function_settings,
    object_keys,
    schedule_expression,
    seed_objects,
    stage_bucket,
)

LAMBDA_BLOCK = re.compile(
    r"START RequestId: (?P<id>[0-9a-f-]{36}) Version: \$LATEST\n"
    r"(?P<logs>(?:.*\n)*?)"
    r"END RequestId: (?P=id)\n"
    r"REPORT RequestId: (?P=id)  Duration: [\d.]+ ms  Billed Duration: (?P<billed>\d+) ms  "
    r"Memory Size: (?P<memory>\d+) MB  Max Memory Used: \d+ MB\n"
)

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
    return {"first": first, "second": second, "greeting": os.environ.get("GREETING")}


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


def env_without_aws(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, **extra}


def env_with_endpoint(endpoint: str) -> dict[str, str]:
    """The session's fake credentials and region (set by the s3_endpoint fixture)."""
    return {**os.environ, "AWS_ENDPOINT_URL_S3": endpoint}


def cli(
    *args: str | Path, env: dict[str, str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chalice_loop", *map(str, args)],
        cwd=PROJECT,
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def tiny_app(tmp_path: Path) -> Path:
    return chalice_project(tmp_path / "tiny", TINY_APP, TINY_CONFIG)


class Running:
    """A long-running CLI process whose output is collected as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chalice_loop", *args],
            cwd=PROJECT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.output += line

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(re.findall(pattern, self.output)) >= count:
                    return self.output
            if self.process.poll() is not None:
                self._reader.join(5)
                break
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} (x{count}) in output:\n{self.output}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def interrupt(self, timeout: float = 15) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdin:
            self.process.stdin.close()
        self._reader.join(5)
        if self.process.stdout:
            self.process.stdout.close()


@pytest.fixture
def running() -> Iterator[Any]:
    """Starts CLI processes; every one is stopped at teardown."""
    started: list[Running] = []

    def start(*args: str | Path, env: dict[str, str]) -> Running:
        process = Running([str(a) for a in args], env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


# -- invoke


def test_invoke_worker_prints_the_lambda_block_and_stores_the_report(
    s3_server, s3, bucket, tmp_path
):
    state = tmp_path / "state"
    payload = (PROJECT / "events" / "worker.json").read_text()
    days = {datetime.now(UTC).strftime("%Y-%m-%d")}  # before and after: midnight may fall between
    done = cli(
        "--state-dir", state, "invoke", "worker", env=env_with_endpoint(s3_server), stdin=payload
    )
    days.add(datetime.now(UTC).strftime("%Y-%m-%d"))
    assert done.returncode == 0, done.stderr
    assert f"S3: the endpoint in AWS_ENDPOINT_URL_S3 at {s3_server}" in done.stderr
    block = LAMBDA_BLOCK.search(done.stderr)
    assert block is not None, done.stderr
    assert block["memory"] == str(function_settings("worker").lambda_memory_size)
    assert "Worker Event: " in block["logs"]
    result = json.loads(done.stdout)
    assert result["key"] in {f"reports/{day}/{block['id']}.json" for day in days}
    assert result["key"] == f"reports/{result['report']['time_end'][:10]}/{block['id']}.json"
    assert object_keys(s3, bucket) == [result["key"]]
    assert (
        json.loads(s3.get_object(Bucket=bucket, Key=result["key"])["Body"].read())
        == (result["report"])
    )

    logs = cli("--state-dir", state, "logs", "-n", "worker", env=env_without_aws())
    assert logs.returncode == 0, logs.stderr
    assert "Worker Event: " in logs.stdout and "Report stored: " in logs.stdout
    assert "START RequestId" not in logs.stdout  # as `chalice logs`, unless asked
    everything = cli(
        "--state-dir", state, "logs", "--include-lambda-messages", env=env_without_aws()
    )
    assert f"worker START RequestId: {block['id']}" in everything.stdout


def test_invoke_with_a_bad_payload_exits_1_with_the_field_in_the_error_document(
    s3_server, s3, bucket, tmp_path
):
    done = cli(
        "--state-dir",
        tmp_path,
        "invoke",
        "-n",
        "worker",
        "--payload",
        '{"source_ip": "300.1.2.3"}',
        env=env_with_endpoint(s3_server),
    )
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)
    assert error["errorType"] == "InvalidEventError"
    assert error["errorMessage"].startswith("source_ip: not an IPv4 or IPv6 address")
    assert any("in parse_source_ip" in frame for frame in error["stackTrace"])
    assert not any("chalice_loop" in frame for frame in error["stackTrace"])
    assert "[ERROR] InvalidEventError: source_ip: " in done.stderr
    assert LAMBDA_BLOCK.search(done.stderr) is not None
    assert object_keys(s3, bucket) == []  # nothing written


def test_invoke_refuses_what_it_cannot_run_with_status_2(tiny_app, tmp_path):
    args = ("--project-dir", tiny_app, "--state-dir", tmp_path, "invoke")
    not_json = cli(*args, "clock", "--payload", "{oops", env=env_without_aws())
    assert not_json.returncode == 2
    assert "the payload is not valid JSON" in not_json.stderr
    unknown = cli(*args, "nope", env=env_without_aws())
    assert unknown.returncode == 2
    assert "no function named 'nope' in the app (functions: clock, noon, office, sleepy)" in (
        unknown.stderr
    )
    stage = cli(*args, "clock", "--stage", "prod", env=env_without_aws())
    assert stage.returncode == 2
    assert "stage 'prod' is not in" in stage.stderr and "(stages: dev)" in stage.stderr


def test_a_function_running_past_its_timeout_is_reported_as_timed_out(tiny_app, tmp_path):
    # The handler sleeps 30 s; the command must end after the 1 s timeout, not wait for it.
    done = cli(
        "--project-dir", tiny_app, "--state-dir", tmp_path, "invoke", "sleepy",
        env=env_without_aws(), timeout=20,
    )  # fmt: skip
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
    done = cli(
        "--project-dir", tiny_app, "--state-dir", tmp_path, "invoke", "clock",
        env=env_without_aws(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # The function's own lambda_timeout is 60 s; chalice's test client would say 3,000 ms.
    assert 3000 < result["second"] < result["first"] <= 60000
    assert result["greeting"] == "hi"  # the stage's environment variables
    assert "an ephemeral embedded S3" in done.stderr


# -- schedules


def test_schedules_lists_expression_description_rule_and_next_three_times(tiny_app):
    done = cli("--project-dir", tiny_app, "schedules", env=env_without_aws())
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


# -- up


def test_up_fire_now_cleanup_empties_the_bucket(s3_server, s3, bucket, tmp_path, running):
    seed_objects(bucket, 1500)
    up = running(
        "--state-dir", tmp_path, "up", "--fire-now", "cleanup", env=env_with_endpoint(s3_server)
    )
    output = up.wait_for(r'"deleted": 1500')
    assert f"rule {rule_name(APP_NAME, STAGE, 'cleanup')}" in output
    assert LAMBDA_BLOCK.search(output) is not None
    assert object_keys(s3, bucket) == []
    assert up.interrupt() == 0
    assert up.output.rstrip().endswith("stopped")


def test_up_serves_s3_on_its_port_fires_on_request_and_stops_on_sigint(
    tmp_path, running, app_module
):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = env_without_aws()
    up = running("--state-dir", tmp_path, "up", "--port", str(port), env=env)
    up.wait_for("Type a schedule name")
    assert f"embedded S3 (moto server) at {endpoint}" in up.output
    assert f"cleanup  {schedule_expression(app_module.app, 'cleanup')}  next " in up.output
    assert json.loads((tmp_path / "up.json").read_text())["endpoint"] == endpoint
    follow = running("--state-dir", tmp_path, "logs", "--follow", "-n", "worker", env=env)

    # `invoke` in another terminal finds the running stack's S3.
    payload = (PROJECT / "events" / "worker.json").read_text()
    done = cli("--state-dir", tmp_path, "invoke", "worker", env=env, stdin=payload)
    assert done.returncode == 0, done.stderr
    assert f"S3: the embedded S3 of `up` (pid {up.process.pid}) at {endpoint}" in done.stderr
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    bucket = stage_bucket()
    assert object_keys(s3, bucket) == [json.loads(done.stdout)["key"]]
    follow.wait_for("Worker Event: ")

    up.send("cleanup")  # fire a schedule while it runs
    up.wait_for(r'"deleted": 1,')
    assert object_keys(s3, bucket) == []

    assert up.interrupt() == 0
    assert port_is_free(port)
    assert not (tmp_path / "up.json").exists()
    assert follow.interrupt() == 0
    assert "cleanup" not in follow.output  # -n worker only


def test_up_on_a_port_in_use_fails_clearly_instead_of_hanging(tiny_app, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli(
            "--project-dir", tiny_app, "--state-dir", tmp_path, "up", "--port", str(port),
            env=env_without_aws(), timeout=30,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"127.0.0.1:{port} is in use" in done.stderr and "--port" in done.stderr


# -- the runner behind invoke and up, in-process


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

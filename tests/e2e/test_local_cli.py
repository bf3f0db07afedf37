"""This app through the installed `chalice-loop` (its CLI only): the worker invoked,
the cleanup fired by `up` (as `make up` runs it), and the reliability figure of
failing scheduled runs in `up`. The tool's own tests are in chalice-loop/tests."""

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice_loop import rule_name

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
from tests.local_cli import (
    LAMBDA_BLOCK,
    Running,
    cli,
    env_with_endpoint,
    env_without_aws,
    free_port,
    port_is_free,
)
from tests.reliability_figures import record_figures


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


# -- up


def test_up_fire_now_cleanup_empties_the_bucket(s3_server, s3, bucket, tmp_path, running):
    seed_objects(bucket, 1500)
    up = running(
        "--state-dir", tmp_path, "up", "--port", str(free_port()), "--fire-now", "cleanup",
        env=env_with_endpoint(s3_server),
    )  # fmt: skip
    output = up.wait_for(r'"deleted": 1500')
    assert f"S3: the endpoint in AWS_ENDPOINT_URL_S3 at {s3_server}" in output
    assert f"rule {rule_name(APP_NAME, STAGE, 'cleanup')}" in output
    assert LAMBDA_BLOCK.search(output) is not None
    assert object_keys(s3, bucket) == []
    assert up.interrupt() == 0
    assert up.output.rstrip().endswith("stopped")


def test_make_up_serves_s3_fires_on_request_and_stops_on_sigint(tmp_path, running, app_module):
    """`up` as `make up` runs it (the Lambda settings file), on a free port."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = env_without_aws()
    settings = "infra/lambda_settings.json"
    up = running(
        "--state-dir", tmp_path, "up", "--port", str(port), "--lambda-settings", settings, env=env
    )
    up.wait_for("Type a handler's name")
    assert f"AWS: embedded endpoint (moto server) at {endpoint}" in up.output
    assert f"buckets: s3://{stage_bucket(STAGE)}" in up.output
    expression = re.escape(schedule_expression(app_module.app, "cleanup"))
    assert re.search(rf"\n  cleanup +schedule +{expression}\n +-> next ", up.output)
    assert re.search(r"\n  worker +lambda_function ", up.output)
    config = json.loads((PROJECT / settings).read_text())["cleanup"]["EventInvokeConfig"]
    retries, age = config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]
    assert f"  cleanup  {retries} {'retry' if retries == 1 else 'retries'} after " in up.output
    assert f", max event age {age / 60:g} s ({settings})" in up.output  # cwd: PROJECT
    assert json.loads((tmp_path / "up.json").read_text())["endpoint"] == endpoint
    follow = running("--state-dir", tmp_path, "logs", "--follow", "-n", "worker", env=env)

    # `invoke` in another terminal finds the running stack's S3.
    payload = (PROJECT / "events" / "worker.json").read_text()
    done = cli("--state-dir", tmp_path, "invoke", "worker", env=env, stdin=payload)
    assert done.returncode == 0, done.stderr
    assert f"AWS: the embedded endpoint of `up` (pid {up.process.pid}) at {endpoint}" in done.stderr
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


# -- the reliability figure of `up`'s asynchronous delivery (docs/reliability.md)

FAILING_APP = """
from chalice import Chalice, Rate

app = Chalice(app_name="edges")
runs = {"flaky": 0}


@app.schedule(Rate(1, unit=Rate.DAYS), name="boom")
def boom(event):
    raise RuntimeError("the bucket is unreachable")


@app.schedule(Rate(1, unit=Rate.DAYS), name="flaky")
def flaky(event):
    runs["flaky"] += 1
    if runs["flaky"] == 1:
        raise RuntimeError("first run fails")
    return {"run": runs["flaky"]}


@app.schedule(Rate(1, unit=Rate.DAYS), name="aged")
def aged(event):
    raise RuntimeError("still failing")
"""
# Scaled by 1/100: 1.2 s; the second retry would come at 0.6 + 1.2 s.
AGED = {"EventInvokeConfig": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 120}}
ATTEMPT = re.compile(r"== (\w+): fired now, .* \(attempt (\d) of (\d), request ([0-9a-f-]{36})\)")


def test_every_failed_scheduled_run_is_retried_then_kept_none_lost(tmp_path, running):
    """The reliability table's row: each fired event either succeeded in the end or is
    in the on-failure destination, after its attempts, each with one request id."""
    config = {"version": "2.0", "app_name": "edges", "lambda_timeout": 1, "stages": {"dev": {}}}
    project = chalice_project(tmp_path / "edges", FAILING_APP, config)
    (project / "settings.json").write_text(json.dumps({"aged": AGED}))
    fire = [arg for name in ("boom", "flaky", "aged") for arg in ("--fire-now", name)]
    up = running(
        "--project-dir", project, "up", "--port", str(free_port()), "--lambda-settings",
        "settings.json", "--retry-delay-scale", "1/100", *fire, env=env_without_aws(),
    )  # fmt: skip
    up.wait_for(r"-> (RetriesExhausted|EventAgeExceeded) after", count=2)
    up.wait_for(r'"run": 2')
    assert up.interrupt() == 0
    state = project / ".local"
    logs = [json.loads(line) for line in (state / "logs.jsonl").read_text().splitlines()]
    failures = [json.loads(line) for line in (state / "failures.jsonl").read_text().splitlines()]
    attempts = [(m[1], int(m[2]), m[4]) for m in ATTEMPT.finditer(up.output)]
    per_event = {name: [a for a in attempts if a[0] == name] for name in ("aged", "boom", "flaky")}
    kept = {f["function"]: f["record"]["requestContext"] for f in failures}

    def last_attempt_ok(runs: list[tuple[str, int, str]]) -> bool:
        messages = [r["message"] for r in logs if r["request_id"] == runs[-1][2]]
        starts = [i for i, m in enumerate(messages) if m.startswith("START RequestId")]
        assert len(starts) == len(runs)
        last = messages[starts[-1] :]
        return not any(m.startswith("[ERROR]") or "Task timed out" in m for m in last)

    succeeded = {name for name, runs in per_event.items() if last_attempt_ok(runs)}
    lost = set(per_event) - kept.keys() - succeeded
    assert not lost
    record_figures(
        "scheduled runs failing in `up` (Lambda's async delivery, scaled 1/100)",
        {
            "events fired": len(per_event),
            "attempts per event": {name: len(runs) for name, runs in per_event.items()},
            "request ids per event": {
                name: len({rid for *_, rid in runs}) for name, runs in per_event.items()
            },
            "kept in the on-failure destination": {
                name: context["condition"] for name, context in sorted(kept.items())
            },
            "succeeded on a retry": sorted(succeeded),
            "events lost": len(lost),
        },
    )

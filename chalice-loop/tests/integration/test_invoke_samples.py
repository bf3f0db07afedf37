"""`invoke NAME` with no payload, in a subprocess: it sends the handler's sample event and
says so."""

import json
from pathlib import Path

import pytest
from chalice import Chalice
from loop_testing import chalice_project, cli
from sample_apps import sources_app


@pytest.fixture(scope="module")
def app() -> Chalice:
    return sources_app()


APP = """
from chalice import Chalice

app = Chalice(app_name="samples")


@app.on_s3_event(bucket="uploads", prefix="incoming/", suffix=".csv", name="on_upload")
def on_upload(event):
    return {"bucket": event.bucket, "key": event.key}
"""


def test_invoke_without_a_payload_sends_the_sample_and_says_so(tmp_path: Path):
    config = {"version": "2.0", "app_name": "samples", "stages": {"dev": {}}}
    project = chalice_project(tmp_path / "samples", APP, config)
    done = cli("--project-dir", project, "invoke", "on_upload")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "bucket": "uploads",
        "key": "incoming/chalice-loop-sample.csv",
    }
    assert (
        "(no payload: on_upload gets a sample ObjectCreated:Put event for "
        "s3://uploads/incoming/chalice-loop-sample.csv)"
    ) in done.stderr
    given = cli("--project-dir", project, "invoke", "on_upload", "--payload", "{}")
    assert given.returncode == 1  # the payload as given: chalice's S3Event needs Records
    assert json.loads(given.stdout)["errorType"] == "KeyError"

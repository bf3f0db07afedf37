"""`make run`'s script, end to end in a subprocess."""

import json
import os
import re
import subprocess
import sys

from chalice_loop import deployed_name

from chalicelib.worker_event import parse_event
from tests.conftest import APP_NAME, PROJECT, STAGE, function_settings, object_keys, stage_bucket
from tests.report_schema import check_report

RUN = ("worker", "cleanup")  # what make run invokes, in order
BUCKET = stage_bucket(STAGE)  # make run's stage is the default one

LAMBDA_BLOCK = re.compile(
    r"START RequestId: (?P<id>[0-9a-f-]{36}) Version: \$LATEST\n"
    r"(?:.*\n)*?"
    r"END RequestId: (?P=id)\n"
    r"REPORT RequestId: (?P=id)  Duration: [\d.]+ ms  Billed Duration: \d+ ms  "
    r"Memory Size: (?P<memory>\d+) MB  Max Memory Used: \d+ MB\n"
)


def run_local(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "devtools.run_local"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_local_with_its_own_embedded_s3():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = run_local(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "embedded S3 (moto server) at http://127.0.0.1:" in done.stdout
    blocks = [m["memory"] for m in LAMBDA_BLOCK.finditer(done.stdout)]
    assert blocks == [str(function_settings(f).lambda_memory_size) for f in RUN]
    assert "Worker Event: " in done.stdout
    # The report read back from S3 (the line after its heading) is a report, whatever
    # the work returned: this runs your chalicelib/work.py, as make run does.
    read_back = done.stdout.split("== Report read back from s3://", 1)[1].splitlines()[1]
    report = check_report(json.loads(read_back))
    event = parse_event(json.loads((PROJECT / "events" / "worker.json").read_text()))
    assert report["time_start"] == event.to_json()["time_start"]
    assert "after cleanup: 0 objects" in done.stdout
    documents = [json.loads(line) for line in done.stdout.splitlines() if '"_aws"' in line]
    assert [doc["FunctionName"] for doc in documents] == [
        deployed_name(APP_NAME, STAGE, f) for f in RUN
    ]
    assert (documents[1]["CleanupComplete"], documents[1]["ObjectsDeleted"]) == (1, 1)
    cleanup = deployed_name(APP_NAME, STAGE, "cleanup")
    table = f"== Metrics of cleanup: WorkerFunctions (FunctionName={cleanup})\n"
    assert table + "ObjectsDeleted            1 Count\n" in done.stdout
    assert done.stdout.rstrip().endswith("OK")


def test_run_local_uses_aws_endpoint_url_s3_when_set(s3_server, s3):
    done = run_local({**os.environ, "AWS_ENDPOINT_URL_S3": s3_server})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "embedded S3" not in done.stdout
    assert f"ready at {s3_server}" in done.stdout
    # It created the bucket on our server and left it empty.
    assert object_keys(s3, BUCKET) == []


def test_run_local_fails_when_a_step_fails(s3_server, s3):
    # Nothing listens on port 9: the first S3 call fails and so must the script.
    done = run_local({**os.environ, "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"})
    assert done.returncode == 1, done.stdout + done.stderr
    # It got as far as the bucket step (so it imported and started) and failed there,
    # with the S3 error as its last word, not an import or usage error.
    assert f"== Bucket s3://{BUCKET}" in done.stdout
    assert "OK" not in done.stdout and "ready at" not in done.stdout
    assert done.stderr.rstrip().splitlines()[-1] == (
        "botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL: "
        f'"http://127.0.0.1:9/{BUCKET}"'
    )

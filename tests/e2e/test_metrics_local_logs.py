"""The metrics and logs as the local loop shows them: the worker and the cleanup invoked
through `chalice-loop` in subprocesses, then `chalice-loop logs --json` holding the fields
Lambda would store and one valid metrics document per invocation."""

import copy
import json

from chalice_loop import deployed_name

from tests.conftest import APP_NAME, PROJECT, SCHEDULED_EVENT, STAGE
from tests.emf_schema import check_emf
from tests.local_cli import cli, env_with_endpoint, env_without_aws


def test_local_logs_json_shows_the_fields_lambda_would_store(
    s3_server, bucket, tmp_path, stand_in_project
):
    state = tmp_path / "state"
    payload = (PROJECT / "events" / "worker.json").read_text()
    env = env_with_endpoint(s3_server)
    app = ("--project-dir", stand_in_project, "--state-dir", state)
    assert cli(*app, "invoke", "worker", env=env, stdin=payload).returncode == 0
    cleanup = json.dumps(SCHEDULED_EVENT)
    assert cli(*app, "invoke", "cleanup", env=env, stdin=cleanup).returncode == 0

    shown = cli("--state-dir", state, "logs", "--json", env=env_without_aws())
    assert shown.returncode == 0, shown.stderr
    records = [json.loads(line) for line in shown.stdout.splitlines()]
    app = [r for r in records if r.get("logger") == APP_NAME]
    assert [r["message"].split(":")[0] for r in app] == ["Worker Event", "Report stored", "Cleanup"]
    assert app[0]["event"]["source_ip"] == json.loads(payload)["source_ip"]
    assert app[2]["cleanup"]["deleted"] == 1 and app[2]["cleanup"]["complete"] is True
    assert app[0]["requestId"] == app[1]["requestId"] != app[2]["requestId"]
    assert {r["functionName"] for r in app} == {
        deployed_name(APP_NAME, STAGE, f) for f in ("worker", "cleanup")
    }
    metrics = [r for r in records if "_aws" in r]
    assert [m["requestId"] for m in metrics] == [app[0]["requestId"], app[2]["requestId"]]
    for doc in metrics:
        check_emf(copy.deepcopy(doc))
    text = cli("--state-dir", state, "logs", env=env_without_aws()).stdout
    assert "Worker Event: {" in text and '"CleanupComplete":1' in text  # and as text

"""config.json as the app sees it once imported against moto: its settings, and each role
writing only its own function's log group (the rest of the configuration is checked
with no server in tests/unit/test_config.py)."""

import json

import pytest
from chalice.constants import DEFAULT_STAGE_NAME

from tests.conftest import PROJECT

CONFIG = json.loads((PROJECT / ".chalice" / "config.json").read_text())
STAGES = sorted(CONFIG["stages"])
APP = CONFIG["app_name"]
LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]


def test_app_settings(app_module):
    # chalice names the deployed functions after config.json's app_name, the app's
    # logger after app.py's: one name for both.
    assert CONFIG["app_name"] == app_module.app.app_name
    assert CONFIG["autogen_policy"] is False
    # make, make run and chalice use this stage when none is named.
    assert DEFAULT_STAGE_NAME in STAGES


@pytest.mark.parametrize("stage", STAGES)
def test_each_role_writes_only_its_own_functions_log_group(s3_endpoint, stage):
    """The group a function logs to is ``/aws/lambda/<function name>``, with the name
    ``chalice deploy`` gives it, read from chalice's own deployment graph (so renaming
    the app, a stage or a function fails here). Its role may write there, and only
    there. (``s3_endpoint``: the graph imports app.py, whose S3 client must point at
    the embedded S3 for the tests that follow.)"""
    from chalice.cli.factory import CLIFactory
    from chalice.deploy import models
    from chalice.deploy.appgraph import ApplicationGraphBuilder

    config = CLIFactory(str(PROJECT)).create_config_obj(chalice_stage_name=stage)
    graph = ApplicationGraphBuilder().build(config, stage)
    functions = [
        r if isinstance(r, models.LambdaFunction) else r.lambda_function for r in graph.resources
    ]
    assert sorted(f.function_name for f in functions) == sorted(
        f"{APP}-{stage}-{name}" for name in CONFIG["stages"][stage]["lambda_functions"]
    )
    assert {"worker", "cleanup"} <= set(CONFIG["stages"][stage]["lambda_functions"])
    for function in functions:
        document = json.loads((PROJECT / function.role.policy.filename).read_text())
        group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{function.function_name}"
        logs = [s for s in document["Statement"] if any(a.startswith("logs:") for a in s["Action"])]
        assert [sorted(s["Resource"]) for s in logs] == [[group, f"{group}:*"]]

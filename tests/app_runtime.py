"""The app's functions under the real runtime client (awslambdaric), as Lambda runs them:
the default stage's settings as chalice resolves them, and this process's environment
(pointing at the embedded S3)."""

import os
from contextlib import AbstractContextManager
from pathlib import Path

from chalice_loop import deployed_name

from tests.conftest import APP_NAME, STAGE, function_settings
from tests.runtime_api import RuntimeAPI, RuntimeProcess, lambda_runtime


def function_env(log_format: str | None, **more: str) -> dict[str, str]:
    """This process's environment (pointing at the embedded S3) and the stage's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_LAMBDA_")}
    env.update(function_settings("worker").environment_variables)
    if log_format:
        env["AWS_LAMBDA_LOG_FORMAT"] = log_format
    return env | more


def run_function(
    project: Path, function: str, env: dict[str, str]
) -> AbstractContextManager[tuple[RuntimeAPI, RuntimeProcess]]:
    """The default stage's ``function`` from ``project`` under awslambdaric, with its
    deployed name, timeout and memory as chalice resolves them."""
    settings = function_settings(function)
    return lambda_runtime(
        project,
        f"app.{function}",
        deployed_name(APP_NAME, STAGE, function),
        env,
        settings.lambda_timeout,
        memory_mb=settings.lambda_memory_size,
    )

"""What the local commands share: the project (config.json, stage, app), the AWS
endpoint they run against, and the state file through which ``invoke`` finds a
running ``up``.

``up`` always runs the embedded endpoint (moto's server) on ``--port``, for every
service; S3 is there too unless ``AWS_ENDPOINT_URL_S3`` names another S3 (used as
is, nothing created in it). ``invoke`` uses, in order: ``AWS_ENDPOINT_URL_S3``
when set (as is); else the endpoint of a running ``up`` (found through
``<state dir>/up.json``); else an ephemeral embedded endpoint that lives for that
one invocation. In an embedded S3 the stage's buckets are created: the values of
the environment variables named ``BUCKET`` or ending in ``_BUCKET`` /
``_BUCKET_NAME`` in the stage's config.
"""

import contextlib
import json
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalice import Chalice
from chalice.config import Config
from chalice.deploy.validate import ExperimentalFeatureError

from chalice_loop.async_delivery import FAILURES_FILE
from chalice_loop.embedded_s3 import (
    PortInUseError,
    embedded_aws,
    ensure_region,
    point_aws_at,
)

DEFAULT_PORT = 4572  # `up`'s embedded endpoint on 127.0.0.1 (LocalStack's old S3 port)
DEFAULT_HTTP_PORT = 8000  # `up`'s HTTP routes, as `chalice local`
STATE_FILE = "up.json"
LOG_FILE = "logs.jsonl"
_BUCKET_VARIABLE = re.compile(r"(.+_)?BUCKET(_NAME)?")


def resolve_state_dir(project_dir: Path, given: Path | None) -> Path:
    """Where logs.jsonl, failures.jsonl and up.json live: ``--state-dir``, else
    ``<project>/.local``."""
    return given or project_dir / ".local"


class UsageError(Exception):
    """Bad input to a command: reported on stderr, exit status 2, nothing run."""


@dataclass
class Project:
    project_dir: Path
    stage: str
    state_dir: Path
    config: Config
    raw_config: dict[str, Any]

    @classmethod
    def open(cls, project_dir: Path, stage: str, state_dir: Path | None = None) -> "Project":
        config_file = project_dir / ".chalice" / "config.json"
        if not (project_dir / "app.py").is_file() or not config_file.is_file():
            raise UsageError(
                f"{project_dir} is not a Chalice project (needs app.py and .chalice/config.json)"
            )
        try:
            raw = json.loads(config_file.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"{config_file}: not valid JSON: {exc}") from None
        stages = sorted(raw.get("stages", {}))
        if stage not in stages:
            raise UsageError(
                f"stage {stage!r} is not in {config_file} (stages: {', '.join(stages) or 'none'})"
            )
        from chalice.cli.factory import CLIFactory  # here: `logs` and `failures` start fast

        factory = CLIFactory(str(project_dir))
        config = factory.create_config_obj(chalice_stage_name=stage)
        return cls(project_dir, stage, resolve_state_dir(project_dir, state_dir), config, raw)

    @property
    def app_name(self) -> str:
        return self.config.app_name

    @property
    def logs_path(self) -> Path:
        return self.state_dir / LOG_FILE

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def failures_path(self) -> Path:
        """The local on-failure destination of ``up``'s asynchronous events."""
        return self.state_dir / FAILURES_FILE

    def load_app(self) -> Chalice:
        """Import app.py the way ``chalice local`` does, with the stage's environment."""
        from chalice.cli.factory import CLIFactory

        try:
            factory = CLIFactory(str(self.project_dir))
            return factory.load_chalice_app(environment_variables=self.config.environment_variables)
        except (RuntimeError, ExperimentalFeatureError) as exc:  # a SyntaxError is wrapped so
            raise UsageError(str(exc).strip()) from None

    def bucket_names(self) -> list[str]:
        stage = self.raw_config["stages"][self.stage]
        scopes = [self.raw_config, stage]
        for functions in (self.raw_config.get("lambda_functions"), stage.get("lambda_functions")):
            scopes.extend((functions or {}).values())
        names = {
            value
            for scope in scopes
            for key, value in (scope.get("environment_variables") or {}).items()
            if _BUCKET_VARIABLE.fullmatch(key) and value
        }
        return sorted(names)


def region() -> str:
    ensure_region()
    return os.environ.get("AWS_REGION") or os.environ["AWS_DEFAULT_REGION"]


def create_buckets(names: list[str]) -> None:
    import boto3

    s3 = boto3.client("s3", region_name=region())
    for name in names:
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=name)


def _answers(endpoint: str) -> bool:
    host, _, port = endpoint.removeprefix("http://").partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except (OSError, ValueError):
        return False


def running_up(state_path: Path) -> dict[str, Any] | None:
    """The state a live ``up`` wrote, or None (no file, or a stale one)."""
    try:
        state = json.loads(state_path.read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if _answers(str(state.get("endpoint", ""))) else None


def write_state(state_path: Path, target: "AwsTarget", stage: str) -> None:
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "endpoint": target.endpoint,
        "s3_endpoint": target.s3_endpoint,
        "stage": stage,
    }
    state_path.write_text(json.dumps(state))


def remove_state(state_path: Path) -> None:
    """Remove the state file if it is this process's (another `up` may have replaced it)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(state_path.read_text())["pid"] == os.getpid():
            state_path.unlink()


@dataclass(frozen=True)
class AwsTarget:
    """Where the functions' AWS calls go: the embedded endpoint for every service
    (``endpoint``), and S3 there too unless ``AWS_ENDPOINT_URL_S3`` names another."""

    endpoint: str  # the embedded endpoint, or for `invoke` with AWS_ENDPOINT_URL_S3 that S3
    s3_endpoint: str
    embedded: bool  # S3 is ours: the stage's buckets may be created in it
    origin: str  # what it is, for the user
    note: str = ""

    def describe(self) -> str:
        if self.embedded:
            text = f"AWS: {self.origin} at {self.endpoint} (S3, SQS, SNS, EventBridge)"
        elif self.endpoint != self.s3_endpoint:
            text = (
                f"S3: the endpoint in AWS_ENDPOINT_URL_S3 at {self.s3_endpoint}\n"
                f"AWS: {self.origin} at {self.endpoint} (SQS, SNS, EventBridge)"
            )
        else:
            text = f"S3: {self.origin} at {self.s3_endpoint}"
        return text + (f"\n({self.note})" if self.note else "")


def _configured_s3() -> str | None:
    """The S3 endpoint the standard AWS setting names, if any."""
    configured = os.environ.get("AWS_ENDPOINT_URL_S3")
    if configured:
        ensure_region()
    return configured or None


def _point_at(endpoint: str, s3_endpoint: str | None) -> None:
    """Every service at ``endpoint``; S3 there too unless it is elsewhere."""
    if s3_endpoint is None or s3_endpoint == endpoint:
        point_aws_at(endpoint, every_service=True)
    else:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        os.environ["AWS_ENDPOINT_URL_S3"] = s3_endpoint
        ensure_region()


@contextlib.contextmanager
def aws_for_invoke(project: Project) -> Iterator[AwsTarget]:
    """Point boto3 at what ``invoke`` uses (see the module docstring)."""
    configured = _configured_s3()
    if configured is not None:
        yield AwsTarget(configured, configured, False, "the endpoint in AWS_ENDPOINT_URL_S3")
        return
    state = running_up(project.state_path)
    if state is not None:
        endpoint = state["endpoint"]
        s3_endpoint = state.get("s3_endpoint", endpoint)
        _point_at(endpoint, s3_endpoint)
        yield AwsTarget(
            endpoint,
            s3_endpoint,
            s3_endpoint == endpoint,
            f"the embedded endpoint of `up` (pid {state['pid']})",
        )
        return
    with embedded_aws() as endpoint:
        point_aws_at(endpoint, every_service=True)
        yield AwsTarget(
            endpoint,
            endpoint,
            True,
            "an ephemeral embedded endpoint",
            "no `up` is running and AWS_ENDPOINT_URL_S3 is unset: this endpoint and what the "
            "function stores in it are gone when the command exits",
        )


@contextlib.contextmanager
def aws_for_up(port: int) -> Iterator[AwsTarget]:
    """The embedded endpoint on 127.0.0.1:``port`` for every service, S3 included
    unless ``AWS_ENDPOINT_URL_S3`` names another S3 (then used as is)."""
    configured = _configured_s3()
    with contextlib.ExitStack() as stack:
        try:
            endpoint = stack.enter_context(embedded_aws(port))
        except PortInUseError as exc:
            raise UsageError(
                f"{exc}: is another `up` running? Choose another port with --port"
            ) from None
        _point_at(endpoint, configured)
        if configured is None:
            yield AwsTarget(endpoint, endpoint, True, "embedded endpoint (moto server)")
        else:
            yield AwsTarget(endpoint, configured, False, "embedded endpoint (moto server)")

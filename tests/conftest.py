"""Shared fixtures: one embedded S3 server (moto, over real HTTP on 127.0.0.1)
for the session, reset before each test, and the app wired to it, with the
tests' own stand-in work in place of the adopter's (tests/stand_in_work.py).

Tests read the app's settings from where the app keeps them, never from a copy:
the stages, each stage's bucket, memory and timeouts through chalice's own
config (:func:`chalice_config`, :func:`function_settings`), the schedule from
the app's decorator (:func:`schedule_expression`), the deployed names through
``chalice_loop.naming``.
"""

import json
import os
import sys
import textwrap
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from chalice.app import Chalice, ScheduledEventConfig
from chalice.cli.factory import CLIFactory
from chalice.config import Config
from chalice.constants import DEFAULT_STAGE_NAME

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from chalice_loop import LocalLambda, embedded_s3, point_aws_at  # noqa: E402

from tests.stand_in_work import StandInWork  # noqa: E402

SCHEDULED_EVENT = json.loads((PROJECT / "events" / "scheduled.json").read_text())
APP_NAME = json.loads((PROJECT / ".chalice" / "config.json").read_text())["app_name"]
STAGES = tuple(sorted(json.loads((PROJECT / ".chalice" / "config.json").read_text())["stages"]))
# The stage chalice (and make, and make run) use when none is named.
STAGE = DEFAULT_STAGE_NAME


def chalice_config(stage: str = STAGE, project: Path = PROJECT) -> Config:
    """The stage's configuration as chalice reads it for ``chalice deploy``."""
    return CLIFactory(str(project)).create_config_obj(chalice_stage_name=stage)


def function_settings(function: str, stage: str = STAGE) -> Config:
    """One function's settings as chalice resolves them (``lambda_memory_size``,
    ``lambda_timeout``, ``environment_variables``: per function over the stage's
    over the top level)."""
    return chalice_config(stage).scope(stage, function)


def schedule_expression(app: Chalice, function: str) -> str:
    """The schedule the app's ``@app.schedule`` gives ``function``, as chalice deploys it
    (``rate(1 day)``, ``cron(0 3 * * ? *)``)."""
    (source,) = [
        s for s in app.event_sources if isinstance(s, ScheduledEventConfig) and s.name == function
    ]
    expression = source.schedule_expression
    return expression if isinstance(expression, str) else expression.to_string()


def chalice_project(project: Path, app_source: str, config: dict[str, Any]) -> Path:
    """A throwaway Chalice project: ``app.py`` and ``.chalice/config.json``."""
    (project / ".chalice").mkdir(parents=True)
    (project / "app.py").write_text(textwrap.dedent(app_source))
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    return project


def stage_config(stage: str = STAGE) -> dict[str, Any]:
    """The stage's section of config.json, as written."""
    config = json.loads((PROJECT / ".chalice" / "config.json").read_text())
    return config["stages"][stage]


def stage_bucket(stage: str = STAGE) -> str:
    """The stage's reports bucket: its ``BUCKET``, as chalice resolves it."""
    return chalice_config(stage).environment_variables["BUCKET"]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's server for the whole session; the app's client points at it."""
    saved = dict(os.environ)
    with embedded_s3() as endpoint:
        point_aws_at(endpoint)
        yield endpoint
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def s3_server(s3_endpoint: str) -> str:
    """A clean server: every backend reset before the test."""
    requests.post(f"{s3_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    return s3_endpoint


@pytest.fixture
def s3(s3_server: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_server)


@pytest.fixture
def bucket(s3: Any) -> str:
    """The default stage's reports bucket, created empty."""
    name = stage_bucket()
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> StandInWork:
    """The tests' own work in place of ``chalicelib.work.perform_work`` (the module the
    worker calls it through): it records the events it gets; set ``.result`` or
    ``.error`` to make it return or raise something else."""
    stand_in = StandInWork()
    monkeypatch.setattr("chalicelib.work.perform_work", stand_in)
    return stand_in


@pytest.fixture
def app_module(s3_server: str, work: StandInWork) -> Any:
    """The Chalice app module, imported once the endpoint is configured; the worker
    runs the stand-in work."""
    import app

    return app


@pytest.fixture
def chalice_client(app_module: Any) -> Iterator[Any]:
    from chalice.test import Client

    with Client(app_module.app, stage_name=STAGE, project_dir=str(PROJECT)) as client:
        yield client


@pytest.fixture(scope="session")
def stand_in_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app's deployable files copied, with the stand-in work as chalicelib/work.py:
    for tests that run the app in another process (Lambda's runtime client)."""
    from devtools.deploy.package import copy_deployable
    from tests.stand_in_work import install

    return install(copy_deployable(tmp_path_factory.mktemp("stand-in") / "project"))


@pytest.fixture
def s3_requests(app_module: Any) -> Iterator[Counter]:
    """Counts the app client's HTTP requests (retries included) by operation."""
    counts: Counter = Counter()

    def count(event_name: str, **_: Any) -> None:
        counts[event_name.rsplit(".", 1)[-1]] += 1

    events = app_module.S3.meta.events
    events.register("before-send.s3", count, unique_id="test-count")
    yield counts
    events.unregister("before-send.s3", unique_id="test-count")


def object_keys(s3: Any, bucket: str) -> list[str]:
    paginator = s3.get_paginator("list_objects_v2")
    return [
        o["Key"] for page in paginator.paginate(Bucket=bucket) for o in page.get("Contents", [])
    ]


def seed_objects(bucket: str, count: int, prefix: str = "reports/seed/") -> list[str]:
    """Put objects straight into the in-process moto backend behind the server
    (PUTs over HTTP run at ~200/s; this is instant). Requests are still counted
    only for the code under test."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    keys = [f"{prefix}{i:06d}.json" for i in range(count)]
    for key in keys:
        backend.put_object(bucket, key, b"{}")
    return keys


@pytest.fixture
def lambda_handler(app_module: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Call the app's registered handlers in this process, safe from many threads.

    Not Lambda's runtime: the handler chalice registered is called directly, so
    tests can count and fault the app's own S3 client and drive it from threads
    or hypothesis; tests/e2e/test_lambda_runtime.py and tests/e2e/test_package.py run the
    functions under awslambdaric. ``chalice.test.Client`` swaps ``os.environ``
    around every invoke, which races between threads; here the default stage's
    environment is set once for the test, and each call gets its own
    ``LambdaContext`` from ``LocalLambda.context`` (its own request id, the
    stage's timeout and memory size) through ``LocalLambda.call``.
    """
    local = LocalLambda(app_module.app, stage=STAGE, project_dir=str(PROJECT))
    for name, value in local.config.environment_variables.items():
        monkeypatch.setenv(name, value)

    def invoke(function_name: str, payload: Any, request_id: str | None = None) -> Any:
        request_id = str(uuid.uuid4()) if request_id is None else request_id
        return local.call(function_name, payload, local.context(function_name, request_id))

    return invoke


def age_objects(bucket: str, keys: list[str], age: timedelta) -> None:
    """Backdate objects' LastModified in the in-process moto backend (S3 has no API for it)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    when = datetime.now(UTC).replace(tzinfo=None) - age  # moto keeps naive UTC times
    for key in keys:
        backend.get_object(bucket, key).last_modified = when


@pytest.fixture
def counted_requests(app_module: Any) -> Iterator[Any]:
    """The app client's HTTP requests by operation (``.counts``), counted safely across
    threads (the cleanup deletes from a pool), with the hook the benchmark uses."""
    from bench.instrument import RequestCounter

    counter = RequestCounter().attach(app_module.S3)
    yield counter
    counter.detach(app_module.S3)


@pytest.fixture(scope="session")
def s3_child() -> Iterator[Any]:
    """moto's server in a child process (``bench.s3_host.MotoChild``), for tests about
    time: its CPU is not this process's and it holds no share of this process's GIL.
    ``.endpoint`` is its URL; ``.seed(None, bucket, count, prefix)`` puts objects."""
    from bench.s3_host import MotoChild

    child = MotoChild()
    yield child
    child.close()


@pytest.fixture
def s3_child_endpoint(s3_child: Any, s3_endpoint: str) -> str:
    """The child's URL, its backend reset (credentials and region come from ``s3_endpoint``)."""
    requests.post(f"{s3_child.endpoint}/moto-api/reset", timeout=10).raise_for_status()
    return s3_child.endpoint


def assert_every_listed_key_accounted(
    summary: dict[str, Any], failures: list[Any], remaining: set[str], attempted_all: bool
) -> None:
    """The cleanup's guarantee, given the due keys still in the bucket (``remaining``).

    The run listed every key outside the ranges of its summary's ``unlisted``. Due
    keys it listed that are still there number exactly ``remaining_at_least`` (the
    due keys not deleted, failures included), and every failed key is among them; a
    failed key may be gone only if its request's outcome was unknown (answer lost,
    5xx), and then it is not counted as remaining either. With ``attempted_all`` (no
    deadline stopped the sending) they are exactly the failures. Keys in the unlisted
    ranges are left only by a run that says it is incomplete.
    """
    from chalicelib.cleanup import KeyRange

    unlisted = [KeyRange.from_json(r) for r in summary["unlisted"]]
    listed_left = {k for k in remaining if not any(k in r for r in unlisted)}
    failed = {f.key for f in failures}
    unknown_gone = {f.key for f in failures if f.outcome_unknown} - remaining
    assert summary["failed"] == len(failures)
    assert failed - unknown_gone <= listed_left, "a key reported failed is not in the bucket"
    assert len(listed_left) == summary["remaining_at_least"] - len(unknown_gone)
    if attempted_all:
        assert listed_left == failed - unknown_gone, "a listed key left unreported"
    if remaining - listed_left or unlisted:
        assert summary["complete"] is False, "keys not listed, yet complete"

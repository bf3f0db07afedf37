"""How ``make test`` runs: the order it hands test files to its workers, and its GC.

The longest files go first.

``pytest -n N --dist loadfile --no-loadscope-reorder`` gives each worker whole
files, in the order they were collected, so a long file collected last keeps one
worker busy after the others have finished. The files below (the longest,
measured in docs/testing.md) go first; every other file follows in its collected
order. Nothing depends on the order: each file sets up what it needs.

Once collected, every object the imports made (boto3's and moto's service models,
the tests themselves) lives until the run ends, yet each full pass of the cycle
collector walked them all again. They are frozen out of its reach after collection
(:func:`gc.freeze`): the collector's share of a run fell from about 20 to 16
CPU-seconds. What the tests make is collected as before.
"""

import gc

import pytest

LONGEST_FIRST = (
    "tests/integration/test_reliability.py",
    "tests/e2e/test_load.py",
    "tests/integration/test_least_privilege.py",
    "tests/integration/test_cleanup.py",
    "tests/e2e/test_deploy_rehearsal.py",
    "tests/integration/test_cleanup_slow_server.py",
    "chalice-loop/tests/integration/test_event_sources.py",
    "tests/e2e/test_fuzz.py",
    "tests/e2e/test_local_cli.py",
    "tests/unit/test_cleanup_guarantee.py",
    "tests/integration/test_cleanup_scale.py",
    "tests/integration/test_cleanup_guarantee.py",
    "chalice-loop/tests/e2e/test_lambda_slice.py",
    "tests/e2e/test_lambda_runtime.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def pytest_collection_finish(session: pytest.Session) -> None:
    gc.collect()
    gc.freeze()

"""Load: 1,000 worker invocations, 16 at a time, through the real handler against
the local S3 server, with the cleanup running alongside.

Concurrency: ``chalice.test.Client`` swaps ``os.environ`` around each invoke,
which is not thread-safe, so the stage's environment (``BUCKET``, and here
``CLEANUP_MAX_AGE``) is set once before any thread starts and each thread calls
the registered handler (``app.handler_map[name]``) with its own
``LambdaContext`` and request id (the ``lambda_handler`` fixture). The threads
share the app's one S3 client, which botocore documents as thread-safe; on
Lambda each concurrent invocation would have its own container and client.
"""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import SCHEDULED_EVENT, age_objects, object_keys, seed_objects
from tests.reliability_figures import record_figures
from tests.report_schema import check_report

INVOCATIONS = 1000
CONCURRENCY = 16
OLD_OBJECTS = 3000
START = "2018-02-21T15:00:43.511Z"

pytestmark = pytest.mark.slow


def test_1000_invocations_16_at_a_time_lose_nothing_beside_a_running_cleanup(
    lambda_handler, s3, bucket, monkeypatch
):
    # The cleanup keeps what is younger than an hour: it must delete the old
    # objects and none of the reports written while it runs.
    monkeypatch.setenv("CLEANUP_MAX_AGE", "PT1H")
    old = seed_objects(bucket, OLD_OBJECTS, prefix="reports/2026-01-01/")
    age_objects(bucket, old, timedelta(days=2))

    cleanups: list[dict[str, Any] | Exception] = []
    load_done = threading.Event()

    def cleanup_while_loaded() -> None:
        while True:
            last = load_done.is_set()
            try:
                cleanups.append(lambda_handler("cleanup", SCHEDULED_EVENT))
            except Exception as exc:
                cleanups.append(exc)
            if last:
                return  # one full run after the load ended

    def invoke(i: int) -> tuple[str, dict[str, Any] | Exception]:
        request_id = str(uuid.uuid4())
        payload = {"source_ip": f"198.51.{i // 256}.{i % 256}", "time_start": START}
        try:
            return request_id, lambda_handler("worker", payload, request_id)
        except Exception as exc:
            return request_id, exc

    cleaner = threading.Thread(target=cleanup_while_loaded)
    started = time.monotonic()
    cleaner.start()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(invoke, range(INVOCATIONS)))
    load_s = time.monotonic() - started
    load_done.set()
    cleaner.join()

    errors = [(rid, r) for rid, r in results if isinstance(r, Exception)]
    assert errors == []
    stored = {rid: r for rid, r in results if isinstance(r, dict)}
    assert len(stored) == INVOCATIONS  # distinct request ids
    assert all(r["key"].endswith(f"/{rid}.json") for rid, r in stored.items())

    failed_cleanups = [c for c in cleanups if isinstance(c, Exception)]
    assert failed_cleanups == []
    summaries = [c for c in cleanups if isinstance(c, dict)]
    assert len(summaries) >= 2  # at least one during the load and one after
    assert sum(s["deleted"] for s in summaries) == OLD_OBJECTS

    keys = object_keys(s3, bucket)
    assert sorted(keys) == sorted(r["key"] for r in stored.values())  # none lost, none extra
    ids = [key.rsplit("/", 1)[-1] for key in keys]
    assert len(set(ids)) == len(ids)  # one report per request id

    def read(key: str) -> Any:
        return check_report(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        bodies = dict(zip(keys, pool.map(read, keys), strict=True))
    unreadable = [r["key"] for r in stored.values() if bodies[r["key"]] != r["report"]]
    assert unreadable == []
    record_figures(
        "load: 1,000 worker invocations, 16 at a time, cleanup alongside",
        {
            "invocations": INVOCATIONS,
            "concurrency": CONCURRENCY,
            "succeeded": len(stored),
            "reports in bucket": len(keys),
            "reports lost": len(set(stored) - {i.removesuffix(".json") for i in ids}),
            "duplicate reports": len(ids) - len(set(ids)),
            "unreadable or wrong reports": len(unreadable),
            "cleanup runs failed": len(failed_cleanups),
            "old objects deleted by the cleanups": sum(s["deleted"] for s in summaries),
        },
        measured={  # timing: varies from run to run
            "cleanup runs": len(summaries),
            "wall s": round(load_s, 1),
            "invocations per s": round(INVOCATIONS / load_s),
        },
    )

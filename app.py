"""Worker functions: a worker invoked by hand that stores a report in S3,
and a cleanup scheduled every day that empties the bucket.

A port of the Go/SAM "worker functions" design to Python on AWS Chalice.
"""

import logging
from typing import Any

from chalice import Chalice, Rate
from chalice.app import CloudWatchEvent

from chalicelib.cleanup import run_cleanup
from chalicelib.s3 import make_client
from chalicelib.settings import bucket_name
from chalicelib.worker import run_worker

app = Chalice(app_name="worker-functions")
app.log.setLevel(logging.INFO)

# Created once per container, during Lambda's init phase, and reused.
S3 = make_client()


@app.lambda_function(name="worker")
def worker(event: Any, context: Any) -> dict[str, Any]:
    """Invoked by hand with a custom event: do the work, store a report."""
    return run_worker(S3, event, context.aws_request_id, app.log)


@app.schedule(Rate(1, unit=Rate.DAYS), name="cleanup")
def cleanup(event: CloudWatchEvent) -> dict[str, int]:
    """Every day: empty the reports bucket."""
    return run_cleanup(S3, bucket_name(), app.log)

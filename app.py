"""Worker functions: a worker invoked by hand that stores a report in S3,
and a cleanup scheduled every day that empties the bucket.

A port of the Go/SAM "worker functions" design to Python on AWS Chalice.
"""

import logging
from typing import Any

from chalice import Chalice, Rate
from chalice.app import CloudWatchEvent

from chalicelib.cleanup_event import dry_run_requested
from chalicelib.invocation import observed
from chalicelib.log_format import configure_app_log
from chalicelib.log_safety import keep_credentials_out_of_logs
from chalicelib.metrics import cleanup_metrics, cleanup_properties, worker_metrics
from chalicelib.s3 import make_client
from chalicelib.settings import bucket_name, cleanup_max_age
from chalicelib.worker import run_worker

app = Chalice(app_name="worker-functions")
app.log.setLevel(logging.INFO)
configure_app_log(app.log)  # JSON records under Lambda's JSON log format, else text
keep_credentials_out_of_logs()  # even if the runtime's log level is DEBUG

# Created once per container, during Lambda's init phase, and reused.
S3 = make_client()


@app.lambda_function(name="worker")
@observed(worker_metrics)
def worker(event: Any, context: Any) -> dict[str, Any]:
    """Invoked by hand with a custom event: do the work (chalicelib/work.py), store a report."""
    return run_worker(S3, event, context.aws_request_id, app.log)


@app.schedule(Rate(1, unit=Rate.DAYS), name="cleanup")
@observed(cleanup_metrics, cleanup_properties)
def cleanup(event: CloudWatchEvent) -> dict[str, Any]:
    """Every day: delete the reports older than CLEANUP_MAX_AGE (default: all) before
    the deadline. By hand, ``detail: {"dry_run": true}`` only counts them."""
    # Imported here, not at the top: the worker's cold start does not compile the cleanup.
    from chalicelib.cleanup import CleanupOptions, run_cleanup

    bucket = bucket_name()
    options = CleanupOptions(cleanup_max_age(), dry_run_requested(event.detail))
    return run_cleanup(S3, bucket, app.log, options, event.context.get_remaining_time_in_millis)

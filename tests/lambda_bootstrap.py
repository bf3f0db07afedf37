"""Invoke one handler from an unpacked deployment.zip the way Lambda's Python
runtime does: import ``<module>.<function>`` from the code directory, call it
with the event and a context object, print the result as JSON.

Run with ``python -S -I`` (no site-packages, no PYTHONPATH) so the import path
is only what is given here: the code directory and a directory holding the
libraries the Lambda runtime provides (boto3 and its dependencies).

    python -S -I lambda_bootstrap.py CODE_DIR LIBS_DIR HANDLER EVENT_FILE REQUEST_ID TIMEOUT_S

Prints one JSON line: ``{"result": ..., "modules": {name: file or null}}``, or
Lambda's error document ``{"errorType", "errorMessage"}`` with exit status 1.
"""

import importlib
import importlib.util
import json
import os
import sys
import time

# Where each import resolves from (None: not importable) after the handler ran.
PROBES = ("chalice", "chalice.cli", "boto3", "botocore", "moto", "pytest", "devtools", "tests")


class LambdaContext:
    """The attributes and method of Lambda's Python context object."""

    def __init__(self, function_name: str, request_id: str, timeout_s: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.aws_request_id = request_id
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        region = os.environ["AWS_REGION"]
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def origin(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None
    return spec.origin if spec else None


def main() -> int:
    code_dir, libs_dir, handler, event_file, request_id, timeout_s = sys.argv[1:]
    sys.path[:0] = [code_dir, libs_dir]
    os.chdir(code_dir)  # Lambda runs in /var/task, where the zip is unpacked
    module_name, function_name = handler.rsplit(".", 1)
    with open(event_file) as f:
        event = json.load(f)
    context = LambdaContext(os.environ["AWS_LAMBDA_FUNCTION_NAME"], request_id, int(timeout_s))
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        result = function(event, context)
    except Exception as exc:
        print(json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}))
        return 1
    print(json.dumps({"result": result, "modules": {name: origin(name) for name in PROBES}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

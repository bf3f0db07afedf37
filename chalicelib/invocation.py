"""What every invocation does around its handler: time it, emit its metrics
document (on failure too), and end the sandbox's cold start."""

import functools
import time
from collections.abc import Callable
from typing import Any

from chalicelib.log_format import SANDBOX
from chalicelib.metrics import Metric, document, emit

Measure = Callable[[Any, BaseException | None, float], list[Metric]]
Describe = Callable[[Any, BaseException | None], dict[str, Any]]


def _request_id(args: tuple[Any, ...]) -> str:
    """From the Lambda context: ``(event, context)``, or a Chalice event carrying ``.context``."""
    context = args[-1] if hasattr(args[-1], "aws_request_id") else getattr(args[0], "context", None)
    return str(getattr(context, "aws_request_id", ""))


def observed(
    measure: Measure, describe: Describe | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a handler so each invocation writes one EMF document from ``measure``,
    with the request id and what ``describe`` adds as plain properties."""

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def invocation(*args: Any) -> Any:
            started = time.monotonic()
            result: Any = None
            error: BaseException | None = None
            try:
                result = handler(*args)
                return result
            except BaseException as exc:
                error = exc
                raise
            finally:
                elapsed_ms = (time.monotonic() - started) * 1000
                properties = {"requestId": _request_id(args)}
                properties.update(describe(result, error) if describe else {})
                emit(document(measure(result, error, elapsed_ms), properties))
                SANDBOX.invocation_ended()

        return invocation

    return decorate

"""Fault mixes the reliability scenarios use, shared with the unit tests of the proxy's draws."""

from tests.faultproxy import Fault

PUT = frozenset({"PutObject"})

WORKER_FAULTS = [  # the worker scenario's mix: 30 % of requests, mixed kinds
    Fault("slowdown", 0.08, PUT),
    Fault("internal", 0.04, PUT),
    Fault("internal", 0.04, PUT, after=True),
    Fault("reset", 0.04, PUT),
    Fault("reset", 0.04, PUT, after=True),
    Fault("delay", 0.04, PUT, seconds=0.2),
    # Hangs until the client gives up (its read timeout); answers anyway only at the
    # function timeout (set in the test), when Lambda would have killed the invocation.
    Fault("hang", 0.02, PUT, after=True),
]

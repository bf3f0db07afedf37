"""Hostile event fields (path tricks, forged log lines, escapes, 64 KiB), shared by the
log-safety tests in-process (tests/integration) and under the runtime client (tests/e2e)."""

from typing import Any

import pytest

MARK = "INJECTED"  # follows every control sequence below, to find it if it lands raw
HOSTILE = {
    "dot-dot": f"../../{MARK}/../prod/x",
    "encoded-slash": f"..%2F..%2F{MARK}%2Fx",
    "newline": f"2018-02-21T15:00:43Z\n[INFO] {MARK} forged line\r\n",
    "ansi": f"\x1b[2J\x1b[31m{MARK}\x1b[0m",
    "64KiB": MARK + "a" * (64 * 1024),
    # IPv6 scope ids are free text to Python's ipaddress (fe80::1%eth0); the worker refuses them.
    "scoped-ipv6": f"fe80::1%\n\x1b[31m{MARK}..%2F..",
    "scoped-ipv6-64KiB": "fe80::1%" + MARK + "b" * (60 * 1024),
}
FIELDS = ["source_ip", "time_start", "time_end", "bucket", "key", f"../{MARK}\n"]


def hostile_events() -> list[Any]:
    cases = []
    for name, value in HOSTILE.items():
        for field in FIELDS:
            cases.append(pytest.param({field: value}, id=f"{field.strip()}={name}"))
        cases.append(pytest.param({"source_ip": "::1", "time_start": value}, id=f"mixed={name}"))
    return cases

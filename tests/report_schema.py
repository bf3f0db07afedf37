"""The stored report's JSON Schema (chalicelib/reports.py), as a check for tests.

A report is read back as a report: the event's fields as the worker stores them
(normalised: an IP address, UTC times with milliseconds and ``Z``), ``time_end``
always set, and the work's ``result``, any JSON object. Nothing else.
"""

import ipaddress
from typing import Any

import jsonschema

TIME = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["source_ip", "time_start", "time_end", "result"],
    "additionalProperties": False,
    "properties": {
        "source_ip": {"anyOf": [{"type": "null"}, {"type": "string", "format": "ip-address"}]},
        "time_start": {"anyOf": [{"type": "null"}, TIME]},
        "time_end": TIME,
        "result": {"type": "object"},
    },
}


def check_report(document: Any) -> dict[str, Any]:
    """Raise ``jsonschema.ValidationError`` unless ``document`` is a stored report;
    return it."""
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(document))
    if error is not None:
        raise error
    return document


def _ip_address(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return str(ipaddress.ip_address(value)) == value  # and in canonical form
    except ValueError:
        return False


_FORMATS = jsonschema.FormatChecker()
_FORMATS.checks("ip-address")(_ip_address)
# Checked and built once: ``jsonschema.validate`` checks the schema itself on every
# call, which cost more than the reports it checked.
jsonschema.Draft202012Validator.check_schema(REPORT_SCHEMA)
_VALIDATOR = jsonschema.Draft202012Validator(REPORT_SCHEMA, format_checker=_FORMATS)

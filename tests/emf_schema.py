"""The CloudWatch Embedded Metric Format specification, as a check for our documents.

From https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
JSON Schema holds the shape (``_aws`` with an integer millisecond ``Timestamp``
and ``CloudWatchMetrics`` directives: ``Namespace``, ``Dimensions`` as arrays of
at most 30 names, at most 100 ``Metrics`` with a ``Unit`` from CloudWatch's list);
:func:`check_emf` adds what JSON Schema cannot say: every dimension and metric a
directive names is a top-level member, dimension values are strings and metric
values numbers (or arrays of at most 100 numbers).
"""

from typing import Any

import jsonschema

UNITS = [
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
]  # fmt: skip
NAME = {"type": "string", "minLength": 1, "maxLength": 255}

EMF_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "additionalProperties": False,
                        "properties": {
                            "Namespace": NAME,
                            "Dimensions": {
                                "type": "array",
                                "items": {"type": "array", "items": NAME, "maxItems": 30},
                            },
                            "Metrics": {
                                "type": "array",
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "Name": NAME,
                                        "Unit": {"enum": UNITS},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}
_NUMBER = (int, float)
# Checked and built once (``jsonschema.validate`` checks the schema on every call).
jsonschema.Draft202012Validator.check_schema(EMF_SCHEMA)
_VALIDATOR = jsonschema.Draft202012Validator(EMF_SCHEMA)


def check_emf(doc: dict[str, Any]) -> None:
    """Raises ``jsonschema.ValidationError`` or ``AssertionError`` where ``doc`` breaks the spec."""
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(doc))
    if error is not None:
        raise error
    for directive in doc["_aws"]["CloudWatchMetrics"]:
        for dimension in {name for names in directive["Dimensions"] for name in names}:
            assert isinstance(doc.get(dimension), str), (
                f"dimension {dimension}: {doc.get(dimension)!r}"
            )
        for metric in directive["Metrics"]:
            value = doc.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            assert 0 < len(values) <= 100, f"metric {metric['Name']}: {value!r}"
            for v in values:
                ok = isinstance(v, _NUMBER) and not isinstance(v, bool)
                assert ok, f"metric {metric['Name']}: {value!r}"

"""Configuration read from the function's environment."""

import os


class ConfigurationError(RuntimeError):
    """The function is deployed without a setting it needs."""


def bucket_name() -> str:
    """The reports bucket, from ``BUCKET`` (set per stage in config.json)."""
    name = os.environ.get("BUCKET", "").strip()
    if not name:
        raise ConfigurationError(
            "BUCKET is not set: set environment_variables.BUCKET for this stage "
            "in .chalice/config.json (or export BUCKET when running locally)"
        )
    return name

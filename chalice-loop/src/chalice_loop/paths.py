"""Paths as the user should see them: relative to the current directory when under it."""

import os
from pathlib import Path


def shown(path: Path) -> str:
    """``path`` relative to the working directory if it is under it, else as it is."""
    try:
        return str(Path(path).resolve().relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return str(path)

"""The stable import point for tests that need the deployment package.

``package_app(stage, out_dir, merge_template=None) -> out_dir`` runs
``chalice package`` offline on a clean copy of the project's deployable files
and returns the directory holding ``sam.json`` and ``deployment.zip``; the
implementation (shared with ``make package``) is in ``devtools/package.py``.
"""

from devtools.merge_template import write_merge_template
from devtools.package import copy_deployable, package_app

__all__ = ["copy_deployable", "package_app", "write_merge_template"]

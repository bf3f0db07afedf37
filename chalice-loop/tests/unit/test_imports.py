"""The package's code imports nothing but the standard library and its declared
dependencies (read from its source, nothing run)."""

import ast
import sys
from pathlib import Path

import chalice_loop

PACKAGE = Path(chalice_loop.__file__).resolve().parent
DEPENDENCIES = {"chalice", "boto3", "botocore", "moto", "awslambdaric", "aws_croniter",
                "cron_descriptor", "chalice_loop"}  # fmt: skip


def imported_roots(source: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_package_imports_only_the_standard_library_and_its_dependencies():
    sources = sorted(PACKAGE.glob("*.py"))
    assert len(sources) > 10
    for source in sources:
        foreign = imported_roots(source) - set(sys.stdlib_module_names) - DEPENDENCIES
        assert not foreign, f"{source.name} imports {foreign}"

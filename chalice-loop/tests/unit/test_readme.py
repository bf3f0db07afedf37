"""The README's commands still exist: each `chalice-loop ...` it shows parses, the apps
and files it names are in this folder, and it shows no path of the machine it ran on.
Its examples run from the folder above this one (``chalice-loop/examples/...``)."""

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from chalice_loop import build_parser

FOLDER = Path(__file__).resolve().parents[2]
README = FOLDER / "README.md"


def console_commands() -> list[str]:
    blocks = re.findall(r"```console\n(.*?)```", README.read_text(), re.DOTALL)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def tool_invocations() -> list[list[str]]:
    found = []
    for command in console_commands():
        for part in re.split(r"\s*(?:;|&&|\|)\s*", command):
            words = shlex.split(part)
            if words and words[0].endswith("bin/chalice-loop") and "--help" not in words:
                found.append(words[1:])
    return found


def in_folder(path: str) -> Path:
    """A path the README names from the folder above this one."""
    assert path.startswith("chalice-loop/"), path
    return FOLDER / path.removeprefix("chalice-loop/")


def test_the_readme_shows_each_command():
    shown = {build_parser().parse_args(args).command for args in tool_invocations()}
    assert shown == {"up", "invoke", "logs", "failures", "schedules"}


@pytest.mark.parametrize("args", tool_invocations(), ids=" ".join)
def test_each_chalice_loop_command_parses_and_names_an_app_here(args):
    with contextlib.redirect_stderr(io.StringIO()) as errors:
        try:
            parsed = build_parser().parse_args(args)
        except SystemExit:
            pytest.fail(errors.getvalue())
    project = in_folder(str(parsed.project_dir))
    assert (project / "app.py").is_file() and (project / ".chalice" / "config.json").is_file()
    settings = getattr(parsed, "lambda_settings", None)
    assert settings is None or (project / settings).is_file()


def test_files_the_commands_read_are_here_and_no_machine_path_is_shown():
    text = README.read_text()
    for path in re.findall(r"(?:file://|\s)(chalice-loop/examples/[\w./-]+)", text):
        assert in_folder(path.rstrip(".")).exists(), path
    assert not re.search(r"(?<![\w.])/(?:work|tmp|root|home|Users)/", text)

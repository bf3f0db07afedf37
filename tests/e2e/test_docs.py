"""Docs that cannot rot: what the pages tell a user to type still exists.

Pages: README.md, SECURITY.md, BENCHMARKS.md and docs/*.md. Nothing is run:
targets are read from make's database, flags are checked by the tools' own
argparse parsers, paths by the file system.

- **make targets.** In every ```console block, each command line (``$ ...``)
  that runs ``make`` names only targets with a rule in the Makefile, read from
  ``make -pq`` (make's database; ``-q`` runs no recipe).
- **tool commands.** In every console block, command lines and the lines
  make echoes, each ``chalice-loop ...`` (any path, ``.venv/bin/chalice-loop``),
  ``python -m chalice_loop ...`` and ``python -m devtools.<package>.<module> ...``
  (any ``python``, ``.venv/bin/python``, ...) is parsed by that module's
  ``build_parser()`` (``chalice-loop``'s is the public ``chalice_loop.build_parser``). A flag,
  subcommand or choice it refuses fails.
- **paths.** A repo path is a token holding a ``/`` that is relative and
  concrete: no scheme (``s3://``, ``https://``), not absolute or under ``~``,
  no placeholder (``<stage>``, ``{...}``, ``$VAR``), not leaving the repository
  (``../``), and not generated (``out/``, ``.local/``, ``.venv/``,
  ``__pycache__``). Tokens are taken from console command lines (redirection
  targets included), from inline code that is one token in
  README.md and docs/*.md, and from relative markdown links (resolved from the
  page's folder; the rest from the repository root). Each must exist; a ``*``
  must match something. Paths outside this repository that the pages name on
  purpose (inside the deployment zip or an installed package) start with one of
  ``FOREIGN_ROOTS``. A link's ``#anchor`` must name a heading of its page.
- **copy and run.** What a page shows runs from a fresh clone of this repository:
  no relative link or path leaves it (``../...``), no console line holds a
  machine's absolute path (``/work/...``, ``/tmp/...``, ``/home/...``: see
  ``LOCAL_ROOTS``), and no console command runs a bare ``python`` or ``pip``,
  which lacks the dependencies: ``.venv/bin/python`` or a make target does.
"""

import argparse
import contextlib
import importlib
import io
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
FOREIGN_ROOTS = ("chalice/", "moto/", "botocore/", "boto3/")
GENERATED = ("out/", ".local/", ".venv/")
PYTHON_M = re.compile(
    r"(?:^|[\s;|&(])(?:\S*/)?python3?(?:\.\d+)? -m (devtools(?:\.[\w.]+)?|chalice_loop)(.*)$"
)
CHALICE_LOOP = re.compile(r"(?:^|[\s;|&(])(?:\S*/)?(chalice-loop)((?:\s.*)?)$")
SHELL_OPERATORS = {";", "|", "||", "&&", "&", "(", ")"}
# Where a machine's own files live: no page can assume a reader has them.
LOCAL_ROOTS = (
    "work",
    "tmp",
    "root",
    "home",
    "Users",
    "private",
    "mnt",
    "srv",
    "opt",
    "var/folders",
)
LOCAL_PATH = re.compile(rf"(?<![\w:/.~-])/(?:{'|'.join(LOCAL_ROOTS)})(?=/|\b)")
PATH_TOKEN = re.compile(r"[^\s'\"\\,;)]*")  # the path from where it starts
BARE_TOOL = re.compile(r"(?:python|pip)(?:3(?:\.\d+)?)?")


def pages() -> list[Path]:
    root = [PROJECT / name for name in ("README.md", "SECURITY.md", "BENCHMARKS.md")]
    return [p for p in root if p.exists()] + sorted((PROJECT / "docs").glob("*.md"))


@dataclass(frozen=True)
class Line:
    page: Path
    number: int
    text: str

    def where(self) -> str:
        page = self.page.relative_to(PROJECT) if self.page.is_relative_to(PROJECT) else self.page
        return f"{page}:{self.number}"


def console_lines(page: Path) -> list[Line]:
    """The lines inside ```console fences."""
    lines, inside = [], False
    for number, text in enumerate(page.read_text().splitlines(), 1):
        if text.startswith("```"):
            inside = not inside and text.strip() == "```console"
        elif inside:
            lines.append(Line(page, number, text))
    return lines


def prose_lines(page: Path) -> list[Line]:
    """The lines outside any fence."""
    lines, inside = [], False
    for number, text in enumerate(page.read_text().splitlines(), 1):
        if text.startswith("```"):
            inside = not inside
        elif not inside:
            lines.append(Line(page, number, text))
    return lines


def command(line: Line) -> str | None:
    """The command of a ``$ ...`` line, else None."""
    return line.text[2:] if line.text.startswith("$ ") else None


def simple_commands(text: str) -> list[list[str]]:
    """A shell line as its simple commands (argv lists), without comments or
    redirections (``< file`` and ``2>/dev/null`` are dropped with their target)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    commands, argv, skip_next = [], [], False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token in SHELL_OPERATORS:
            commands.append(argv)
            argv = []
        elif re.fullmatch(r"[<>]+&?", token):
            skip_next = True
            if argv and argv[-1].isdigit():  # the 2 of 2>
                argv.pop()
        else:
            argv.append(token)
    commands.append(argv)
    return [c for c in commands if c]


def words(text: str) -> list[str]:
    """Every word of a shell line, redirection targets included."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    return [token for token in lexer if not re.fullmatch(r"[;&|()<>]+", token)]


def make_invocations(argv: list[str]) -> list[str] | None:
    """The targets of a ``[VAR=value ...] [time] make ...`` command, else None."""
    words = list(argv)
    while words and (re.fullmatch(r"\w+=.*", words[0]) or words[0] == "time"):
        words.pop(0)
    if not words or words[0] != "make":
        return None
    return [w for w in words[1:] if not w.startswith("-") and "=" not in w]


@pytest.fixture(scope="module")
def make_targets() -> set[str]:
    """Every target make's database for the Makefile gives a recipe or a
    prerequisite (nothing is run). A name only listed in .PHONY has neither:
    `make NAME` would do nothing, so it does not count."""
    database = subprocess.run(
        ["make", "-pq", "-C", str(PROJECT), "--no-print-directory"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout
    targets = set()
    for entry in database.split("\n\n"):
        lines = entry.strip("\n").splitlines()
        if not lines or lines[0] == "# Not a target:":
            continue
        match = re.match(r"^([^\s#:=][^:=]*?):(?!=)(.*)$", lines[0])
        if match and (match.group(2).strip() or any(x.startswith("\t") for x in lines[1:])):
            targets.update(match.group(1).split())
    return targets


def parser_for(module: str) -> argparse.ArgumentParser:
    """The argparse parser of a ``python -m`` module, without running it."""
    name = "chalice_loop" if module in ("chalice-loop", "chalice_loop") else module
    builder = getattr(importlib.import_module(name), "build_parser", None)
    if builder is None:
        raise LookupError(f"{name} has no build_parser()")
    return builder()


def refusal(module: str, args: list[str]) -> str | None:
    """Why the module's parser refuses ``args``, or None if it accepts them."""
    try:
        parser = parser_for(module)
    except (ImportError, LookupError) as exc:
        return f"python -m {module}: {exc}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as exc:
        if exc.code:
            return stderr.getvalue().strip().splitlines()[-1]
    return None


def devtools_commands(line: Line) -> list[tuple[str, list[str]]]:
    """Each ``chalice-loop ...`` or ``python -m devtools...`` in a console line, as
    (module, args)."""
    text = command(line) or line.text
    found = []
    tools = ("-m devtools", "-m chalice_loop", "chalice-loop")
    for argv in simple_commands(text) if any(t in text for t in tools) else []:
        joined = " ".join(shlex.quote(word) for word in argv)
        match = PYTHON_M.search(joined) or CHALICE_LOOP.search(joined)
        if match:
            found.append((match.group(1), shlex.split(match.group(2))))
    return found


def is_repo_path(token: str) -> bool:
    if "/" not in token or "://" in token or re.search(r"[<>{}$\s]|\.\.\.", token):
        return False
    if token.startswith(("/", "~", "../", *GENERATED, *FOREIGN_ROOTS)) or "__pycache__" in token:
        return False
    return bool(re.fullmatch(r"[\w.*@+-]+(/[\w.*@+-]*)*", token))


def path_mentions(page: Path) -> list[tuple[Line, str, Path]]:
    """(line, token, where it must exist) for each repo path the page names."""
    found = []
    for line in console_lines(page):
        found += [(line, w, PROJECT / w) for w in words(command(line) or "") if is_repo_path(w)]
    if page.name in ("SECURITY.md", "BENCHMARKS.md"):
        return found
    for line in prose_lines(page):
        for span in re.findall(r"`([^`\s]+)`", line.text):
            token = span.rstrip(".,:;")
            if is_repo_path(token):
                found.append((line, token, PROJECT / token))
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", line.text):
            resolved = (page.parent / target).resolve()
            if "://" not in target and resolved.is_relative_to(PROJECT):
                found.append((line, target, resolved))
    return found


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    headings = [line.text for line in prose_lines(page) if line.text.startswith("#")]
    return {
        re.sub(r"[^\w\- ]", "", h.lstrip("#").strip().lower()).replace(" ", "-") for h in headings
    }


def exists(path: Path) -> bool:
    if "*" in path.name or "*" in str(path.parent):
        return any(PROJECT.glob(str(path.relative_to(PROJECT))))
    return path.exists()


def test_the_pages_are_found_and_hold_commands(make_targets):
    """Guards the checks below against passing on nothing."""
    names = {p.relative_to(PROJECT).as_posix() for p in pages()}
    assert {"README.md", "docs/local-loop.md", "docs/deploy.md"} <= names
    readme = [command(line) for line in console_lines(PROJECT / "README.md")]
    assert "make run" in " ".join(filter(None, readme))
    assert {"run", "test", "deploy", "package", "up", "invoke"} <= make_targets
    everything = [line for page in pages() for line in console_lines(page)]
    assert sum(len(devtools_commands(line)) for line in everything) >= 10
    assert sum(len(path_mentions(page)) for page in pages()) >= 30


def test_every_make_target_in_the_docs_exists(make_targets):
    missing = []
    for page in pages():
        for line in console_lines(page):
            for argv in simple_commands(command(line) or ""):
                for target in make_invocations(argv) or []:
                    if target not in make_targets:
                        missing.append(f"{line.where()}: make {target}: no such target")
    assert not missing, "\n".join(missing)


def test_every_devtools_command_in_the_docs_is_accepted_by_its_parser():
    refused = []
    for page in pages():
        for line in console_lines(page):
            for module, args in devtools_commands(line):
                reason = refusal(module, args)
                if reason:
                    refused.append(f"{line.where()}: {module} {shlex.join(args)}: {reason}")
    assert not refused, "\n".join(refused)


def test_every_repo_path_in_the_docs_exists():
    missing = [
        f"{line.where()}: {token}"
        for page in pages()
        for line, token, path in path_mentions(page)
        if not exists(path)
    ]
    assert not missing, "missing paths:\n" + "\n".join(missing)


def test_every_link_to_a_heading_finds_it():
    broken = []
    for page in pages():
        for line in prose_lines(page):
            for target, anchor in re.findall(r"\]\(([^)\s#]*)#([^)\s]+)\)", line.text):
                linked = (page.parent / target).resolve() if target else page
                if "://" in target or not linked.is_relative_to(PROJECT) or not linked.exists():
                    continue  # other sites; a missing page is the path check's
                if anchor not in anchors(linked):
                    broken.append(f"{line.where()}: {target}#{anchor}")
    assert not broken, "links to no heading:\n" + "\n".join(broken)


def test_the_parsers_refuse_what_they_should():
    """The flag check can fail: an unknown flag and a bad choice are refused."""
    assert refusal("chalice-loop", ["invoke", "worker", "--stage", "dev"]) is None
    assert "unrecognized arguments: --payloads" in refusal(
        "chalice-loop", ["invoke", "--payloads", "{}"]
    )
    assert "invalid choice" in refusal("devtools.deploy.bucket_stack", ["deploy-all"])
    assert "No module named" in refusal("devtools.package", ["--stage", "dev"])


def escaping_paths(page: Path, root: Path = PROJECT) -> list[str]:
    """Relative links and paths (console words, inline code) that leave the repository
    at ``root``: a link resolves from its page's folder, a path from the root."""
    found = []
    for line in prose_lines(page):
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", line.text):
            if "://" not in target and not target.startswith("mailto:"):
                resolved = (page.parent / target).resolve()
                if target.startswith("/") or not resolved.is_relative_to(root):
                    found.append(f"{line.where()}: link {target}")
        for span in re.findall(r"`([^`\s]+)`", line.text):
            if re.match(r"\.\./[\w.-]", span):  # a path, not the string ../ itself
                found.append(f"{line.where()}: path {span}")
    for line in console_lines(page):
        for word in words(command(line) or ""):
            if re.match(r"(?:\w+=)?\.\./", word):
                found.append(f"{line.where()}: path {word}")
    return found


def local_paths(page: Path) -> list[str]:
    """A machine's absolute paths in console blocks, commands and output alike."""
    return [
        f"{line.where()}: {PATH_TOKEN.match(line.text, match.start()).group(0)}"
        for line in console_lines(page)
        for match in LOCAL_PATH.finditer(line.text)
    ]


def bare_tools(page: Path) -> list[str]:
    """Console commands that run ``python`` or ``pip`` from the PATH, not the venv's."""
    found = []
    for line in console_lines(page):
        for argv in simple_commands(command(line) or ""):
            words = list(argv)
            while words and (re.fullmatch(r"\w+=.*", words[0]) or words[0] in ("time", "env")):
                words.pop(0)
            if words and BARE_TOOL.fullmatch(words[0]):
                found.append(f"{line.where()}: {shlex.join(argv)}: use .venv/bin/{words[0]}")
    return found


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.relative_to(PROJECT).as_posix())
def test_a_page_can_be_copied_and_run_from_a_fresh_clone(page):
    problems = escaping_paths(page) + local_paths(page) + bare_tools(page)
    assert not problems, "\n".join(problems)


def test_the_copy_and_run_checks_find_what_they_should(tmp_path):
    """Each check fails on what it must refuse, and passes what is fine."""
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "example.md"
    text = "\n".join(
        [
            "See [the seed](../../shared/seed/worker-functions.md) and [ok](deploy.md),",
            "[public](https://github.com/nzoschke/gofaas), `../outside.md` and `docs/x`.",
            "```console",
            "$ .venv/bin/chalice-loop --project-dir /tmp/tiny invoke clock",
            '  File "/work/main/.venv/lib/python3.11/site-packages/chalice/app.py"',
            "$ cat ../seed.md; curl http://127.0.0.1:4572/tmp/x; ls /var/task /dev/null",
            "$ python -m devtools.deploy.bucket_stack deploy",
            "$ AWS_REGION=x time pip install moto && .venv/bin/python -m tests.reliability_figures",
            "$ make test",
            "```",
        ]
    )
    page.write_text(text)
    assert [p.split(": ", 1)[1] for p in escaping_paths(page, tmp_path)] == [
        "link ../../shared/seed/worker-functions.md",
        "path ../outside.md",
        "path ../seed.md",
    ]
    assert [p.split(": ", 1)[1] for p in local_paths(page)] == [
        "/tmp/tiny",
        "/work/main/.venv/lib/python3.11/site-packages/chalice/app.py",
    ]
    assert [p.split(": ", 2)[2] for p in bare_tools(page)] == [
        "use .venv/bin/python",
        "use .venv/bin/pip",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("make run      # comment", [["make", "run"]]),
        ("make invoke NAME=worker < events/worker.json", [["make", "invoke", "NAME=worker"]]),
        ('x 2>/dev/null; echo "exit $?"', [["x"], ["echo", "exit $?"]]),
        (
            "jq . a.json | chalice invoke -n cleanup",
            [["jq", ".", "a.json"], ["chalice", "invoke", "-n", "cleanup"]],
        ),
    ],
)
def test_shell_lines_split_into_commands(text, expected):
    assert simple_commands(text) == expected

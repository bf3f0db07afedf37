"""The reliability figures: recorded by the tests, committed, rendered as the docs' table.

Each reliability test records its scenario's figures with :func:`record_figures`: the
*figures* (counts that the seed and the code decide, identical on every run)
and the *measured* values (seconds, rates, how many cleanups fitted beside a
load: they vary from run to run). Both go to ``.local/reliability.json``.

``docs/reliability-figures.json`` is the committed copy of one complete run
(``python -m tests.reliability_figures --update`` after ``pytest
tests/integration/test_reliability.py tests/e2e/test_load.py tests/e2e/test_fuzz.py``),
and ``docs/reliability-figures.md`` is its rendering (:func:`render`), which the docs
include. The docs cannot drift from a run:

- :func:`record_figures` fails a test whose figures differ from the committed ones (or
  whose scenario is not committed yet), when run with the committed seed;
- ``tests/unit/test_reliability_figures.py`` checks that the committed table is the
  rendering of the committed figures, and so is every copy of it that a page
  embeds between ``<!-- reliability-figures:begin -->`` and
  ``<!-- reliability-figures:end -->`` (``--update`` rewrites those too).

A new scenario needs no code here to appear: it is rendered with its figures
listed; a function in :data:`ROWS` writes it as prose instead.
"""

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

PROJECT = Path(__file__).resolve().parent.parent
RUN = PROJECT / ".local" / "reliability.json"
COMMITTED = PROJECT / "docs" / "reliability-figures.json"
TABLE = PROJECT / "docs" / "reliability-figures.md"
MEASURED = "measured"
HEADER = ["scenario", "faults injected", "what ran", "lost", "duplicates"]
COMMAND = "python -m tests.reliability_figures --update"
BEGIN, END = "<!-- reliability-figures:begin -->", "<!-- reliability-figures:end -->"


class FiguresDiffer(AssertionError):
    """A run's figures are not the committed ones: the docs would be wrong."""


def record_figures(
    scenario: str,
    figures: dict[str, Any],
    measured: dict[str, Any] | None = None,
    run_file: Path = RUN,
    committed_file: Path = COMMITTED,
) -> None:
    """Print a scenario's figures, merge them into ``run_file``, and check them against
    ``committed_file`` (unless the run used another seed than the committed one)."""
    entry = {**figures, MEASURED: dict(measured or {})}
    print(f"\n{scenario}: {json.dumps(entry, sort_keys=True)}")
    run_file.parent.mkdir(exist_ok=True)
    with FileLock(f"{run_file}.lock"):  # parallel test workers record into the one file
        data = json.loads(run_file.read_text()) if run_file.exists() else {}
        data[scenario] = entry
        run_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    committed = json.loads(committed_file.read_text()) if committed_file.exists() else {}
    if scenario not in committed:
        raise FiguresDiffer(f"{scenario!r} is not in {committed_file.name}: run {COMMAND}")
    expected = {k: v for k, v in committed[scenario].items() if k != MEASURED}
    if expected.get("seed", figures.get("seed")) != figures.get("seed"):
        return  # another FAULT_SEED: other figures, nothing to compare
    recorded = json.loads(json.dumps(figures))  # as stored: tuples become lists, keys strings
    if recorded != expected:
        changed = sorted(
            k for k in expected.keys() | recorded.keys() if expected.get(k) != recorded.get(k)
        )
        raise FiguresDiffer(
            f"{scenario!r}: {changed} differ from {committed_file.name} "
            f"(run {recorded}, committed {expected}); if the change is intended, run {COMMAND}"
        )


# --- rendering ---------------------------------------------------------------------------


def _n(value: int) -> str:
    return f"{value:,}"


def _kinds(by_kind: dict[str, int]) -> str:
    """``{"PutObject internal after": 3, ...}`` as ``3 InternalError after S3 applied it, ...``."""
    names = {  # one, several
        "slowdown": ("`SlowDown`", "`SlowDown`"),
        "internal": ("`InternalError`", "`InternalError`"),
        "reset": ("reset", "resets"),
        "delay": ("delay", "delays"),
        "hang": ("hang", "hangs"),
        "fail_keys": ("answer refusing keys", "answers refusing keys"),
    }
    parts = []
    for name, count in sorted(by_kind.items(), key=lambda item: (-item[1], item[0])):
        operation, kind, *after = name.split(" ")
        label = names.get(kind, (kind, kind))[count != 1]
        parts.append(
            f"{count} {label} on `{operation}`" + (" after S3 applied it" if after else "")
        )
    return ", ".join(parts)


def _worker_faulted(f: dict[str, Any]) -> list[str]:
    again = f["redeliveries (Lambda retries + duplicate events)"]
    return [
        f"{_n(f['faults injected'])} of {_n(f['requests'])} requests "
        f"({_n(f['faults planned'])} planned, one of each kind; the rest drawn): "
        + _kinds(f["faults by kind"]),
        f"{_n(f['invocations'])} ({_n(f['first deliveries'])} + {_n(again)} "
        f"re-deliveries: Lambda's retries of the failures and duplicate events): "
        f"{_n(f['succeeded first time'])} succeeded first time, {_n(f['raised first time'])} "
        f"raised ({_n(f['raised although S3 had stored the report'])} of them after S3 had "
        f"stored the report), {_n(f['still failed after 3 deliveries'])} still failed after "
        f"3 deliveries; {_n(f['reports stored'])} reports stored",
        _n(f["reports lost"]),
        f"{_n(f['duplicate reports'])} (and {_n(f['partial objects'])} partial objects)",
    ]


def _worker_hang(f: dict[str, Any]) -> list[str]:
    m = f[MEASURED]
    return [
        f"{_n(f['attempts'])} hangs (every attempt)",
        f"{_n(f['invocations'])} invocation: `{f['error']}` after {m['failed after s']} s "
        f"(arithmetic worst case {f['worst case by the arithmetic s']} s, function timeout "
        f"{f['function timeout s']} s)",
        f"{_n(f['reports written'])} reports written",
        "—",
    ]


def _cleanup_faulted(f: dict[str, Any]) -> list[str]:
    first, rerun = f["first run"], f["rerun without faults"]
    return [
        f"{_n(f['faults injected'])} ({_n(f['faults planned'])} planned): "
        f"{_kinds(f['faults by kind'])}",
        f"2 runs over {_n(f['objects'])} objects: the first deleted {_n(first['deleted'])}, "
        f"reported {_n(first['failed'])} failed (S3 refused {_n(f['keys refused by S3'])}) "
        f"and raised `{f['first run raised']}`; the rerun without faults deleted "
        f"{_n(rerun['deleted'])} and left {_n(f['objects after rerun'])} objects",
        f"{_n(f['left behind unreported'])} keys left unreported",
        "—",
    ]


def _cleanup_retention(f: dict[str, Any]) -> list[str]:
    runs = f["runs"]
    return [
        _n(f["faults injected"]),
        f"{len(runs)} runs over {_n(f['objects older'])} older and {_n(f['objects younger'])} "
        f"younger objects: {' + '.join(_n(r['deleted']) for r in runs)} deleted, "
        f"{' + '.join(_n(r['failed']) for r in runs)} failed, "
        f"{' / '.join(_n(r['kept']) for r in runs)} kept",
        f"{_n(f['younger objects deleted'])} younger objects deleted",
        "—",
    ]


def _load(f: dict[str, Any]) -> list[str]:
    m = f[MEASURED]
    return [
        "none (plain local S3)",
        f"{_n(f['invocations'])} invocations, {f['concurrency']} at a time: "
        f"{_n(f['succeeded'])} succeeded in {m['wall s']} s; {_n(m['cleanup runs'])} cleanup "
        f"runs alongside, {_n(f['cleanup runs failed'])} failed, "
        f"{_n(f['old objects deleted by the cleanups'])} old objects deleted",
        f"{_n(f['reports lost'])} ({_n(f['reports in bucket'])} reports in the bucket, "
        f"{_n(f['unreadable or wrong reports'])} unreadable or wrong)",
        _n(f["duplicate reports"]),
    ]


def _fuzz(f: dict[str, Any]) -> list[str]:
    stored, refused = f[MEASURED]["examples stored"], f[MEASURED]["examples refused"]
    return [
        "—",
        f"{_n(stored + refused)} examples: {_n(stored)} stored and read back, "
        f"{_n(refused)} refused with `InvalidEventError`",
        f"{_n(f['writes on error'])} writes on error",
        "—",
    ]


def _async_delivery(f: dict[str, Any]) -> list[str]:
    attempts, ids = f["attempts per event"], f["request ids per event"]
    runs = ", ".join(
        f"`{name}` {attempts[name]} attempt{'s' if attempts[name] != 1 else ''} "
        f"({ids[name]} request id)"
        for name in sorted(attempts)
    )
    kept = ", ".join(
        f"`{name}` ({why})" for name, why in f["kept in the on-failure destination"].items()
    )
    succeeded = ", ".join(f"`{name}`" for name in f["succeeded on a retry"])
    return [
        "the handlers raise (one on its first run only); Lambda's 60 s / 120 s delays scaled",
        f"{_n(f['events fired'])} events: {runs}; {succeeded} succeeded on a retry; "
        f"kept in the local on-failure destination: {kept}",
        f"{_n(f['events lost'])} events",
        "—",
    ]


ROWS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "worker, 30 % of requests faulted": _worker_faulted,
    "worker, S3 hangs": _worker_hang,
    "cleanup, faulted List/Delete and per-key failures": _cleanup_faulted,
    "cleanup with CLEANUP_MAX_AGE=PT1H, faulted twice then clean": _cleanup_retention,
    "load: 1,000 worker invocations, 16 at a time, cleanup alongside": _load,
    "fuzz: hostile and near-valid events": _fuzz,
    "scheduled runs failing in `up` (Lambda's async delivery, scaled 1/100)": _async_delivery,
}


def _listed(figures: dict[str, Any]) -> list[str]:
    """A scenario without a row function: every figure, listed."""
    flat = {**{k: v for k, v in figures.items() if k != MEASURED}, **figures.get(MEASURED, {})}
    return ["—", "; ".join(f"{k}: {json.dumps(v)}" for k, v in flat.items()), "—", "—"]


def render(data: dict[str, Any]) -> str:
    """The markdown table of every scenario, in the order of :data:`ROWS`, then the rest."""
    order = [s for s in ROWS if s in data] + sorted(s for s in data if s not in ROWS)
    seeds = sorted({data[s]["seed"] for s in order if "seed" in data[s]})
    lines = [
        "<!-- Generated by `python -m tests.reliability_figures --update` from",
        "     docs/reliability-figures.json; do not edit by hand. -->",
        "",
        f"Figures of one run (`FAULT_SEED={', '.join(map(str, seeds))}`).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "| " + " | ".join("---" for _ in HEADER) + " |",
    ]
    for scenario in order:
        cells = ROWS.get(scenario, _listed)(data[scenario])
        lines.append("| " + " | ".join([scenario, *cells]).replace("\n", " ") + " |")
    return "\n".join(lines) + "\n"


def _block(text: str) -> re.Match[str] | None:
    """The embedded table: the lines between a line that is BEGIN and one that is END."""
    return re.search(
        rf"^{re.escape(BEGIN)}\n(?P<table>.*?)^{re.escape(END)}$", text, re.MULTILINE | re.DOTALL
    )


def embedding_pages(root: Path = PROJECT) -> list[Path]:
    """The markdown pages (README.md, docs/) that embed the table between the markers."""
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [page for page in pages if page.exists() and _block(page.read_text())]


def embedded(page: Path) -> str:
    """The table as ``page`` embeds it."""
    block = _block(page.read_text())
    assert block is not None, page
    return block["table"]


def embed(page: Path, table: str) -> None:
    text = page.read_text()
    block = _block(text)
    assert block is not None, page
    page.write_text(text[: block.start("table")] + table + text[block.end("table") :])


def update(
    run_file: Path = RUN,
    committed_file: Path = COMMITTED,
    table: Path = TABLE,
    root: Path = PROJECT,
) -> str:
    """Commit a run's figures and render the table (into ``table`` and every page that
    embeds it); refuse a run that lacks a committed scenario."""
    data = json.loads(run_file.read_text())
    committed = json.loads(committed_file.read_text()) if committed_file.exists() else {}
    missing = sorted(set(committed) - set(data))
    if missing:
        raise SystemExit(f"{run_file} lacks {missing}: run the whole reliability suite first")
    committed_file.parent.mkdir(exist_ok=True)
    committed_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    rendered = render(data)
    table.write_text(rendered)
    pages = embedding_pages(root)
    for page in pages:
        embed(page, rendered)
    return ", ".join(str(p.relative_to(root)) for p in [committed_file, table, *pages]) + " updated"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--update", action="store_true", help=f"copy {RUN.name} to docs/ and render the table"
    )
    args = parser.parse_args()
    if args.update:
        print(update())
    else:
        print(render(json.loads(COMMITTED.read_text())), end="")


if __name__ == "__main__":
    main()

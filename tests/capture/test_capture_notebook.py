"""Tutorial 10 (captures): stripped, shaped like the others, and it runs: top to bottom under
the budget, every cell twice, Run All twice in one kernel, nothing on stderr; and without tshark."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "10-captures.ipynb"
BUDGET_SECONDS = 30


def test_committed_without_outputs_and_shaped_like_the_tutorials():
    book = json.loads(NOTEBOOK.read_text())
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    book = nbformat.read(NOTEBOOK, as_version=4)
    assert book.cells[0].cell_type == "markdown" and book.cells[0].source.startswith("# ")
    assert "**You will learn**" in book.cells[0].source
    assert any("## Exercise" in cell.source for cell in book.cells if cell.cell_type == "markdown")
    assert "exercises.check_" in book.cells[-1].source or "exercises.check_" in book.cells[-2].source


def _run(book, env=None, twice_each=False, run_all_twice=False):
    client = NotebookClient(book, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    outputs = []
    with client.setup_kernel(env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}):
        for _ in range(2 if run_all_twice else 1):
            for index, cell in enumerate(book.cells):
                for _ in range(2 if twice_each else 1):
                    client.execute_cell(cell, index)
                    outputs += cell.get("outputs", [])
    return outputs


def _problems(outputs):
    return [o for o in outputs if o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")]


def test_runs_top_to_bottom_within_the_budget_and_shows_both_columns():
    book = nbformat.read(NOTEBOOK, as_version=4)
    started = time.monotonic()
    outputs = _run(book)
    assert time.monotonic() - started < BUDGET_SECONDS
    assert _problems(outputs) == []
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) >= 2  # the timeline and the two columns
    text = json.dumps([o.get("text", "") for o in outputs])
    assert "greet" in text and "100000 bytes echoed" in text


def test_every_cell_twice_and_run_all_twice_in_one_kernel():
    book = nbformat.read(NOTEBOOK, as_version=4)
    assert _problems(_run(book, twice_each=True, run_all_twice=True)) == []


def test_without_tshark_it_says_so(tmp_path):
    book = nbformat.read(NOTEBOOK, as_version=4)
    python_dir = str(Path(os.sys.executable).parent)
    outputs = _run(book, env={"PATH": python_dir})  # no /usr/bin: no tshark
    assert _problems(outputs) == []
    assert "tshark is not installed here" in json.dumps([o.get("text", "") for o in outputs])


def test_the_exercise_checker_explains_and_never_raises(tmp_path):
    from gotalk_lab.capture import PcapWriter, TcpConversation
    from gotalk_lab.exercises import check_server_message_count

    path = tmp_path / "a.pcap"
    with open(path, "wb") as sink:
        conversation = TcpConversation(PcapWriter(sink), ("127.0.0.1", 1), ("127.0.0.1", 2))
        conversation.open(1.0)
        conversation.send("client", b"01r0001004echo00000000", 1.1)
        conversation.send("server", b"01R000100000000", 1.2)
    assert check_server_message_count(2, path)
    assert "one short" in check_server_message_count(1, path).message
    assert "whole number" in check_server_message_count("2", path).message
    assert not check_server_message_count(None, path)
    assert "could not be read" in check_server_message_count(2, tmp_path / "missing.pcap").message

"""Blocking calls in a real JupyterLab and Notebook 7, run from the Run menu in Debian's Chromium.

"Run All Cells" queues every cell in the kernel at once, which is what made the
original nest-asyncio lose messages on ipykernel 7: while one cell blocks in
``a.sync.request``, the next queued cells and the page's own messages (a widget's
comm traffic) must wait and then run, never be dropped with "cannot enter context"
on stderr. The server is the one tests/ui/test_lab_browser.py starts.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from chromium import require_chromium
from test_lab_browser import KERNEL_READY, PAGE_TIMEOUT_MS, JupyterLab

pytestmark = pytest.mark.browser

FRONT_ENDS = {
    "lab": ("blocking_lab.ipynb", "/lab/tree/"),
    "notebook7": ("blocking_notebook7.ipynb", "/notebooks/"),
}
BLOCKING_CELLS = 5
CELLS = [
    "import ipywidgets\nimport gotalk_lab as gl\n\na, b = await gl.pipe(None, gl.demo.handlers())",
    # A widget on the page: the front end and the kernel keep exchanging comm messages.
    "slider = ipywidgets.IntSlider(value=3)\nslider",
    *[f"print('BLOCKING {n}', a.sync.request('sleep', {{'ms': 300}}))" for n in range(BLOCKING_CELLS)],
    "a.sync.request('greet', {'name': 'browser'})",
    "print('AWAITED', await a.request('sleep', {'ms': 5}), 'SLIDER', slider.value)",
]

ALL_CELLS_RAN = """(count) => {
    const prompts = [...document.querySelectorAll(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt")];
    return prompts.length === count && prompts.every((prompt) => /^\\[\\d+\\]:$/.test(prompt.textContent.trim()));
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    lab = JupyterLab(tmp_path_factory.mktemp("jupyterlab-blocking"))
    try:
        for name, _ in FRONT_ENDS.values():
            notebook = nbformat.v4.new_notebook()
            notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
            notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
            nbformat.write(notebook, lab.root / name)
        lab.wait_ready()
        yield lab
    finally:
        lab.stop()


@pytest.mark.parametrize("front_end", list(FRONT_ENDS))
def test_blocking_cells_run_all_with_nothing_on_stderr(browser, server, front_end):
    name, under = FRONT_ENDS[front_end]
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{server.url}{under}{name}?token={server.token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_function(KERNEL_READY, timeout=PAGE_TIMEOUT_MS)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(ALL_CELLS_RAN, arg=len(CELLS), timeout=PAGE_TIMEOUT_MS)
        except Exception as error:
            prompts = page.evaluate("[...document.querySelectorAll('.jp-InputArea-prompt')].map((p) => p.textContent)")
            raise AssertionError(f"not every cell ran (prompts {prompts}):\n{server.log_tail()}") from error
        stderr = page.locator(".jp-NotebookPanel [data-mime-type='application/vnd.jupyter.stderr']")
        assert stderr.count() == 0, f"a cell wrote to stderr:\n{stderr.first.inner_text()}"
        outputs = "\n".join(page.locator(".jp-NotebookPanel .jp-OutputArea-output").all_inner_texts())
        for n in range(BLOCKING_CELLS):
            assert f"BLOCKING {n} {{'slept': 300}}" in outputs, outputs
        assert "{'greeting': 'Hello browser'}" in outputs, outputs
        assert "AWAITED {'slept': 5} SLIDER 3" in outputs, outputs
        # The slider was drawn by the page, so its comm traffic went through too.
        page.wait_for_selector(".jp-NotebookPanel .widget-slider", timeout=PAGE_TIMEOUT_MS)
    finally:
        page.close()

"""Flows a learner meets in JupyterLab, clicked through in Debian's Chromium.

The JupyterLab server, its isolation and the kernel checks are those of
``test_lab_browser.py``; this notebook has cells of its own:

* a standalone ``a.timeline()``: clicking an arrow opens the timeline's detail panel
  with that frame's bytes (FrameView) and fields (FieldTable);
* ``gl.lab(a, composer=True)``: the Composer sends a request one byte short; the
  dashboard's timeline shows those bytes as an unframed row, the status line says
  the other side waits for 1 more byte, and clicking the row shows the 24 bytes;
* ``gl.lab(c, composer=True)`` sends an unknown type byte: the other side closes,
  and Send is disabled with the reason.

Screenshots (1280 px wide) go to tests/ui/screenshots/flow-*.png (ignored by git).
"""

from __future__ import annotations

import json
import re

import nbformat
import pytest
from chromium import require_chromium
from test_lab_browser import KERNEL_READY, PAGE_TIMEOUT_MS, SCREENSHOTS, JupyterLab

pytestmark = pytest.mark.browser

NOTEBOOK = "flows_check.ipynb"
CELLS = [
    "import asyncio, json\nimport gotalk_lab as gl",
    # A standalone timeline of a short conversation.
    "a, b = await gl.pipe(None, gl.demo.handlers())\n"
    "await a.request_bytes('echo', b'hello')\n"
    "await a.request('greet', {'name': 'Ada'})\n"
    "a.timeline(title='standalone: click an arrow').add_class('flow-timeline')",
    # A dashboard with its Composer: a request one byte short, sent from the Composer.
    "dashboard = gl.lab(a, composer=True)\n"
    "dashboard.composer.set(malformation='truncated', drop=1)\n"
    "dashboard.add_class('flow-lab')",
    "await dashboard.composer.send_to_peer()\n"
    "await asyncio.sleep(0.2)\n"
    "print('FRAMES=' + json.dumps([[e.index, e.raw.hex()] for e in a.trace]))",
    # Another connection, closed by the other side after an unknown type byte.
    "c, d = await gl.pipe(None, gl.demo.handlers())\n"
    "closing = gl.lab(c, composer=True)\n"
    "closing.composer.set(malformation='unknown-type')\n"
    "await closing.composer.send_to_peer()\n"
    "await c.wait_closed()\n"
    "await asyncio.sleep(0.2)\n"
    "closing.add_class('flow-closed')",
]

ALL_CELLS_RAN = """(count) => {
    const prompts = [...document.querySelectorAll(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt")];
    return prompts.length === count && prompts.every((prompt) => /^\\[\\d+\\]:$/.test(prompt.textContent.trim()));
}"""


@pytest.fixture(scope="module")
def flows_lab(tmp_path_factory):
    require_chromium()
    lab = JupyterLab(tmp_path_factory.mktemp("flows"))
    try:
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        nbformat.write(notebook, lab.root / NOTEBOOK)
        lab.wait_ready()
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def page(browser, flows_lab):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}"))
    try:
        page.goto(f"{flows_lab.url}/lab/tree/{NOTEBOOK}?token={flows_lab.token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_function(KERNEL_READY, timeout=PAGE_TIMEOUT_MS)
        page.keyboard.press("Control+b")  # the file browser closed: the notebook gets the width
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(ALL_CELLS_RAN, arg=len(CELLS), timeout=PAGE_TIMEOUT_MS)
        except Exception:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "flow-failure.png"))
            raise
        failed = page.locator(".jp-NotebookPanel [data-mime-type='application/vnd.jupyter.stderr']")
        assert failed.count() == 0, f"a cell wrote to stderr:\n{failed.first.inner_text()}"
        yield page
        assert not errors, f"errors in the page's console: {errors}"
    finally:
        page.close()


def frames(page) -> list[tuple[int, bytes]]:
    output = page.locator(".jp-OutputArea-output", has_text="FRAMES=")
    line = next(line for line in output.inner_text().splitlines() if line.startswith("FRAMES="))
    return [(index, bytes.fromhex(raw)) for index, raw in json.loads(line.removeprefix("FRAMES="))]


def hex_cells(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{selector} .gl-fv-hex .gl-b", "(cells) => cells.map((c) => c.textContent)")


def screenshot(page, locator, name: str) -> None:
    """An element screenshot, 1280 px wide; the window is made tall enough to hold the element
    (JupyterLab scrolls its notebook panel, not the page, so a taller element would be cut)."""
    height = locator.evaluate("(element) => element.getBoundingClientRect().height")
    page.set_viewport_size({"width": 1280, "height": max(1000, int(height) + 300)})
    page.wait_for_timeout(300)  # JupyterLab lays its panels out again
    locator.scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    page.wait_for_timeout(200)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    locator.screenshot(path=str(path), animations="disabled")
    page.set_viewport_size({"width": 1280, "height": 1000})
    assert path.stat().st_size > 10_000, f"{path} is nearly empty"


def test_clicking_an_arrow_on_a_standalone_timeline_shows_its_bytes_and_fields(page):
    timeline = ".flow-timeline"
    request = next((index, raw) for index, raw in frames(page) if raw.startswith(b"r") and b"greet" in raw)
    row = page.locator(f"{timeline} .gl-tl-row[data-i='{request[0]}']")
    row.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert page.locator(f"{timeline} .gl-tl-detail").is_hidden()  # nothing clicked yet
    assert "click to show its bytes" in row.get_attribute("title")
    row.click()
    page.wait_for_function(
        """([selector, count]) => document.querySelectorAll(selector).length === count""",
        arg=[f"{timeline} .gl-tl-detail .gl-fv-hex .gl-b", len(request[1])],
        timeout=10_000,
    )
    assert page.locator(f"{timeline} .gl-tl-detail").is_visible()
    assert hex_cells(page, f"{timeline} .gl-tl-detail") == [f"{byte:02x}" for byte in request[1]]
    names = page.locator(f"{timeline} .gl-tl-detail .gl-ft-row .gl-ft-name").all_inner_texts()
    assert names == ["type", "request_id", "name_size", "operation", "payload_size", "payload"]
    assert page.locator(f"{timeline} .gl-tl-detail .gl-fv-title").inner_text().startswith(f"#{request[0]} ")
    # The panel's table and view are linked: a row marks its bytes in the dump.
    page.locator(f"{timeline} .gl-tl-detail .gl-ft-row[data-f='3']").click()
    page.wait_for_function(
        """(selector) => [...document.querySelectorAll(selector)].map((c) => c.dataset.i).join() === '8,9,10,11,12'""",
        arg=f"{timeline} .gl-tl-detail .gl-fv-hex .gl-b.gl-sel",
        timeout=5000,
    )
    screenshot(page, page.locator(timeline), "flow-timeline-detail.png")
    page.locator(f"{timeline} .gl-tl-detail-close").click()
    page.wait_for_function(
        "(selector) => document.querySelector(selector).hidden", arg=f"{timeline} .gl-tl-detail", timeout=5000
    )


def test_a_short_frame_from_the_dashboards_composer_shows_and_says_what_the_receiver_waits_for(page):
    dashboard = ".flow-lab"
    raw_row = page.locator(f"{dashboard} .gl-tl-row.t-raw")
    raw_row.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert raw_row.count() == 1
    assert "24 bytes" in raw_row.inner_text()
    status = page.locator(f"{dashboard} .gl-composer .widget-html", has_text="sent 24 bytes")
    status.wait_for(timeout=10_000)
    assert "sent 24 bytes from a to the other side" in status.inner_text()
    assert "waiting for 1 more byte" in status.inner_text()
    raw_row.click()
    page.wait_for_function(
        """([selector, count]) => document.querySelectorAll(selector).length === count""",
        arg=[f"{dashboard} > .widget-hbox .gl-fv-hex .gl-b", 24],
        timeout=10_000,
    )
    assert "no frame" in page.locator(f"{dashboard} > .widget-hbox .gl-fv-title").inner_text()
    assert page.locator(f"{dashboard} .gl-tl-row.t-raw.gl-tl-sel").count() == 1
    screenshot(page, page.locator(dashboard), "flow-lab-composer-waiting.png")


def test_send_is_disabled_once_the_other_side_closed(page):
    closing = ".flow-closed"
    button = page.locator(f"{closing} .gl-composer button", has_text="Send")
    button.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert button.is_disabled()
    assert "connection is closed" in button.get_attribute("title")
    status = page.locator(f"{closing} .gl-composer .widget-html", has_text="connection closed").inner_text()
    assert "the other side cannot read it" in status
    assert page.locator(f"{closing} .gl-tl-row.t-raw").count() == 1
    screenshot(page, page.locator(f"{closing} .gl-composer"), "flow-composer-closed.png")

"""The tutorials as a learner and a teacher meet them, in JupyterLab and Voilà in Chromium.

* Every tutorial, opened from ``notebooks/`` in a real JupyterLab 1024 px wide and run
  (Run All Cells): no cell fails, no element of an output needs sideways scrolling, and
  every dropdown is wide enough for its longest entry (measured with the select's font).
* Notebook 03's Player, clicked as a student would: a wrong choice is told why, the
  right one is told why and reveals the hidden frame on the Player's timeline.
* Notebook 08 under a real Voilà at 1280×720: projector mode's text is 18 px and up,
  nothing has run before **Run the demo** is pressed, and after a click on an arrow the
  frame's bytes are on screen without scrolling.

Screenshots go to tests/ui/screenshots/; with GOTALK_LAB_README_SCREENSHOTS=1 they are
also copied to docs/screenshots/ for the README.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from test_lab_browser import KERNEL_READY, PAGE_TIMEOUT_MS, README_SCREENSHOTS, README_VARIABLE, SCREENSHOTS, JupyterLab, free_port

from chromium import require_chromium

pytestmark = pytest.mark.browser

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TUTORIALS = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
NARROW = {"width": 1024, "height": 900}
#: What each tutorial's narrow screenshot is scrolled to: the first such element.
SHOWCASE = {
    "01-wire-format.ipynb": ".jp-RenderedSVG",
    "03-multiplexing.ipynb": ".gl-player-question",
    "04-streaming.ipynb": ".gl-player-question",
    "05-faults.ipynb": ".gl-malformed-lab",
    "08-classroom-demo.ipynb": ".gl-projecting",
    "09-conformance-check.ipynb": ".gl-check-cases",
    "11-interception.ipynb": ".gl-tl",
}


def keep(page_or_locator, name: str, **options) -> Path:
    """A screenshot in tests/ui/screenshots/, copied for the README when asked."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page_or_locator.screenshot(path=str(path), **options)
    if os.environ.get(README_VARIABLE) == "1":
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SCREENSHOTS / name)
    return path


@pytest.fixture(scope="module")
def tutorials_lab(tmp_path_factory):
    require_chromium()
    lab = JupyterLab(tmp_path_factory.mktemp("tutorials"))
    try:
        for name in TUTORIALS:
            shutil.copyfile(NOTEBOOKS / name, lab.root / name)
        lab.wait_ready()
        yield lab
    finally:
        lab.stop()


def code_cell_count(name: str) -> int:
    return sum(cell.cell_type == "code" for cell in nbformat.read(NOTEBOOKS / name, as_version=4).cells)


def open_and_run(page, lab: JupyterLab, name: str) -> None:
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")  # reset: no tabs of earlier notebooks
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(KERNEL_READY, timeout=PAGE_TIMEOUT_MS)
    page.keyboard.press("Control+b")  # the file browser closed: the notebook has the width
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    try:
        # Every code cell has an execution count (a hidden input has no prompt to read).
        page.wait_for_function(
            """(count) => {
                const panel = window.jupyterapp?.shell.currentWidget;
                const cells = panel ? [...panel.content.model.cells] : [];
                const code = cells.filter((cell) => cell.type === "code");
                return code.length === count && code.every((cell) => cell.executionCount != null)
                    && panel.sessionContext.session?.kernel?.status === "idle";
            }""",
            arg=code_cell_count(name),
            timeout=90_000,
        )
    except Exception as error:
        keep(page, f"failure-{name.removesuffix('.ipynb')}.png")
        prompts = page.evaluate("[...document.querySelectorAll('.jp-InputArea-prompt')].map((p) => p.textContent)")
        raise AssertionError(f"{name}: the cells did not all run (prompts {prompts}):\n{lab.log_tail()}") from error
    page.wait_for_timeout(1500)  # widget views finish rendering, timelines draw their rows
    errors = page.locator(".jp-NotebookPanel [data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, f"{name}: a cell failed:\n{errors.first.inner_text()}"


def close_and_shut_down(page) -> None:
    """Stop the notebook's kernel and close its tab without a save dialog (nothing is saved)."""
    page.evaluate("""async () => {
        const panel = window.jupyterapp.shell.currentWidget;
        await panel.sessionContext.shutdown();
        panel.context.model.dirty = false;
        panel.dispose();
    }""")


#: Elements inside outputs that scroll sideways, or would: (what, scrollWidth, clientWidth).
SIDEWAYS = """() => {
    const found = [];
    const outputs = document.querySelectorAll(".jp-NotebookPanel .jp-OutputArea-output");
    for (const output of outputs) {
        for (const el of [output, ...output.querySelectorAll("*")]) {
            if (!el.clientWidth || el.scrollWidth <= el.clientWidth + 1) continue;
            const style = getComputedStyle(el);
            if (!["auto", "scroll"].includes(style.overflowX) && el !== output) continue;
            found.push([el.className || el.tagName, el.scrollWidth, el.clientWidth]);
        }
    }
    const panel = document.querySelector(".jp-NotebookPanel .jp-WindowedPanel-outer, .jp-NotebookPanel .jp-Notebook");
    if (panel && panel.scrollWidth > panel.clientWidth + 1) found.push(["the notebook itself", panel.scrollWidth, panel.clientWidth]);
    return found;
}"""

#: Dropdown entries wider than their select (text measured in the select's own font).
CUT_ENTRIES = """() => {
    const context = document.createElement("canvas").getContext("2d");
    const cut = [];
    for (const select of document.querySelectorAll(".jp-NotebookPanel .jp-OutputArea-output select")) {
        const style = getComputedStyle(select);
        context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
        const room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
        for (const option of select.options) {
            const width = context.measureText(option.text).width;
            if (width > room) cut.push([option.text, Math.round(width), Math.round(room)]);
        }
    }
    return cut;
}"""


@pytest.fixture(scope="module")
def narrow_page(browser):
    page = browser.new_page(viewport=NARROW)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page, errors
    page.close()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", TUTORIALS)
def test_every_tutorial_fits_1024_pixels(narrow_page, tutorials_lab, name):
    page, errors = narrow_page
    errors.clear()
    open_and_run(page, tutorials_lab, name)
    widgets = page.locator(".jp-NotebookPanel .jp-OutputArea-output .widget-box, .jp-NotebookPanel .jp-OutputArea-output .gl-tl").count()
    assert widgets > 0 or name == "10-captures.ipynb", f"{name}: no widget rendered"
    sideways = page.evaluate(SIDEWAYS)
    assert not sideways, f"{name} at 1024 px: these scroll sideways (class, scrollWidth, clientWidth): {sideways}"
    cut = page.evaluate(CUT_ENTRIES)
    assert not cut, f"{name} at 1024 px: dropdown entries cut (text, width, room): {cut}"
    assert not errors, f"{name}: errors in the page: {errors}"
    if name == "06-notifications-heartbeats.ipynb":
        # Notification names have chips of their own; only operations are listed as operations.
        chips = page.evaluate("""() => [...document.querySelectorAll('.gl-tl')].map((t) => [
            t.querySelector('.gl-tl-ops').innerText, t.querySelector('.gl-tl-names').innerText,
            t.querySelectorAll('.gl-tl-row.t-h').length])""")
        first = chips[0]
        assert "weather" in first[1] and "hello" in first[1] and "weather" not in first[0], chips
        assert any(beats >= 2 for *_, beats in chips), f"no heartbeats drawn: {chips}"
    if name == "07-network.ipynb":
        lanes = page.locator(".gl-tl-h-left, .gl-tl-h-right").all_inner_texts()
        assert any("client: gotalk-lab request" in lane for lane in lanes), lanes
        assert any("upstream: gotalk-lab serve" in lane for lane in lanes), lanes
    page.locator(SHOWCASE.get(name, ".jp-OutputArea-output .gl-tl, .jp-OutputArea-output .widget-box")).first.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    keep(page, f"narrow-{name.removesuffix('.ipynb')}.png")
    close_and_shut_down(page)


def test_the_player_asks_before_it_reveals(browser, tutorials_lab):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})  # the whole Player on screen
    try:
        open_and_run(page, tutorials_lab, "03-multiplexing.ipynb")
        question = page.locator(".gl-player-question").first
        question.scroll_into_view_if_needed()
        player = question.locator("xpath=..")
        rows_before = player.locator(".gl-tl-row").count()
        # Step to the frame before the hidden one: the question is there.
        player.locator("button[title^='last frame']").click()
        page.wait_for_function(
            "() => document.querySelector('.gl-player-question').innerText.includes('Which result arrives first?')",
            timeout=10_000,
        )
        question.locator(".widget-toggle-button", has_text="the 300 ms sleep: it was asked first").click()
        question.locator("button", has_text="Check").click()
        page.wait_for_function(
            "() => document.querySelector('.gl-player-question').innerText.includes('asked first is not answered first')",
            timeout=10_000,
        )
        keep(question, "predict-03-wrong.png")
        hidden = player.locator(".gl-tl-row").count()
        question.locator(".widget-toggle-button", has_text=re.compile(r"^the 100 ms sleep$")).click()
        question.locator("button", has_text="Check").click()
        page.wait_for_function(
            "() => document.querySelector('.gl-player-question').innerText.includes('Right:')", timeout=10_000
        )
        page.wait_for_function(
            "(count) => document.querySelector('.gl-player-question').parentElement.querySelectorAll('.gl-tl-row').length > count",
            arg=hidden, timeout=10_000,
        )
        assert hidden >= rows_before  # stepping on showed more, never past the question
        keep(player, "predict-03-revealed.png")
        close_and_shut_down(page)
    finally:
        page.close()


# -- the classroom page under Voilà ------------------------------------------------------------


@pytest.fixture(scope="module")
def voila_page(tmp_path_factory):
    require_chromium()
    voila = Path(sys.executable).parent / "voila"
    assert voila.exists(), "voila is part of the test extra; reinstall with pip install -e '.[test]'"
    port = free_port()
    runtime = tmp_path_factory.mktemp("voila")
    server = subprocess.Popen(
        [str(voila), str(NOTEBOOKS / "08-classroom-demo.ipynb"), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"],
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).close()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, "voila did not answer in 60 s"
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


#: Every element with text of its own inside the projected widgets, and its font size.
SMALL_TEXT = """() => {
    const small = [];
    for (const root of document.querySelectorAll(".gl-projecting")) {
        for (const el of root.querySelectorAll("*")) {
            const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
            if (!own || !el.getClientRects().length) continue;
            const size = parseFloat(getComputedStyle(el).fontSize);
            if (size < 18) small.push([el.className || el.tagName, el.textContent.trim().slice(0, 30), size]);
        }
    }
    return small;
}"""


@pytest.mark.timeout(180)
def test_the_classroom_page_projects_at_1280_by_720(browser, voila_page):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(voila_page, timeout=120_000)
        page.wait_for_selector(".gl-projecting .gl-tl.gl-projector .gl-tl-row", timeout=120_000)
        page.wait_for_timeout(1000)
        # Nothing ran before the button: the two versions are all the timeline has.
        assert page.locator(".gl-tl-row").count() == 2, "the demo ran before anyone pressed the button"
        page.locator("button", has_text="Run the demo").click()
        page.wait_for_function("() => document.querySelectorAll('.gl-tl-row').length >= 20", timeout=30_000)
        page.wait_for_function("() => !document.querySelector('.gl-projecting button[disabled]')", timeout=30_000)
        page.locator(".gl-tl-row.t-r").first.click()
        page.wait_for_selector(".gl-fv.gl-projector .gl-fv-hex .gl-b", timeout=10_000)
        small = page.evaluate(SMALL_TEXT)
        assert not small, f"projector text under 18 px (class, text, px): {small[:10]}"
        box = page.locator(".gl-fv.gl-projector .gl-fv-dump").bounding_box()
        scrolled = page.evaluate("() => [window.scrollX, window.scrollY]")
        assert scrolled == [0, 0]
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 1280 and box["y"] + box["height"] <= 720, (
            f"the clicked frame's bytes are not all on a 1280×720 screen: {box}"
        )
        inner = page.evaluate("() => { const d = document.querySelector('.gl-fv.gl-projector .gl-fv-dump'); return [d.scrollWidth, d.clientWidth, d.scrollHeight, d.clientHeight]; }")
        assert inner[0] <= inner[1] + 1 and inner[2] <= inner[3] + 1, f"the bytes scroll inside their box (scroll and client width, height): {inner}"
        rows = page.evaluate("() => { const s = document.querySelector('.gl-tl.gl-projector .gl-tl-scroll').getBoundingClientRect(); return Math.floor((720 - s.top) / 36); }")
        assert rows >= 6, f"only {rows} timeline rows fit on the screen"
        assert not errors, errors
        keep(page, "projector-voila.png")
        # The toggle gives a laptop layout back: normal text, the bytes under the timeline.
        page.locator(".widget-toggle-button", has_text="projector").click()
        page.wait_for_function("() => !document.querySelector('.gl-tl.gl-projector')", timeout=10_000)
        assert page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('.gl-tl')).fontSize)") < 18
    finally:
        page.close()

"""A Timeline holding 100 000 frames in JupyterLab answers scrolling and clicks within 100 ms.

The issue's performance target, measured in Debian's Chromium (1280 px wide). The
JupyterLab server, its isolation and the kernel checks are those of ``test_lab_browser.py``.
A kernel cell fills a ``gl.Trace`` with 100 000 frames (50 000 echo requests and their
results) through its public ``add``, the path a peer takes, and shows ``Timeline(trace)``.
Once the view holds every frame, the page measures with ``performance.now()``:

* scrolling: from setting ``scrollTop`` (to a new place in the middle, to the end, and
  back) until the row of that position is in the DOM with its time and label, drawn on
  the next animation frame (the view holds every row; it draws only the ones in sight);
* clicking a row in the middle: until the row is marked selected, and until the detail
  panel shows that frame's bytes (the kernel fills it: a round trip through the comm).

Each is measured several times; the median must stay under 100 ms, and every figure is
printed (``pytest -s``) for the notes that quote them.
"""

from __future__ import annotations

import re
import statistics

import nbformat
import pytest
from chromium import require_chromium
from test_lab_browser import KERNEL_READY, PAGE_TIMEOUT_MS, SCREENSHOTS, JupyterLab

pytestmark = pytest.mark.browser

NOTEBOOK = "timeline_scale_check.ipynb"
FRAMES = 100_000
#: The issue's target for a scroll or a click to be answered, in milliseconds.
ANSWER_MS = 100
SAMPLES = 7
#: The timeline's own element (anywidget may put the widget's classes on it or around it).
ROOT = ".scale-timeline.gl-tl, .scale-timeline .gl-tl"

CELLS = [
    "import gotalk_lab as gl\nfrom gotalk_lab.widgets import Timeline",
    # 100 000 frames through the trace's public hot path, as a peer notes them.
    "trace = gl.Trace()\n"
    f"for number in range({FRAMES // 2}):\n"
    "    request_id = b'%04d' % (number % 10_000)\n"
    "    request = gl.SingleRequest(request_id, 'echo', b'hello %d' % number)\n"
    "    result = gl.SingleResult(request_id, request.payload)\n"
    "    trace.add('out', gl.encode_header(request), request)\n"
    "    trace.add('in', gl.encode_header(result), result)\n"
    "print('FRAMES=%d' % len(trace.events))",
    "Timeline(trace, title='100 000 frames').add_class('scale-timeline')",
]

ALL_CELLS_RAN = """(count) => {
    const prompts = [...document.querySelectorAll(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt")];
    return prompts.length === count && prompts.every((prompt) => /^\\[\\d+\\]:$/.test(prompt.textContent.trim()));
}"""

#: Scroll the timeline to ``fraction`` of its height; resolves with the milliseconds until the
#: row at that position is in the DOM with its label (checked after each animation frame).
SCROLL = """async (fraction) => {
    const ROOT = ".scale-timeline.gl-tl, .scale-timeline .gl-tl";
    const root = document.querySelector(ROOT);
    const scroller = root.querySelector(".gl-tl-scroll");
    const rowHeight = root.querySelector(".gl-tl-row").offsetHeight;
    const bottom = scroller.scrollHeight - scroller.clientHeight;
    const target = Math.round(bottom * fraction);
    const position = Math.floor(target / rowHeight);
    const first = Number(root.querySelector(".gl-tl-row").dataset.i) - Math.round(root.querySelector(".gl-tl-row").offsetTop / rowHeight);
    const wanted = `.gl-tl-row[data-i="${first + position}"]`;
    const started = performance.now();
    scroller.scrollTop = target;
    for (let frames = 0; frames < 600; frames++) {
        await new Promise(requestAnimationFrame);
        const row = root.querySelector(wanted);
        if (row && row.querySelector(".gl-tl-label").textContent.includes("hello")) return performance.now() - started;
    }
    return Infinity;
}"""

#: Click the row with event index ``index``; resolves with [ms until it is marked selected,
#: ms until the detail panel's FrameView shows that frame].
CLICK = """async (index) => {
    const ROOT = ".scale-timeline.gl-tl, .scale-timeline .gl-tl";
    const root = document.querySelector(ROOT);
    const row = root.querySelector(`.gl-tl-row[data-i="${index}"]`);
    const started = performance.now();
    row.click();
    let marked = null;
    for (let frames = 0; frames < 1200; frames++) {
        await new Promise(requestAnimationFrame);
        const now = performance.now() - started;
        if (marked === null && root.querySelector(`.gl-tl-row.gl-tl-sel[data-i="${index}"]`)) marked = now;
        const detail = root.querySelector(".gl-tl-detail");
        const title = detail && !detail.hidden ? detail.querySelector(".gl-fv-title") : null;
        if (marked !== null && title && title.textContent.startsWith(`#${index} `)) return [marked, now];
    }
    return [marked ?? Infinity, Infinity];
}"""


@pytest.fixture(scope="module")
def scale_lab(tmp_path_factory):
    require_chromium()
    lab = JupyterLab(tmp_path_factory.mktemp("timeline-scale"))
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
def page(browser, scale_lab):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}"))
    try:
        page.goto(f"{scale_lab.url}/lab/tree/{NOTEBOOK}?token={scale_lab.token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_function(KERNEL_READY, timeout=PAGE_TIMEOUT_MS)
        page.keyboard.press("Control+b")  # the file browser closed: the notebook gets the width
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(ALL_CELLS_RAN, arg=len(CELLS), timeout=60_000)
            # Every frame in the view's rows: the history has arrived and been drawn.
            page.wait_for_function(
                """([root, count]) => {
                    const timeline = document.querySelector(root);
                    return Boolean(timeline?.querySelector(".gl-tl-layer .gl-tl-row")) && timeline.dataset.rows === String(count);
                }""",
                arg=[ROOT, FRAMES],
                timeout=120_000,
            )
        except Exception:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "timeline-scale-failure.png"))
            raise
        failed = page.locator(".jp-NotebookPanel [data-mime-type='application/vnd.jupyter.stderr']")
        assert failed.count() == 0, f"a cell wrote to stderr:\n{failed.first.inner_text()}"
        assert page.locator(".jp-OutputArea-output", has_text=f"FRAMES={FRAMES}").count() == 1
        yield page
        assert not errors, f"errors in the page's console: {errors}"
    finally:
        page.close()


def report(what: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    print(f"{what}: median {median:.1f} ms; samples {', '.join(f'{ms:.1f}' for ms in samples)} ms")
    return median


def test_the_view_holds_every_frame(page):
    stats = page.eval_on_selector(ROOT, "(el) => ({...el.dataset})")
    assert stats["rows"] == str(FRAMES) and stats["visible"] == str(FRAMES)
    assert int(stats["rendered"]) < 200  # only the rows in sight (and a margin) are in the DOM
    assert f"{FRAMES} frames" in page.locator(".scale-timeline .gl-tl-stats").inner_text()


def test_scrolling_to_the_middle_and_the_end_is_answered_within_100_ms(page):
    page.locator(".scale-timeline .gl-tl-scroll").scroll_into_view_if_needed()
    middle: list[float] = []
    end: list[float] = []
    for sample in range(SAMPLES):
        # A new place in the middle each time, the end, then back up (so that each scroll moves).
        for fraction, samples in ((0.4 + sample * 0.02, middle), (1.0, end), (0.1 + sample * 0.02, [])):
            samples.append(page.evaluate(SCROLL, fraction))
    assert report("scroll to the middle", middle) < ANSWER_MS
    assert report("scroll to the end", end) < ANSWER_MS


def test_clicking_a_row_in_the_middle_shows_its_detail_within_100_ms(page):
    page.locator(".scale-timeline .gl-tl-scroll").scroll_into_view_if_needed()
    page.evaluate(SCROLL, 0.5)
    first_row = int(page.eval_on_selector(".scale-timeline .gl-tl-layer", "(layer) => layer.querySelector('.gl-tl-row').dataset.i"))
    marks: list[float] = []
    details: list[float] = []
    for sample in range(SAMPLES):
        index = first_row + 12 + sample  # rows in sight, a different one each time
        marked, shown = page.evaluate(CLICK, index)
        marks.append(marked)
        details.append(shown)
    report("click: row marked selected", marks)
    assert report("click: detail shows its bytes (through the kernel)", details) < ANSWER_MS
    assert statistics.median(marks) < ANSWER_MS

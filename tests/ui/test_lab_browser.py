"""The widgets in a real JupyterLab and in Notebook 7, driven in Debian's Chromium through Playwright.

The test starts ``jupyter lab`` from its own Python (config, data, runtime, IPython,
settings and workspace directories all in tmp_path; a random token; a free port),
writes a notebook into the server's root directory, opens it, waits for its kernel,
runs all cells from the Run menu and reads the rendered DOM. Every test runs twice:
in JupyterLab (``/lab/tree/...``) and in Notebook 7 (``/notebooks/...``, served by
the same server), each with a notebook file of its own:

* the FrameView and FieldTable of ``r0001004echo00000005hello`` (``gl.show``): six
  fields, six colours, the right number of byte cells per field in both columns, and a
  click on a field (in either widget) selects its bytes and the linked table row;
* the live Timeline of a ``gl.pipe()`` conversation (echo, three sleeps at once, an
  error, a stream): one arrow row per frame of the trace, direction and type each right;
* a ``gl.lab(a)`` dashboard: clicking an arrow shows that frame's bytes below.

The notebook prints the trace as the kernel recorded it (``TRACE=[...]``), so the page is
checked against the kernel's own record. Any error in the page's console fails the tests.
Screenshots of the three widgets go to tests/ui/screenshots/ (ignored by git); with
GOTALK_LAB_README_SCREENSHOTS=1 JupyterLab's are also copied to docs/screenshots/ for the README.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from chromium import CHROMIUM, CHROMIUM_MISSING, require_chromium

from gotalk_lab import palette
from gotalk_lab.widgets.frames import FrameView

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).parent / "screenshots"
#: Where the README's images live (committed); refreshed only when this variable is "1".
README_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
README_VARIABLE = "GOTALK_LAB_README_SCREENSHOTS"

#: The two front-ends: the notebook file each opens (one each, so that they never
#: share a kernel or save over each other) and the URL path it is opened under.
FRONT_ENDS = {
    "lab": ("lab_check.ipynb", "/lab/tree/"),
    "notebook7": ("notebook7_check.ipynb", "/notebooks/"),
}
#: The request the FrameView explains: r, ID 0001, operation "echo", payload "hello".
REQUEST = b"r0001004echo00000005hello"
#: Seconds JupyterLab may take to answer /api/status; milliseconds for anything in the page.
START_TIMEOUT = 30
PAGE_TIMEOUT_MS = 30_000

#: The notebook the test opens, one string per code cell. Widgets get a class
#: (``add_class``) so that the test finds each one in the page.
CELLS = [
    "import asyncio\nimport json\n\nimport gotalk_lab as gl\nfrom gotalk_lab.widgets.timeline import type_of",
    # One request: its FrameView over its linked FieldTable.
    f"gl.show({REQUEST!r}, title='one request: echo \"hello\"').add_class('check-show')",
    # A live timeline, shown before the conversation happens: every frame arrives as an append.
    "a, b = await gl.pipe(None, gl.demo.handlers())\n"
    "a.timeline(title='peer a over a pipe: echo, three sleeps at once, an error, a stream').add_class('check-timeline')",
    # The conversation, then the trace as the kernel recorded it.
    "await a.request_bytes('echo', b'hello')\n"
    "print('sleeps:', await asyncio.gather(*(a.request('sleep', {'ms': ms}) for ms in (300, 100, 200))))\n"
    "try:\n"
    "    await a.request_bytes('fail', b'x')\n"
    "except gl.RequestError as error:\n"
    "    print('as expected:', error)\n"
    "async with a.stream_request('upper-stream') as request:\n"
    "    await request.send(b'abc')\n"
    "    await request.end()\n"
    "    print('stream:', await request.collect())\n"
    "print('TRACE=' + json.dumps([[e.index, e.direction, type_of(e.message), e.raw.hex()] for e in a.trace]))",
    # The dashboard of the same peer: its timeline gets the whole history at once.
    "gl.lab(a).add_class('check-dashboard')",
    # Expert Info: an ID reused in flight and a ProtocolError, badged on the timeline and listed.
    "faulty = gl.Trace()\n"
    "for side, m in [('out', gl.SingleRequest(b'0001', 'a', b'')), ('out', gl.SingleRequest(b'0001', 'b', b'')), ('in', gl.ProtocolError(2))]:\n"
    "    faulty.record(side, gl.encode_header(m), m)\n"
    "faulty_timeline = gl.widgets.Timeline(faulty, title='findings').add_class('check-findings')\n"
    "faulty_timeline",
    "gl.widgets.FindingsTable(faulty_timeline).add_class('check-findings-table')",
]


def is_notebook7_own_error(error) -> bool:
    """A page error thrown wholly inside Notebook 7's own bundle (every stack frame with a source in it).

    Notebook 7.6 throws some on its own, with or without widgets (a plain notebook and
    /tree alike): "Cannot read properties of undefined (reading 'schema')" while it
    loads settings on every page, and now and then "Command 'filebrowser:open-path'
    not registered". An error from the widgets' code has a frame of theirs.
    """
    lines = (error.stack or "").splitlines()
    frames = [line for line in lines if line.strip().startswith("at ") and "://" in line]  # not "at async Promise.all"
    return bool(frames) and all("/static/notebook/" in frame for frame in frames)


def css_rgb(colour: str) -> str:
    """"#ffd6a5" as the browser's computed style writes it: "rgb(255, 214, 165)"."""
    red, green, blue = bytes.fromhex(colour.removeprefix("#"))
    return f"rgb({red}, {green}, {blue})"


# -- JupyterLab -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.write(notebook, path)


def write_settings(settings_dir: Path) -> None:
    """User settings of this JupyterLab only: no news or update checks, every cell in the DOM."""
    overrides = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for name, values in overrides.items():
        path = settings_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class JupyterLab:
    """``jupyter lab`` in a process group of its own, touching nothing of the user's."""

    def __init__(self, base: Path) -> None:
        self.root = base / "root"
        self.root.mkdir()
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings, workspaces = base / "lab-settings", base / "lab-workspaces"
        write_settings(settings)
        dirs = {
            "JUPYTER_CONFIG_DIR": base / "config",
            "JUPYTER_DATA_DIR": base / "data",
            "JUPYTER_RUNTIME_DIR": base / "runtime",
            "IPYTHONDIR": base / "ipython",
            "JUPYTERLAB_SETTINGS_DIR": settings,
            "JUPYTERLAB_WORKSPACES_DIR": workspaces,
        }
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        env = {name: value for name, value in os.environ.items() if name not in ("JUPYTER_PATH", "JUPYTER_TOKEN")}
        env.update((name, str(path)) for name, path in dirs.items())
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.open_browser=False",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={workspaces}",
            # window.jupyterapp: the test asks the notebook's session whether its kernel is ready.
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",
        ]
        if os.geteuid() == 0:
            command.append("--allow-root")
        self.log_path = base / "jupyterlab.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            command, cwd=self.root, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(f"{self.url}/api/status", headers={"Authorization": f"token {self.token}"})
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"jupyter lab did not answer /api/status within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server and the kernels it started, even when it will not stop by itself.

        Kernels run in sessions of their own (jupyter_client starts them so), out of reach
        of the server's process group: they are found as the server's children first.
        """
        import psutil  # ipykernel's own dependency

        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server shuts its kernels down
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(5)
        _, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            child.kill()
        self._log.close()


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    require_chromium()
    lab = JupyterLab(tmp_path_factory.mktemp("jupyterlab"))
    try:
        for notebook, _ in FRONT_ENDS.values():
            write_notebook(lab.root / notebook)
        lab.wait_ready()
        yield lab
    finally:
        lab.stop()




KERNEL_READY = """() => {
    const panel = window.jupyterapp?.shell.currentWidget;
    const context = panel?.sessionContext;
    const kernel = context?.session?.kernel;
    return Boolean(context?.isReady && kernel && kernel.connectionStatus === "connected" && kernel.status === "idle");
}"""

ALL_CELLS_RAN = """(count) => {
    const prompts = [...document.querySelectorAll(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt")];
    return prompts.length === count && prompts.every((prompt) => /^\\[\\d+\\]:$/.test(prompt.textContent.trim()));
}"""


class LabPage:
    """The notebook, opened in ``front_end`` and run; ``trace``: what the kernel recorded."""

    def __init__(self, page, lab: JupyterLab, front_end: str) -> None:
        self.page = page
        self.lab = lab
        self.front_end = front_end
        notebook, under = FRONT_ENDS[front_end]
        page.goto(f"{lab.url}{under}{notebook}?token={lab.token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_function(KERNEL_READY, timeout=PAGE_TIMEOUT_MS)
        if front_end == "lab":
            page.keyboard.press("Control+b")  # close the file browser: the notebook gets the width
        self.run_all_cells()
        self.trace = self.printed_trace()

    def run_all_cells(self) -> None:
        page = self.page
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(ALL_CELLS_RAN, arg=len(CELLS), timeout=PAGE_TIMEOUT_MS)
        except Exception as error:
            prompts = page.evaluate("[...document.querySelectorAll('.jp-InputArea-prompt')].map((p) => p.textContent)")
            raise AssertionError(f"the cells did not all run (prompts {prompts}):\n{self.lab.log_tail()}") from error
        failed = page.locator(".jp-NotebookPanel [data-mime-type='application/vnd.jupyter.stderr']")
        assert failed.count() == 0, f"a cell wrote to stderr:\n{failed.first.inner_text()}"

    def printed_trace(self) -> list[list]:
        output = self.page.locator(".jp-OutputArea-output", has_text="TRACE=")
        line = next(line for line in output.inner_text().splitlines() if line.startswith("TRACE="))
        return json.loads(line.removeprefix("TRACE="))

    def cells(self, selector: str) -> list[dict]:
        """Byte cells under ``selector``: index, text, computed background, classes."""
        return self.page.eval_on_selector_all(
            selector,
            """(cells) => cells.map((cell) => ({
                i: Number(cell.dataset.i),
                text: cell.textContent,
                background: getComputedStyle(cell).backgroundColor,
                classes: [...cell.classList],
            }))""",
        )

    def screenshot(self, locator, name: str) -> Path:
        """An element screenshot in tests/ui/screenshots/ (and docs/screenshots/ when asked)."""
        self.page.mouse.move(0, 0)  # no hover: every field in its own colour, none faded
        self.page.wait_for_timeout(150)  # the hover fade's transition
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        readme = self.front_end == "lab"
        path = SCREENSHOTS / (name if readme else f"{self.front_end}-{name}")
        locator.screenshot(path=str(path), animations="disabled")
        assert path.stat().st_size > 10_000, f"{path} is nearly empty"
        if readme and os.environ.get(README_VARIABLE) == "1":
            README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, README_SCREENSHOTS / name)
        return path


@pytest.fixture(scope="module", params=list(FRONT_ENDS))
def lab_page(request, browser, jupyter_lab):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))

    def page_error(error) -> None:
        if not (request.param == "notebook7" and is_notebook7_own_error(error)):
            console_errors.append(f"{error}\n{error.stack}")

    page.on("pageerror", page_error)
    try:
        try:
            lab_page = LabPage(page, jupyter_lab, request.param)
        except Exception:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{request.param}-failure.png"))
            if console_errors:
                pytest.fail(f"the notebook did not run; errors in the page's console: {console_errors}")
            raise
        yield lab_page
        assert not console_errors, f"errors in the page's console: {console_errors}"
    finally:
        page.close()


def test_chromium_is_installed():
    assert CHROMIUM.exists(), CHROMIUM_MISSING


# -- FrameView and FieldTable -----------------------------------------------------


def expected_fields() -> list[dict]:
    """The fields the kernel explains for REQUEST: names, byte ranges and colours."""
    return FrameView(REQUEST).fields


def test_frame_view_colours_each_field(lab_page):
    fields = expected_fields()
    assert [f["name"] for f in fields] == ["type", "request_id", "name_size", "operation", "payload_size", "payload"]
    view = ".check-show .gl-fv"
    lab_page.page.wait_for_selector(f"{view} .gl-fv-hex .gl-b", timeout=PAGE_TIMEOUT_MS)
    hex_cells = lab_page.cells(f"{view} .gl-fv-hex .gl-b")
    ascii_cells = lab_page.cells(f"{view} .gl-fv-asc .gl-b")
    assert [c["text"] for c in hex_cells] == [f"{byte:02x}" for byte in REQUEST]
    assert "".join(c["text"] for c in ascii_cells) == REQUEST.decode()
    for column, cells in (("hex", hex_cells), ("ASCII", ascii_cells)):
        assert [c["i"] for c in cells] == list(range(len(REQUEST))), column
        backgrounds = [c["background"] for c in cells]
        # Six colours, one per field, and each field's colour on exactly its bytes.
        assert len(set(backgrounds)) == 6, f"{column}: {sorted(set(backgrounds))}"
        for field in fields:
            painted = [c["i"] for c in cells if c["background"] == css_rgb(field["colour"])]
            assert painted == list(range(field["start"], field["end"])), f"{column} cells of {field['name']}"
    counts = [sum(c["background"] == css_rgb(f["colour"]) for c in hex_cells) for f in fields]
    assert counts == [1, 4, 3, 4, 8, 5]
    chips = lab_page.page.locator(f"{view} .gl-fv-chip")
    assert chips.all_inner_texts() == [f["name"] for f in fields]
    # The message's type badge, in the legend and the table, as on the Timeline: the palette's request colours.
    request = palette.MESSAGE_TYPES["r"]
    for badge in (f"{view} .gl-fv-group-head .gl-badge", ".check-show .gl-ft-group .gl-badge"):
        shown = lab_page.page.eval_on_selector(
            badge, "(b) => [b.textContent, getComputedStyle(b).backgroundColor, getComputedStyle(b).color]"
        )
        assert shown == [f"{request.glyph} r", css_rgb(request.colour), css_rgb(request.on)], (badge, shown)
    assert lab_page.page.locator(".check-show .gl-ft-row .gl-ft-name").all_inner_texts() == [f["name"] for f in fields]


def selected_bytes(lab_page, column: str) -> list[int]:
    return [c["i"] for c in lab_page.cells(f".check-show .gl-fv-{column} .gl-b.gl-sel")]


def selected_rows(lab_page) -> list[int]:
    rows = lab_page.page.locator(".check-show .gl-ft-row.gl-ft-selected")
    return [int(rows.nth(k).get_attribute("data-f")) for k in range(rows.count())]


def wait_for_selection(lab_page, field: dict) -> None:
    span = list(range(field["start"], field["end"]))
    lab_page.page.wait_for_function(
        """([span, row]) => {
            const hex = [...document.querySelectorAll(".check-show .gl-fv-hex .gl-b.gl-sel")].map((c) => Number(c.dataset.i));
            const selected = document.querySelector(".check-show .gl-ft-row.gl-ft-selected");
            return JSON.stringify(hex) === JSON.stringify(span) && selected?.dataset.f === String(row);
        }""",
        arg=[span, field["index"]],
        timeout=5000,
    )


def test_clicking_a_field_selects_its_bytes_and_the_table_row(lab_page):
    fields = expected_fields()
    page = lab_page.page
    payload, operation = fields[5], fields[3]

    # A row of the table: the FrameView marks the payload's bytes, in both columns.
    page.locator(f".check-show .gl-ft-row[data-f='{payload['index']}']").click()
    wait_for_selection(lab_page, payload)
    assert selected_bytes(lab_page, "hex") == selected_bytes(lab_page, "asc") == list(range(20, 25))
    assert selected_rows(lab_page) == [5]

    # A byte of the FrameView: its field is selected there and the table's row follows.
    page.locator(".check-show .gl-fv-hex .gl-b[data-i='9']").click()  # the "c" of "echo"
    wait_for_selection(lab_page, operation)
    assert selected_bytes(lab_page, "hex") == selected_bytes(lab_page, "asc") == list(range(8, 12))
    assert selected_rows(lab_page) == [3]
    chips = page.locator(".check-show .gl-fv-chip.gl-sel")
    assert chips.all_inner_texts() == ["operation"]
    info = page.locator(".check-show .gl-fv-info").inner_text()
    assert "operation" in info and "[8:12]" in info and "echo" in info
    lab_page.screenshot(page.locator(".check-show"), "lab-frame-view.png")


# -- Timeline -------------------------------------------------------------------------


def timeline_rows(lab_page, widget: str) -> list[dict]:
    return lab_page.page.eval_on_selector_all(
        f"{widget} .gl-tl-row",
        "(rows) => rows.map((row) => ({ i: Number(row.dataset.i), classes: [...row.classList] }))",
    )


def wait_for_timeline(lab_page, widget: str) -> None:
    """Until the timeline holds every frame of the trace and has drawn them all."""
    lab_page.page.wait_for_function(
        """([selector, count]) => {
            const timeline = document.querySelector(selector);
            return timeline?.dataset.rows === String(count) && timeline.querySelectorAll(".gl-tl-row").length === count;
        }""",
        arg=[f"{widget} .gl-tl, {widget}.gl-tl", len(lab_page.trace)],
        timeout=PAGE_TIMEOUT_MS,
    )


def test_live_timeline_draws_one_arrow_per_frame(lab_page):
    trace = lab_page.trace
    # The conversation: 2 version frames, echo (2), three sleeps (6), fail (2), a stream (4).
    assert len(trace) == 16, trace
    wait_for_timeline(lab_page, ".check-timeline")
    rows = timeline_rows(lab_page, ".check-timeline")
    assert [row["i"] for row in rows] == [index for index, *_ in trace]
    for row, (index, direction, type_char, _) in zip(rows, trace):
        assert f"d-{direction}" in row["classes"], (index, row)
        assert f"t-{'ee' if type_char == 'e' else type_char}" in row["classes"], (index, row)
    page = lab_page.page
    assert page.locator(".check-timeline .gl-tl-arrow").count() == len(trace)
    # Each arrow and badge in its type's palette colour, as the browser computes it (the
    # cascade, not only the stylesheet's text: a later rule could override a type's class).
    drawn = page.eval_on_selector_all(
        ".check-timeline .gl-tl-row",
        """(rows) => rows.map((row) => [
            getComputedStyle(row.querySelector(".gl-tl-badge")).backgroundColor,
            getComputedStyle(row.querySelector(".gl-tl-badge")).color,
            getComputedStyle(row.querySelector(".gl-tl-arrow"), "::before").borderTopColor,
        ])""",
    )
    for (index, _, type_char, _), (badge, text, arrow) in zip(trace, drawn):
        style = palette.MESSAGE_TYPES[type_char]
        assert badge == arrow == css_rgb(style.colour) and text == css_rgb(style.on), (index, type_char, badge, text, arrow)
    stats = page.locator(".check-timeline .gl-tl-stats").inner_text()
    assert stats.startswith(f"{len(trace)} frames · 6 exchanges"), stats
    # Six exchanges, six bars; the three sleeps were in flight at once: three columns.
    bars = page.eval_on_selector_all(
        ".check-timeline .gl-tl-bar", "(bars) => bars.map((bar) => [bar.style.left, [...bar.classList]])"
    )
    assert len(bars) == 6
    assert len({left for left, _ in bars}) >= 3, bars
    assert sum("o-error" in classes for _, classes in bars) == 1
    lab_page.screenshot(page.locator(".check-timeline"), "lab-timeline.png")


def test_timeline_badges_the_frames_of_each_finding_and_the_table_lists_them(lab_page):
    page = lab_page.page
    badges = ".check-findings .gl-tl-finding"
    page.wait_for_function(f"() => document.querySelectorAll({badges!r}).length === 3", timeout=PAGE_TIMEOUT_MS)
    shown = page.eval_on_selector_all(badges, "(marks) => marks.map((m) => [m.closest('.gl-tl-row').dataset.i, m.textContent, m.title])")
    assert [(index, symbol) for index, symbol, _ in shown] == [("0", "✖"), ("1", "✖"), ("2", "✖")]
    assert "reused request ID" in shown[0][2] and "ProtocolError 2" in shown[2][2]
    table = page.locator(".check-findings-table").inner_text()
    assert "request-id-reused" in table and "protocol-error" in table


# -- the dashboard ------------------------------------------------------------------------


def test_dashboard_shows_the_clicked_frame(lab_page):
    page = lab_page.page
    dashboard = ".check-dashboard"
    wait_for_timeline(lab_page, dashboard)
    assert page.locator(f"{dashboard} .gl-fv-hex .gl-b").count() == 0  # nothing chosen yet

    def click_and_check(index: int) -> None:
        raw = bytes.fromhex(lab_page.trace[index][3])
        page.locator(f"{dashboard} .gl-tl-row[data-i='{index}']").click()
        page.wait_for_function(
            """([selector, title]) => document.querySelector(selector)?.textContent.startsWith(title)""",
            arg=[f"{dashboard} .gl-fv-title", f"#{index} "],
            timeout=5000,
        )
        page.wait_for_function(
            """([selector, count]) => document.querySelectorAll(selector).length === count""",
            arg=[f"{dashboard} .gl-fv-hex .gl-b", len(raw)],
            timeout=5000,
        )
        assert [c["text"] for c in lab_page.cells(f"{dashboard} .gl-fv-hex .gl-b")] == [f"{b:02x}" for b in raw]
        selected = page.locator(f"{dashboard} .gl-tl-row.gl-tl-sel")
        assert selected.count() == 1 and selected.get_attribute("data-i") == str(index)
        assert page.locator(f"{dashboard} .gl-tl-bar.gl-tl-bar-sel").count() == 1

    # The error result, then the first sleep to finish (100 ms, the second one asked).
    error = next(index for index, _, type_char, _ in lab_page.trace if type_char == "E")
    click_and_check(error)
    assert page.locator(f"{dashboard} .gl-ft-row .gl-ft-name").all_inner_texts() == ["type", "request_id", "payload_size", "payload"]
    slept = next(index for index, _, _, raw in lab_page.trace if bytes.fromhex(raw).endswith(b'{"slept":100}'))
    click_and_check(slept)
    assert json.loads(page.locator(f"{dashboard} .gl-fv-pre").inner_text()) == {"slept": 100}
    # The dashboard's table and view are linked too: the request ID's row marks its bytes.
    page.locator(f"{dashboard} .gl-ft-row[data-f='1']").click()
    page.wait_for_function(
        """(selector) => [...document.querySelectorAll(selector)].map((c) => c.dataset.i).join() === '1,2,3,4'""",
        arg=f"{dashboard} .gl-fv-asc .gl-b.gl-sel",
        timeout=5000,
    )

    # Too narrow for both: the table wraps under the view. Wide enough: side by side
    # (Notebook 7 caps the width of its cells, so there it wraps at both sizes).
    # Either way neither scrolls sideways (the ASCII column and the meanings stay in sight).
    for width, side_by_side in ((1400, False), (1760, lab_page.front_end == "lab")):
        page.set_viewport_size({"width": width, "height": 1100})
        page.wait_for_timeout(300)  # JupyterLab lays its panels out again
        layout = page.evaluate(
            """(selector) => {
                const box = (element) => element.getBoundingClientRect();
                const dashboard = document.querySelector(selector);
                const dump = dashboard.querySelector(".gl-fv-dump");
                const table = dashboard.querySelector(".gl-ft-scroll");
                return {
                    view: box(dashboard.querySelector(".gl-fv")).toJSON(),
                    table: box(dashboard.querySelector(".gl-ft")).toJSON(),
                    dumpOverflow: dump.scrollWidth - dump.clientWidth,
                    tableOverflow: table.scrollWidth - table.clientWidth,
                };
            }""",
            dashboard,
        )
        assert layout["dumpOverflow"] <= 1 and layout["tableOverflow"] <= 1, (width, layout)
        beside = abs(layout["view"]["top"] - layout["table"]["top"]) < 2 and layout["table"]["left"] >= layout["view"]["right"]
        assert beside is side_by_side, (width, layout)
    lab_page.screenshot(page.locator(dashboard), "lab-dashboard.png")

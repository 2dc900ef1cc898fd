"""The browser edition: site/ (``make site``) runs the tutorials in Chromium, Python in Pyodide.

The site is served by ``python -m http.server`` on 127.0.0.1, as a teacher would serve
it. Every request the page (or its workers) makes to any other host is blocked and
counted, and the count must be 0: the Pyodide runtime, every wheel and every page are
the site's own. Each tutorial but 07 (the network one) is opened in a page of its own
(``site/lab/index.html?path=NN-....ipynb``) and run with Run All Cells; then

* every code cell has run (Run All stops at the first error, so this means none failed),
  and no output went to stderr;
* each cell marked ``# needs a network`` printed the one line that says it was skipped;
* the widget views rendered: as many as the tutorial shows in the browser edition;
* in 02, ``a.sync.request(...)`` answered (the blocking facade on Pyodide's ``run_sync``).

A last test opens a new notebook in the site and reaches ``gotalk-lab serve --ws`` on
127.0.0.1 with ``gl.connect("ws://...")``, through the browser's own WebSocket.

``make test`` builds site/ first; run alone, the module builds it if it is missing.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from chromium import CHROMIUM_ARGS

from gotalk_lab.edition import NETWORK_CELL, SKIPPED_LINE

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "site"
NOTEBOOKS = ROOT / "notebooks"
TUTORIALS = sorted(path.name for path in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb") if not path.name.startswith("07-"))
#: The widget views each tutorial shows in the browser edition: as many as in a Python
#: kernel (nbclient counts the same), but 09-11, whose views are in cells that need a
#: network. A count that changes means a tutorial changed: update it here.
WIDGET_VIEWS = {
    "01-wire-format.ipynb": 5,
    "02-first-conversation.ipynb": 2,
    "03-multiplexing.ipynb": 2,
    "04-streaming.ipynb": 2,
    "05-faults.ipynb": 4,
    "06-notifications-heartbeats.ipynb": 3,
    "08-classroom-demo.ipynb": 1,
    "09-conformance-check.ipynb": 0,
    "10-captures.ipynb": 0,
    "11-interception.ipynb": 0,
}
#: Pyodide and the kernel start in 10-20 s here; the slowest tutorial then runs in a few.
RUN_TIMEOUT_MS = 150_000
#: Only these hosts may be asked for anything.
OWN_HOSTS = {"127.0.0.1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def site_url():
    if not (SITE / "jupyter-lite.json").exists():  # `make test` builds it; pytest alone may not have
        subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py")], check=True, timeout=900)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(SITE), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/jupyter-lite.json", timeout=5) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert time.monotonic() < deadline, "python -m http.server did not start"
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_site_is_built_for_itself_alone(site_url):
    with urllib.request.urlopen(f"{site_url}/jupyter-lite.json", timeout=5) as answer:
        config = json.load(answer)["jupyter-config-data"]
    kernel = config["litePluginSettings"]["@jupyterlite/pyodide-kernel-extension:kernel"]
    assert kernel["pyodideUrl"] == "./static/pyodide/pyodide.mjs"
    assert kernel["disablePyPIFallback"] is True
    lock = json.loads((SITE / "static" / "pyodide" / "pyodide-lock.json").read_text())
    assert "gotalk-lab" in lock["packages"] and "comm" in lock["packages"]
    for entry in lock["packages"].values():
        assert (SITE / "static" / "pyodide" / entry["file_name"]).exists(), entry["file_name"]


def marked_cells(name: str) -> int:
    book = json.loads((NOTEBOOKS / name).read_text())
    return sum(1 for cell in book["cells"] if cell["cell_type"] == "code" and "".join(cell["source"]).startswith(NETWORK_CELL))


ALL_RAN_OR_FAILED = """() => {
    const prompts = [...document.querySelectorAll(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt")];
    const failed = document.querySelector(".jp-NotebookPanel [data-mime-type='application/vnd.jupyter.stderr']");
    return Boolean(failed) || (prompts.length > 0 && prompts.every((p) => /^\\[\\d+\\]:$/.test(p.textContent.trim())));
}"""

#: A widget view is an output that ipywidgets' renderer (a Lumino panel) filled and laid out.
WIDGET_VIEWS_SHOWN = """() => [...document.querySelectorAll(".jp-NotebookPanel .jp-OutputArea-output.lm-Panel")]
    .filter((view) => view.firstElementChild && view.getBoundingClientRect().height > 0
                      && !/Error displaying widget|Loading widget/.test(view.textContent)).length"""


def closed_context(browser, outside: list[str]):
    """A fresh browser context (its own storage) that blocks and counts every other host in ``outside``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})

    def only_our_own(route):
        url = route.request.url
        if urlparse(url).scheme in ("data", "blob") or urlparse(url).hostname in OWN_HOSTS:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", only_our_own)
    # Requests a route may not see (a service worker's own) are counted here too.
    context.on("request", lambda request: urlparse(request.url).hostname not in (OWN_HOSTS | {None}) and outside.append(request.url))
    page = context.new_page()
    page.on("websocket", lambda ws: urlparse(ws.url).hostname not in OWN_HOSTS and outside.append(ws.url))
    return context, page


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", TUTORIALS)
def test_a_tutorial_runs_top_to_bottom_in_the_browser(browser, site_url, name):
    outside: list[str] = []
    context, page = closed_context(browser, outside)
    try:
        started = time.monotonic()
        page.goto(f"{site_url}/lab/index.html?path={name}")
        page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=60_000)
        # 08 hides its code: show it, so that every cell has its prompt to read.
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^View$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Expand All Code$")).click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        page.wait_for_function(ALL_RAN_OR_FAILED, timeout=RUN_TIMEOUT_MS)
        failed = page.locator(".jp-NotebookPanel [data-mime-type='application/vnd.jupyter.stderr']")
        assert failed.count() == 0, f"{name}: a cell failed or wrote to stderr:\n{failed.first.inner_text()[-3000:]}"
        prompts = page.evaluate("[...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt')].map((p) => p.textContent.trim())")
        code_cells = sum(1 for cell in json.loads((NOTEBOOKS / name).read_text())["cells"] if cell["cell_type"] == "code")
        assert len(prompts) == code_cells and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), prompts

        skipped = page.locator(".jp-NotebookPanel .jp-OutputArea-output", has_text=SKIPPED_LINE).count()
        assert skipped == marked_cells(name), f"{name}: {skipped} cells said they were skipped, {marked_cells(name)} are marked"

        if name.startswith("02-"):
            # The blocking facade (peer.sync) answered through Pyodide's run_sync, not nest-asyncio.
            answer = page.locator(".jp-OutputArea-output[data-mime-type='text/plain']", has_text="{'greeting': 'Hello blocking call'}")
            assert answer.count() == 1

        expected = WIDGET_VIEWS[name]
        try:
            page.wait_for_function(f"() => ({WIDGET_VIEWS_SHOWN})() >= {expected}", timeout=30_000)
        except Exception:
            pass  # the count below says what there is
        page.wait_for_timeout(500)  # a view too many would show by now
        shown = page.evaluate(WIDGET_VIEWS_SHOWN)
        assert shown == expected, f"{name}: {shown} widget views rendered, {expected} expected"
        print(f"{name}: {len(prompts)} cells, {shown} widget views, {skipped} skipped, {time.monotonic() - started:.1f} s")
    finally:
        context.close()
    assert outside == [], f"{name} asked other hosts for {len(outside)} things: {outside[:5]}"


@pytest.fixture
def websocket_server():
    """``gotalk-lab serve --ws`` on 127.0.0.1: the kind of server a page may reach (it allows local Origins)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "gotalk_lab.cli", "serve", "--ws", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("listening ws://127.0.0.1:"), line
        yield line.split()[1]
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.timeout(180)
def test_connect_reaches_a_websocket_server_through_the_browsers_websocket(browser, site_url, websocket_server):
    """A new notebook in the site: gl.connect("ws://...") on js.WebSocket, both ways, and peer.sync on it."""
    outside: list[str] = []
    context, page = closed_context(browser, outside)
    code = "\n".join([
        "import gotalk_lab as gl",
        f"peer = await gl.connect({websocket_server!r}, gl.demo.handlers())",
        "print('echo:', await peer.request_bytes('echo', b'through the page'))",
        "print('callback:', await peer.request_bytes('callback', b'zz'))",  # the server calls our ping
        "print('sync:', peer.sync.request('greet', {'name': 'browser'}))",
        "await peer.close()",
        "print('closed:', peer.close_reason)",
    ])
    try:
        page.goto(f"{site_url}/lab/index.html")
        page.locator(".jp-LauncherCard[data-category='Notebook']").first.click(timeout=60_000)
        editor = page.locator(".jp-NotebookPanel .jp-CodeCell .cm-content").first
        editor.click(timeout=60_000)
        page.keyboard.insert_text(code)  # as pasted: no auto-closed brackets
        page.keyboard.press("Shift+Enter")
        page.wait_for_function(
            "() => /^\\[\\d+\\]:$/.test(document.querySelector('.jp-NotebookPanel .jp-CodeCell .jp-InputArea-prompt').textContent.trim())",
            timeout=RUN_TIMEOUT_MS,
        )
        printed = page.locator(".jp-NotebookPanel .jp-CodeCell").first.locator(".jp-OutputArea").inner_text()
    finally:
        context.close()
    assert printed.splitlines() == [
        "echo: b'through the page'",
        "callback: b'pong:ping:zz'",
        "sync: {'greeting': 'Hello browser'}",
        "closed: closed by this side",
    ], printed
    assert outside == [], f"the page asked other hosts for {len(outside)} things: {outside[:5]}"

"""The browser edition (Pyodide) seen from here: IN_BROWSER set by hand, as Pyodide sets it.

Every entry point that needs a network stops with one line naming itself before it
touches a socket; the blocking facade runs through pyodide.ffi.run_sync, or says why
it cannot; and notebook cells marked "# needs a network" become one print line.
The real thing runs in tests/ui/test_site_browser.py (the site in Chromium).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import types

import pytest

import gotalk_lab as gl
from gotalk_lab import edition, sync
from gotalk_lab.tap import Tap


@pytest.fixture
def browser_edition(monkeypatch):
    monkeypatch.setattr(edition, "IN_BROWSER", True)

    def no_socket(*args, **kwargs):
        raise AssertionError("a socket was opened in the browser edition")

    # Every way the kit opens or listens on a socket goes through one of these.
    for name in ("create_connection", "create_server", "create_unix_connection", "create_unix_server"):
        monkeypatch.setattr(asyncio.BaseEventLoop, name, no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)


def test_this_is_not_the_browser_edition():
    assert gl.IN_BROWSER is False and edition.IN_BROWSER is False
    edition.require_network("anything")  # nothing happens here


NETWORK_CALLS = {
    "gl.connect('tcp://127.0.0.1:1')": lambda: gl.connect("tcp://127.0.0.1:1"),
    "gl.connect('ws://127.0.0.1:1/gotalk/')": lambda: gl.connect("ws://127.0.0.1:1/gotalk/"),
    "gl.serve('tcp://127.0.0.1:0')": lambda: gl.serve("tcp://127.0.0.1:0"),
    "a tap (gl.tap, Tap.listen)": lambda: gl.tap(listen="127.0.0.1:0", upstream="127.0.0.1:1"),
    "gl.check('tcp://127.0.0.1:1')": lambda: gl.check("tcp://127.0.0.1:1"),
    "gl.replay(..., 'tcp://127.0.0.1:1')": lambda: gl.replay(gl.Trace(), "tcp://127.0.0.1:1"),
}


@pytest.mark.parametrize("what", NETWORK_CALLS)
def test_what_needs_a_network_says_so_in_one_line(browser_edition, what):
    with pytest.raises(gl.BrowserEditionError) as raised:
        asyncio.run(NETWORK_CALLS[what]())
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"the browser edition of gotalk_lab has no sockets: {what} needs a network;")
    assert "gl.pipe()" in message


def test_a_tap_made_by_hand_says_so_too(browser_edition):
    with pytest.raises(gl.BrowserEditionError, match="no sockets: a tap"):
        asyncio.run(Tap("127.0.0.1", 1).listen("127.0.0.1", 0))


def test_the_blocking_connect_says_so_before_any_thread_or_socket(browser_edition, monkeypatch):
    fake_pyodide(monkeypatch, can_run_sync=True)

    async def cell():
        return sync.connect("tcp://127.0.0.1:1")

    with pytest.raises(gl.BrowserEditionError, match=r"gl.connect\('tcp://127.0.0.1:1'\) needs a network"):
        asyncio.run(cell())


def test_a_pipe_still_works_in_the_browser_edition(browser_edition):
    async def cell():
        a, b = await gl.pipe(None, gl.demo.handlers())
        answer = await a.request("greet", {"name": "page"})
        await a.close()
        return answer

    assert asyncio.run(cell()) == {"greeting": "Hello page"}


def fake_pyodide(monkeypatch, *, can_run_sync: bool) -> list:
    ran = []

    def run_sync(coroutine):
        ran.append(coroutine)
        # Stands in for JSPI pausing this code: run the coroutine to its end elsewhere.
        with __import__("concurrent.futures").futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, coroutine).result()

    package = types.ModuleType("pyodide")
    ffi = types.ModuleType("pyodide.ffi")
    ffi.can_run_sync = lambda: can_run_sync
    ffi.run_sync = run_sync
    package.ffi = ffi
    monkeypatch.setitem(sys.modules, "pyodide", package)
    monkeypatch.setitem(sys.modules, "pyodide.ffi", ffi)
    return ran


def test_a_blocking_call_in_a_cell_runs_through_run_sync_not_nest_asyncio(browser_edition, monkeypatch):
    ran = fake_pyodide(monkeypatch, can_run_sync=True)
    monkeypatch.setattr(sync, "_allow_nesting", lambda loop: pytest.fail("nest-asyncio applied in the browser"))

    async def answer():
        await asyncio.sleep(0)
        return 42

    async def cell():
        return sync.run(answer())

    assert asyncio.run(cell()) == 42
    assert len(ran) == 1


def test_a_blocking_call_where_python_cannot_pause_says_to_await(browser_edition, monkeypatch):
    ran = fake_pyodide(monkeypatch, can_run_sync=False)

    async def answer():
        return 42

    async def cell():
        waiting = answer()
        try:
            return sync.run(waiting)
        finally:
            waiting.close()

    with pytest.raises(RuntimeError) as raised:
        asyncio.run(cell())
    assert "\n" not in str(raised.value)
    assert "cannot wait in this browser" in str(raised.value) and "write `await` instead" in str(raised.value)
    assert ran == []


class Shell:
    def __init__(self):
        self.input_transformers_cleanup = []


def test_network_cells_are_skipped_in_the_browser_edition_only(monkeypatch):
    shell = Shell()
    assert edition.skip_network_cells(shell) is False
    assert shell.input_transformers_cleanup == []

    monkeypatch.setattr(edition, "IN_BROWSER", True)
    assert edition.skip_network_cells(shell) is True
    assert edition.skip_network_cells(shell) is True
    assert shell.input_transformers_cleanup == [edition.skip_network_cell]

    cell = ["\n", "# needs a network: the server program\n", "server = await gl.serve('tcp://127.0.0.1:0')\n"]
    skipped = edition.skip_network_cell(cell)
    namespace: dict = {}
    printed = []
    exec("".join(skipped), {"print": printed.append}, namespace)
    assert printed == [edition.SKIPPED_LINE]

    plain = ["a, b = await gl.pipe()\n", "# needs a network, but not the first line\n"]
    assert edition.skip_network_cell(plain) == plain

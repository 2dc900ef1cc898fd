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
    "gl.connect('unix:///tmp/gotalk.sock')": lambda: gl.connect("unix:///tmp/gotalk.sock"),
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
    assert "gl.pipe()" in message and "gl.connect('ws://HOST:PORT/gotalk/')" in message


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


# -- gl.connect("ws://...") in the browser: the browser's own WebSocket, faked here --------


class Event:
    def __init__(self, **fields):
        self.__dict__.update(fields)


class ArrayBuffer:
    """What a binary message's event.data is with binaryType "arraybuffer"."""

    def __init__(self, data: bytes):
        self.data = data

    def to_bytes(self) -> bytes:
        return self.data


class FakeWebSocket:
    """The browser's WebSocket as the transport uses it: events, send, bufferedAmount, close."""

    opened: list = []

    def __init__(self, url):
        self.url = url
        self.binaryType = "blob"
        self.bufferedAmount = 0
        self.sent: list[bytes] = []
        self.listeners: dict[str, list] = {}
        self.closed_with = None
        FakeWebSocket.opened.append(self)

    @classmethod
    def new(cls, url):
        return cls(url)

    def addEventListener(self, event, listener):
        self.listeners.setdefault(event, []).append(listener)

    def removeEventListener(self, event, listener):
        self.listeners[event].remove(listener)

    def fire(self, event, **fields):
        for listener in list(self.listeners.get(event, [])):
            listener(Event(**fields))

    def send(self, data):
        assert isinstance(data, bytes)
        self.sent.append(data)

    def close(self, code=1005):
        self.closed_with = code
        asyncio.get_running_loop().call_soon(lambda: self.fire("close", code=code, reason=""))


class Proxy:
    def __init__(self, function):
        self.function = function
        self.destroyed = False

    def __call__(self, *args):
        assert not self.destroyed, "a destroyed proxy was called"
        return self.function(*args)

    def destroy(self):
        self.destroyed = True


@pytest.fixture
def browser_websocket(monkeypatch):
    monkeypatch.setattr(edition, "IN_BROWSER", True)
    FakeWebSocket.opened = []
    js = types.ModuleType("js")
    js.WebSocket = FakeWebSocket
    package = types.ModuleType("pyodide")
    ffi = types.ModuleType("pyodide.ffi")
    ffi.create_proxy = Proxy
    ffi.to_js = lambda data: bytes(data)
    package.ffi = ffi
    for name, module in (("js", js), ("pyodide", package), ("pyodide.ffi", ffi)):
        monkeypatch.setitem(sys.modules, name, module)
    return FakeWebSocket.opened


def test_connect_over_the_browsers_websocket_frames_as_gotalk_js(browser_websocket):
    async def cell():
        connecting = asyncio.ensure_future(gl.connect("ws://127.0.0.1:8080/gotalk/", gl.demo.handlers()))
        while not browser_websocket:
            await asyncio.sleep(0)
        socket = browser_websocket[0]
        assert socket.url == "ws://127.0.0.1:8080/gotalk/" and socket.binaryType == "arraybuffer"
        socket.fire("open")
        socket.fire("message", data=ArrayBuffer(b"01"))  # the server's version
        peer = await connecting
        asking = asyncio.ensure_future(peer.request_bytes("echo", b"hi"))
        while len(socket.sent) < 3:
            await asyncio.sleep(0)
        version, header, payload = socket.sent
        assert (version, header[:1], header[5:], payload) == (b"01", b"r", b"004echo00000002", b"hi")
        request_id = header[1:5]
        socket.fire("message", data=ArrayBuffer(b"R" + request_id + b"00000002"))  # header and payload:
        socket.fire("message", data="hi")  # a text message is read as UTF-8
        answer = await asking
        # The server calls our ping: its answer goes out as header, then payload.
        socket.fire("message", data=ArrayBuffer(b"r" + b"0009" + b"004ping00000003"))
        socket.fire("message", data=ArrayBuffer(b"abc"))
        while len(socket.sent) < 5:
            await asyncio.sleep(0)
        pong = socket.sent[3:5]
        proxies = [proxy for listeners in socket.listeners.values() for proxy in listeners]
        await peer.close()
        return socket, answer, pong, proxies

    socket, answer, pong, proxies = asyncio.run(cell())
    assert answer == b"hi"
    assert pong == [b"R000900000008", b"ping:abc"]
    assert socket.closed_with == 1000
    assert all(proxy.destroyed for proxy in proxies) and not any(socket.listeners.values())


def test_a_websocket_the_browser_cannot_open_says_what_to_check(browser_websocket):
    async def cell():
        connecting = asyncio.ensure_future(gl.connect("ws://127.0.0.1:1/gotalk/"))
        while not browser_websocket:
            await asyncio.sleep(0)
        browser_websocket[0].fire("close", code=1006, reason="")
        await connecting

    with pytest.raises(ConnectionRefusedError, match=r"could not open a WebSocket to ws://127.0.0.1:1/gotalk/ \(code 1006\)"):
        asyncio.run(cell())

"""A real Chromium page speaking Gotalk to our WebSocket server, both directions.

The page (gotalk_lab/static/demo.html) uses gotalk_lab/static/gotalk-client.js,
which frames messages as gotalk.js does: every header and payload its own binary
WebSocket message. The demo server runs in-process on its own event loop in a
background thread; Playwright's sync API drives Debian's Chromium from the test
thread. Origin checks use the ``websockets`` client, no browser needed.
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import pytest
from chromium import CHROMIUM, CHROMIUM_MISSING, require_chromium
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gotalk_lab import demo
from gotalk_lab.connect import serve
from gotalk_lab.decoder import Decoder
from gotalk_lab.peer import RequestError
from gotalk_lab.trace import IN, OUT
from gotalk_lab.wire import (
    ErrorResult,
    Heartbeat,
    Notification,
    ProtocolVersion,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
)

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).parent / "screenshots" / "websocket-demo.png"
#: gotalk.js numbers its requests with 4 base-36 ASCII digits.
BASE36_ID = re.compile(rb"^[0-9a-z]{4}$")


class LoopThread:
    """An asyncio event loop running in a daemon thread; ``run`` blocks on a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gotalk-server-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class DemoServer:
    """The demo operations on ws://127.0.0.1:PORT/gotalk/, with every peer it accepted, in order."""

    def __init__(self, loop: LoopThread) -> None:
        self.run = loop.run
        self.accepted: list = []

        async def start():
            server = await serve("ws://127.0.0.1:0/gotalk/", demo.handlers())
            server.on_connect(self.accepted.append)
            return server

        self.server = self.run(start())
        self.url = self.server.addresses[0]
        self.http = self.url.replace("ws://", "http://", 1).removesuffix("/gotalk/")

    def snapshot(self, peer):
        """The peer's trace as a list, copied on the server's loop (it keeps changing there)."""

        async def copy():
            return list(peer.trace)

        return self.run(copy())


@pytest.fixture(scope="module")
def loop_thread():
    loop = LoopThread()
    yield loop
    loop.stop()


@pytest.fixture(scope="module")
def demo_server(loop_thread):
    server = DemoServer(loop_thread)
    yield server
    server.run(server.server.close())




class DemoPage:
    """demo.html, connected; the WebSocket messages Chromium saw; the server's peer for it."""

    def __init__(self, page, server: DemoServer) -> None:
        self.page = page
        self.server = server
        self.sent: list = []  #: messages the browser sent, as Chromium reports them (bytes = binary)
        self.received: list = []  #: messages the browser received
        page.on("websocket", self._watch)
        before = len(server.accepted)
        page.goto(f"{server.http}/gotalk/static/demo.html")
        page.wait_for_function("window.gotalkLab !== undefined", timeout=10_000)
        error = page.evaluate("window.gotalkLab.error ?? null")
        assert error is None, f"the demo page could not connect: {error}"
        assert len(server.accepted) == before + 1, "the page's connection did not reach the server"
        self.peer = server.accepted[before]

    def _watch(self, websocket) -> None:
        if websocket.url != self.server.url:
            return  # other tests open sockets to scripted servers from this page
        # Playwright cannot wrap a builtin method such as list.append as a handler.
        websocket.on("framesent", lambda payload: self.sent.append(payload))
        websocket.on("framereceived", lambda payload: self.received.append(payload))

    def evaluate(self, script: str, argument=None):
        return self.page.evaluate(script, argument)


@pytest.fixture(scope="module")
def demo_page(browser, demo_server):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    console_errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    yield DemoPage(page, demo_server)
    page.close()
    assert not console_errors, f"errors in the page's console: {console_errors}"


def test_chromium_is_installed():
    assert CHROMIUM.exists(), CHROMIUM_MISSING


# -- the page calls every demo operation --------------------------------------


def test_echo_round_trips_every_byte_value(demo_page):
    short = [0x00, 0x68, 0x69, 0x7F, 0x80, 0xFE, 0xFF]
    every = list(range(256)) * 3
    got = demo_page.evaluate(
        """async ([short, every]) => {
            const { client, logged } = window.gotalkLab;
            const a = await logged("echo", new Uint8Array(short), client.request("echo", new Uint8Array(short)));
            const b = await client.request("echo", new Uint8Array(every));
            return [Array.from(a), Array.from(b), a instanceof Uint8Array];
        }""",
        [short, every],
    )
    assert got == [short, every, True]


def test_greet_speaks_json(demo_page):
    got = demo_page.evaluate(
        """async () => {
            const { client, logged } = window.gotalkLab;
            return logged("greet", '{"name": "Ada"}', client.requestJSON("greet", { name: "Ada" }));
        }"""
    )
    assert got == {"greeting": "Hello Ada"}


@pytest.mark.parametrize(
    "operation, message",
    [("fail", "boom"), ("nope", 'unknown operation "nope"')],
    ids=["handler-error", "unknown-operation"],
)
def test_errors_reject_with_the_servers_text(demo_page, operation, message):
    got = demo_page.evaluate(
        """async (operation) => {
            const { client, logged } = window.gotalkLab;
            try { await logged(operation, "x", client.request(operation, "x")); return null; }
            catch (error) { return { name: error.name, message: error.message, operation: error.operation }; }
        }""",
        operation,
    )
    assert got == {"name": "RequestError", "message": message, "operation": operation}


def test_concurrent_sleeps_finish_out_of_order_matched_by_id(demo_page):
    got = demo_page.evaluate(
        """async () => {
            const { client, logged } = window.gotalkLab;
            const finished = [];
            const results = await Promise.all([300, 100, 200].map((ms) =>
                logged("sleep", `{"ms": ${ms}}`, client.requestJSON("sleep", { ms }))
                    .then((result) => (finished.push(ms), result))));
            return { finished, results };
        }"""
    )
    assert got["finished"] == [100, 200, 300]
    assert got["results"] == [{"slept": 300}, {"slept": 100}, {"slept": 200}]
    # On the wire: three IDs asked in one order, answered in another, each matched.
    events = demo_page.server.snapshot(demo_page.peer)
    asked = [e.message.request_id for e in events if e.direction == IN and type(e.message) is SingleRequest and e.message.operation == "sleep"]
    answered = [e.message for e in events if e.direction == OUT and type(e.message) is SingleResult and e.message.request_id in asked]
    assert len(asked) == 3 and len(set(asked)) == 3
    assert [m.request_id for m in answered] == [asked[1], asked[2], asked[0]]
    assert [m.payload for m in answered] == [b'{"slept":100}', b'{"slept":200}', b'{"slept":300}']


def test_ping(demo_page):
    got = demo_page.evaluate(
        """async () => {
            const { client, logged, show } = window.gotalkLab;
            return show(await logged("ping", "abc", client.request("ping", "abc")));
        }"""
    )
    assert got == "ping:abc"


def test_callback_makes_the_server_call_the_pages_ping(demo_page):
    got = demo_page.evaluate(
        """async () => {
            const { client, logged, show } = window.gotalkLab;
            return show(await logged("callback", "zz", client.request("callback", "zz")));
        }"""
    )
    assert got == "pong:ping:zz"
    events = demo_page.server.snapshot(demo_page.peer)
    callback = next(e.message for e in events if e.direction == IN and type(e.message) is SingleRequest and e.message.operation == "callback")
    asked = next(e.message for e in events if e.direction == OUT and type(e.message) is SingleRequest and e.message.operation == "ping")
    answer = next(e.message for e in events if e.direction == IN and type(e.message) is SingleResult and e.message.request_id == asked.request_id)
    assert (callback.payload, asked.payload, answer.payload) == (b"zz", b"zz", b"ping:zz")
    assert demo_page.evaluate("window.gotalkLab.entries.some((e) => e.direction === 'server → page' && e.call === 'ping' && e.result === 'ping:zz')")


def test_upper_stream_streams_both_ways(demo_page):
    got = demo_page.evaluate(
        """async () => {
            const { client, logged, show } = window.gotalkLab;
            const seen = [];
            const parts = await logged("upper-stream", "abc | def | ghi",
                client.streamRequest("upper-stream", ["abc", "def", "ghi"], (part) => seen.push(show(part))));
            return { parts: parts.map(show), seen };
        }"""
    )
    assert got == {"parts": ["ABC", "DEF", "GHI"], "seen": ["ABC", "DEF", "GHI"]}
    events = demo_page.server.snapshot(demo_page.peer)
    start = next(e for e in events if e.direction == IN and type(e.message) is StreamRequest)
    request_id = start.message.request_id
    inbound = [e.message for e in events if e.direction == IN and getattr(e.message, "request_id", None) == request_id]
    outbound = [e.message for e in events if e.direction == OUT and getattr(e.message, "request_id", None) == request_id]
    assert inbound == [
        StreamRequest(request_id, "upper-stream", b"abc"),
        StreamRequestPart(request_id, b"def"),
        StreamRequestPart(request_id, b"ghi"),
        StreamRequestPart(request_id, b""),
    ]
    assert outbound == [StreamResult(request_id, p) for p in (b"ABC", b"DEF", b"GHI", b"")]


def test_hello_notification_gets_hello_back(demo_page):
    got = demo_page.evaluate(
        """async () => {
            const { client, log, show } = window.gotalkLab;
            const back = new Promise((resolve) => client.onNotification("hello-back", resolve));
            client.notify("hello", new Uint8Array([0x68, 0x69, 0x00, 0xff]));
            log("page → server", "notification hello", "hi\\\\x00\\\\xff", "(never answered)");
            return Array.from(await back);
        }"""
    )
    assert got == [0x68, 0x69, 0x00, 0xFF]


# -- the server calls the page ------------------------------------------------


def test_server_calls_the_pages_operations(demo_page):
    run, peer = demo_page.server.run, demo_page.peer
    assert run(peer.request_bytes("page-upper", b"shout from python")) == b"SHOUT FROM PYTHON"
    assert run(peer.request_bytes("ping", b"py")) == b"ping:py"
    assert run(peer.request("page-upper", {"a": "b"})) == {"A": "B"}
    with pytest.raises(RequestError) as error:
        run(peer.request_bytes("missing-on-page", b""))
    assert error.value.text == 'unknown operation "missing-on-page"'
    events = demo_page.server.snapshot(demo_page.peer)
    asked = [e.message for e in events if e.direction == OUT and type(e.message) is SingleRequest]
    assert {m.operation for m in asked} >= {"page-upper", "ping", "missing-on-page"}


def test_server_stream_request_is_refused_by_the_page(demo_page):
    async def stream():
        async with demo_page.peer.stream_request("page-upper") as request:
            await request.send(b"a")
            await request.send(b"b")
            await request.end()
            return await request.collect()

    with pytest.raises(RequestError) as error:
        demo_page.server.run(stream())
    assert error.value.text == "stream requests not supported"
    # The refused stream's parts were dropped quietly: the connection still works.
    assert demo_page.server.run(demo_page.peer.request_bytes("ping", b"still")) == b"ping:still"


def test_server_notification_reaches_the_page(demo_page):
    demo_page.server.run(demo_page.peer.notify_bytes("page-note", b"note\x00\xff"))
    demo_page.page.wait_for_function("window.gotalkLab.notifications.some((n) => n.name === 'page-note')", timeout=5000)
    got = demo_page.evaluate("Array.from(window.gotalkLab.notifications.find((n) => n.name === 'page-note').payload)")
    assert bytes(got) == b"note\x00\xff"


def test_heartbeats_both_ways(demo_page):
    # gotalk.js sends one heartbeat right after the handshake; so does our client.
    assert isinstance(demo_page.peer.last_heartbeat, Heartbeat)
    demo_page.server.run(demo_page.peer.send_heartbeat(load=0x1234))
    demo_page.page.wait_for_function("window.gotalkLab.client.lastHeartbeat?.load === 0x1234", timeout=5000)


# -- the bytes on the wire ----------------------------------------------------


def gotalk_framing(messages: list) -> list[bytes]:
    """How gotalk.js frames the same bytes: "01", then each header and each non-empty payload alone."""
    frames = Decoder(expect_version=True).feed_frames(b"".join(messages))
    expected: list[bytes] = []
    for frame in frames:
        expected.append(frame.header)
        payload = getattr(frame.message, "payload", b"")
        if payload:
            expected.append(payload)
    return expected


def test_every_header_and_payload_is_its_own_binary_message(demo_page):
    demo_page.evaluate("window.gotalkLab.client.request('echo', 'one last message')")
    # Chromium's frame events travel to Playwright on their own: wait until the
    # server's trace and Playwright's record describe the same conversation.
    events = []
    for _ in range(50):
        events = [e for e in demo_page.server.snapshot(demo_page.peer) if e.direction == IN]
        if b"".join(e.raw for e in events) == b"".join(demo_page.sent):
            break
        demo_page.page.wait_for_timeout(50)
    for direction, messages in (("sent", demo_page.sent), ("received", demo_page.received)):
        assert messages, f"Playwright saw no WebSocket messages {direction}"
        text = [m for m in messages if not isinstance(m, bytes)]
        assert not text, f"text WebSocket messages {direction}: {text[:3]}"
        assert messages[0] == b"01", f"the first message {direction} is {messages[0]!r}, not the version alone"
        assert messages == gotalk_framing(messages), f"messages {direction} are not one header or one payload each"
    # The server's trace decoded the same bytes; the page's IDs are base-36 digits.
    assert b"".join(e.raw for e in events) == b"".join(demo_page.sent)
    assert type(events[0].message) is ProtocolVersion
    kinds = {type(e.message) for e in events}
    assert kinds >= {ProtocolVersion, SingleRequest, StreamRequest, StreamRequestPart, Notification, Heartbeat, SingleResult, ErrorResult}
    page_ids = {e.message.request_id for e in events if type(e.message) in (SingleRequest, StreamRequest)}
    assert page_ids and all(BASE36_ID.match(i) for i in page_ids), page_ids
    # The client's own record of what it sent agrees with what Chromium put on the wire.
    recorded = demo_page.evaluate("window.gotalkLab.client.frames.filter((f) => f.dir === 'out').map((f) => [f.role, f.binary, Array.from(f.bytes)])")
    assert [bytes(b) for _, _, b in recorded] == demo_page.sent
    assert recorded[0][0] == "version" and all(binary for _, binary, _ in recorded)


def test_screenshot(demo_page):
    rows = demo_page.page.locator("#log tr").count()
    assert rows >= 15, f"the visible log has only {rows} rows"
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    demo_page.page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


# -- origins (no browser) -----------------------------------------------------


@pytest.mark.parametrize(
    "origin, reason",
    [(None, "missing Origin header"), ("http://evil.example", "origin http://evil.example is not allowed")],
    ids=["no-origin", "foreign-origin"],
)
def test_upgrade_refused_without_an_allowed_origin(demo_server, origin, reason):
    async def attempt():
        async with ws_connect(demo_server.url, origin=origin, ping_interval=None):
            pass

    with pytest.raises(InvalidStatus) as refused:
        demo_server.run(attempt())
    response = refused.value.response
    assert response.status_code == 403
    assert reason in response.body.decode()


@pytest.mark.parametrize("origin", ["http://localhost:8888", "http://127.0.0.1:1234", "http://[::1]"])
def test_upgrade_accepted_from_a_loopback_origin(demo_server, origin):
    async def attempt():
        async with ws_connect(demo_server.url, origin=origin, ping_interval=None) as websocket:
            version = await asyncio.wait_for(websocket.recv(), 5)
            await websocket.send(b"01")
            await websocket.send(b"r0000004echo00000002")
            await websocket.send(b"ok")
            return version, await asyncio.wait_for(websocket.recv(), 5), await asyncio.wait_for(websocket.recv(), 5)

    assert demo_server.run(attempt()) == (b"01", b"R000000000002", b"ok")


# -- protocol errors seen by the page -----------------------------------------


@pytest.fixture
def scripted_server(loop_thread):
    """A bare WebSocket server (no Gotalk peer) that plays a script to the page.

    ``url = scripted_server(script)``: ``script(websocket, received)`` is a
    coroutine that sends what it likes and appends what it reads to ``received``;
    after it, everything the page sends is recorded until the connection closes.
    ``scripted_server.outcome()`` then returns (received, close code from the page).
    """
    state: dict = {}

    async def handler(websocket):
        received: list = []
        try:
            await state["script"](websocket, received)
            async for message in websocket:
                received.append(message)
        except ConnectionClosed:  # the page closes with 4000 + code, which websockets calls an error
            pass
        finally:
            if not state["outcome"].done():
                state["outcome"].set_result((received, websocket.close_code))

    async def start():
        state["outcome"] = loop_thread.loop.create_future()
        return await ws_serve(handler, "127.0.0.1", 0, ping_interval=None)

    server = loop_thread.run(start())
    port = server.sockets[0].getsockname()[1]

    def use(script):
        state["script"] = script
        return f"ws://127.0.0.1:{port}/"

    use.outcome = lambda: loop_thread.run(asyncio.wait_for(asyncio.shield(state["outcome"]), 5))
    yield use
    server.close()
    loop_thread.run(server.wait_closed())


def sends(*messages: bytes):
    """A script that sends these WebSocket messages, one each."""

    async def script(websocket, received):
        for message in messages:
            await websocket.send(message)

    return script


CONNECT_AND_WAIT = """async (url) => {
    const { connect } = await import("./gotalk-client.js");
    try {
        const client = await connect(url);
        client.handle("ping", (payload) => new Uint8Array([...new TextEncoder().encode("ping:"), ...payload]));
        return { connected: true, closed: await client.closed };
    } catch (error) {
        return { connected: false, error: error.message };
    }
}"""


def test_version_mismatch_sends_f00000001_and_closes(demo_page, scripted_server):
    url = scripted_server(sends(b"02"))
    got = demo_page.evaluate(CONNECT_AND_WAIT, url)
    received, close_code = scripted_server.outcome()
    assert got == {"connected": False, "error": 'connection closed (4001: f00000001: version "02", not "01")'}
    assert received == [b"01", b"f00000001"]
    assert close_code == 4001


@pytest.mark.parametrize(
    "script, code, sends_f",
    [
        ([b"01", b"f00000002"], 4002, False),  # the server reports an error: close with 4000 + code
        ([b"01", b"f00000003"], 4003, False),
        ([b"01", b"x0000"], 4002, True),  # an unknown message type
        ([b"01", b"R000000000002ok"], 4002, True),  # header and payload packed in one message
        ([b"01", b"R000000000003", b"ok"], 4002, True),  # the payload message is not the announced size
    ],
    ids=["f-invalid", "f-timeout", "unknown-type", "packed-header-payload", "short-payload"],
)
def test_protocol_errors_close_with_4000_plus_code(demo_page, scripted_server, script, code, sends_f):
    url = scripted_server(sends(*script))
    got = demo_page.evaluate(CONNECT_AND_WAIT, url)
    received, close_code = scripted_server.outcome()
    assert got["connected"] is True and got["closed"]["code"] == code, got
    assert close_code == code
    assert received[0] == b"01"
    assert (f"f{code - 4000:08x}".encode() in received) is sends_f, received


def test_binary_request_ids_are_echoed_byte_for_byte(demo_page, scripted_server):
    """The Go peer numbers requests with a binary counter; the page must answer with the same 4 bytes."""
    request_id = b"\x00\x80\xff\x01"

    async def script(websocket, received):
        await websocket.send(b"01")
        while not (received and received[-1].startswith(b"h")):  # the page's first heartbeat: it has our version
            received.append(await asyncio.wait_for(websocket.recv(), 5))
        for message in (b"r" + request_id + b"004ping00000002", b"hi", b"r" + request_id[::-1] + b"004nope00000000"):
            await websocket.send(message)
        for _ in range(4):
            received.append(await asyncio.wait_for(websocket.recv(), 5))
        await websocket.close()

    url = scripted_server(script)
    got = demo_page.evaluate(CONNECT_AND_WAIT, url)
    received, close_code = scripted_server.outcome()
    assert got == {"connected": True, "closed": {"code": 1000, "reason": ""}}
    assert received[-4:] == [
        b"R" + request_id + b"00000007",
        b"ping:hi",
        b"E" + request_id[::-1] + b"00000018",
        b'unknown operation "nope"',
    ]

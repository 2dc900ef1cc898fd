"""Peers over real sockets: TCP and WebSocket pairs on 127.0.0.1 (port 0), and the pipe's own promises.

The same demo conversation runs over each transport; then what only sockets show:
large parts, flow control, dropped connections, gotalk.js framing on WebSocket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from websockets.asyncio.client import connect as ws_connect

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.peer import ConnectionClosed, Peer, RequestError
from gotalk_lab.trace import IN, OUT
from gotalk_lab.transports.pipe import pipe_transports
from gotalk_lab.wire import Notification, ProtocolError, SingleRequest, encode

BOUND = 10.0
MiB = 1024 * 1024
SCHEMES = ["tcp", "ws"]


async def within(awaitable, seconds: float = BOUND):
    return await asyncio.wait_for(awaitable, seconds)


async def wait_until(predicate, seconds: float = BOUND) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.002)


@contextlib.asynccontextmanager
async def network_pair(scheme: str, *, client_options=None, server_options=None, server_handlers=None):
    """A server on 127.0.0.1:0 and one client; yields (client peer, the server's peer, server)."""
    accepted: asyncio.Queue = asyncio.Queue()
    handlers = server_handlers if server_handlers is not None else demo.handlers()
    server = await within(gl.serve(f"{scheme}://127.0.0.1:0", handlers, **(server_options or {})))
    server.on_connect(accepted.put_nowait)
    client = None
    try:
        client = await within(gl.connect(server.addresses[0], demo.handlers(), **(client_options or {})))
        served = await within(accepted.get())
        await within(served.handshake)
        yield client, served, server
    finally:
        if client is not None:
            await within(client.close())
        await within(server.close())


def frames(peer: Peer, direction: str, cls=None) -> list:
    return [e for e in peer.trace if e.direction == direction and (cls is None or type(e.message) is cls)]


async def upper(requester: Peer, parts: list[bytes]) -> list[bytes]:
    async with requester.stream_request("upper-stream") as stream:
        for part in parts:
            await within(stream.send(part))
        await within(stream.end())
        return await within(stream.collect())


# -- the demo operations over each transport, both directions --------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_every_demo_operation_in_both_directions(scheme):
    async with network_pair(scheme) as (client, served, server):
        assert server.addresses[0].startswith(f"{scheme}://127.0.0.1:")
        assert not server.addresses[0].endswith(":0")
        for requester in (client, served):
            assert await within(requester.request_bytes("echo", b"hello \x00\xff world")) == b"hello \x00\xff world"
            assert await within(requester.request_bytes("echo", b"")) == b""
            assert await within(requester.request("greet", {"name": "Ada"})) == {"greeting": "Hello Ada"}
            with pytest.raises(RequestError) as failed:
                await within(requester.request_bytes("fail", b"x"))
            assert failed.value.text == "boom"
            with pytest.raises(RequestError) as unknown:
                await within(requester.request_bytes("nope", b"x"))
            assert unknown.value.text == 'unknown operation "nope"'
            assert await within(requester.request_bytes("ping", b"zz")) == b"ping:zz"
            assert await within(requester.request_bytes("callback", b"zz")) == b"pong:ping:zz"
            assert await upper(requester, [b"abc", b"def"]) == [b"ABC", b"DEF"]

            results = await within(asyncio.gather(*(requester.request("sleep", {"ms": ms}) for ms in (150, 50, 100))))
            assert results == [{"slept": 150}, {"slept": 50}, {"slept": 100}]
            asked = [e.message.request_id for e in frames(requester, OUT, SingleRequest)][-3:]
            answered = [e.message.request_id for e in frames(requester, IN) if e.message.TYPE == b"R"][-3:]
            assert answered == [asked[1], asked[2], asked[0]]

            got = []
            requester.on_notification("hello-back", got.append)
            await within(requester.notify("hello", "hi"))
            await wait_until(lambda: got)
            assert got == [b'"hi"']
        # Byte for byte, what one side wrote is what the other read.
        await wait_until(lambda: len(frames(served, IN)) == len(frames(client, OUT)))
        assert [e.raw for e in frames(client, OUT)] == [e.raw for e in frames(served, IN)]
        assert [e.raw for e in frames(served, OUT)] == [e.raw for e in frames(client, IN)]


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_large_parts_and_payloads(scheme):
    async with network_pair(scheme) as (client, served, server):
        big = bytes(range(256)) * (MiB // 256)
        assert await within(client.request_bytes("echo", big)) == big
        parts = [big, b"small", big.replace(b"a", b"q"), big]
        assert await upper(client, parts) == [part.upper() for part in parts]
        assert await upper(served, [big]) == [big.upper()]


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_payload_over_the_limit_gets_f00000002_and_a_close(scheme):
    async with network_pair(scheme, server_options={"max_payload_size": 4096}) as (client, served, server):
        assert await within(client.request_bytes("echo", b"x" * 4096)) == b"x" * 4096
        with pytest.raises(ConnectionClosed) as closed:
            await within(client.request_bytes("echo", b"x" * 5000))
        # Over WebSocket too: the message over the limit is refused from its frame
        # header, and the f message goes out ahead of the close frame.
        assert frames(client, IN)[-1].message == ProtocolError(2)
        assert "f00000002" in closed.value.reason
        await within(served.wait_closed())
        assert served.pending_count == client.pending_count == 0


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_duplicate_request_id_closes_that_connection_only(scheme):
    async with network_pair(scheme) as (client, served, server):
        other = await within(gl.connect(server.addresses[0]))
        sleep = encode(SingleRequest(b"\x00\x00\x00\x00", "sleep", b'{"ms":3000}'))
        await within(client.send_raw(sleep + sleep))
        await within(client.wait_closed())
        assert frames(client, IN)[-1].raw == b"f00000002"
        await within(served.wait_closed())
        assert served.pending_count == 0
        assert await within(other.request_bytes("echo", b"unaffected")) == b"unaffected"
        assert len(server.peers) == 1
        await within(other.close())


# -- closing and dropped connections ----------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("how", ["client closes", "server closes", "client drops", "server drops"])
async def test_closing_mid_request_fails_pending_calls_on_both_sides(scheme, how):
    async with network_pair(scheme) as (client, served, server):
        asked = [asyncio.ensure_future(client.request("sleep", {"ms": 5000})) for _ in range(2)]
        nested = asyncio.ensure_future(served.request_bytes("sleep", b'{"ms":5000}'))
        await wait_until(lambda: served.pending_count == 3 and client.pending_count == 3)
        if how == "client closes":
            await within(client.close())
        elif how == "server closes":
            await within(server.close())
        elif how == "client drops":
            client.transport.abort()
        else:
            served.transport.abort()
        outcomes = await within(asyncio.gather(*asked, nested, return_exceptions=True))
        assert all(isinstance(outcome, ConnectionClosed) for outcome in outcomes), outcomes
        await within(asyncio.gather(client.wait_closed(), served.wait_closed()))
        assert client.pending_count == served.pending_count == 0
        await wait_until(lambda: not server.peers)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_dropping_mid_stream_fails_the_stream(scheme):
    async with network_pair(scheme) as (client, served, server):
        async with client.stream_request("upper-stream") as stream:
            await within(stream.send(b"abc"))
            assert await within(stream.results.get()) == b"ABC"
            served.transport.abort()
            with pytest.raises(ConnectionClosed):
                await within(stream.collect())
        await within(served.wait_closed())
        assert client.pending_count == served.pending_count == 0


# -- flow control over sockets ------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_drain_waits_while_the_other_side_does_not_read(scheme):
    async with network_pair(scheme) as (client, served, server):
        served.transport.pause_reading()
        chunk = b"w" * MiB
        attempted = 0

        async def send_fifty_mib():
            nonlocal attempted
            async with client.stream_request("upper-stream") as stream:
                for _ in range(50):
                    attempted += len(chunk)
                    await stream.send(chunk)

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(send_fifty_mib(), 1.5)
        assert attempted < 50 * MiB
        assert client.transport.write_buffer_size() < 2 * MiB
        # Closing does not hang on the bytes the other side never read.
        await within(client.close())
        served.transport.resume_reading()
        await within(served.wait_closed())
        assert served.pending_count == 0


# -- WebSocket framing, as gotalk.js reads it ----------------------------------------------------


@pytest.mark.parametrize("trace", [True, False], ids=["traced", "untraced"])
async def test_websocket_frames_every_header_and_payload_as_its_own_message(trace):
    # Untraced, as gotalk-lab serve runs, plain answers take the peer's batch path.
    server = await within(gl.serve("ws://127.0.0.1:0/gotalk/", demo.handlers(), trace=trace))
    try:
        async with ws_connect(server.addresses[0], origin="http://127.0.0.1") as socket:
            assert await within(socket.recv()) == b"01"
            await socket.send(b"01")
            # gotalk.js sends a header and its payload as two messages.
            await socket.send(b"r0001004echo0000000c")
            await socket.send(b"hello \x00\xff end")
            assert await within(socket.recv()) == b"R00010000000c"
            assert await within(socket.recv()) == b"hello \x00\xff end"
            await socket.send(b"r0002004echo00000000")  # no payload, no second message
            assert await within(socket.recv()) == b"R000200000000"
            await socket.send(b'n005hello00000003')
            await socket.send(b'"x"')
            assert await within(socket.recv()) == b"n00ahello-back00000003"
            assert await within(socket.recv()) == b'"x"'
            # A protocol error: the f message, then a normal close.
            await socket.send(b"x000100000000")
            assert await within(socket.recv()) == b"f00000002"
            await within(socket.wait_closed())
            assert socket.close_code in (1000, 4002)
    finally:
        await within(server.close())


async def test_websocket_text_frames_are_read_as_utf8_like_gotalk_js_may_send_them():
    server = await within(gl.serve("ws://127.0.0.1:0/gotalk/", demo.handlers()))
    try:
        async with ws_connect(server.addresses[0], origin="http://localhost:8000") as socket:
            assert await within(socket.recv()) == b"01"
            await socket.send("01")
            await socket.send("r0001005greet00000010")
            await socket.send('{"name":"Ren\u00e9"}')
            assert await within(socket.recv()) == b"R00010000001a"
            assert await within(socket.recv()) == '{"greeting":"Hello Ren\u00e9"}'.encode()
    finally:
        await within(server.close())


async def test_websocket_upgrades_without_an_allowed_origin_are_refused():
    server = await within(gl.serve("ws://127.0.0.1:0/gotalk/", demo.handlers()))
    try:
        with pytest.raises(Exception) as refused:
            await within(ws_connect(server.addresses[0], origin="http://evil.example"))
        assert "403" in str(refused.value)
        assert server.connections_accepted == 0
    finally:
        await within(server.close())


# -- the pipe's own promises -------------------------------------------------------------------------


async def test_pipe_delivers_in_order_on_a_later_turn_and_never_reentrantly():
    a, b = pipe_transports()
    received = []

    class Receiver:
        def data_received(self, data):
            received.append(data)

        def connection_lost(self, error):
            received.append(("lost", error))

    b.attach(Receiver())
    a.write(b"one", b"-1")
    a.write(b"two")
    assert received == []  # not delivered inside write()
    await asyncio.sleep(0)
    assert received == [b"one-1two"]  # one batch, in order
    a.close()
    await wait_until(lambda: len(received) == 2)
    assert received[1] == ("lost", None)
    a.write(b"after close")
    await asyncio.sleep(0.01)
    assert len(received) == 2


async def test_pipe_paused_reading_holds_bytes_and_makes_the_writer_wait():
    a, b = pipe_transports()
    received = bytearray()

    class Receiver:
        def data_received(self, data):
            received.extend(data)

        def connection_lost(self, error):
            pass

    b.attach(Receiver())
    b.pause_reading()
    a.write(b"x" * (300 * 1024))
    assert a.write_backlogged and a.write_buffer_size() == 300 * 1024
    drained = asyncio.ensure_future(a.drain())
    await asyncio.sleep(0.02)
    assert not drained.done() and not received
    b.resume_reading()
    await within(drained)
    assert len(received) == 300 * 1024 and a.write_buffer_size() == 0


async def test_pipe_close_delivers_what_was_written_first_and_abort_drops_it():
    for ending, expect in (("close", b"last words"), ("abort", b"")):
        a, b = pipe_transports()
        received = bytearray()
        lost = asyncio.Event()

        class Receiver:
            def data_received(self, data):
                received.extend(data)

            def connection_lost(self, error):
                lost.set()

        b.attach(Receiver())
        a.write(b"last words")
        getattr(a, ending)()
        await within(lost.wait())
        assert bytes(received) == expect
        assert a.is_closing and b.is_closing


class Keeper:
    """A receiver that keeps every chunk it is given, as a decoder holding a partial message does."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.lost = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, error) -> None:
        self.lost.set()


@contextlib.asynccontextmanager
async def tcp_pair():
    """Two TCP transports on 127.0.0.1: (writer, reader, a Keeper attached to the reader)."""
    from gotalk_lab.transports.tcp import open_tcp, serve_tcp

    accepted: asyncio.Queue = asyncio.Queue()
    server = await serve_tcp(accepted.put_nowait, "127.0.0.1", 0)
    try:
        writer = await within(open_tcp("127.0.0.1", server.sockets[0].getsockname()[1]))
        reader = await within(accepted.get())
        keeper = Keeper()
        reader.attach(keeper)
        yield writer, reader, keeper
    finally:
        server.close()


async def tcp_bytes_through(data: bytes, pieces: int) -> list[bytes]:
    """Write ``data`` in ``pieces`` writes a turn apart over a TCP pair; the chunks the reader got."""
    async with tcp_pair() as (writer, reader, keeper):
        step = -(-len(data) // pieces)
        for start in range(0, len(data), step):
            writer.write(data[start : start + step])
            await asyncio.sleep(0)
        writer.close()
        await within(keeper.lost.wait())
        return keeper.chunks


async def test_tcp_reads_hand_over_bytes_the_next_read_does_not_overwrite():
    # Reads go into one buffer a thread's connections share: each chunk the
    # receiver keeps must be its own copy, whole after later reads.
    data = bytes(range(256)) * (4 * MiB // 256)
    chunks = await tcp_bytes_through(data, 300)
    assert len(chunks) > 1
    assert all(type(chunk) is bytes for chunk in chunks)
    assert b"".join(chunks) == data


def test_tcp_connections_on_two_threads_read_into_buffers_of_their_own():
    import threading

    from gotalk_lab.transports.tcp import read_buffer

    results: dict[int, list[bytes]] = {}
    buffers: dict[int, memoryview] = {}

    def run(number: int) -> None:
        async def main() -> None:
            buffers[number] = read_buffer()
            results[number] = await tcp_bytes_through(bytes([number]) * (2 * MiB), 200)

        asyncio.run(main())

    threads = [threading.Thread(target=run, args=(number,)) for number in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND * 3)
    assert buffers[1] is not buffers[2]
    assert b"".join(results[1]) == bytes([1]) * (2 * MiB)
    assert b"".join(results[2]) == bytes([2]) * (2 * MiB)


def test_tcp_and_tls_peers_on_uvloop_carry_large_and_many_messages(certificates):
    # uvloop fills a buffered protocol's buffer on its own schedule, and its TLS
    # layer reads decrypted bytes into it: the same promises as on asyncio's loop.
    import uvloop

    big = bytes(range(256)) * (4 * MiB // 256)

    async def main() -> list[str]:
        server = await gl.serve(["tls://127.0.0.1:0", "tcp://127.0.0.1:0"], demo.handlers(), ssl=certificates.server_context())
        carried = []
        async with server:
            for address in server.addresses:
                options = {"ssl": certificates.client_context()} if address.startswith("tls") else {}
                peer = await within(gl.connect(address, **options))
                assert await within(peer.request_bytes("echo", big)) == big
                answers = await within(asyncio.gather(*[peer.request_bytes("echo", b"x%d" % n) for n in range(2000)]))
                assert answers == [b"x%d" % n for n in range(2000)]
                await within(peer.close())
                carried.append(address.split(":")[0])
        return carried

    assert uvloop.run(main()) == ["tls", "tcp"]


async def test_tcp_writes_the_first_frame_of_a_turn_at_once_and_joins_the_rest():
    async with tcp_pair() as (writer, reader, keeper):
        socket_writes: list[bytes] = []
        inner = writer._transport
        write = inner.write
        inner.write = lambda data: (socket_writes.append(bytes(data)), write(data))[1]
        for number in range(64):  # one turn of the loop: the first alone, then the other 63 as one
            writer.write(b"h%04d" % number, b"")
        assert socket_writes == [b"h0000"]
        await asyncio.sleep(0)
        assert socket_writes == [b"h0000", b"".join(b"h%04d" % n for n in range(1, 64))]
        await asyncio.sleep(0)
        writer.write(b"next turn")  # a later turn: at once again
        assert socket_writes[-1] == b"next turn"

        class Answering(Keeper):
            def data_received(self, data: bytes) -> None:
                super().data_received(data)
                writer.write(b"a1")  # written while receiving: joined, one write after the chunk
                writer.write(b"a2")

        writer.attach(Answering())
        before = len(socket_writes)
        reader.write(b"ping")
        await wait_until(lambda: len(socket_writes) > before)
        assert socket_writes[before:] == [b"a1a2"]
        writer.close()
        await within(keeper.lost.wait())
        assert b"".join(keeper.chunks) == b"".join(socket_writes)

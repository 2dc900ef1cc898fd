"""Helpers shared by the reliability tests: bounded waits, raw clients, servers with a bystander.

A *raw* client speaks bytes, not the Peer API, so that a test can send exactly
the garbage, silence or half-message it needs. A *bystander* is an ordinary
client of the same server whose work must come through untouched. Nothing here
asserts on its own except ``assert_tables_empty``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from websockets.asyncio.client import connect as ws_connect

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.peer import Peer

#: Upper bound of any one wait here; nothing should come near it.
BOUND = 10.0
SCHEMES = ["tcp", "ws"]


async def within(awaitable, seconds: float = BOUND):
    return await asyncio.wait_for(awaitable, seconds)


async def wait_until(predicate, seconds: float = BOUND) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.002)


def assert_tables_empty(peer: Peer) -> None:
    """Nothing of a finished connection is left behind in the peer's state."""
    leftovers = {
        "requests in flight": peer.connection.requests,
        "requests being served": peer.connection.serving,
        "inbound streams": peer.connection.inbound_streams,
        "refused streams": peer.connection.refused_streams,
        "unended streams": peer.connection.unended_streams,
        "paused by": peer._paused_by,
        # The deadline check of a peer's requests may still be due once (within
        # DEADLINE_CHECK s) after the last request: it then finds nothing and ends.
        "timers": {key: timer for key, timer in peer._timers.items() if key != "deadlines" or peer.connection.requests},
        "tasks": {task for task in peer._tasks if not task.done()},
    }
    if peer.trace is not None:
        leftovers["exchanges left open"] = [x for x in peer.trace.exchanges.values() if x.outcome in ("pending", "stream", "retrying")]
    assert not any(leftovers.values()), {name: table for name, table in leftovers.items() if table}
    assert peer.pending_count == 0


async def settle(*peers: Peer) -> None:
    """Let cancelled handler tasks finish their cancellation, then check the tables."""
    for _ in range(20):
        if all(not any(not t.done() for t in peer._tasks) for peer in peers):
            break
        await asyncio.sleep(0.01)
    for peer in peers:
        assert_tables_empty(peer)


class RawTcp:
    """A TCP client that writes any bytes and records every byte it reads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = bytearray()

    @classmethod
    async def open(cls, address: str) -> "RawTcp":
        host, port = address.removeprefix("tcp://").rsplit(":", 1)
        reader, writer = await within(asyncio.open_connection(host, int(port)))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await within(self.writer.drain())

    async def read_until(self, data: bytes) -> None:
        while data not in self.received:
            chunk = await within(self.reader.read(65536))
            if not chunk:
                raise AssertionError(f"connection ended before {data!r}; read {bytes(self.received)!r}")
            self.received += chunk

    async def read_to_end(self) -> bytes:
        """Everything until the other side closes (bounded)."""
        while chunk := await within(self.reader.read(65536)):
            self.received += chunk
        return bytes(self.received)

    def drop(self) -> None:
        """Drop the connection without a word (an RST, as a crashed program would)."""
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await within(self.writer.wait_closed(), 2)


class RawWebSocket:
    """A WebSocket client that sends any messages and records the ones it reads."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.received: list[bytes] = []

    @classmethod
    async def open(cls, address: str, origin: str = "http://127.0.0.1") -> "RawWebSocket":
        socket = await within(ws_connect(address, origin=origin, max_size=None, ping_interval=None))
        return cls(socket)

    async def send(self, *messages: bytes) -> None:
        for message in messages:
            await within(self.socket.send(message))

    async def read_to_end(self) -> list[bytes]:
        with contextlib.suppress(Exception):
            async for message in self.socket:
                self.received.append(message)
        return self.received

    @property
    def close_code(self):
        return self.socket.close_code

    def drop(self) -> None:
        self.socket.transport.abort()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await within(self.socket.close(), 2)


async def open_raw(scheme: str, address: str):
    return await (RawTcp.open(address) if scheme == "tcp" else RawWebSocket.open(address))


class Served:
    """A server on 127.0.0.1:0 that records every peer it accepts."""

    def __init__(self, server: gl.Server) -> None:
        self.server = server
        self.accepted: list[Peer] = []
        self.queue: asyncio.Queue = asyncio.Queue()
        server.on_connect(self._on_connect)

    def _on_connect(self, peer: Peer) -> None:
        self.accepted.append(peer)
        self.queue.put_nowait(peer)

    @property
    def address(self) -> str:
        return self.server.addresses[0]

    async def next_peer(self) -> Peer:
        return await within(self.queue.get())


@contextlib.asynccontextmanager
async def serving(scheme: str, handlers=None, **options):
    """A server (demo handlers unless given) and, for the test to use, its record of peers."""
    server = await within(gl.serve(f"{scheme}://127.0.0.1:0", handlers if handlers is not None else demo.handlers(), **options))
    try:
        yield Served(server)
    finally:
        await within(server.close())


@contextlib.asynccontextmanager
async def bystander(served: Served, **options):
    """An ordinary client of ``served`` with work in flight: a slow request and an open stream.

    The block gets the client; on leaving, the work in flight must have come
    back right and new work must still be served.
    """
    client = await within(gl.connect(served.address, demo.handlers(), **options))
    own = await served.next_peer()
    slow = asyncio.ensure_future(client.request("sleep", {"ms": 150}))
    stream = client.stream_request("upper-stream")
    await within(stream.send(b"before"))
    try:
        yield client
        assert await within(slow) == {"slept": 150}
        await within(stream.send(b"after"))
        await within(stream.end())
        assert await within(stream.collect()) == [b"BEFORE", b"AFTER"]
        assert await within(client.request_bytes("echo", b"still served")) == b"still served"
        assert client.is_open and own.is_open
    finally:
        slow.cancel()
        await within(client.close())
    await within(own.wait_closed())
    await settle(client, own)

"""Hostile sizes: a header claiming 4 GiB (or a 4095-byte name) costs only the bytes actually sent.

A payload size of ``ffffffff`` is refused from the header alone, before any
payload is kept: the peer answers f00000002 and closes. A name size of ``fff``
is legal (names are up to 4095 bytes), so it is never taken at its word either:
the decoder keeps only the bytes that came, refuses the first byte that is not
UTF-8 or not hex, and answers a whole legal name normally. Memory is measured
with tracemalloc: the peak while refusing, and what stays after hundreds of
hostile connections.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import struct
import tracemalloc

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.peer import Peer
from gotalk_lab.transports.pipe import pipe_transports
from reliability_support import RawTcp, assert_tables_empty, wait_until, within

KiB = 1024
MiB = 1024 * KiB

#: Headers claiming a 4 GiB payload (or 4 GiB of load/time), one per type that has a size.
HOSTILE_HEADERS = [
    pytest.param(b"r0001004echoffffffff", id="r"),
    pytest.param(b"s0001004echoffffffff", id="s"),
    pytest.param(b"p0001ffffffff", id="p"),
    pytest.param(b"R0001ffffffff", id="R"),
    pytest.param(b"S0001ffffffff", id="S"),
    pytest.param(b"E0001ffffffff", id="E"),
    pytest.param(b"e0001ffffffffffffffff", id="e"),
    pytest.param(b"n005helloffffffff", id="n"),
    pytest.param(b"r0001004echoFFFFFFFF", id="r-uppercase"),
    pytest.param(b"r0001004echo04000001", id="r-one-over-64MiB"),
]


class RawEnd:
    """The far end of a pipe: writes bytes, records what the peer wrote."""

    def __init__(self, transport) -> None:
        self.transport = transport
        self.received = bytearray()
        self.lost = asyncio.Event()
        transport.attach(self)

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, error) -> None:
        self.lost.set()


async def peer_and_raw_end(**options) -> tuple[Peer, RawEnd]:
    transport_peer, transport_raw = pipe_transports()
    raw = RawEnd(transport_raw)
    peer = Peer(demo.handlers(), name="target", **options).attach(transport_peer)
    transport_raw.write(b"01")
    await within(peer.handshake)
    return peer, raw


@pytest.mark.parametrize("header", HOSTILE_HEADERS)
async def test_a_4gib_size_field_is_refused_from_the_header_without_allocating(header):
    peer, raw = await peer_and_raw_end()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        raw.transport.write(header)
        await within(raw.lost.wait())
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert bytes(raw.received) == b"01f00000002"
    assert "payload_size" in peer.close_reason and "payload limit" in peer.close_reason
    assert peak < 256 * KiB, f"refusing {header!r} took {peak} bytes at its peak"
    assert_tables_empty(peer)


async def test_a_header_over_the_limit_trickled_byte_by_byte_is_refused_at_its_last_size_digit():
    peer, raw = await peer_and_raw_end(max_payload_size=1000)
    header = b"r0001004echo000003e9"  # 1001 bytes: one over
    for index in range(len(header) - 1):
        raw.transport.write(header[index : index + 1])
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert peer.is_open and peer.connection.buffered == len(header) - 1
    raw.transport.write(header[-1:])
    await within(raw.lost.wait())
    assert bytes(raw.received) == b"01f00000002"


# -- names: 3 hex digits of size, at most 4095 bytes ----------------------------------------------


async def test_a_4095_byte_name_is_legal_and_answered():
    peer, raw = await peer_and_raw_end()
    name = b"n" * 0xFFF
    raw.transport.write(b"r0001fff" + name + b"00000000")
    await wait_until(lambda: b"E0001" in raw.received)
    assert raw.received.endswith(b'unknown operation "' + name + b'"')
    assert peer.is_open
    await within(peer.close())


@pytest.mark.parametrize(
    "tail, located",
    [
        pytest.param(b"\xff", "byte 10: operation", id="not-utf8-at-once"),
        pytest.param(b"a" * 100 + b"\xc3\x28", "byte 110: operation", id="not-utf8-later"),
        pytest.param(b"a" * 0xFFF + b"zzzzzzzz", "payload_size", id="size-after-the-name-not-hex"),
        pytest.param(b"a" * 0xFFF + b"ffffffff", "payload limit", id="4095-byte-name-and-4GiB-payload"),
    ],
)
async def test_a_name_size_of_fff_is_refused_at_the_first_wrong_byte(tail, located):
    peer, raw = await peer_and_raw_end()
    raw.transport.write(b"r0001fff" + tail)
    await within(raw.lost.wait())
    assert bytes(raw.received) == b"01f00000002"
    assert located in peer.close_reason
    assert_tables_empty(peer)


async def test_a_name_size_of_fff_holds_only_the_bytes_that_came_and_the_read_timeout_ends_the_wait():
    peer, raw = await peer_and_raw_end(read_timeout=0.3)
    raw.transport.write(b"n" + b"fff" + b"x" * 100)
    await asyncio.sleep(0.05)
    assert peer.is_open and peer.connection.buffered == 104  # what was sent; nothing sized by "fff"
    await within(raw.lost.wait())
    assert bytes(raw.received) == b"01f00000003"


# -- memory over many hostile connections ---------------------------------------------------------


async def hostile_client(address: str, header: bytes) -> None:
    raw = await RawTcp.open(address)
    await raw.send(b"01" + header)
    assert await raw.read_to_end() == b"01f00000002"
    await raw.close()


async def test_memory_stays_flat_over_hundreds_of_hostile_connections():
    server = await within(gl.serve("tcp://127.0.0.1:0", demo.handlers()))
    try:
        address = server.addresses[0]
        headers = [b"r0001004echoffffffff", b"n005helloffffffff", b"r0001fff\xff", b"s0001004echoffffffff"]
        for index in range(40):  # warm up: first-use allocations are not growth
            await hostile_client(address, headers[index % len(headers)])
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for index in range(400):
                await hostile_client(address, headers[index % len(headers)])
            await wait_until(lambda: not server.peers)
            gc.collect()
            after, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        growth = after - before
        # 400 connections, each claiming up to 4 GiB: a few hundred KiB at the peak, nothing kept.
        assert peak - before < 4 * MiB, f"peak {peak - before} bytes"
        assert growth < 64 * KiB, f"{growth} bytes still held after 400 hostile connections"
        assert server.connections_accepted == 440
    finally:
        await within(server.close())


# -- WebSocket: a frame that claims 4 GiB ------------------------------------------------------------


def _client_frame(opcode: int, payload: bytes, claimed: int | None = None) -> bytes:
    """A masked client frame; ``claimed`` overrides the length field (a lie)."""
    length = len(payload) if claimed is None else claimed
    head = bytes([0x80 | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _read_server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await within(reader.readexactly(2))
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", await within(reader.readexactly(2)))[0]
    elif length == 127:
        length = struct.unpack("!Q", await within(reader.readexactly(8)))[0]
    return first & 0x0F, await within(reader.readexactly(length))


async def test_a_websocket_frame_claiming_4gib_gets_f00000002_before_the_close_and_is_never_read():
    server = await within(gl.serve("ws://127.0.0.1:0/gotalk/", demo.handlers(), max_payload_size=1000))
    accepted: asyncio.Queue = asyncio.Queue()
    server.on_connect(accepted.put_nowait)
    try:
        host, port = server.addresses[0].removeprefix("ws://").split("/")[0].rsplit(":", 1)
        reader, writer = await within(asyncio.open_connection(host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET /gotalk/ HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n\r\n"
            ).encode()
        )
        response = await within(reader.readuntil(b"\r\n\r\n"))
        assert response.startswith(b"HTTP/1.1 101")
        assert await _read_server_frame(reader) == (0x2, b"01")
        peer = await within(accepted.get())
        writer.write(_client_frame(0x2, b"01"))
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            # A binary frame announcing 4 GiB, then a little of it.
            writer.write(_client_frame(0x2, b"x" * 1000, claimed=0xFFFFFFFF)[: 14 + 1000])
            assert await _read_server_frame(reader) == (0x2, b"f00000002")
            opcode, close = await _read_server_frame(reader)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert opcode == 0x8 and struct.unpack("!H", close[:2])[0] == 1009
        await within(peer.wait_closed())
        assert "over the size limit" in peer.close_reason
        assert peak < 1 * MiB, f"peak {peak} bytes"
        writer.close()
    finally:
        await within(server.close())

"""Making peers: addresses, the in-memory pair, ``connect`` and ``serve`` with its Server."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.connect import Address, parse_address

BOUND = 10.0


async def within(awaitable, seconds: float = BOUND):
    return await asyncio.wait_for(awaitable, seconds)


async def wait_until(predicate, seconds: float = BOUND) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.002)


# -- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("tcp://127.0.0.1:1234", Address("tcp", "127.0.0.1", 1234)),
        ("127.0.0.1:0", Address("tcp", "127.0.0.1", 0)),
        ("localhost:80", Address("tcp", "localhost", 80)),
        ("TLS://example.org:443", Address("tls", "example.org", 443)),
        ("ws://localhost:8080", Address("ws", "localhost", 8080, "/gotalk/")),
        ("ws://localhost:8080/other/path", Address("ws", "localhost", 8080, "/other/path")),
        ("wss://example.org:443/gotalk/", Address("wss", "example.org", 443, "/gotalk/")),
        ("tcp://[::1]:9000", Address("tcp", "::1", 9000)),
        ("tcp://:5000", Address("tcp", "127.0.0.1", 5000)),
    ],
)
def test_parse_address(text, expected):
    assert parse_address(text) == expected


def test_address_urls_round_trip():
    for text in ("tcp://127.0.0.1:1234", "ws://localhost:8080/gotalk/", "tcp://[::1]:9000"):
        assert parse_address(text).url == text
        assert parse_address(parse_address(text).url) == parse_address(text)


@pytest.mark.parametrize(
    "text, complaint",
    [
        ("http://127.0.0.1:80", "unsupported address scheme 'http'"),
        ("tcp://127.0.0.1", "no port"),
        ("tcp://127.0.0.1:99999", "bad port"),
        ("127.0.0.1:abc", "bad port"),
    ],
)
def test_bad_addresses_are_explained(text, complaint):
    with pytest.raises(ValueError, match=complaint):
        parse_address(text)


def test_default_scheme_for_bare_addresses():
    assert parse_address("127.0.0.1:1", default_scheme="ws") == Address("ws", "127.0.0.1", 1, "/gotalk/")


# -- pipe ------------------------------------------------------------------------------------


async def test_pipe_returns_two_peers_with_the_handshake_done_and_the_options_applied():
    a, b = await within(gl.pipe(demo.handlers(), None, max_requests=3, request_ids="binary", name_b="right"))
    assert a.state is b.state is gl.PeerState.OPEN
    assert (a.name, b.name) == ("a", "right")
    assert a.max_requests == b.max_requests == 3
    assert "echo" in a.handlers and "echo" not in b.handlers
    assert await within(b.request_bytes("echo", b"x")) == b"x"
    with pytest.raises(gl.RequestError, match="unknown operation"):
        await within(a.request_bytes("echo", b"x"))
    assert "pipe a" in repr(a) and "open" in repr(a)
    await within(a.close())
    await within(b.wait_closed())


# -- connect and serve -------------------------------------------------------------------------


async def test_serve_binds_every_address_and_counts_connections():
    server = await within(gl.serve(["tcp://127.0.0.1:0", "ws://127.0.0.1:0/gotalk/"], demo.handlers()))
    connected = []
    server.on_connect(connected.append)
    try:
        assert len(server.addresses) == 2
        tcp, ws = server.addresses
        assert tcp.startswith("tcp://127.0.0.1:") and ws.startswith("ws://127.0.0.1:") and ws.endswith("/gotalk/")
        clients = [await within(gl.connect(address, demo.handlers())) for address in (tcp, ws, tcp)]
        await wait_until(lambda: len(connected) == 3)
        assert server.connections_accepted == 3 and len(server.peers) == 3
        for client in clients:
            assert await within(client.request_bytes("callback", b"c")) == b"pong:ping:c"
        await within(clients[0].close())
        await wait_until(lambda: len(server.peers) == 2)
        assert "2 connections" in repr(server)
    finally:
        await within(server.close())
    for client in clients[1:]:
        await within(client.wait_closed())
        assert client.pending_count == 0
    assert repr(server).endswith("0 connections>")


async def test_server_close_fails_pending_requests_of_its_clients():
    async with await within(gl.serve("tcp://127.0.0.1:0", demo.handlers())) as server:
        client = await within(gl.connect(server.addresses[0]))
        pending = asyncio.ensure_future(client.request("sleep", {"ms": 5000}))
        await wait_until(lambda: any(peer.pending_count for peer in server.peers))
    with pytest.raises(gl.ConnectionClosed):
        await within(pending)
    assert client.pending_count == 0


async def test_server_options_reach_every_connection():
    server = await within(gl.serve("tcp://127.0.0.1:0", demo.handlers(), max_streams=0, read_timeout=5))
    try:
        client = await within(gl.connect(server.addresses[0]))
        await wait_until(lambda: server.peers)
        (served,) = server.peers
        assert served.max_streams == 0 and served.read_timeout == 5
        async with client.stream_request("upper-stream") as stream:
            await within(stream.send(b"x"))
            await within(stream.end())
            with pytest.raises(gl.RequestError, match="stream requests not supported"):
                await within(stream.collect())
        await within(client.close())
    finally:
        await within(server.close())


async def test_connect_passes_options_and_names_the_peer_by_its_address():
    server = await within(gl.serve("127.0.0.1:0", demo.handlers()))
    try:
        client = await within(gl.connect(server.addresses[0], request_ids="binary", max_retries=1))
        assert client.name == server.addresses[0]
        assert client.max_retries == 1
        await within(client.request_bytes("echo", b""))
        assert client.trace[-2].message.request_id == b"\x00\x00\x00\x00"
        await within(client.close())
    finally:
        await within(server.close())


async def test_connect_to_a_closed_port_fails_at_once():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError):
        await within(gl.connect(f"tcp://127.0.0.1:{port}"))


async def test_connect_gives_up_on_a_server_that_never_sends_its_version():
    writers = []

    async def silent(reader, writer):
        writers.append(writer)
        await reader.read()

    listener = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutError, match="did not send its protocol version within 0.2 s"):
            await within(gl.connect(f"127.0.0.1:{port}", handshake_timeout=0.2))
    finally:
        for writer in writers:
            writer.close()
        listener.close()
        await within(listener.wait_closed())


async def test_pipe_options_for_one_side_only():
    a, b = await gl.pipe(None, gl.demo.handlers(), options_b={"max_requests": 1}, read_timeout=None)
    assert (a.max_requests, b.max_requests) == (256, 1)
    await a.close()

"""Safe defaults: loopback unless told otherwise, Origin checked, limits on, the tap listens only where told.

A learning kit runs on laptops next to a browser: what it opens by default must
not be reachable from the network, nor drivable by a web page from elsewhere,
nor made to hold unbounded work by one client.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.cli import build_parser
from gotalk_lab.cli_network import host_port
from gotalk_lab.decoder import DEFAULT_MAX_PAYLOAD_SIZE
from gotalk_lab.peer import Peer, RetryExhausted
from gotalk_lab.tap import Tap
from gotalk_lab.transports.websocket import origin_allowed
from reliability_support import within

COMMAND = Path(sys.executable).parent / "gotalk-lab"


# -- where servers listen -------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["tcp://:0", ":0", "ws://:0/gotalk/"])
async def test_servers_bind_loopback_when_no_host_is_given(address):
    server = await within(gl.serve(address, demo.handlers()))
    try:
        bound = [listener_socket.getsockname()[0] for listener in server._listeners for listener_socket in listener.sockets]
        assert bound == ["127.0.0.1"]
        assert server.addresses[0].split("://")[1].startswith("127.0.0.1:")
    finally:
        await within(server.close())


@pytest.mark.parametrize("text", ["0", ":0", "8123", ":8123"])
def test_command_line_addresses_without_a_host_mean_loopback(text):
    host, _ = host_port(text)
    assert host == "127.0.0.1"


def test_serve_on_port_only_listens_on_loopback():
    process = subprocess.Popen([str(COMMAND), "serve", "--tcp", "0", "--ws", ":0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline().strip() for _ in range(2)]
        assert all(re.fullmatch(r"listening (tcp|ws)://127\.0\.0\.1:\d+(/gotalk/)?", line) for line in lines), lines
    finally:
        process.terminate()
        process.communicate(timeout=10)


# -- WebSocket Origin ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1", "http://127.0.0.1:8888", "http://127.4.5.6:1", "http://localhost:8888", "https://localhost", "http://[::1]:8080", "HTTP://LOCALHOST"],
)
def test_loopback_origins_are_allowed_by_default(origin):
    assert origin_allowed(origin)


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "",
        "null",  # sandboxed iframes and file:// pages
        "file://",
        "http://evil.example",
        "http://localhost.evil.example",
        "http://127.0.0.1.evil.example",
        "http://127.0.0.1@evil.example",
        "http://evil.example/http://localhost",
        "ws://localhost",
        "http://0.0.0.0:8888",
        "http://192.168.1.20:8888",
    ],
)
def test_other_origins_are_refused_by_default(origin):
    assert not origin_allowed(origin)


def test_the_allow_list_widens_exactly():
    allow = ["https://lab.example.org"]
    assert origin_allowed("https://lab.example.org", allow)
    assert origin_allowed("http://localhost:1", allow)  # loopback stays allowed
    for other in ("https://lab.example.org.evil", "http://lab.example.org", "https://evil.example"):
        assert not origin_allowed(other, allow)
    assert origin_allowed("https://anything.example", ["*"])
    assert not origin_allowed(None, ["*"])  # no Origin header is refused even then, as the Go server does


async def upgrade(address: str, origin: str | None) -> bytes:
    """The first message after an upgrade (our version), or the refusal as an exception."""
    async with ws_connect(address, origin=origin, open_timeout=5) as socket_:
        return await within(socket_.recv())


async def test_upgrades_without_origin_are_refused_and_loopback_ones_accepted():
    server = await within(gl.serve("ws://127.0.0.1:0/gotalk/", demo.handlers()))
    try:
        with pytest.raises(Exception, match="403"):
            await upgrade(server.addresses[0], None)
        for origin in ("http://localhost:8888", "http://127.0.0.1"):
            assert await upgrade(server.addresses[0], origin) == b"01"
        with pytest.raises(Exception, match="403"):
            await upgrade(server.addresses[0], "http://lab.example")
        assert server.connections_accepted == 2
    finally:
        await within(server.close())


async def test_allow_origin_on_the_command_line_widens_the_websocket_origins():
    process = await asyncio.create_subprocess_exec(
        str(COMMAND), "serve", "--ws", "127.0.0.1:0", "--allow-origin", "http://lab.example",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = (await within(process.stdout.readline())).decode().strip()
        address = line.removeprefix("listening ")
        assert await upgrade(address, "http://lab.example") == b"01"
        assert await upgrade(address, "http://127.0.0.1:9") == b"01"
        with pytest.raises(Exception, match="403"):
            await upgrade(address, "http://other.example")
        with pytest.raises(Exception, match="403"):
            await upgrade(address, None)
    finally:
        process.terminate()
        await within(process.communicate())


# -- limits on by default ------------------------------------------------------------------------------------


async def test_payload_and_concurrency_limits_are_on_by_default():
    peer = Peer()
    assert peer.max_payload_size == DEFAULT_MAX_PAYLOAD_SIZE == 64 * 1024 * 1024
    assert (peer.max_requests, peer.max_streams) == (256, 64)
    arguments = build_parser().parse_args(["serve", "--tcp", "0"])
    assert (arguments.buffer_limit, arguments.stream_limit, arguments.max_payload) == (256, 64, DEFAULT_MAX_PAYLOAD_SIZE)
    assert arguments.allow_origin == []


async def test_the_65th_concurrent_stream_is_told_to_retry_by_default():
    handlers = demo.handlers()
    release = asyncio.Event()

    @handlers.handle_stream("held")
    async def held(parts):
        async for part in parts:
            yield part
        await release.wait()

    client, served = await within(gl.pipe(None, handlers, options_a={"max_retries": 0}))
    streams = []
    for index in range(64):
        stream = client.stream_request("held")
        await within(stream.send(b"s%d" % index))
        assert await within(stream.results.get()) == b"s%d" % index
        streams.append(stream)
    assert len(served.connection.inbound_streams) == 64
    extra = client.stream_request("held")
    await within(extra.send(b"one too many"))
    with pytest.raises(RetryExhausted, match="request rate limit"):
        await within(extra.collect())
    # A single request to a stream operation holds a stream too: the same limit applies.
    with pytest.raises(RetryExhausted):
        await within(client.request_bytes("held", b"x"))
    assert len(served.connection.inbound_streams) == 64
    release.set()
    for stream in streams:
        await within(stream.end())
        await within(stream.collect())
    assert await within(client.request_bytes("held", b"now there is room")) == b"now there is room"
    await within(client.close())


# -- the tap ------------------------------------------------------------------------------------------------------


def listening_sockets() -> set[tuple[str, int]]:
    """(address, port) of every TCP socket of this process in the LISTEN state (Linux /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, family in (("/proc/self/net/tcp", socket.AF_INET), ("/proc/self/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            if family == socket.AF_INET:
                address = socket.inet_ntop(family, raw[::-1])
            else:
                address = socket.inet_ntop(family, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
            found.add((address, int(port_hex, 16)))
    return found


async def test_the_tap_listens_only_on_the_address_it_was_given():
    upstream = await within(gl.serve("tcp://127.0.0.1:0", demo.handlers()))
    upstream_port = int(upstream.addresses[0].rsplit(":", 1)[1])
    tap = Tap("127.0.0.1", upstream_port)
    try:
        before = listening_sockets()
        assert ("127.0.0.1", upstream_port) in before
        address = await within(tap.listen("127.0.0.1", 0))
        tap_port = int(address.rsplit(":", 1)[1])
        assert listening_sockets() - before == {("127.0.0.1", tap_port)}
        client = await within(gl.connect(f"tcp://{address}", demo.handlers()))
        assert await within(client.request_bytes("callback", b"t")) == b"pong:ping:t"
        assert listening_sockets() - before == {("127.0.0.1", tap_port)}  # a connection opens no listener
        await within(client.close())
    finally:
        await within(tap.close())
        await within(upstream.close())
    assert ("127.0.0.1", tap_port) not in listening_sockets()

"""Memory while refusing hostile sizes: headers that claim 4 GiB, names sized fff, WebSocket frames that lie.

For each kind of hostile input, ``--connections`` clients connect to one server
(TCP, or WebSocket for the frame case), send it and read the server's answer
(f00000002 and a close). Printed per kind: the tracemalloc peak above the
baseline while they were refused, what is still held afterwards, the change in
the process's resident memory, and how long the batch took. Flat memory means
the peak stays far below what the headers claim and nothing is held after.

    python benchmarks/hostile.py [--connections 500]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import struct
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gotalk_lab as gl  # noqa: E402
from gotalk_lab import demo  # noqa: E402

KINDS = {
    "r, payload size ffffffff": b"01r0001004echoffffffff",
    "s, payload size ffffffff": b"01s0001004echoffffffff",
    "n, payload size ffffffff": b"01n005helloffffffff",
    "e, wait and size ffffffff": b"01e0001ffffffffffffffff",
    "r, name size fff, not UTF-8": b"01r0001fff\xff",
    "r, 4095-byte name, size ffffffff": b"01r0001fff" + b"a" * 0xFFF + b"ffffffff",
}


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def tcp_client(host: str, port: int, data: bytes) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    answer = await asyncio.wait_for(reader.read(), 10)
    assert answer == b"01f00000002", answer
    writer.close()


async def ws_lying_frame_client(host: str, port: int) -> None:
    """A hand-made WebSocket client whose binary frame claims 4 GiB."""
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /gotalk/ HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    mask = os.urandom(4)
    version = bytes([0x82, 0x82]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"01"))
    lying = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 0xFFFFFFFF) + mask + b"x" * 1000
    writer.write(version + lying)
    answer = await asyncio.wait_for(reader.read(), 10)
    assert b"f00000002" in answer, answer
    writer.close()


async def measure(label: str, connections: int, one_client) -> None:
    for _ in range(20):  # warm up: first-use allocations are not growth
        await one_client()
    gc.collect()
    rss_before = rss()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    for _ in range(connections):
        await one_client()
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.05)
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"{label:36} {connections:5d} conns  peak +{(peak - base) / 1024:8.1f} KiB  held after {(current - base) / 1024:+7.1f} KiB"
        f"  RSS {(rss() - rss_before) / 1024:+8.0f} KiB  {elapsed:5.2f} s",
        flush=True,
    )


async def main(connections: int) -> None:
    print(f"hostile sizes: {connections} connections per kind, each refused with f00000002 (claimed: up to 4 GiB each)")
    server = await gl.serve(["tcp://127.0.0.1:0", "ws://127.0.0.1:0/gotalk/"], demo.handlers(), trace=False)
    try:
        tcp_host, tcp_port = server.addresses[0].removeprefix("tcp://").rsplit(":", 1)
        ws_host, ws_port = server.addresses[1].removeprefix("ws://").split("/")[0].rsplit(":", 1)
        for label, data in KINDS.items():
            await measure(f"tcp {label}", connections, lambda data=data: tcp_client(tcp_host, int(tcp_port), data))
        await measure("ws frame claiming 4 GiB", connections, lambda: ws_lying_frame_client(ws_host, int(ws_port)))
    finally:
        await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=500)
    asyncio.run(main(parser.parse_args().connections))

"""A tap lets ended connections go: their traces leave memory (a trace file keeps them)."""

from __future__ import annotations

import gc
import tracemalloc

import gotalk_lab as gl
from gotalk_lab import demo

MiB = 1024 * 1024


async def _clients_through(tap, connections: int, exchanges: int, payload: bytes) -> None:
    for _ in range(connections):
        client = await gl.connect(f"tcp://{tap.address}", trace=False)
        for _ in range(exchanges):
            assert await client.request_bytes("echo", payload) == payload
        await client.close()
    await _settled(tap)


async def _settled(tap) -> None:
    import asyncio

    for _ in range(200):  # the tap's side of each connection ends a moment after the client's
        if not any(connection not in tap.finished for connection in tap.connections):
            return
        await asyncio.sleep(0.01)


async def test_a_tap_keeps_only_the_last_ended_connections_and_their_memory_goes_with_the_rest():
    server = await gl.serve("tcp://127.0.0.1:0", demo.handlers(), trace=False)
    tap = await gl.tap("127.0.0.1:0", server.addresses[0], intercept=False, keep_finished=2)
    try:
        await _clients_through(tap, 1, 10, b"w" * 2000)  # warm: first-use allocations are not the traces'
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await _clients_through(tap, 12, 200, b"x" * 2000)  # 12 x 200 x 2 frames of 2 kB: about 9.6 MB of traces
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert [connection.number for connection in tap.connections] == [12, 13]
        assert tap.forgotten == 11
        assert [len(connection.trace.events) for connection in tap.connections] == [402, 402]  # 200 exchanges, two versions
        # The two kept connections hold 2 x 0.8 MB; the ten let go, nothing.
        assert held < 3 * MiB, f"{held / MiB:.1f} MiB still held"
    finally:
        await tap.close()
        await server.close()


async def test_keep_finished_none_keeps_every_connection():
    server = await gl.serve("tcp://127.0.0.1:0", demo.handlers(), trace=False)
    tap = await gl.tap("127.0.0.1:0", server.addresses[0], intercept=False, keep_finished=None)
    try:
        await _clients_through(tap, 3, 2, b"y")
        assert len(tap.connections) == 3 and tap.forgotten == 0
    finally:
        await tap.close()
        await server.close()

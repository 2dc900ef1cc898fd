"""Limiter edge cases: equal and zero retry waits, zero limits, bad settings refused up front, no timer pile-up.

The Go reference draws its retry wait with ``min + rand.Intn(max - min)``,
which panics when min equals max; ours must give a valid wait there, at zero,
and refuse a range that cannot be written before any request depends on it.
(tests/test_peer.py already checks waits drawn from (40, 40), (5, 30), (0, 0).)
"""

from __future__ import annotations

import asyncio

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.peer import Peer, RequestError, RetryExhausted
from gotalk_lab.trace import IN
from gotalk_lab.wire import MAX_UINT32, RetryResult
from reliability_support import settle, within


@pytest.mark.parametrize("retry_wait", [(-1, 10), (0, MAX_UINT32 + 1), (-5, -5)])
def test_a_retry_wait_that_cannot_be_written_is_refused_when_the_peer_is_made(retry_wait):
    async def make():
        return Peer(retry_wait=retry_wait)

    with pytest.raises(ValueError, match="retry_wait"):
        asyncio.run(make())


@pytest.mark.parametrize("retry_wait, expected", [((500, 100), (100, 500)), ((0, MAX_UINT32), (0, MAX_UINT32)), ((7, 7), (7, 7))])
def test_retry_wait_bounds_are_kept_in_order(retry_wait, expected):
    async def make():
        return Peer(retry_wait=retry_wait)

    assert asyncio.run(make()).retry_wait == expected


@pytest.mark.parametrize("retry_wait", [(0, 0), (MAX_UINT32, MAX_UINT32)])
async def test_extreme_equal_waits_are_written_as_they_are(retry_wait):
    client, served = await within(gl.pipe(None, demo.handlers(), options_a={"max_retries": 0}, options_b={"max_requests": 0, "retry_wait": retry_wait}))
    with pytest.raises(RetryExhausted):
        await within(client.request_bytes("echo", b"x"))
    retries = [e.message for e in client.trace if e.direction == IN and type(e.message) is RetryResult]
    assert [r.wait for r in retries] == [retry_wait[0]]
    await within(client.close())


async def test_max_requests_zero_refuses_every_single_request_even_plain_functions():
    client, served = await within(gl.pipe(None, demo.handlers(), options_a={"max_retries": 1}, options_b={"max_requests": 0, "retry_wait": (0, 0)}))
    for operation in ("echo", "sleep", "fail"):  # inline, async, raising: none runs
        with pytest.raises(RetryExhausted):
            await within(client.request_bytes(operation, b'{"ms":1}'))
    assert served.load == 0  # no division by a zero limit
    async with client.stream_request("upper-stream") as stream:  # streams have their own limit
        await within(stream.send(b"still"))
        await within(stream.end())
        assert await within(stream.collect()) == [b"STILL"]
    await within(client.close())
    await settle(client, served)


async def test_max_streams_zero_refuses_single_requests_to_stream_operations_too():
    client, served = await within(gl.pipe(None, demo.handlers(), options_b={"max_streams": 0}))
    with pytest.raises(RequestError, match="stream requests not supported"):
        await within(client.request_bytes("upper-stream", b"abc"))
    assert await within(client.request_bytes("echo", b"single operations still run")) == b"single operations still run"
    await within(client.close())
    await settle(client, served)


async def test_unlimited_requests_and_streams_need_no_limit_to_compute_load():
    client, served = await within(gl.pipe(None, demo.handlers(), options_b={"max_requests": None, "max_streams": None}))
    slow = [asyncio.ensure_future(client.request("sleep", {"ms": 50})) for _ in range(300)]
    await within(asyncio.gather(*slow))
    assert served.load == 0
    await within(client.close())


async def test_timers_do_not_pile_up_on_a_long_lived_connection():
    client, served = await within(
        gl.pipe(None, demo.handlers(), options_a={"heartbeat_interval": 0.005, "read_timeout": 0.5, "max_retries": 40},
                options_b={"heartbeat_interval": 0.005, "read_timeout": 0.5, "max_requests": 0, "retry_wait": (1, 1)})
    )
    most = 0

    async def watch():
        nonlocal most
        while True:
            most = max(most, len(client._timers), len(served._timers))
            await asyncio.sleep(0.001)

    watcher = asyncio.ensure_future(watch())
    try:
        with pytest.raises(RetryExhausted):  # 40 retries, each a timer of its own in turn
            await within(client.request_bytes("echo", b"x"))
        await asyncio.sleep(0.2)  # ~40 heartbeats each way, each re-arming its timer
    finally:
        watcher.cancel()
    assert most <= 4, f"{most} timers held at once"  # read timeout, heartbeat, one retry, the deadline check
    await within(client.close())
    await settle(client, served)

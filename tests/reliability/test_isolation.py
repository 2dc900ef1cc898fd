"""One bad connection is closed with the right ProtocolError; the server's other connections never notice.

Each case runs over TCP and WebSocket with a bystander client of the same
server that has a slow request and an open stream in flight while a raw client
sends garbage (or reuses a request ID still in flight). The raw client must get
exactly our version, the ``f`` message and a close; the bystander's work must
come back right; nothing of the bad connection may stay in the server.
"""

from __future__ import annotations

import asyncio

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.wire import SingleRequest, StreamRequest, StreamRequestPart, encode
from reliability_support import SCHEMES, assert_tables_empty, bystander, open_raw, serving, wait_until, within

SLEEP = b'{"ms":3000}'

GARBAGE = [
    pytest.param(b"01x000100000000", b"f00000002", "byte 2: type", id="unknown-type"),
    pytest.param(b"01r0001004echo0000zzzz", b"f00000002", "byte 18: payload_size", id="bad-hex-in-a-size"),
    pytest.param(b"01r0001zzzecho00000000", b"f00000002", "byte 7: name_size", id="bad-hex-in-a-name-size"),
    pytest.param(b"02", b"f00000001", "byte 0: version", id="other-version"),
    pytest.param(b"zz", b"f00000002", "byte 0: version", id="not-a-version"),
    pytest.param(b"01r0001004echoffffffff", b"f00000002", "payload limit", id="payload-size-ffffffff"),
    pytest.param(b"01r0001004\xff\xfe\xfd\xfc00000000", b"f00000002", "UTF-8", id="name-not-utf8"),
    pytest.param(b"01p000900000000", b"f00000002", "not an open stream", id="part-of-no-stream"),
    pytest.param(b"01" + bytes(range(256)), b"f00000002", "byte 2: type", id="binary-junk"),
    pytest.param(b"01h0000zzzzzzzz", b"f00000002", "byte 7: time", id="bad-heartbeat"),
]


async def received_until_closed(scheme: str, raw) -> bytes:
    """What the server wrote to the raw client until it closed, as one byte string."""
    if scheme == "tcp":
        return await raw.read_to_end()
    messages = await raw.read_to_end()
    assert raw.close_code in (1000, 4000, 4001, 4002), raw.close_code
    return b"".join(messages)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("garbage, answer, located", GARBAGE)
async def test_garbage_closes_that_connection_only(scheme, garbage, answer, located):
    async with serving(scheme) as served:
        async with bystander(served):
            raw = await open_raw(scheme, served.address)
            bad = await served.next_peer()
            await raw.send(garbage)
            assert await within(received_until_closed(scheme, raw)) == b"01" + answer
            await within(bad.wait_closed())
            assert located in bad.close_reason
            assert_tables_empty(bad)
            await raw.close()
        await wait_until(lambda: not served.server.peers)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_protocol_error_from_a_client_closes_only_that_connection_without_an_answer(scheme):
    async with serving(scheme) as served:
        async with bystander(served):
            raw = await open_raw(scheme, served.address)
            bad = await served.next_peer()
            await raw.send(b"01f00000000")
            assert await within(received_until_closed(scheme, raw)) == b"01"  # an f is never answered
            await within(bad.wait_closed())
            assert "f00000000" in bad.close_reason
            await raw.close()


# -- request IDs reused while in flight -------------------------------------------------------

OPEN_STREAM = encode(StreamRequest(b"dup!", "upper-stream", b"a"))
SLOW_SINGLE = encode(SingleRequest(b"dup!", "sleep", SLEEP))
DUPLICATES = [
    pytest.param(OPEN_STREAM, OPEN_STREAM, id="stream-then-stream"),
    pytest.param(SLOW_SINGLE, OPEN_STREAM, id="single-then-stream"),
    pytest.param(OPEN_STREAM, SLOW_SINGLE, id="stream-then-single"),
    pytest.param(SLOW_SINGLE, SLOW_SINGLE, id="single-then-single"),
    pytest.param(encode(SingleRequest(b"dup!", "upper-stream", b"x")), SLOW_SINGLE, id="single-to-a-stream-operation"),
]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("first, second", DUPLICATES)
async def test_an_id_still_in_flight_reused_is_refused_for_that_connection_only(scheme, first, second):
    handlers = demo.handlers()
    held = asyncio.Event()

    @handlers.handle_stream("upper-stream")
    async def upper_until_released(parts):  # keeps the stream (or the single request to it) in flight
        async for part in parts:
            yield part.upper()
        await held.wait()

    async with serving(scheme, handlers) as served:
        async with bystander(served) as client:
            raw = await open_raw(scheme, served.address)
            bad = await served.next_peer()
            await raw.send(b"01" + first)
            await wait_until(lambda: bad.pending_count == 1)
            await raw.send(second)
            written = await within(received_until_closed(scheme, raw))
            assert written.startswith(b"01") and written.endswith(b"f00000002")
            assert written.count(b"f0000") == 1
            await within(bad.wait_closed())
            assert "reused request ID b'dup!'" in bad.close_reason
            assert_tables_empty(bad)
            # The bystander's own streams (same server, same handlers) still work.
            async with client.stream_request("upper-stream") as stream:
                await within(stream.send(b"mine"))
                assert await within(stream.results.get()) == b"MINE"
                held.set()
                await within(stream.end())
            await raw.close()


async def test_the_same_id_in_flight_both_ways_is_not_a_duplicate():
    """IDs are per direction: our request 0000 and theirs 0000 are two different requests."""
    async with serving("tcp") as served:
        client = await within(gl.connect(served.address, demo.handlers()))
        server_side = await served.next_peer()
        ours = asyncio.ensure_future(client.request("sleep", {"ms": 100}))
        theirs = asyncio.ensure_future(server_side.request("sleep", {"ms": 100}))
        await wait_until(lambda: client.pending_count == 2 and server_side.pending_count == 2)
        assert set(client.connection.requests) == set(server_side.connection.requests) == {b"0000"}
        assert await within(ours) == await within(theirs) == {"slept": 100}
        assert client.is_open and server_side.is_open
        await within(client.close())


async def test_a_stream_id_may_be_reused_once_its_stream_has_ended():
    async with serving("tcp") as served:
        raw = await open_raw("tcp", served.address)
        peer = await served.next_peer()
        for round_ in (b"1", b"2"):
            await raw.send(
                (b"01" if round_ == b"1" else b"")
                + encode(StreamRequest(b"same", "upper-stream", b"p" + round_))
                + encode(StreamRequestPart(b"same", b""))
            )
            await raw.read_until(b"Ssame00000002P" + round_ + b"Ssame00000000")
        await wait_until(lambda: peer.pending_count == 0)
        assert peer.is_open
        await raw.close()
        await within(peer.wait_closed())

"""Stream requests and streaming results between peers on a pipe: parts, ends, mixed kinds, errors, flow control.

Every wait is bounded; every connection is checked to leave nothing pending.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.peer import ConnectionClosed, Peer, RequestError
from gotalk_lab.trace import IN, OUT
from gotalk_lab.transports.pipe import pipe_transports
from gotalk_lab.wire import ErrorResult, StreamRequest, StreamRequestPart, StreamResult

BOUND = 5.0
MiB = 1024 * 1024


async def within(awaitable, seconds: float = BOUND):
    return await asyncio.wait_for(awaitable, seconds)


async def wait_until(predicate, seconds: float = BOUND) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.002)


async def connected(handlers_a=None, handlers_b=None, options_a=None, options_b=None) -> tuple[Peer, Peer]:
    transport_a, transport_b = pipe_transports()
    a = Peer(handlers_a if handlers_a is not None else demo.handlers(), name="a", **(options_a or {}))
    b = Peer(handlers_b if handlers_b is not None else demo.handlers(), name="b", **(options_b or {}))
    a.attach(transport_a)
    b.attach(transport_b)
    await within(asyncio.gather(a.handshake, b.handshake))
    return a, b


async def closed_cleanly(*peers: Peer) -> None:
    for peer in peers:
        await within(peer.close())
    for peer in peers:
        assert peer.pending_count == 0, peer


def frames(peer: Peer, direction: str, cls=None) -> list:
    return [e for e in peer.trace if e.direction == direction and (cls is None or type(e.message) is cls)]


async def upper(requester: Peer, parts: list[bytes]) -> list[bytes]:
    async with requester.stream_request("upper-stream") as stream:
        for part in parts:
            await within(stream.send(part))
        await within(stream.end())
        return await within(stream.collect())


# -- streams both directions ---------------------------------------------------------


async def test_upper_stream_in_both_directions():
    a, b = await connected()
    assert await upper(a, [b"abc", b"def", b"\x00x\xff"]) == [b"ABC", b"DEF", b"\x00X\xff"]
    assert await upper(b, [b"one"]) == [b"ONE"]
    # On the wire: s (first part), p, p, empty p; the answer S parts and an empty S.
    sent = [e.raw for e in frames(a, OUT) if type(e.message) in (StreamRequest, StreamRequestPart)]
    assert sent == [b"s000000cupper-stream00000003abc", b"p000000000003def", b"p000000000003\x00x\xff", b"p000000000000"]
    answers = [e.raw for e in frames(a, IN, StreamResult)]
    assert answers == [b"S000000000003ABC", b"S000000000003DEF", b"S000000000003\x00X\xff", b"S000000000000"]
    await closed_cleanly(a, b)


async def test_results_can_be_read_while_parts_are_still_being_sent():
    a, b = await connected()
    async with a.stream_request("upper-stream") as stream:
        for word in (b"one", b"two", b"three"):
            await within(stream.send(word))
            assert await within(stream.results.get()) == word.upper()
        await within(stream.end())
        assert await within(stream.collect()) == []
    await closed_cleanly(a, b)


async def test_a_stream_with_no_parts_and_an_empty_first_part():
    a, b = await connected()
    assert await upper(a, []) == []  # end() alone sends an empty s, which is the end
    assert [e.raw for e in frames(a, OUT) if type(e.message) in (StreamRequest, StreamRequestPart)] == [
        b"s000000cupper-stream00000000",
    ]
    await closed_cleanly(a, b)


async def test_an_empty_first_part_ends_the_stream_and_is_answered_at_once():
    # As the Go peer reads it: `s` with an empty payload is the whole stream request.
    a, b = await connected()
    async with a.stream_request("upper-stream") as stream:
        await within(stream.send(b""))
        assert stream.ended
        with pytest.raises(ValueError, match="already ended"):
            await stream.send(b"x")
        assert await within(stream.collect()) == []
    sent = [e.raw for e in frames(a, OUT) if type(e.message) in (StreamRequest, StreamRequestPart)]
    assert sent == [b"s000000cupper-stream00000000"]  # no end-of-stream part after it
    assert [e.raw for e in frames(a, IN, StreamResult)] == [b"S000000000000"]
    assert await within(a.request_bytes("echo", b"still open")) == b"still open"
    await closed_cleanly(a, b)


async def test_an_empty_part_after_the_first_is_refused_locally():
    a, b = await connected()
    async with a.stream_request("upper-stream") as stream:
        await within(stream.send(b"a"))
        with pytest.raises(ValueError, match="end"):
            await stream.send(b"")
        await within(stream.end())
        with pytest.raises(ValueError, match="already ended"):
            await stream.send(b"late")
        assert await within(stream.collect()) == [b"A"]
    await closed_cleanly(a, b)


async def test_empty_results_are_not_sent_because_they_would_end_the_stream():
    handlers = gl.Handlers()

    @handlers.handle_stream("with-gaps")
    async def with_gaps(parts):
        async for part in parts:
            yield b""
            yield part
            yield None

    a, b = await connected(handlers_b=handlers)
    async with a.stream_request("with-gaps") as stream:
        await within(stream.send(b"x"))
        await within(stream.send(b"y"))
        await within(stream.end())
        assert await within(stream.collect()) == [b"x", b"y"]
    assert [e.message.payload for e in frames(b, OUT, StreamResult)] == [b"x", b"y", b""]
    await closed_cleanly(a, b)


async def test_json_stream_handlers_get_and_give_values():
    handlers = gl.Handlers()

    @handlers.handle_stream("running-sum", json=True)
    async def running_sum(values, peer):
        total = 0
        async for value in values:
            total += value["n"]
            yield {"total": total, "by": peer.name}

    a, b = await connected(handlers_b=handlers)
    async with a.stream_request("running-sum") as stream:
        for n in (1, 2, 3):
            await within(stream.send_json({"n": n}))
        await within(stream.end())
        results = [gl.handlers.json_value(part) for part in await within(stream.collect())]
    assert results == [{"total": 1, "by": "b"}, {"total": 3, "by": "b"}, {"total": 6, "by": "b"}]
    assert frames(a, OUT, StreamRequest)[0].raw.endswith(b'00000007{"n":1}')
    await closed_cleanly(a, b)


async def test_many_streams_are_multiplexed():
    a, b = await connected()
    words = [[f"{i}-{j}".encode() for j in range(5)] for i in range(10)]
    results = await within(asyncio.gather(*(upper(a, parts) for parts in words)))
    assert results == [[part.upper() for part in parts] for parts in words]
    await closed_cleanly(a, b)


# -- mixed kinds ----------------------------------------------------------------------


async def test_a_single_request_to_a_stream_operation_gets_the_parts_joined():
    a, b = await connected()
    assert await within(a.request_bytes("upper-stream", b"abc")) == b"ABC"
    # The answer travelled as a streaming result: S parts and an empty S.
    assert [e.raw for e in frames(a, IN, StreamResult)] == [b"S000000000003ABC", b"S000000000000"]
    assert a.trace.exchange_of(frames(a, IN, StreamResult)[-1]).outcome == "result"
    await closed_cleanly(a, b)


async def test_a_stream_request_to_a_single_operation_is_an_error():
    a, b = await connected()
    async with a.stream_request("echo") as stream:
        await within(stream.send(b"abc"))
        await within(stream.send(b"def"))
        await within(stream.end())
        with pytest.raises(RequestError, match='operation "echo" does not take stream requests'):
            await within(stream.collect())
    # The parts sent after the refusal were dropped, not treated as unknown streams.
    assert await within(a.request_bytes("echo", b"still open")) == b"still open"
    await closed_cleanly(a, b)


async def test_a_stream_request_to_an_unknown_operation():
    a, b = await connected()
    async with a.stream_request("nope") as stream:
        await within(stream.send(b"abc"))
        await within(stream.send(b"def"))
        await within(stream.end())
        with pytest.raises(RequestError, match='unknown operation "nope"'):
            await within(stream.collect())
    assert await within(a.request_bytes("echo", b"ok")) == b"ok"
    await closed_cleanly(a, b)


async def test_the_requestor_accepts_either_kind_of_answer():
    # The protocol lets a single result answer a stream request and a streaming
    # result answer a single request; a hand-driven responder sends both.
    transport_peer, transport_raw = pipe_transports()
    received = bytearray()

    class Responder:
        def data_received(self, data):
            received.extend(data)

        def connection_lost(self, error):
            pass

    transport_raw.attach(Responder())
    peer = Peer(name="peer").attach(transport_peer)
    transport_raw.write(b"01")
    await within(peer.handshake)

    single = asyncio.ensure_future(peer.request_bytes("anything", b"?"))
    await wait_until(lambda: b"r0000008anything" in received)
    transport_raw.write(b"S000000000002abS000000000001cS000000000000")
    assert await within(single) == b"abc"

    async with peer.stream_request("anything") as stream:
        await within(stream.send(b"x"))
        await within(stream.end())
        await wait_until(lambda: b"p000100000000" in received)
        transport_raw.write(b"R000100000003one")
        assert await within(stream.collect()) == [b"one"]
    assert peer.pending_count == 0
    await closed_cleanly(peer)


# -- errors inside streams -----------------------------------------------------------


async def test_a_stream_handler_raising_mid_stream_ends_that_stream_only():
    handlers = demo.handlers()

    @handlers.handle_stream("picky")
    async def picky(parts):
        async for part in parts:
            if part == b"bad":
                raise ValueError("no bad parts")
            yield part

    a, b = await connected(handlers_b=handlers)
    async with a.stream_request("picky") as stream:
        await within(stream.send(b"good"))
        assert await within(stream.results.get()) == b"good"
        await within(stream.send(b"bad"))
        await wait_until(lambda: frames(a, IN, ErrorResult))
        # The requestor had more to say; its late parts and its end must not hurt the connection.
        await within(stream.send(b"more"))
        await within(stream.end())
        with pytest.raises(RequestError, match="no bad parts"):
            await within(stream.collect())
    assert await within(a.request_bytes("echo", b"alive")) == b"alive"
    assert a.is_open and b.is_open
    await wait_until(lambda: b.pending_count == 0 and a.pending_count == 0)
    await closed_cleanly(a, b)


async def test_a_stream_handler_that_stops_reading_early_leaves_the_connection_open():
    handlers = demo.handlers()

    @handlers.handle_stream("first-only")
    async def first_only(parts):
        async for part in parts:
            yield part
            return

    a, b = await connected(handlers_b=handlers)
    async with a.stream_request("first-only") as stream:
        await within(stream.send(b"1"))
        assert await within(stream.collect()) == [b"1"]
        await within(stream.send(b"2"))
        await within(stream.send(b"3"))
    assert await within(a.request_bytes("echo", b"alive")) == b"alive"
    await wait_until(lambda: b.pending_count == 0 and a.pending_count == 0)
    await closed_cleanly(a, b)


async def test_leaving_the_block_by_an_exception_still_ends_the_request_stream():
    a, b = await connected()
    with pytest.raises(KeyError):
        async with a.stream_request("upper-stream") as stream:
            await within(stream.send(b"abc"))
            raise KeyError("user code failed")
    # The responder saw the end of the stream, so both sides are done with it.
    assert frames(a, OUT)[-1].raw == b"p000000000000"
    await wait_until(lambda: a.pending_count == 0 and b.pending_count == 0)
    await closed_cleanly(a, b)


async def test_leaving_the_block_without_reading_a_finished_stream_does_not_stall_the_connection():
    # A hand-driven responder sends more result parts than the buffer holds, and
    # the end, in one write: the buffer pauses reading, yet the stream is finished.
    transport_peer, transport_raw = pipe_transports()
    received = bytearray()

    class Responder:
        def data_received(self, data):
            received.extend(data)

        def connection_lost(self, error):
            pass

    transport_raw.attach(Responder())
    peer = Peer(name="peer", stream_buffer=4).attach(transport_peer)
    transport_raw.write(b"01")
    async with peer.stream_request("parts") as stream:
        await within(stream.send(b"go"))
        transport_raw.write(b"".join(b"S000000000001%d" % (i % 10) for i in range(20)) + b"S000000000000")
        await wait_until(lambda: stream.results.done)
    # Nobody read those parts; the connection must still read what comes next.
    answer = asyncio.ensure_future(peer.request_bytes("echo", b"?"))
    await wait_until(lambda: b"r0001004echo" in received)
    transport_raw.write(b"R000100000009not stuck")
    assert await within(answer) == b"not stuck"
    assert peer.pending_count == 0
    await closed_cleanly(peer)


async def test_leaving_the_block_before_the_results_end_drops_the_rest():
    a, b = await connected(options_a={"stream_buffer": 2})
    async with a.stream_request("upper-stream") as stream:
        for i in range(10):
            await within(stream.send(b"p%d" % i))
    # The rest of the results still arrive and are dropped; the connection goes on.
    await wait_until(lambda: a.pending_count == 0 and b.pending_count == 0)
    assert await within(a.request_bytes("echo", b"ok")) == b"ok"
    await closed_cleanly(a, b)


# -- closing mid-stream ----------------------------------------------------------------


@pytest.mark.parametrize("who", ["requester", "responder", "abort"])
async def test_closing_mid_stream_fails_the_stream_on_both_sides(who):
    handlers = gl.Handlers()
    handler_outcome: list = []

    @handlers.handle_stream("slow-upper")
    async def slow_upper(parts):
        try:
            async for part in parts:
                yield part.upper()
        except BaseException as error:
            handler_outcome.append(type(error))
            raise

    a, b = await connected(handlers_b=handlers)
    async with a.stream_request("slow-upper") as stream:
        await within(stream.send(b"abc"))
        assert await within(stream.results.get()) == b"ABC"
        if who == "requester":
            await within(a.close())
        elif who == "responder":
            await within(b.close())
        else:
            b.transport.abort()
        with pytest.raises(ConnectionClosed):
            await within(stream.collect())
        with pytest.raises(ConnectionClosed):
            await stream.send(b"more")
    await within(asyncio.gather(a.wait_closed(), b.wait_closed()))
    await wait_until(lambda: handler_outcome)
    assert handler_outcome[0] in (ConnectionClosed, asyncio.CancelledError, GeneratorExit)
    assert a.pending_count == b.pending_count == 0


async def test_closing_while_the_other_side_streams_results_to_us():
    handlers = gl.Handlers()

    @handlers.handle_stream("forever")
    async def forever(parts):
        n = 0
        while True:
            n += 1
            yield b"%d" % n
            await asyncio.sleep(0.001)

    a, b = await connected(handlers_b=handlers)
    async with a.stream_request("forever") as stream:
        await within(stream.send(b"go"))
        seen = [await within(stream.results.get()) for _ in range(5)]
        assert seen == [b"1", b"2", b"3", b"4", b"5"]
        await within(b.close())
        with pytest.raises(ConnectionClosed):
            async for _ in stream:
                pass
    assert a.pending_count == b.pending_count == 0


# -- retries of stream requests ------------------------------------------------------------


async def test_a_stream_request_over_max_streams_is_retried_with_its_parts():
    a, b = await connected(options_b={"max_streams": 1, "retry_wait": (100, 100)})
    first = a.stream_request("upper-stream")
    await within(first.send(b"first"))
    assert await within(first.results.get()) == b"FIRST"
    second = a.stream_request("upper-stream")
    await within(second.send(b"x"))
    await within(second.send(b"y"))
    await within(second.end())
    await wait_until(lambda: any(e.message.TYPE == b"e" for e in frames(a, IN)))
    await within(first.end())
    assert await within(first.collect()) == []
    assert await within(second.collect()) == [b"X", b"Y"]
    # Each try sent the stream whole: s with the first part, the other parts, the end.
    whole = [b"s0001" b"00cupper-stream00000001x", b"p000100000001y", b"p000100000000"]
    second_frames = [e.raw for e in frames(a, OUT) if getattr(e.message, "request_id", None) == b"0001"]
    assert len(second_frames) >= 6 and second_frames == whole * (len(second_frames) // 3)
    exchange = a.trace.exchange_of(frames(a, OUT, StreamRequest)[-1])
    assert exchange.retries >= 1 and exchange.outcome == "result"
    await closed_cleanly(a, b)


# -- flow control ------------------------------------------------------------------------------


async def test_a_stream_consumer_that_does_not_read_holds_the_sender_back():
    a, b = await connected(options_a={"stream_buffer": 4})
    big = b"x" * (256 * 1024)
    sent = 0
    async with a.stream_request("upper-stream") as stream:

        async def send_forever():
            nonlocal sent
            while True:
                await stream.send(big)
                sent += len(big)

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(send_forever(), 1.0)
        # a never read its results: they stopped b, and b stopped reading a's parts.
        assert sent < 40 * MiB
        assert a.transport.write_buffer_size() < 2 * MiB
        assert b.transport.write_buffer_size() < 2 * MiB
        await within(a.close())
    assert a.pending_count == 0


async def test_drain_waits_while_the_other_side_does_not_read():
    a, b = await connected()
    b.transport.pause_reading()
    chunk = b"y" * MiB
    attempted = 0

    async def send_fifty_mib():
        nonlocal attempted
        async with a.stream_request("upper-stream") as stream:
            for _ in range(50):
                attempted += len(chunk)
                await stream.send(chunk)

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(send_fifty_mib(), 1.0)
    assert attempted < 50 * MiB
    assert a.transport.write_buffer_size() < 2 * MiB
    b.transport.resume_reading()
    await closed_cleanly(a, b)


@pytest.mark.parametrize("operation", ["echo", "async-echo"])
async def test_a_requester_that_does_not_read_its_answers_cannot_make_the_responder_buffer_them(operation):
    handlers = demo.handlers()

    @handlers.handle("async-echo")
    async def async_echo(payload):
        return payload

    a, b = await connected(handlers_b=handlers, options_a={"max_retries": 0}, options_b={"max_requests": 4})
    a.transport.pause_reading()  # a never reads what b answers
    chunk = b"z" * (256 * 1024)
    requests = []

    async def ask_forever():
        while True:
            requests.append(asyncio.ensure_future(a.request_bytes(operation, chunk)))
            await asyncio.sleep(0)  # let the request go out
            await a.transport.drain()

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ask_forever(), 1.0)
    # b answered what it had read until its answers filled its queue, then stopped
    # reading (as the Go peer does): a's later requests wait in a's own queue, and
    # b's buffer holds a few answers only.
    assert len(requests) >= 2
    assert b.transport.write_buffer_size() < 2 * MiB
    assert b.transport.write_backlogged and b.reading_paused
    await within(a.close())
    outcomes = await within(asyncio.gather(*requests, return_exceptions=True))
    assert all(isinstance(outcome, ConnectionClosed) for outcome in outcomes)
    await within(b.wait_closed())
    assert a.pending_count == b.pending_count == 0


async def test_the_read_timeout_does_not_count_while_we_hold_reading_back_ourselves():
    handlers = demo.handlers()

    @handlers.handle_stream("counter")
    async def counter(parts):
        async for _ in parts:
            for n in range(20):
                yield b"%d" % n

    a, b = await connected(handlers_a=handlers, options_b={"read_timeout": 0.3, "stream_buffer": 2})
    async with b.stream_request("counter") as stream:
        await within(stream.send(b"go"))
        await within(stream.end())
        await wait_until(lambda: len(stream.results._parts) >= 2)
        # b's results buffer is full, so b has stopped reading: that is b's own
        # doing, not an idle connection, however long its reader takes.
        await asyncio.sleep(0.7)
        assert b.is_open
        assert await within(stream.collect()) == [b"%d" % n for n in range(20)]
    assert await within(b.request_bytes("echo", b"still open")) == b"still open"
    await closed_cleanly(a, b)

"""The asyncio Peer over an in-memory pipe: requests both ways, limits, protocol errors, closing.

Every wait is bounded; every connection is checked to leave nothing pending.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.peer import ConnectionClosed, Peer, PeerState, RequestError, RetryExhausted
from gotalk_lab.trace import IN, OUT
from gotalk_lab.transports.base import Transport
from gotalk_lab.transports.pipe import pipe_transports
from gotalk_lab.wire import (
    ErrorResult,
    Heartbeat,
    Notification,
    ProtocolError,
    RetryResult,
    SingleRequest,
    SingleResult,
    encode,
)

#: Upper bound for any single wait in these tests; nothing should come near it.
BOUND = 5.0


async def within(awaitable, seconds: float = BOUND):
    return await asyncio.wait_for(awaitable, seconds)


async def wait_until(predicate, seconds: float = BOUND) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s: {predicate}")
        await asyncio.sleep(0.002)


async def demo_pair(**options) -> tuple[Peer, Peer]:
    return await within(gl.pipe(demo.handlers(), demo.handlers(), **options))


async def connected(handlers_a=None, handlers_b=None, options_a=None, options_b=None) -> tuple[Peer, Peer]:
    """Two peers on a pipe, each with its own options."""
    transport_a, transport_b = pipe_transports()
    a = Peer(handlers_a if handlers_a is not None else demo.handlers(), name="a", **(options_a or {}))
    b = Peer(handlers_b if handlers_b is not None else demo.handlers(), name="b", **(options_b or {}))
    a.attach(transport_a)
    b.attach(transport_b)
    await within(asyncio.gather(a.handshake, b.handshake))
    return a, b


class RawEnd:
    """The far end of a pipe driven by hand: records every byte, writes any bytes."""

    def __init__(self, transport) -> None:
        self.transport = transport
        self.received = bytearray()
        self.lost = asyncio.Event()
        transport.attach(self)

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, error) -> None:
        self.lost.set()

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    async def wait_for(self, data: bytes) -> None:
        await wait_until(lambda: data in self.received)


async def peer_with_raw_end(handlers=None, **options) -> tuple[Peer, RawEnd]:
    """A peer whose other side is a ``RawEnd`` (which has not written its version yet)."""
    transport_peer, transport_raw = pipe_transports()
    peer = Peer(handlers if handlers is not None else demo.handlers(), name="peer", **options)
    raw = RawEnd(transport_raw)
    peer.attach(transport_peer)
    return peer, raw


async def closed_cleanly(*peers: Peer) -> None:
    """Close every peer and check that nothing is left pending on any."""
    for peer in peers:
        await within(peer.close())
    for peer in peers:
        await within(peer.wait_closed())
        assert peer.state is PeerState.CLOSED
        assert peer.pending_count == 0, peer


def frames(peer: Peer, direction: str, cls=None) -> list:
    return [e for e in peer.trace if e.direction == direction and (cls is None or type(e.message) is cls)]


# -- the demo operations, both directions ------------------------------------------


async def test_handshake_opens_both_sides_and_writes_the_version_first():
    a, b = await demo_pair()
    assert a.state is b.state is PeerState.OPEN
    assert await a.handshake == 1 and await b.handshake == 1
    for peer in (a, b):
        first_out, first_in = frames(peer, OUT)[0], frames(peer, IN)[0]
        assert first_out.raw == b"01" and first_in.raw == b"01"
    await closed_cleanly(a, b)


@pytest.mark.parametrize("payload", [b"hello \x00\xff world", b"", bytes(range(256)), "text \u00e9"])
async def test_echo_returns_the_same_bytes_in_both_directions(payload):
    a, b = await demo_pair()
    expected = payload.encode() if isinstance(payload, str) else payload
    assert await within(a.request_bytes("echo", payload)) == expected
    assert await within(b.request_bytes("echo", payload)) == expected
    await closed_cleanly(a, b)


async def test_greet_speaks_json_in_both_directions():
    a, b = await demo_pair()
    assert await within(a.request("greet", {"name": "Ada"})) == {"greeting": "Hello Ada"}
    assert await within(b.request("greet", {"name": "Grace"})) == {"greeting": "Hello Grace"}
    # The request payload is compact JSON, as gotalk.js writes it.
    sent = frames(a, OUT, SingleRequest)[0]
    assert sent.raw.endswith(b'0000000e{"name":"Ada"}')
    await closed_cleanly(a, b)


async def test_fail_comes_back_as_request_error_boom():
    a, b = await demo_pair()
    for requester in (a, b):
        with pytest.raises(RequestError) as caught:
            await within(requester.request_bytes("fail", b"x"))
        assert caught.value.text == "boom"
        assert caught.value.payload == b"boom"
        assert caught.value.operation == "fail"
    assert frames(b, OUT, ErrorResult)[0].raw == b"E000000000004boom"
    await closed_cleanly(a, b)


async def test_unknown_operation_names_the_operation():
    a, b = await demo_pair()
    for requester in (a, b):
        with pytest.raises(RequestError) as caught:
            await within(requester.request_bytes("no-such-op", b"x"))
        assert caught.value.text == 'unknown operation "no-such-op"'
    await closed_cleanly(a, b)


async def test_sleeps_run_concurrently_and_results_come_back_in_completion_order():
    a, b = await demo_pair()
    results = await within(asyncio.gather(*(a.request("sleep", {"ms": ms}) for ms in (150, 50, 100))))
    assert results == [{"slept": 150}, {"slept": 50}, {"slept": 100}]
    # Requests went out a, b, c; results came back b, c, a, matched by ID.
    request_ids = [e.message.request_id for e in frames(a, OUT, SingleRequest)]
    result_ids = [e.message.request_id for e in frames(a, IN, SingleResult)]
    assert result_ids == [request_ids[1], request_ids[2], request_ids[0]]
    # The other direction multiplexes too.
    results = await within(asyncio.gather(*(b.request("sleep", {"ms": ms}) for ms in (100, 20))))
    assert results == [{"slept": 100}, {"slept": 20}]
    await closed_cleanly(a, b)


async def test_ping_prefixes_the_payload():
    a, b = await demo_pair()
    assert await within(a.request_bytes("ping", b"\x00zz")) == b"ping:\x00zz"
    assert await within(b.request_bytes("ping", b"")) == b"ping:"
    await closed_cleanly(a, b)


async def test_callback_asks_the_requestor_back_on_the_same_connection():
    a, b = await demo_pair()
    assert await within(a.request_bytes("callback", b"zz")) == b"pong:ping:zz"
    assert await within(b.request_bytes("callback", b"yy")) == b"pong:ping:yy"
    # On a's trace the nested "ping" exchange (asked by b) lies inside a's "callback" exchange.
    exchanges = list(a.trace.exchanges.values())
    callback = next(x for x in exchanges if x.operation == "callback" and x.requester == OUT)
    ping = next(x for x in exchanges if x.operation == "ping" and x.requester == IN)
    assert callback.started < ping.started <= ping.ended < callback.ended
    assert callback.outcome == ping.outcome == "result"
    await closed_cleanly(a, b)


async def test_hello_notification_gets_hello_back_with_the_same_payload():
    a, b = await demo_pair()
    for sender in (a, b):
        got = []
        sender.on_notification("hello-back", got.append)
        await within(sender.notify("hello", "hi"))
        await wait_until(lambda: got)
        assert got == [b'"hi"']
    # A notification is never answered: b wrote no result to a's hello.
    assert frames(b, OUT, Notification)[0].raw == b'n00ahello-back00000004"hi"'
    assert not [e for e in frames(b, OUT) if type(e.message) in (SingleResult, ErrorResult)]
    await closed_cleanly(a, b)


async def test_unknown_notifications_are_ignored_and_catch_all_listeners_hear_everything():
    a, b = await demo_pair()
    heard = []
    b.on_notification(None, lambda name, payload: heard.append((name, payload)))
    await within(a.notify_bytes("nobody-listens", b"\x00"))
    await within(a.notify("hello", [1, 2]))
    await wait_until(lambda: len(heard) == 2)
    assert heard == [("nobody-listens", b"\x00"), ("hello", b"[1,2]")]
    assert await within(a.request_bytes("echo", b"still open")) == b"still open"
    await closed_cleanly(a, b)


class EagerReadTransport(Transport):
    """Delivers its next chunk of input the moment reading resumes, before anything
    the loop has queued runs (as uvloop does: it polls the socket first)."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__()
        self.chunks = chunks
        self.paused = False
        self.waiting_at_reads: list[int] = []  # events the peer had not acted on, at each chunk

    def write(self, header: bytes, payload: bytes = b"") -> None:
        pass

    def write_buffer_size(self) -> int:
        return 0

    def read_on(self) -> None:
        while self.chunks and not self.paused:
            self.waiting_at_reads.append(len(self.receiver.connection._received))
            self.receiver.data_received(self.chunks.pop(0))

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        self.read_on()

    def close(self) -> None:
        self._set_closed(None)


async def test_notifications_held_for_busy_listeners_are_acted_on_before_more_input_is_read():
    from gotalk_lab.peer import MAX_LISTENERS

    gate = asyncio.Event()
    heard = []
    handlers = gl.Handlers()

    @handlers.on_notification("n")
    async def slow(payload: bytes) -> None:
        heard.append(payload)
        await gate.wait()

    chunk = encode(Notification("n", b"x")) * (3 * MAX_LISTENERS)
    transport = EagerReadTransport([b"01" + chunk, chunk, chunk])
    peer = Peer(handlers, name="server")
    peer.attach(transport)
    transport.read_on()
    await wait_until(lambda: len(heard) == MAX_LISTENERS)
    await asyncio.sleep(0.01)
    assert len(heard) == MAX_LISTENERS and peer.reading_paused  # the rest waits, decoded
    assert transport.chunks  # and is not read yet
    gate.set()
    await wait_until(lambda: len(heard) == 9 * MAX_LISTENERS)
    # Each chunk was read only once every event before it had been acted on:
    # else a flood queues up decoded, a chunk more each time listeners finish.
    assert transport.waiting_at_reads == [0, 0, 0]
    await within(peer.close())


# -- handlers -----------------------------------------------------------------------


async def test_a_raising_handler_becomes_an_error_result_and_the_peer_keeps_serving():
    handlers = demo.handlers()

    @handlers.handle("sync-raise")
    def sync_raise(payload):
        raise ValueError(f"bad input {payload.decode()}")

    @handlers.handle("async-raise")
    async def async_raise(payload):
        await asyncio.sleep(0)
        raise KeyError("missing")

    @handlers.handle("bad-return")
    def bad_return(payload):
        return 42  # neither bytes, str nor None

    @handlers.handle("silent")
    def silent(payload):
        raise RuntimeError()

    a, b = await connected(handlers_b=handlers)
    with pytest.raises(RequestError, match="bad input 7"):
        await within(a.request_bytes("sync-raise", b"7"))
    with pytest.raises(RequestError) as caught:
        await within(a.request_bytes("async-raise"))
    assert caught.value.text == "'missing'"
    with pytest.raises(RequestError, match="must return bytes, str or None, not int"):
        await within(a.request_bytes("bad-return"))
    with pytest.raises(RequestError) as caught:
        await within(a.request_bytes("silent"))
    assert caught.value.text == "RuntimeError"  # an error without a message is named by its type
    assert await within(a.request_bytes("echo", b"after")) == b"after"
    assert b.is_open
    await closed_cleanly(a, b)


async def test_handlers_may_take_the_peer_and_return_none_or_str():
    handlers = gl.Handlers()
    handlers.handle("who", lambda payload, peer: peer.name)
    handlers.handle("nothing", lambda payload: None)
    handlers.handle("json-none", lambda value: None, json=True)
    a, b = await connected(handlers_b=handlers)
    assert await within(a.request_bytes("who")) == b"b"
    assert await within(a.request_bytes("nothing", b"x")) == b""
    assert await within(a.request("json-none", {"a": 1})) is None
    await closed_cleanly(a, b)


# -- request IDs --------------------------------------------------------------------


async def test_text_request_ids_count_in_base36_like_gotalk_js():
    a, b = await demo_pair()
    for _ in range(3):
        await within(a.request_bytes("echo"))
    ids = [e.message.request_id for e in frames(a, OUT, SingleRequest)]
    assert ids == [b"0000", b"0001", b"0002"]
    await closed_cleanly(a, b)


async def test_request_ids_are_unique_among_requests_in_flight():
    a, b = await demo_pair()
    many = [asyncio.ensure_future(a.request("sleep", {"ms": 50})) for _ in range(40)]
    await within(asyncio.gather(*many))
    ids = [e.message.request_id for e in frames(a, OUT, SingleRequest)]
    assert len(ids) == 40 and len(set(ids)) == 40
    await closed_cleanly(a, b)


async def test_a_wrapped_counter_skips_ids_still_in_flight():
    a, b = await demo_pair()
    slow = asyncio.ensure_future(a.request("sleep", {"ms": 300}))
    await wait_until(lambda: a.pending_count == 1)
    assert frames(a, OUT, SingleRequest)[-1].message.request_id == b"0000"
    # Make the text counter wrap around to "0000", which is still waiting for its answer.
    a.connection.next_id = 36**4
    assert await within(a.request_bytes("echo", b"x")) == b"x"
    assert frames(a, OUT, SingleRequest)[-1].message.request_id == b"0001"
    assert await within(slow) == {"slept": 300}
    await closed_cleanly(a, b)


async def test_binary_request_ids_are_little_endian_counters_like_the_go_peer():
    a, b = await demo_pair(request_ids="binary")
    captured = bytearray()
    b.trace.subscribe(lambda event: event.direction == IN and captured.extend(event.raw))
    for _ in range(2):
        await within(a.request_bytes("echo", b"x"))
    a.connection.next_id = 0x04030201
    await within(a.request_bytes("echo", b"y"))
    ids = [e.message.request_id for e in frames(a, OUT, SingleRequest)]
    assert ids == [b"\x00\x00\x00\x00", b"\x01\x00\x00\x00", b"\x01\x02\x03\x04"]
    # What crossed the wire (as b read it) carries the same raw ID bytes.
    assert bytes(captured) == (
        b"r\x00\x00\x00\x00004echo00000001x" b"r\x01\x00\x00\x00004echo00000001x" b"r\x01\x02\x03\x04004echo00000001y"
    )
    await closed_cleanly(a, b)


# -- limits: RetryResult ----------------------------------------------------------------


async def test_over_max_requests_the_second_request_is_told_to_retry_and_is_resent_after_the_wait():
    a, b = await connected(options_b={"max_requests": 1, "retry_wait": (80, 80)})
    first = asyncio.ensure_future(a.request("sleep", {"ms": 120}))
    await wait_until(lambda: b.pending_count == 1)
    second = await within(a.request("sleep", {"ms": 1}))
    assert second == {"slept": 1}
    assert await within(first) == {"slept": 120}

    retry = frames(a, IN, RetryResult)[0]
    assert retry.raw == retry.header + b"request rate limit"
    assert retry.message.wait == 80 and retry.header[5:13] == b"00000050"
    retried_id = retry.message.request_id
    # e, then the same request again with the same ID, never sooner than the wait.
    sends = [e for e in frames(a, OUT, SingleRequest) if e.message.request_id == retried_id]
    retries = [e for e in frames(a, IN, RetryResult) if e.message.request_id == retried_id]
    assert len(sends) == len(retries) + 1 >= 2
    for answered, resent in zip(retries, sends[1:]):
        assert answered.index < resent.index
        assert resent.raw == sends[0].raw
        assert resent.time - answered.time >= 0.080 - time.get_clock_info("monotonic").resolution
    exchange = a.trace.exchange_of(sends[0])
    assert exchange.retries == len(retries) and exchange.outcome == "result"
    assert exchange.events == [e.index for e in a.trace if e.exchange == exchange.id]
    await closed_cleanly(a, b)


async def test_retry_exhausted_after_max_retries():
    a, b = await connected(options_a={"max_retries": 2}, options_b={"max_requests": 1, "retry_wait": (10, 10)})
    busy = asyncio.ensure_future(a.request("sleep", {"ms": 1000}))
    await wait_until(lambda: b.pending_count == 1)
    with pytest.raises(RetryExhausted) as caught:
        await within(a.request("sleep", {"ms": 1}))
    assert caught.value.attempts == 2
    assert caught.value.text == "request rate limit"
    assert "gave up after 2 retries" in str(caught.value)
    assert isinstance(caught.value, RequestError)
    assert len(frames(a, IN, RetryResult)) == 3  # the first answer and two retries
    assert a.pending_count == 1  # only the busy request is left
    busy.cancel()
    await closed_cleanly(a, b)


@pytest.mark.parametrize("retry_wait", [(40, 40), (5, 30), (0, 0)])
async def test_retry_wait_is_drawn_from_the_configured_range(retry_wait):
    # max_requests=0 answers every request with a RetryResult.
    a, b = await connected(options_a={"max_retries": 0}, options_b={"max_requests": 0, "retry_wait": retry_wait})
    for _ in range(15):
        with pytest.raises(RetryExhausted):
            await within(a.request("sleep", {"ms": 1}))
    waits = [e.message.wait for e in frames(a, IN, RetryResult)]
    low, high = retry_wait
    assert len(waits) == 15 and all(low <= wait <= high for wait in waits)
    if low == high:
        assert set(waits) == {low}
    else:
        assert len(set(waits)) > 1  # random within the range (15 equal draws of 26 values: ~1e-20)
    await closed_cleanly(a, b)


async def test_a_zero_wait_is_retried_at_once_until_the_limit():
    a, b = await connected(options_a={"max_retries": 3}, options_b={"max_requests": 0, "retry_wait": (0, 0)})
    with pytest.raises(RetryExhausted) as caught:
        await within(a.request_bytes("sleep", b'{"ms":1}'))
    assert caught.value.attempts == 3
    assert len(frames(a, OUT, SingleRequest)) == 4
    await closed_cleanly(a, b)


async def test_max_streams_zero_refuses_stream_requests():
    a, b = await connected(options_b={"max_streams": 0})
    async with a.stream_request("upper-stream") as stream:
        await within(stream.send(b"abc"))
        await within(stream.send(b"def"))
        await within(stream.end())
        with pytest.raises(RequestError) as caught:
            await within(stream.collect())
    assert caught.value.text == "stream requests not supported"
    assert frames(b, OUT, ErrorResult)[0].raw.endswith(b"0000001dstream requests not supported")
    # The refused stream's further parts were dropped quietly: the connection goes on.
    assert await within(a.request_bytes("echo", b"ok")) == b"ok"
    await closed_cleanly(a, b)


# -- limits: timeouts and sizes ------------------------------------------------------


async def test_read_timeout_sends_f00000003_closes_and_fails_the_other_sides_calls():
    a, b = await connected(options_b={"read_timeout": 0.2})
    with pytest.raises(ConnectionClosed) as caught:
        await within(a.request("sleep", {"ms": 3000}))
    assert "f00000003" in caught.value.reason
    assert frames(a, IN)[-1].raw == b"f00000003"
    assert "read timeout" in b.close_reason
    await within(a.wait_closed())
    assert a.pending_count == b.pending_count == 0


async def test_traffic_keeps_the_read_timeout_away():
    a, b = await connected(options_b={"read_timeout": 0.5})
    for _ in range(12):
        await asyncio.sleep(0.05)
        assert await within(a.request_bytes("echo", b".")) == b"."
    assert b.is_open
    await closed_cleanly(a, b)


async def test_a_payload_over_max_payload_size_gets_f00000002_and_a_close():
    a, b = await connected(options_b={"max_payload_size": 1000})
    assert await within(a.request_bytes("echo", b"x" * 1000)) == b"x" * 1000
    with pytest.raises(ConnectionClosed):
        await within(a.request_bytes("echo", b"x" * 1001))
    assert frames(a, IN)[-1].message == ProtocolError(2)
    assert "payload" in b.close_reason
    assert a.pending_count == b.pending_count == 0


# -- bad input from the other side -----------------------------------------------------


async def test_a_duplicate_in_flight_request_id_closes_that_connection_only():
    shared = demo.handlers()
    a, b = await connected(handlers_b=shared)
    c, d = await connected(handlers_b=shared)
    sleep = encode(SingleRequest(b"dup!", "sleep", b'{"ms":2000}'))
    await within(a.send_raw(sleep + sleep))
    await within(a.wait_closed())
    assert frames(a, IN)[-1].raw == b"f00000002"
    assert "reused request ID" in b.close_reason
    assert b.pending_count == 0
    # The other connection, served by the same handlers, is untouched.
    assert await within(c.request_bytes("echo", b"fine")) == b"fine"
    await closed_cleanly(c, d)


async def test_a_finished_request_id_may_be_used_again():
    a, b = await demo_pair()
    request = encode(SingleRequest(b"same", "echo", b"1"))
    await within(a.send_raw(request))
    await within(a.send_raw(request))
    await wait_until(lambda: len(frames(b, OUT, SingleResult)) == 2)
    assert b.is_open
    await closed_cleanly(a, b)


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"p000900000000", "not an open stream"),  # a part for a stream that never started
        (b"x000100000000", "type"),  # an unknown message type
        (b"r0001004echo0000zzzz", "payload_size"),  # non-hex digits in a size
    ],
)
async def test_invalid_messages_get_f00000002_and_a_close(raw, reason):
    a, b = await demo_pair()
    pending = asyncio.ensure_future(a.request("sleep", {"ms": 3000}))
    await wait_until(lambda: b.pending_count == 1)
    await within(a.send_raw(raw))
    with pytest.raises(ConnectionClosed):
        await within(pending)
    assert frames(a, IN)[-1].raw == b"f00000002"
    assert reason in b.close_reason
    assert a.pending_count == b.pending_count == 0


async def test_a_version_mismatch_gets_f00000001_and_fails_what_was_pending():
    peer, raw = await peer_with_raw_end()
    early = asyncio.ensure_future(peer.request_bytes("echo", b"sent before the handshake"))
    await raw.wait_for(b"handshake")
    raw.write(b"02")
    with pytest.raises(ConnectionClosed) as caught:
        await within(peer.handshake)
    assert "version" in caught.value.reason and "02" in caught.value.reason
    with pytest.raises(ConnectionClosed) as caught_early:
        await within(early)
    assert caught_early.value.reason == caught.value.reason
    await within(raw.lost.wait())
    assert bytes(raw.received) == b"01r0000004echo00000019sent before the handshakef00000001"
    assert peer.pending_count == 0


async def test_a_protocol_error_from_the_other_side_closes_and_fails_pending_calls():
    peer, raw = await peer_with_raw_end()
    raw.write(b"01")
    await within(peer.handshake)
    pending = asyncio.ensure_future(peer.request_bytes("echo", b"x"))
    await raw.wait_for(b"echo")
    raw.write(b"f00000000")
    with pytest.raises(ConnectionClosed, match="f00000000"):
        await within(pending)
    await within(raw.lost.wait())
    assert peer.pending_count == 0


async def test_answers_to_unknown_request_ids_are_ignored_but_traced():
    peer, raw = await peer_with_raw_end()
    raw.write(b"01")
    await within(peer.handshake)
    raw.write(b"R????00000002hiE!!!!00000000Szzzz00000000")
    raw.write(encode(RetryResult(b"zzzz", 1, b"")))
    await wait_until(lambda: len(frames(peer, IN)) == 5)
    assert all(e.exchange is None for e in frames(peer, IN)[1:])
    # The peer is still open and matches a real answer to its request.
    pending = asyncio.ensure_future(peer.request_bytes("echo", b"x"))
    await raw.wait_for(b"r0000004echo00000001x")
    raw.write(b"R000000000002ok")
    assert await within(pending) == b"ok"
    assert peer.is_open
    await closed_cleanly(peer)


# -- heartbeats ---------------------------------------------------------------------------


async def test_heartbeats_are_sent_on_an_interval_and_never_answered():
    a, b = await connected(options_a={"heartbeat_interval": 0.05})
    seen = []
    b.on_heartbeat(seen.append)
    await wait_until(lambda: len(seen) >= 2)
    beat = seen[0]
    assert isinstance(beat, Heartbeat) and 0 <= beat.load <= 0xFFFF
    assert abs(beat.time - time.time()) < 5
    assert b.last_heartbeat is seen[-1] and b.last_heartbeat_at is not None
    assert frames(b, OUT) == frames(b, OUT)[:1]  # only b's version: heartbeats get no reply
    await within(b.send_heartbeat(0x7FFF))
    await wait_until(lambda: a.last_heartbeat is not None)
    assert a.last_heartbeat.load == 0x7FFF
    await closed_cleanly(a, b)


async def test_heartbeat_load_is_the_share_of_the_request_limit_in_use():
    a, b = await connected(options_b={"max_requests": 4})
    assert b.load == 0
    slow = [asyncio.ensure_future(a.request("sleep", {"ms": 200})) for _ in range(2)]
    await wait_until(lambda: b.pending_count == 2)
    assert b.load == 0xFFFF // 2
    await within(asyncio.gather(*slow))
    assert b.load == 0
    await closed_cleanly(a, b)


# -- timeouts of our own requests ------------------------------------------------------------


async def test_a_request_timeout_forgets_the_request_and_ignores_the_late_answer():
    a, b = await demo_pair()
    with pytest.raises(asyncio.TimeoutError):
        await a.request("sleep", {"ms": 200}, timeout=0.05)
    assert a.pending_count == 0
    await wait_until(lambda: len(frames(a, IN, SingleResult)) == 1)  # the late answer, traced
    assert await within(a.request_bytes("echo", b"next")) == b"next"
    await closed_cleanly(a, b)


async def test_cancelling_a_request_forgets_it():
    a, b = await demo_pair()
    task = asyncio.ensure_future(a.request("sleep", {"ms": 200}))
    await wait_until(lambda: a.pending_count == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within(task)
    assert a.pending_count == 0
    await closed_cleanly(a, b)


# -- closing --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["requester closes", "responder closes", "transport abort"])
async def test_closing_mid_request_fails_every_pending_call(how):
    a, b = await demo_pair()
    pending = [asyncio.ensure_future(a.request("sleep", {"ms": 5000})) for _ in range(3)]
    await wait_until(lambda: b.pending_count == 3 and a.pending_count == 3)
    if how == "requester closes":
        await within(a.close())
    elif how == "responder closes":
        await within(b.close())
    else:
        a.transport.abort()
    outcomes = await within(asyncio.gather(*pending, return_exceptions=True))
    assert all(isinstance(outcome, ConnectionClosed) for outcome in outcomes), outcomes
    await within(asyncio.gather(a.wait_closed(), b.wait_closed()))
    assert a.pending_count == b.pending_count == 0
    assert not a.is_open and not b.is_open
    with pytest.raises(ConnectionClosed):
        await a.request_bytes("echo")
    with pytest.raises(ConnectionClosed):
        a.stream_request("upper-stream")
    with pytest.raises(ConnectionClosed):
        await b.notify("hello")


async def test_closing_during_a_nested_callback_fails_both_levels():
    handlers_a = gl.Handlers()
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    @handlers_a.handle("ping")
    async def ping(payload):
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return payload

    a, b = await connected(handlers_a=handlers_a)
    outer = asyncio.ensure_future(a.request_bytes("callback", b"zz"))
    await within(entered.wait())
    assert a.pending_count == 2 and b.pending_count == 2  # each: one asked, one being served
    await within(b.close())
    with pytest.raises(ConnectionClosed):
        await within(outer)
    await within(a.wait_closed())
    await within(cancelled.wait())  # a's handler for b's nested request was cancelled
    assert a.pending_count == b.pending_count == 0
    assert a.trace.exchanges and all(x.outcome == "closed" for x in a.trace.exchanges.values())


async def test_closing_during_the_handshake_fails_the_handshake_and_early_requests():
    transport_a, transport_b = pipe_transports()
    silent = RawEnd(transport_b)  # never writes its version
    a = Peer(demo.handlers(), name="a").attach(transport_a)
    early = asyncio.ensure_future(a.request_bytes("echo", b"x"))
    await wait_until(lambda: b"echo" in silent.received)
    assert a.state is PeerState.HANDSHAKE
    await within(a.close())
    for waiting in (a.handshake, early):
        with pytest.raises(ConnectionClosed, match="closed by this side"):
            await within(waiting)
    await within(silent.lost.wait())
    assert a.pending_count == 0


async def test_the_other_side_dropping_during_the_handshake_fails_it():
    transport_a, transport_b = pipe_transports()
    a = Peer(demo.handlers(), name="a").attach(transport_a)
    RawEnd(transport_b)
    transport_b.abort()
    with pytest.raises(ConnectionClosed, match="closed by the other side"):
        await within(a.handshake)
    assert a.state is PeerState.CLOSED and a.pending_count == 0


async def test_close_is_idempotent_and_async_with_closes():
    async with (await demo_pair())[0] as a:
        assert a.is_open
    assert not a.is_open
    await within(a.close())
    assert a.close_reason == "closed by this side"
    await within(a.wait_closed())


async def test_a_peer_that_is_not_attached_says_so():
    peer = Peer(demo.handlers())
    with pytest.raises(gl.GotalkError, match="not attached"):
        await peer.request_bytes("echo")
    assert "not attached" in repr(peer)


async def test_pipe_names_the_two_peers():
    a, b = await within(gl.pipe(name_a="left", name_b="right"))
    assert (a.name, b.name) == ("left", "right")
    await closed_cleanly(a, b)


async def test_a_request_that_cannot_be_written_is_a_local_error_and_leaves_nothing_pending():
    a, b = await demo_pair()
    with pytest.raises(gl.EncodeError):
        await a.request_bytes("x" * 5000)  # names are at most 4095 bytes
    with pytest.raises(gl.EncodeError):
        async with a.stream_request("y" * 5000) as stream:
            await stream.send(b"part")
    with pytest.raises(gl.EncodeError):
        await a.notify("z" * 5000)
    assert a.pending_count == 0
    assert await within(a.request_bytes("echo", b"fine")) == b"fine"
    await closed_cleanly(a, b)


async def test_a_request_cancelled_while_waiting_to_write_leaves_nothing_pending():
    a, b = await demo_pair()
    b.transport.pause_reading()
    big = asyncio.ensure_future(a.request_bytes("echo", b"x" * (1024 * 1024)))
    await wait_until(lambda: a.transport.write_backlogged)
    blocked = asyncio.ensure_future(a.request_bytes("echo", b"y"))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # waiting in drain() for b to read
    blocked.cancel()
    big.cancel()
    await asyncio.gather(blocked, big, return_exceptions=True)
    assert a.pending_count == 0
    b.transport.resume_reading()
    await closed_cleanly(a, b)


# -- a request's timeout -------------------------------------------------------------


async def test_a_request_gives_up_after_the_peers_request_timeout_and_is_forgotten():
    never = asyncio.Event()

    async def silent(payload: bytes) -> bytes:
        await never.wait()
        return payload

    handlers = gl.Handlers()
    handlers.handle("silent", silent)
    a, b = await gl.pipe(handlers_b=handlers)
    a.request_timeout = 0.1
    try:
        with pytest.raises(gl.RequestTimeout, match=r"silent: no answer within 0\.1 s") as caught:
            await a.request_bytes("silent", b"x")
        assert isinstance(caught.value, TimeoutError) and caught.value.seconds == 0.1
        assert a.connection.requests == {}
        # A call's own timeout wins over the peer's, and None waits as long as it takes.
        with pytest.raises(gl.RequestTimeout, match="within 0.05 s"):
            await a.request("silent", 1, timeout=0.05)
        waiting = asyncio.ensure_future(a.request_bytes("silent", b"y", timeout=None))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        waiting.cancel()
    finally:
        never.set()
        await a.close()
        await b.close()


async def test_the_default_request_timeout_is_the_clis_30_seconds_and_is_checked():
    assert gl.Peer().request_timeout == 30.0 == gl.peer.DEFAULT_REQUEST_TIMEOUT
    assert gl.Peer(request_timeout=None).request_timeout is None
    with pytest.raises(ValueError, match="request_timeout"):
        gl.Peer(request_timeout=0)


async def test_a_short_timeout_is_kept_while_a_longer_one_waits():
    never = asyncio.Event()

    async def silent(payload: bytes) -> bytes:
        await never.wait()
        return payload

    handlers = gl.Handlers()
    handlers.handle("silent", silent)
    a, b = await gl.pipe(handlers_b=handlers)
    try:
        long_wait = asyncio.ensure_future(a.request_bytes("silent", b"long", timeout=20))
        await asyncio.sleep(0.01)
        started = asyncio.get_running_loop().time()
        with pytest.raises(gl.RequestTimeout):
            await a.request_bytes("silent", b"short", timeout=0.05)
        assert asyncio.get_running_loop().time() - started < 0.9  # not at the next one-second check
        assert not long_wait.done()
        long_wait.cancel()
    finally:
        never.set()
        await a.close()
        await b.close()


async def test_the_deadline_check_ends_by_itself_once_no_request_waits():
    a, b = await gl.pipe(handlers_b=gl.demo.handlers())
    a.request_timeout = 0.2
    try:
        assert await a.request_bytes("echo", b"x") == b"x"
        assert "deadlines" in a._timers
        await asyncio.sleep(0.3)
        assert "deadlines" not in a._timers and a.connection.requests == {}
    finally:
        await a.close()
        await b.close()

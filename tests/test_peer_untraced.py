"""The peer with no trace (as ``gotalk-lab serve`` runs): plain handlers answered as
requests are read, their answers joined into one write per chunk of input.

The reference is the same peer with its trace on, which takes the general path
message by message: for the same input bytes both must write the same bytes.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gotalk_lab import demo
from gotalk_lab.handlers import Handlers
from gotalk_lab.peer import Peer
from gotalk_lab.transports.base import DIRECT_WRITE_SIZE, HIGH_WATER
from gotalk_lab.transports.pipe import pipe_transports
from gotalk_lab.wire import (
    ErrorResult,
    Notification,
    RetryResult,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    encode,
)

from test_peer import RawEnd, within


def handlers() -> Handlers:
    registry = demo.handlers()
    registry.handle("text", lambda payload: payload.decode("latin-1").upper())  # str: encoded as UTF-8
    registry.handle("nothing", lambda payload: None)
    registry.handle("number", lambda payload: 42)  # neither bytes, str nor None: an ErrorResult
    registry.handle("big", lambda payload: payload * (DIRECT_WRITE_SIZE // max(1, len(payload)) + 1))
    return registry


async def answers_to(chunks: list[bytes], *, trace: bool, expect: int, **options) -> bytes:
    """What a peer writes after its version when the other side writes ``chunks``,
    each delivered whole; waits for ``expect`` bytes, then until 30 ms pass with nothing new."""
    transport_peer, transport_raw = pipe_transports()
    peer = Peer(handlers(), name="peer", trace=trace, **options)
    raw = RawEnd(transport_raw)
    peer.attach(transport_peer)
    raw.write(b"01")
    for chunk in chunks:
        raw.write(chunk)
        await asyncio.sleep(0)  # one delivery per chunk: the peer sees the chunks as written
    await within(_until(lambda: len(raw.received) >= 2 + expect))
    await within(_quiet(raw, 0.030))
    await within(peer.close())
    assert raw.received[:2] == b"01"
    return bytes(raw.received[2:])


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.001)


async def _quiet(raw: RawEnd, seconds: float) -> None:
    seen, since = len(raw.received), asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - since < seconds:
        await asyncio.sleep(0.002)
        if len(raw.received) != seen:
            seen, since = len(raw.received), asyncio.get_running_loop().time()


def request(number: int, operation: str, payload: bytes = b"") -> bytes:
    return encode(SingleRequest(b"%04d" % number, operation, payload))


async def test_plain_answers_come_in_request_order_each_correctly_framed():
    chunk = b"".join(
        [
            request(1, "echo", b"hi"),
            request(2, "text", b"abc"),
            request(3, "nothing", b"x"),
            request(4, "fail"),
            request(5, "number"),
            request(6, "nope"),
            request(7, "ping", b"z"),
        ]
    )
    expected = b"".join(
        [
            encode(SingleResult(b"0001", b"hi")),
            encode(SingleResult(b"0002", b"ABC")),
            encode(SingleResult(b"0003", b"")),
            encode(ErrorResult(b"0004", b"boom")),
            encode(ErrorResult(b"0005", b"a handler must return bytes, str or None, not int (use json=True for values)")),
            encode(ErrorResult(b"0006", b'unknown operation "nope"')),
            encode(SingleResult(b"0007", b"ping:z")),
        ]
    )
    assert await answers_to([chunk], trace=False, expect=len(expected)) == expected


async def test_a_large_answer_is_written_between_the_small_ones_around_it():
    big = b"0123456789abcdef"
    chunk = request(1, "echo", b"before") + request(2, "big", big) + request(3, "echo", b"after")
    big_answer = big * (DIRECT_WRITE_SIZE // len(big) + 1)
    expected = (
        encode(SingleResult(b"0001", b"before"))
        + encode(SingleResult(b"0002", big_answer))
        + encode(SingleResult(b"0003", b"after"))
    )
    assert await answers_to([chunk], trace=False, expect=len(expected)) == expected


async def test_answers_to_a_chunk_past_the_high_water_mark_wait_for_room_and_all_arrive():
    # Past the mark the transport is backlogged: the rest are answered by tasks
    # that wait for room, and with a request limit the excess is told to retry.
    payload = b"p" * 1000
    count = 2 * HIGH_WATER // len(payload)
    chunk = b"".join(request(i, "echo", payload) for i in range(count))
    expected = b"".join(encode(SingleResult(b"%04d" % i, payload)) for i in range(count))
    assert await answers_to([chunk], trace=False, expect=len(expected), max_requests=None) == expected
    limited = await answers_to([chunk], trace=False, expect=0, max_requests=16)
    retried = limited.count(b"request rate limit")
    assert 0 < retried < count
    assert len(limited) == (count - retried) * len(expected) // count + retried * (21 + 18)


async def test_a_request_over_the_limit_behind_an_async_one_is_told_to_retry():
    chunk = request(1, "sleep", b'{"ms":30}') + request(2, "echo", b"x") + request(3, "echo", b"y")
    got = await answers_to([chunk], trace=False, expect=2 * (21 + 18) + 13 + 12, max_requests=1, retry_wait=(7, 7))
    assert got.startswith(encode(RetryResult(b"0002", 7, b"request rate limit")))
    assert encode(RetryResult(b"0003", 7, b"request rate limit")) in got
    assert got.endswith(encode(SingleResult(b"0001", b'{"slept":30}')))


# Messages a requester might send, answered inline or not; the chunking and order vary.
MESSAGES = st.one_of(
    st.builds(lambda p: ("echo", p), st.binary(max_size=40)),
    st.builds(lambda p: ("text", p), st.binary(max_size=10)),
    st.sampled_from([("nothing", b""), ("fail", b""), ("number", b""), ("nope", b"x"), ("greet", b'{"name":"Ada"}')]),
    st.sampled_from([("greet", b"not json"), ("upper-stream", b"abc"), ("ping", b"q")]),
    st.just(("hello", b"note")),  # a notification: the peer answers with hello-back
    st.just(("stream", b"part")),  # a stream request, one part, end
)


def frames_of(messages: list[tuple[str, bytes]]) -> list[bytes]:
    """The bytes of ``messages``, request IDs 0000, 0001..."""
    out = []
    for number, (operation, payload) in enumerate(messages):
        request_id = b"%04d" % number
        if operation == "hello":
            out.append(encode(Notification("hello", payload)))
        elif operation == "stream":
            out.append(encode(StreamRequest(request_id, "upper-stream", payload)))
            out.append(encode(StreamRequestPart(request_id, b"")))
        else:
            out.append(encode(SingleRequest(request_id, operation, payload)))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(MESSAGES, min_size=1, max_size=24), st.data())
def test_untraced_and_traced_peers_write_the_same_bytes(messages, data):
    stream = b"".join(frames_of(messages))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)]) if a < b]

    async def both() -> tuple[bytes, bytes]:
        traced = await answers_to(chunks, trace=True, expect=0)
        untraced = await answers_to(chunks, trace=False, expect=len(traced))
        return traced, untraced

    traced, untraced = asyncio.run(both())
    assert traced  # every message in MESSAGES is answered
    assert untraced == traced

"""The trace: every frame with its direction and exact bytes, exchanges, the cap, listeners, JSON lines.

Mostly recorded from real peers on a pipe; a few tests feed ``Trace.record`` by hand.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.peer import Peer
from gotalk_lab.trace import FRAME_COST, IN, OUT, Trace, event_to_json, frame_from_bytes
from gotalk_lab.transports.pipe import pipe_transports
from gotalk_lab.wire import (
    ErrorResult,
    Notification,
    ProtocolVersion,
    RetryResult,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
    encode,
    encode_header,
)

BOUND = 5.0


async def within(awaitable, seconds: float = BOUND):
    return await asyncio.wait_for(awaitable, seconds)


async def wait_until(predicate, seconds: float = BOUND) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds} s")
        await asyncio.sleep(0.002)


class Recording:
    """Wraps a transport's ``write`` to keep every byte it was given."""

    def __init__(self, transport) -> None:
        self.written = bytearray()
        original = transport.write

        def write(header: bytes, payload: bytes = b"") -> None:
            self.written += header + payload
            original(header, payload)

        transport.write = write


async def recorded_pair(options_a=None, options_b=None):
    """Two demo peers on a pipe, with what each transport was asked to write."""
    transport_a, transport_b = pipe_transports()
    wrote_a, wrote_b = Recording(transport_a), Recording(transport_b)
    a = Peer(demo.handlers(), name="a", **(options_a or {})).attach(transport_a)
    b = Peer(demo.handlers(), name="b", **(options_b or {})).attach(transport_b)
    await within(asyncio.gather(a.handshake, b.handshake))
    return a, b, wrote_a, wrote_b


def raw_of(trace: Trace, direction: str) -> bytes:
    return b"".join(event.raw for event in trace if event.direction == direction)


async def busy_conversation(a: Peer, b: Peer) -> None:
    await within(a.request_bytes("echo", b"\x00\xff"))
    await within(a.request("greet", {"name": "Ada"}))
    with pytest.raises(gl.RequestError):
        await within(a.request_bytes("fail"))
    await within(asyncio.gather(a.request("sleep", {"ms": 60}), a.request("sleep", {"ms": 20})))
    await within(b.request_bytes("callback", b"zz"))
    async with a.stream_request("upper-stream") as stream:
        await within(stream.send(b"abc"))
        await within(stream.send(b"def"))
        await within(stream.end())
        await within(stream.collect())
    await within(a.notify("hello", "hi"))
    await within(a.send_heartbeat(7))
    await wait_until(lambda: any(type(e.message) is Notification for e in a.trace if e.direction == IN))


# -- frames -----------------------------------------------------------------------------


async def test_every_frame_is_recorded_with_its_direction_and_exact_bytes():
    a, b, wrote_a, wrote_b = await recorded_pair()
    await busy_conversation(a, b)
    await wait_until(lambda: raw_of(b.trace, IN) == bytes(wrote_a.written))
    # What each side wrote is, byte for byte, its OUT frames and the other side's IN frames.
    assert raw_of(a.trace, OUT) == bytes(wrote_a.written) == raw_of(b.trace, IN)
    assert raw_of(b.trace, OUT) == bytes(wrote_b.written) == raw_of(a.trace, IN)
    assert len(a.trace) >= 25
    for event in a.trace:
        assert event.direction in (IN, OUT)
        assert event.raw == encode(event.message) or type(event.message) is ProtocolVersion
        assert event.header == encode_header(event.message)
        assert event.length == len(event.raw)
    # Indices count up and times never go backwards.
    indices = [event.index for event in a.trace]
    assert indices == list(range(len(indices)))
    times = [event.time for event in a.trace]
    assert times == sorted(times)
    await within(a.close())


async def test_raw_sends_are_recorded_as_far_as_they_decode():
    a, b, wrote_a, _ = await recorded_pair()
    before = len(a.trace)
    await within(a.send_raw(encode(SingleRequest(b"raw1", "echo", b"x")) + b"r000"))
    recorded = [event for event in list(a.trace)[before:] if event.direction == OUT]
    assert [event.raw for event in recorded] == [b"r" b"raw1" b"004echo00000001x"]
    assert bytes(wrote_a.written).endswith(b"r000")  # written whole, even the part that is no frame yet
    await within(a.close())


# -- exchanges ----------------------------------------------------------------------------


async def test_a_single_request_and_its_result_form_one_exchange():
    a, b, _, _ = await recorded_pair()
    await within(a.request_bytes("echo", b"hi"))
    exchange = next(x for x in a.trace.exchanges.values() if x.operation == "echo")
    assert (exchange.requester, exchange.kind, exchange.outcome, exchange.retries) == (OUT, "single", "result", 0)
    kinds = [type(a.trace[i - a.trace[0].index].message) for i in exchange.events]
    assert kinds == [SingleRequest, SingleResult]
    assert exchange.latency is not None and exchange.latency >= 0
    # The other side sees the same exchange from the responder's seat.
    mirror = next(x for x in b.trace.exchanges.values() if x.operation == "echo")
    assert (mirror.requester, mirror.request_id, mirror.outcome) == (IN, exchange.request_id, "result")
    await within(a.close())


async def test_a_stream_exchange_collects_its_parts_and_results_in_order():
    a, b, _, _ = await recorded_pair()
    async with a.stream_request("upper-stream") as stream:
        await within(stream.send(b"abc"))
        assert await within(stream.results.get()) == b"ABC"
        exchange = a.trace.exchange_of([e for e in a.trace if type(e.message) is StreamRequest][0])
        assert exchange.outcome == "stream" and exchange.ended is None
        await within(stream.send(b"def"))
        await within(stream.end())
        await within(stream.collect())
    events = {e.index: e for e in a.trace}
    kinds = [(events[i].direction, type(events[i].message)) for i in exchange.events]
    assert kinds[0] == (OUT, StreamRequest)
    assert sorted(kinds[1:]) == sorted(
        [(OUT, StreamRequestPart), (OUT, StreamRequestPart), (IN, StreamResult), (IN, StreamResult), (IN, StreamResult)]
    )
    assert exchange.events == sorted(exchange.events)
    assert events[exchange.events[-1]].raw == b"S000000000000"
    assert (exchange.kind, exchange.outcome) == ("stream", "result")
    await within(a.close())


async def test_retries_stay_in_their_exchange():
    a, b, _, _ = await recorded_pair(options_b={"max_requests": 1, "retry_wait": (30, 30)})
    await within(asyncio.gather(a.request("sleep", {"ms": 50}), a.request("sleep", {"ms": 1})))
    retried = [x for x in a.trace.exchanges.values() if x.retries]
    assert len(retried) == 1 and len(a.trace.exchanges) == 2
    exchange = retried[0]
    events = {e.index: e for e in a.trace}
    kinds = [type(events[i].message) for i in exchange.events]
    # request -> (retry -> request again) ... -> result
    assert kinds[0] is SingleRequest and kinds[-1] is SingleResult
    assert kinds[1:-1] == [RetryResult, SingleRequest] * exchange.retries
    assert exchange.outcome == "result"
    await within(a.close())


async def test_errors_end_their_exchange_as_errors():
    a, b, _, _ = await recorded_pair()
    with pytest.raises(gl.RequestError):
        await within(a.request_bytes("nope"))
    exchange = next(iter(x for x in a.trace.exchanges.values() if x.operation == "nope"))
    assert exchange.outcome == "error"
    assert type(a.trace[-1].message) is ErrorResult and a.trace[-1].exchange == exchange.id
    await within(a.close())


async def test_multiplexed_exchanges_overlap_in_time():
    a, b, _, _ = await recorded_pair()
    await within(asyncio.gather(*(a.request("sleep", {"ms": ms}) for ms in (80, 10, 40))))
    slow, fast, middle = sorted(
        (x for x in a.trace.exchanges.values() if x.operation == "sleep"), key=lambda x: x.id
    )
    assert slow.started < fast.started < middle.started < fast.ended < middle.ended < slow.ended
    await within(a.close())


async def test_exchanges_left_open_by_a_close_are_marked_closed():
    a, b, _, _ = await recorded_pair()
    pending = asyncio.ensure_future(a.request("sleep", {"ms": 5000}))
    await wait_until(lambda: b.pending_count == 1)
    await within(a.close())
    with pytest.raises(gl.ConnectionClosed):
        await within(pending)
    exchange = next(x for x in a.trace.exchanges.values() if x.operation == "sleep")
    assert exchange.outcome == "closed" and exchange.ended is not None
    await within(b.wait_closed())
    assert next(iter(b.trace.exchanges.values())).outcome == "closed"


# -- cap, listeners, switching off -------------------------------------------------------------


def test_the_cap_drops_the_oldest_events_and_counts_them():
    trace = Trace(cap=5)
    for n in range(8):
        message = SingleRequest(b"%04d" % n, "echo", b"")
        trace.record(OUT, encode_header(message), message)
    assert len(trace) == 5 and trace.dropped == 3
    assert [event.index for event in trace] == [3, 4, 5, 6, 7]
    assert trace[0].message.request_id == b"0003"
    assert "3 dropped" in repr(trace)


def test_a_cap_of_zero_keeps_nothing_and_counts_everything():
    trace = Trace(cap=0)
    message = SingleRequest(b"0001", "echo", b"")
    assert trace.record(OUT, encode_header(message), message) is None
    assert len(trace) == 0 and trace.exchanges == {} and trace.dropped == 1


def test_dropping_a_finished_exchanges_events_forgets_the_exchange():
    trace = Trace(cap=2)
    request = SingleRequest(b"0001", "echo", b"")
    result = SingleResult(b"0001", b"")
    trace.record(OUT, encode_header(request), request)
    trace.record(IN, encode_header(result), result)
    assert len(trace.exchanges) == 1
    for n in range(2):
        note = Notification("n", b"%d" % n)
        trace.record(OUT, encode_header(note), note)
    assert trace.exchanges == {} and trace.dropped == 2


def conversation_frames(count: int) -> list[tuple[str, bytes, object]]:
    """Requests out, answers in, a notification now and then: (direction, header, message)."""
    frames = []
    for n in range(count):
        request_id = b"%04d" % (n % 7)
        answer = ErrorResult(request_id, b"no") if n % 5 == 0 else SingleResult(request_id, b"%d" % n)
        for direction, message in ((OUT, SingleRequest(request_id, "echo", b"%d" % n)), (IN, answer)):
            frames.append((direction, encode_header(message), message))
        if n % 3 == 0:
            note = Notification("tick", b"")
            frames.append((IN, encode_header(note), note))
    return frames


def summary(trace: Trace):
    events = [(e.index, e.direction, e.header, e.message, e.exchange) for e in trace]
    exchanges = [(x.id, x.request_id, x.outcome, x.events) for x in trace.exchanges.values()]
    return events, exchanges, trace.dropped


@pytest.mark.parametrize("cap", [None, 1000, 7])
def test_frames_a_peer_adds_are_filed_as_recorded_ones_are_when_the_trace_is_read(cap):
    recorded, added = Trace(cap=cap), Trace(cap=cap)
    frames = conversation_frames(40)
    for direction, header, message in frames:
        recorded.record(direction, header, message)
        added.add(direction, header, message)
    if cap is None or cap >= len(frames):
        # Nothing fell off: the two are the same, frame for frame and exchange for exchange.
        assert summary(added) == summary(recorded)
        assert len(added) == len(frames)
    else:
        # Frames pushed out of the queue were never filed: only counted, indices go on.
        assert len(added) == cap and added.dropped == len(frames) - cap
        assert [e.index for e in added] == list(range(len(frames) - cap, len(frames)))
        assert [e.header for e in added] == [e.header for e in recorded]
        # An answer whose request fell off belongs to no exchange; one with its request kept does.
        for event in added:
            if type(event.message) in (SingleResult, ErrorResult):
                request_kept = any(
                    type(e.message) is SingleRequest and e.message.request_id == event.message.request_id and e.index < event.index
                    for e in added
                )
                assert (event.exchange is not None) == request_kept


def test_frames_added_before_a_read_and_after_it_keep_their_order():
    trace = Trace(cap=5)
    frames = conversation_frames(6)
    for direction, header, message in frames[:3]:
        trace.add(direction, header, message)
    assert [e.index for e in trace] == [0, 1, 2]
    for direction, header, message in frames[3:]:
        trace.add(direction, header, message)
    assert [e.index for e in trace] == list(range(len(frames) - 5, len(frames)))
    assert trace.dropped == len(frames) - 5
    assert [e.header for e in trace] == [header for _, header, _ in frames[-5:]]


def test_a_listener_hears_added_frames_at_once_and_only_the_new_ones():
    trace = Trace()
    frames = conversation_frames(4)
    for direction, header, message in frames[:2]:
        trace.add(direction, header, message)
    heard = []
    trace.subscribe(heard.append)
    for direction, header, message in frames[2:]:
        trace.add(direction, header, message)
        assert heard[-1].message is message  # filed as it came, not at the next read
    assert [e.index for e in heard] == list(range(2, len(frames)))
    assert list(trace)[:2] == [e for e in trace if e.index < 2] and len(trace) == len(frames)


def test_a_reader_on_another_thread_files_while_frames_are_added():
    """As a script reads the trace of a peer running on the background loop thread."""
    trace = Trace(cap=500)
    frames = conversation_frames(4000)
    done = threading.Event()

    def peer_side() -> None:
        for direction, header, message in frames:
            trace.add(direction, header, message)
        done.set()

    adder = threading.Thread(target=peer_side)
    adder.start()
    reads = 0
    while not done.is_set() and reads < 100_000:
        indices = [e.index for e in list(trace.events)]
        if indices:  # whatever is filed so far: consecutive, nothing twice, nothing lost within the cap
            assert indices == list(range(indices[0], indices[0] + len(indices)))
        reads += 1
    adder.join(BOUND)
    assert len(trace) == 500 and trace.dropped == len(frames) - 500
    assert [e.index for e in trace] == list(range(len(frames) - 500, len(frames)))
    assert [e.header for e in trace] == [header for _, header, _ in frames[-500:]]


def test_clearing_forgets_what_was_queued_without_counting_it_dropped():
    trace = Trace(cap=4)
    frames = conversation_frames(5)
    for direction, header, message in frames[:6]:
        trace.add(direction, header, message)
    trace.clear()
    for direction, header, message in frames[6:9]:
        trace.add(direction, header, message)
    assert trace.dropped == 0 and [e.index for e in trace] == [6, 7, 8]


def test_adding_to_a_disabled_or_zero_cap_trace_keeps_nothing():
    message = SingleRequest(b"0001", "echo", b"")
    off = Trace(enabled=False)
    off.add(OUT, encode_header(message), message)
    assert len(off) == 0 and off.dropped == 0
    nothing = Trace(cap=0)
    for _ in range(3):
        nothing.add(OUT, encode_header(message), message)
    assert len(nothing) == 0 and nothing.exchanges == {} and nothing.dropped == 3


async def test_listeners_hear_every_new_event_and_a_broken_listener_breaks_nothing():
    a, b, _, _ = await recorded_pair()
    heard = []
    unsubscribe = a.trace.subscribe(heard.append)

    def broken(event):
        raise RuntimeError("listener bug")

    a.trace.subscribe(broken)
    await within(a.request_bytes("echo", b"1"))
    assert [type(e.message) for e in heard] == [SingleRequest, SingleResult]
    assert heard == list(a.trace)[-2:]
    unsubscribe()
    unsubscribe()  # twice is harmless
    await within(a.request_bytes("echo", b"2"))
    assert len(heard) == 2
    await within(a.close())


def test_a_watcher_is_woken_once_per_batch_and_the_frames_wait_for_it_unfiled():
    trace = Trace()
    wakes = []
    unwatch = trace.watch(lambda: wakes.append(trace.next_index))
    for number in range(3):  # a peer's hot path: queued, and one wake for the lot
        request = SingleRequest(b"%04d" % number, "echo", b"x")
        trace.add(OUT, encode_header(request), request)
    assert wakes == [1] and trace.next_index == 3
    assert [event.index for event in trace.events_after(0)] == [1, 2]
    assert trace.events_after(2) == []
    trace.rearm(wakes.append)  # only a watcher can be rearmed: this is none
    result = SingleResult(b"0000", b"x")
    trace.add(IN, encode_header(result), result)
    assert wakes == [1]  # not rearmed: no wake
    assert [event.index for event in trace.events_after(-1)] == [0, 1, 2, 3]  # filed when read
    unwatch()
    unwatch()  # twice is harmless
    trace.add(IN, encode_header(result), result)
    assert wakes == [1]


def test_a_rearmed_watcher_hears_of_the_next_frame_and_one_answering_true_of_each():
    trace = Trace()
    calls = []

    def once() -> None:
        calls.append("once")

    def every() -> bool:
        calls.append("every")
        return True

    trace.watch(once)
    trace.watch(every)
    message = SingleRequest(b"0001", "echo", b"x")
    trace.add(OUT, encode_header(message), message)
    trace.add(OUT, encode_header(message), message)
    assert calls == ["once", "every", "every"]
    trace.rearm(once)
    trace.record(OUT, encode_header(message), message)  # recorded, not only noted: the same
    assert calls[:3] == ["once", "every", "every"] and sorted(calls[3:]) == ["every", "once"]


def test_a_broken_watcher_breaks_nothing():
    trace = Trace()

    def broken() -> None:
        raise RuntimeError("watcher bug")

    trace.watch(broken)
    message = SingleRequest(b"0001", "echo", b"x")
    trace.add(OUT, encode_header(message), message)
    assert [event.index for event in trace.events_after(-1)] == [0]


async def test_a_disabled_trace_records_nothing_and_no_trace_at_all_works_too():
    off = Trace(enabled=False)
    heard = []
    off.subscribe(heard.append)
    a, b = await within(gl.pipe(demo.handlers(), demo.handlers(), trace=off))
    assert a.trace is off and b.trace is off
    assert await within(a.request_bytes("echo", b"x")) == b"x"
    assert len(off) == 0 and heard == [] and off.exchanges == {}
    await within(a.close())

    a, b = await within(gl.pipe(demo.handlers(), demo.handlers(), trace=False))
    assert a.trace is None and b.trace is None
    assert await within(a.request_bytes("callback", b"x")) == b"pong:ping:x"
    await within(a.send_raw(encode(SingleRequest(b"rawr", "echo", b""))))
    await within(a.close())


# -- saving and loading -------------------------------------------------------------------------


async def test_save_and_load_round_trip_frames_and_exchanges(tmp_path):
    a, b, _, _ = await recorded_pair(options_b={"max_requests": 1, "retry_wait": (20, 20)})
    await busy_conversation(a, b)
    await within(asyncio.gather(a.request("sleep", {"ms": 40}), a.request("sleep", {"ms": 1})))
    await within(a.close())
    path = tmp_path / "trace.jsonl"
    a.trace.save(path)
    loaded = Trace.load(path)

    def frames(trace):
        return [(e.index, round(e.time, 6), e.direction, e.raw) for e in trace]

    def exchanges(trace):
        return [
            (x.id, x.request_id, x.operation, x.requester, x.kind, x.outcome, x.retries, x.events)
            for x in trace.exchanges.values()
        ]

    assert frames(loaded) == frames(a.trace)
    # Exchanges are rebuilt from the frames; only "closed" (a fact about the live
    # connection, not the frames) cannot be known again.
    assert exchanges(loaded) == exchanges(a.trace)
    assert any(x.retries for x in loaded.exchanges.values())
    assert loaded.started_wall == a.trace.started_wall
    lines = path.read_text().splitlines()
    assert len(lines) == len(a.trace) + 1
    assert '"gotalk_lab_trace": 1' in lines[0]


def test_a_trace_with_dropped_events_saves_the_count(tmp_path):
    trace = Trace(cap=3)
    for n in range(5):
        message = Notification("n", b"%d" % n)
        trace.record(OUT, encode_header(message), message)
    trace.save(tmp_path / "t.jsonl")
    loaded = Trace.load(tmp_path / "t.jsonl")
    assert loaded.dropped == 2
    assert [e.message.payload for e in loaded] == [b"2", b"3", b"4"]


def test_frames_from_bytes_and_json():
    assert frame_from_bytes(b"01") == (b"01", ProtocolVersion(1))
    assert frame_from_bytes(b"02")[1] == ProtocolVersion(2)  # kept, so a refused version can be shown
    header, message = frame_from_bytes(b"R000100000002ok")
    assert header == b"R000100000002" and message == SingleResult(b"0001", b"ok")
    with pytest.raises(ValueError, match="one frame"):
        frame_from_bytes(b"R000100000000R000200000000")
    trace = Trace()
    event = trace.record(IN, header, message)
    assert event_to_json(event) == {"i": 0, "t": round(event.time, 6), "dir": "in", "hex": b"R000100000002ok".hex()}


def test_load_picks_one_connection_of_a_tap_file(tmp_path):
    lines = [
        {"conn": 1, "i": 0, "t": 0.0, "dir": "out", "hex": b"r0001004echo00000001a".hex()},
        {"conn": 2, "i": 0, "t": 0.1, "dir": "out", "hex": b"r0001004ping00000001b".hex()},
        {"conn": 1, "i": 1, "t": 0.2, "dir": "in", "hex": b"R000100000001a".hex()},
    ]
    path = tmp_path / "tap.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    first = Trace.load(path)
    assert [event.raw for event in first] == [b"r0001004echo00000001a", b"R000100000001a"]
    assert [x.outcome for x in first.exchanges.values()] == ["result"]
    second = Trace.load(path, connection=2)
    assert [x.operation for x in second.exchanges.values()] == ["ping"]


def test_a_trace_names_its_two_sides_and_keeps_the_names_when_saved(tmp_path):
    assert Trace().sides == ("this side", "other side")
    trace = Trace(sides=("browser", "server"))
    message = Notification("n", b"x")
    trace.record(OUT, encode_header(message), message)
    trace.save(tmp_path / "t.jsonl")
    assert Trace.load(tmp_path / "t.jsonl").sides == ("browser", "server")
    with pytest.raises(ValueError, match="two sides"):
        Trace(sides=("only one",))


def test_a_tap_file_loads_as_client_and_upstream(tmp_path):
    path = tmp_path / "tap.jsonl"
    path.write_text(json.dumps({"conn": 1, "i": 0, "t": 0.0, "dir": "out", "hex": b"01".hex()}) + "\n")
    assert Trace.load(path).sides == ("client", "upstream")


async def test_the_tap_names_its_sides_client_and_upstream():
    from gotalk_lab.tap import Tap

    server = await gl.serve("tcp://127.0.0.1:0", demo.handlers())
    host, port = server.addresses[0].removeprefix("tcp://").rsplit(":", 1)
    async with Tap(host, int(port)) as tap:
        address = await tap.listen("127.0.0.1", 0)
        client = await gl.connect(f"tcp://{address}")
        assert await client.request_bytes("echo", b"hi") == b"hi"
        await client.close()
        for _ in range(200):  # let the tap see both ends go, rather than cancel it mid-forward
            if not tap._tasks:
                break
            await asyncio.sleep(0.01)
        assert tap.connections[0].trace.sides == ("client", "upstream")
    await server.close()


# -- bounded by bytes ------------------------------------------------------------------


def _echo_pair(trace, payload: bytes, request_id: bytes = b"0001") -> None:
    request = gl.SingleRequest(request_id, "echo", payload)
    result = gl.SingleResult(request_id, payload)
    trace.add(OUT, gl.wire.encode_header(request), request)
    trace.add(IN, gl.wire.encode_header(result), result)


@pytest.mark.parametrize("listening", [False, True], ids=["queued", "live"])
def test_a_payload_over_the_limit_is_kept_as_its_start_and_its_real_size(tmp_path, listening):
    trace = Trace(payload_limit=1024)
    if listening:
        trace.subscribe(lambda event: None)
    _echo_pair(trace, b"x" * 65536)
    request, result = trace.events
    assert request.cut == result.cut == 65536
    assert request.message.payload == b"x" * 1024 and request.length == len(request.header) + 65536
    assert request.kept == len(request.header) + 1024 + FRAME_COST
    assert trace.kept_bytes == request.kept + result.kept
    assert trace.exchanges[0].outcome == "result"
    trace.save(tmp_path / "cut.jsonl")
    again = Trace.load(tmp_path / "cut.jsonl")
    assert [(event.cut, event.message) for event in again.events] == [(event.cut, event.message) for event in trace.events]
    small = Trace(payload_limit=1024)
    _echo_pair(small, b"y" * 1024)
    assert [event.cut for event in small.events] == [None, None]


@pytest.mark.parametrize("listening", [False, True], ids=["queued", "live"])
def test_a_trace_keeps_no_more_bytes_than_its_bound_dropping_the_oldest(listening):
    trace = Trace(max_bytes=100 * 1024)
    if listening:
        trace.subscribe(lambda event: None)
    for number in range(200):
        _echo_pair(trace, b"z" * 4096, b"%04d" % number)
    assert trace.kept_bytes <= 100 * 1024
    assert trace.kept_bytes == sum(event.kept for event in trace.events)
    assert len(trace.events) + trace.dropped == 400 and trace.dropped > 350
    assert trace.events[-1].message.request_id == b"0199"


@pytest.mark.parametrize("listening", [False, True], ids=["queued", "live"])
def test_the_byte_bound_counts_what_each_frame_costs_beyond_its_bytes(listening):
    # Small frames: 1 MiB holds about 2,000 of them (FRAME_COST each), not the 30,000
    # that their 35 bytes on the wire would fit.
    trace = Trace(cap=None, max_bytes=1024 * 1024)
    if listening:
        trace.subscribe(lambda event: None)
    for number in range(10_000):
        _echo_pair(trace, b"s", b"%04x" % number)
    kept = len(trace.events)
    assert trace.kept_bytes <= 1024 * 1024 < trace.kept_bytes + trace.events[0].kept
    assert kept * FRAME_COST <= 1024 * 1024 and 1024 * 1024 // (FRAME_COST + 40) <= kept
    assert kept + trace.dropped == 20_000


def test_the_default_bounds_are_64_mib_and_64_kib_per_payload():
    trace = Trace()
    assert (trace.max_bytes, trace.payload_limit) == (64 * 1024 * 1024, 64 * 1024)
    unbounded = Trace(max_bytes=None, payload_limit=None)
    _echo_pair(unbounded, b"w" * 200_000)
    assert unbounded.events[0].cut is None and unbounded.kept_bytes > 400_000


async def test_replay_refuses_a_trace_whose_requests_were_cut():
    from gotalk_lab.replay import replay

    trace = Trace(payload_limit=16)
    trace.add(OUT, b"01", gl.ProtocolVersion(1))
    _echo_pair(trace, b"q" * 100)
    with pytest.raises(ValueError, match=r"keeps only 16 of its 100 payload bytes"):
        await replay(trace, "tcp://127.0.0.1:9")

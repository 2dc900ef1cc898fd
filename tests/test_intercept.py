"""The intercepting tap: rules hold, edit, drop, delay, duplicate and inject frames,
per-direction order is kept, and what changed is marked in the trace."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.errors import EncodeError
from gotalk_lab.intercept import Rule
from gotalk_lab.trace import IN, OUT
from gotalk_lab.wire import Notification, SingleRequest, SingleResult


async def _wait_for(condition, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def rigged():
    """A demo server, and an intercepting tap in front of it."""
    server = await gl.serve("tcp://127.0.0.1:0", demo.handlers())
    upstream = server.addresses[0].removeprefix("tcp://")
    tap = await gl.tap(listen="127.0.0.1:0", upstream=upstream)
    try:
        yield server, tap
    finally:
        await tap.close()
        await server.close()


async def _client(tap, **options):
    return await gl.connect(f"tcp://{tap.address}", **options)


async def test_without_rules_every_frame_passes_unchanged():
    async with rigged() as (server, tap):
        client = await _client(tap)
        assert await client.request_bytes("echo", b"hi") == b"hi"
        await client.close()
        await _wait_for(lambda: tap.connections and all(e.action is None for e in tap.connections[0].trace.events))
        assert [e.action for e in tap.connections[0].trace.events] == [None] * len(tap.connections[0].trace.events)


async def test_a_held_frame_waits_and_forward_sends_it():
    async with rigged() as (server, tap):
        tap.hold(dir="client", type="r", op="echo")
        client = await _client(tap)
        answer = asyncio.ensure_future(client.request_bytes("echo", b"hi"))
        await _wait_for(lambda: tap.held)
        assert not answer.done()
        held = tap.held[0]
        assert held.direction == OUT and held.message.operation == "echo"
        held.forward()
        assert await answer == b"hi"
        assert tap.held == []
        events = tap.connections[0].trace.events
        assert [e.action for e in events if isinstance(e.message, SingleRequest)] == ["forwarded"]
        await client.close()


async def test_edit_by_field_re_encodes_the_sizes_and_marks_the_original():
    async with rigged() as (server, tap):
        tap.hold(dir="client", op="echo")
        client = await _client(tap)
        answer = asyncio.ensure_future(client.request_bytes("echo", b"hi"))
        await _wait_for(lambda: tap.held)
        original = tap.held[0].raw
        tap.held[0].edit(payload=b"a longer payload")
        assert await answer == b"a longer payload"
        (event,) = [e for e in tap.connections[0].trace.events if e.action == "edited"]
        assert event.original == original
        assert event.raw.endswith(b"00000010a longer payload")
        await client.close()


async def test_an_edit_that_cannot_be_encoded_says_why_and_keeps_the_frame_held():
    async with rigged() as (server, tap):
        tap.hold(dir="client", op="echo")
        client = await _client(tap)
        answer = asyncio.ensure_future(client.request_bytes("echo", b"hi"))
        await _wait_for(lambda: tap.held)
        with pytest.raises(EncodeError, match="operation"):
            tap.held[0].edit(operation="x" * 5000)
        with pytest.raises(EncodeError, match="no field colour"):
            tap.held[0].edit(colour="red")
        assert tap.held[0].decided is None
        tap.held[0].forward()
        assert await answer == b"hi"
        await client.close()


async def test_edit_by_raw_bytes_sends_them_as_is_even_malformed():
    async with rigged() as (server, tap):
        tap.hold(dir="client", op="echo")
        client = await _client(tap)
        answer = asyncio.ensure_future(client.request_bytes("echo", b"hi"))
        await _wait_for(lambda: tap.held)
        original = tap.held[0].raw
        bad = original.replace(b"00000002", b"0000zz02")
        tap.held[0].edit_raw(bad)
        with pytest.raises(gl.GotalkError):
            await asyncio.wait_for(answer, 3)
        (event,) = [e for e in tap.connections[0].trace.events if e.action == "edited"]
        assert event.raw == bad and event.sent == bad and event.original == original


async def test_drop_never_sends_the_frame():
    async with rigged() as (server, tap):
        tap.drop(dir="upstream", type="R")
        client = await _client(tap)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.request_bytes("echo", b"hi"), 0.3)
        events = tap.connections[0].trace.events
        assert [e.action for e in events if isinstance(e.message, SingleResult)] == ["dropped"]
        await client.close()


async def test_delay_of_one_result_lets_the_next_overtake_it():
    async with rigged() as (server, tap):
        tap.delay(0.3, dir="upstream", type="R", op="greet")
        client = await _client(tap)
        arrived = []

        async def ask(operation, value):
            await client.request(operation, value)
            arrived.append(operation)

        await asyncio.gather(ask("greet", {"name": "a"}), asyncio.sleep(0.05), ask("echo", "b"))
        assert arrived == ["echo", "greet"]
        results = [e for e in tap.connections[0].trace.events if isinstance(e.message, SingleResult)]
        assert [e.action for e in results] == [None, "delayed"]
        await client.close()


async def test_a_held_frame_blocks_later_frames_of_its_direction_only():
    async with rigged() as (server, tap):
        tap.hold(dir="client", op="greet")
        client = await _client(tap)
        first = asyncio.ensure_future(client.request("greet", {"name": "a"}))
        await _wait_for(lambda: tap.held)
        second = asyncio.ensure_future(client.request("echo", "b"))
        await asyncio.sleep(0.2)
        assert not second.done()  # behind the held frame
        tap.held[0].forward()
        assert await first == {"greeting": "Hello a"} and await second == "b"
        sent = [e.message.operation for e in tap.connections[0].trace.events if isinstance(e.message, SingleRequest)]
        assert sent == ["greet", "echo"]
        await client.close()


async def test_duplicate_sends_the_frame_twice():
    async with rigged() as (server, tap):
        tap.hold(dir="client", type="n")
        client = await _client(tap)
        await client.notify("hello", "x")
        await _wait_for(lambda: tap.held)
        tap.held[0].duplicate()
        await _wait_for(lambda: len([e for e in tap.connections[0].trace.events if e.action == "duplicated"]) == 2)
        await _wait_for(lambda: len([e for e in tap.connections[0].trace.events if e.direction == IN and isinstance(e.message, Notification)]) == 2)
        await client.close()


async def test_a_callable_predicate_picks_frames():
    async with rigged() as (server, tap):
        tap.drop(where=lambda message: getattr(message, "payload", b"") == b"drop me")
        client = await _client(tap)
        assert await client.request_bytes("echo", b"keep") == b"keep"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.request_bytes("echo", b"drop me"), 0.3)
        assert tap.rules[0].matched == 1
        await client.close()


async def test_inject_in_each_direction():
    async with rigged() as (server, tap):
        client = await _client(tap)
        heard = []
        client.handlers.notification("hello-back", lambda payload: heard.append(payload)) if hasattr(client.handlers, "notification") else None
        await client.request_bytes("echo", b"x")
        # As if the client sent it: the server answers hello with hello-back.
        tap.inject("client", Notification("hello", b"injected"))
        await _wait_for(lambda: any(e.direction == IN and isinstance(e.message, Notification) for e in tap.connections[0].trace.events))
        # As if upstream sent it: a result for a request the client never made is the client's problem.
        tap.inject("upstream", SingleResult(b"zzzz", b"surprise"))
        await _wait_for(lambda: any(e.action == "injected" and e.direction == IN for e in tap.connections[0].trace.events))
        assert [e.action for e in tap.connections[0].trace.events if e.action] == ["injected", "injected"]
        await client.close()


@pytest.mark.parametrize("side", ["client", "upstream"])
async def test_garbage_from_either_side_is_reported_and_the_other_side_closed(side):
    async def garbage_server(reader, writer):
        writer.write(b"01" if side == "client" else b"01Xgarbage")
        await writer.drain()
        await reader.read(100)
        writer.close()

    listener = await asyncio.start_server(garbage_server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    tap = await gl.tap(listen="127.0.0.1:0", upstream=f"127.0.0.1:{port}")
    reported = []
    tap.on_violation(lambda number, direction, violation: reported.append(direction))
    host, _, tap_port = tap.address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(tap_port))
    writer.write(b"01Xgarbage" if side == "client" else b"01")
    await writer.drain()
    # The tap closes the connection: the client reads to end of file, cleanly.
    await asyncio.wait_for(reader.read(), 3)
    assert reported == [OUT if side == "client" else IN]
    writer.close()
    await tap.close()
    listener.close()


def test_rules_parse_from_text():
    rule = Rule.parse("dir=client,type=r,op=echo,id=hex:00000001")
    assert (rule.direction, rule.type, rule.operation, rule.request_id) == (OUT, "r", "echo", b"\x00\x00\x00\x01")
    with pytest.raises(ValueError, match="bad rule part"):
        Rule.parse("colour=red")
    with pytest.raises(ValueError, match="client or upstream"):
        Rule.parse("dir=sideways")


async def test_marks_survive_save_and_load(tmp_path):
    async with rigged() as (server, tap):
        tap.rewrite(b"0000zz", dir="client", op="echo")
        client = await _client(tap)
        with pytest.raises(gl.GotalkError):
            await asyncio.wait_for(client.request_bytes("echo", b"hi"), 3)
        trace = tap.connections[0].trace
        trace.save(tmp_path / "t.jsonl")
        loaded = gl.Trace.load(tmp_path / "t.jsonl")
        before = [(e.action, e.raw, e.original) for e in trace.events]
        assert [(e.action, e.raw, e.original) for e in loaded.events] == before

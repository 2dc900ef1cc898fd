"""The demo operations: the table in PROTOCOL.md, including how they refuse bad input."""

from __future__ import annotations

import asyncio

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.handlers import SINGLE, STREAM

BOUND = 5.0


async def within(awaitable, seconds: float = BOUND):
    return await asyncio.wait_for(awaitable, seconds)


def test_the_registry_holds_exactly_the_table():
    handlers = demo.handlers()
    kinds = {name: operation.kind for name, operation in handlers.operations.items()}
    assert kinds == {
        "echo": SINGLE,
        "greet": SINGLE,
        "fail": SINGLE,
        "sleep": SINGLE,
        "ping": SINGLE,
        "callback": SINGLE,
        "upper-stream": STREAM,
    }
    assert set(handlers.notifications) == {"hello"}
    assert handlers.operations["greet"].json and handlers.operations["sleep"].json
    assert handlers.operations["callback"].wants_peer


def test_every_call_gives_a_fresh_registry():
    one, two = demo.handlers(), demo.handlers()
    one.handle("extra", lambda payload: payload)
    assert "extra" not in two


async def test_the_table_row_by_row():
    a, b = await within(gl.pipe(demo.handlers(), demo.handlers()))
    assert await within(a.request_bytes("echo", b"\x00any\xff")) == b"\x00any\xff"
    assert await within(a.request_bytes("greet", b'{"name":"Rasmus"}')) == b'{"greeting":"Hello Rasmus"}'
    with pytest.raises(gl.RequestError, match="boom"):
        await within(a.request_bytes("fail", b"anything"))
    assert await within(a.request_bytes("sleep", b'{"ms":10}')) == b'{"slept":10}'
    assert await within(a.request_bytes("ping", b"B")) == b"ping:B"
    assert await within(a.request_bytes("callback", b"B")) == b"pong:ping:B"
    assert await within(a.request_bytes("upper-stream", b"parts")) == b"PARTS"
    heard = []
    a.on_notification("hello-back", heard.append)
    await within(a.notify_bytes("hello", b"any"))
    while not heard:
        await asyncio.sleep(0.002)
    assert heard == [b"any"]
    await within(a.close())


@pytest.mark.parametrize("payload", [b'{"nombre":"x"}', b"[1]", b'"Ada"', b"null", b""])
async def test_greet_refuses_anything_but_an_object_with_a_name(payload):
    a, b = await within(gl.pipe(demo.handlers(), demo.handlers()))
    with pytest.raises(gl.RequestError, match='greet expects JSON {"name": ...}'):
        await within(a.request_bytes("greet", payload))
    await within(a.close())


async def test_greet_with_text_that_is_not_json_is_an_error_result():
    a, b = await within(gl.pipe(demo.handlers(), demo.handlers()))
    with pytest.raises(gl.RequestError):
        await within(a.request_bytes("greet", b"{not json"))
    assert b.is_open
    await within(a.close())


@pytest.mark.parametrize(
    "payload", [b'{"ms":-1}', b'{"ms":60001}', b'{"ms":"10"}', b'{"ms":true}', b"{}", b"[10]", b"null"]
)
async def test_sleep_refuses_what_is_not_a_sane_duration(payload):
    a, b = await within(gl.pipe(demo.handlers(), demo.handlers()))
    with pytest.raises(gl.RequestError, match=f"sleep expects JSON .*0..{demo.MAX_SLEEP_MS}"):
        await within(a.request_bytes("sleep", payload))
    await within(a.close())


async def test_sleep_accepts_fractions_and_zero():
    a, b = await within(gl.pipe(demo.handlers(), demo.handlers()))
    assert await within(a.request("sleep", {"ms": 0})) == {"slept": 0}
    assert await within(a.request("sleep", {"ms": 1.5})) == {"slept": 1.5}
    await within(a.close())


async def test_callback_fails_when_the_requestor_has_no_ping():
    a, b = await within(gl.pipe(gl.Handlers(), demo.handlers()))
    with pytest.raises(gl.RequestError, match='callback: ping: unknown operation "ping"'):
        await within(a.request_bytes("callback", b"x"))
    await within(a.close())

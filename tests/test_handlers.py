"""The handler registry: registering operations and listeners, and adapting what handlers take and return."""

from __future__ import annotations

import functools

import pytest

from gotalk_lab.handlers import SINGLE, STREAM, Handlers, wants_peer, json_payload, json_value, to_payload


def test_to_payload_accepts_bytes_str_and_none_only():
    assert to_payload(b"\x00\xff") == b"\x00\xff"
    assert to_payload(bytearray(b"ab")) == b"ab" and type(to_payload(bytearray(b"ab"))) is bytes
    assert to_payload(memoryview(b"cd")) == b"cd"
    assert to_payload("h\u00e9") == "h\u00e9".encode("utf-8")
    assert to_payload(None) == b""
    with pytest.raises(TypeError, match="not dict .*json=True"):
        to_payload({"a": 1})


def test_json_is_compact_utf8_and_an_empty_payload_is_none():
    assert json_payload({"name": "Ada", "n": [1, 2]}) == b'{"name":"Ada","n":[1,2]}'
    assert json_payload("\u00e9") == '"\u00e9"'.encode("utf-8")  # not \\u escapes, like gotalk.js
    assert json_payload(None) == b"null"
    assert json_value(b'{"a":[1,true,null]}') == {"a": [1, True, None]}
    assert json_value(b"") is None
    with pytest.raises(ValueError):
        json_value(b"{not json")


def test_a_second_positional_parameter_asks_for_the_peer():
    assert not wants_peer(lambda payload: None)
    assert wants_peer(lambda payload, peer: None)
    assert not wants_peer(lambda payload, *, peer=None: None)  # keyword-only is not the peer
    assert not wants_peer(lambda *args: None)

    def three(a, b, c):
        return None

    assert wants_peer(functools.partial(three, 1))
    assert not wants_peer(len)  # builtins without a signature take the payload only


def test_handle_registers_as_a_decorator_or_directly():
    handlers = Handlers()

    @handlers.handle("plain")
    def plain(payload):
        return payload

    @handlers.handle("json", json=True)
    async def as_json(value, peer):
        return value

    handlers.handle("direct", lambda payload: payload)
    assert plain(b"x") == b"x"  # the decorator gives the function back
    operation = handlers.operations["plain"]
    assert (operation.kind, operation.json, operation.wants_peer, operation.is_async) == (SINGLE, False, False, False)
    operation = handlers.operations["json"]
    assert (operation.kind, operation.json, operation.wants_peer, operation.is_async) == (SINGLE, True, True, True)
    assert "direct" in handlers and "missing" not in handlers
    assert handlers.operations["direct"].function(b"y") == b"y"


def test_stream_operations_must_be_async_generators():
    handlers = Handlers()

    @handlers.handle_stream("up")
    async def up(parts):
        async for part in parts:
            yield part.upper()

    assert handlers.operations["up"].kind == STREAM and handlers.operations["up"].is_async
    with pytest.raises(TypeError, match="must be an async generator"):

        @handlers.handle_stream("not-a-generator")
        async def wrong(parts):
            return b""

    assert "not-a-generator" not in handlers


def test_registering_a_name_again_replaces_it():
    handlers = Handlers()
    handlers.handle("op", lambda payload: b"1")
    handlers.handle("op", lambda payload: b"2")
    assert handlers.operations["op"].function(b"") == b"2"


def test_notification_listeners_named_and_catch_all():
    handlers = Handlers()
    first = handlers.on_notification("hello", lambda payload: None)
    handlers.on_notification("hello", lambda payload: None)
    catch_all = handlers.on_notification(None, lambda name, payload: None)
    assert len(handlers.notifications["hello"]) == 2
    assert handlers.notifications["hello"][0] is first
    assert handlers.any_notification == [catch_all]


def test_update_merges_registries_without_sharing_lists():
    one, two = Handlers(), Handlers()
    one.handle("a", lambda payload: b"a")
    one.on_notification("n", lambda payload: None)
    two.handle("b", lambda payload: b"b")
    two.on_notification("n", lambda payload: None)
    two.on_notification(None, lambda name, payload: None)
    assert one.update(two) is one
    assert set(one.operations) == {"a", "b"}
    assert len(one.notifications["n"]) == 2 and len(two.notifications["n"]) == 1
    assert len(one.any_notification) == 1


def test_repr_lists_operations_and_notifications():
    handlers = Handlers()
    assert repr(handlers) == "Handlers(no operations; notifications: none)"
    handlers.handle("echo", lambda payload: payload)

    @handlers.handle_stream("up")
    async def up(parts):
        yield b""

    handlers.on_notification("hello", lambda payload: None)
    assert repr(handlers) == "Handlers(echo (single), up (stream); notifications: ['hello'])"

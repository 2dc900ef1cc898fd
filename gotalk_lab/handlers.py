"""The operations and notifications a peer answers, kept apart from any connection.

A ``Handlers`` registry maps operation names to handler functions and
notification names to listeners. One registry may be shared by many peers (a
server gives the same registry to every connection). This module only records
and adapts user functions; it never touches a connection.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any, Callable

SINGLE = "single"
STREAM = "stream"


def to_payload(value: Any) -> bytes:
    """What a handler returned (bytes, str or None) as payload bytes."""
    if type(value) is bytes:  # the common case, first
        return value
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"a handler must return bytes, str or None, not {type(value).__name__} (use json=True for values)")


def json_payload(value: Any) -> bytes:
    """A value as compact JSON bytes, the way gotalk.js writes JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_value(payload: bytes) -> Any:
    """Payload bytes as a JSON value; an empty payload is ``None``."""
    return json.loads(payload) if payload else None


def wants_peer(function: Callable[..., Any]) -> bool:
    """True when ``function`` takes a second parameter: the peer it serves."""
    try:
        params = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return False
    return len(params) >= 2


@dataclass(frozen=True)
class Operation:
    """A registered operation: how to call it and how to convert its values."""

    name: str
    function: Callable
    kind: str  #: SINGLE (payload in, payload out) or STREAM (parts in, parts out)
    json: bool  #: payloads are JSON values on both sides
    wants_peer: bool  #: the function takes (payload, peer)
    is_async: bool  #: the function returns an awaitable (or is an async generator)
    #: A plain ``function(payload) -> bytes``: a peer may call it as it reads the request.
    plain: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plain = self.kind == SINGLE and not (self.json or self.wants_peer or self.is_async)
        object.__setattr__(self, "plain", plain)

    # Every way a peer runs a handler goes through these three: what the function
    # is given, how it is called, and what its return value becomes on the wire.
    # (A plain operation is the case where all three are the identity, which is
    # why a peer may call ``function(payload)`` for it directly.)

    def argument(self, payload: bytes) -> Any:
        """What the function receives for a request payload (a JSON value with ``json``)."""
        return json_value(payload) if self.json else payload

    def invoke(self, argument: Any, peer: Any) -> Any:
        """Call the function: with the peer as second argument if it takes one."""
        return self.function(argument, peer) if self.wants_peer else self.function(argument)

    def answer_payload(self, result: Any) -> bytes:
        """The payload that answers with ``result`` (JSON with ``json``)."""
        return json_payload(result) if self.json else to_payload(result)


class Handlers:
    """A registry of operations and notification listeners.

    Register with decorators::

        handlers = Handlers()

        @handlers.handle("echo")
        def echo(payload: bytes) -> bytes:
            return payload

        @handlers.handle("greet", json=True)
        async def greet(value, peer):      # a second parameter receives the peer
            return {"greeting": f"Hello {value['name']}"}

        @handlers.handle_stream("upper-stream")
        async def upper(parts):            # parts: async iterator of bytes
            async for part in parts:
                yield part.upper()

        @handlers.on_notification("hello")
        def hello(payload: bytes) -> None: ...
    """

    def __init__(self) -> None:
        self.operations: dict[str, Operation] = {}
        self.notifications: dict[str, list[Callable]] = {}
        self.any_notification: list[Callable] = []

    def handle(self, name: str, function: Callable | None = None, *, json: bool = False):
        """Register a single-result operation (usable as a decorator)."""
        return self._register(name, function, SINGLE, json)

    def handle_stream(self, name: str, function: Callable | None = None, *, json: bool = False):
        """Register a streaming operation: an async generator over the request parts."""
        return self._register(name, function, STREAM, json)

    def _register(self, name: str, function: Callable | None, kind: str, as_json: bool):
        def register(function: Callable) -> Callable:
            if kind == STREAM and not inspect.isasyncgenfunction(function):
                raise TypeError(f"stream operation {name!r} must be an async generator function (use 'yield')")
            is_async = inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
            self.operations[name] = Operation(name, function, kind, as_json, wants_peer(function), is_async)
            return function

        return register(function) if function is not None else register

    def on_notification(self, name: str | None = None, function: Callable | None = None):
        """Listen to notification ``name``; with no name, to every notification.

        A named listener gets ``(payload)``; a catch-all listener gets ``(name, payload)``.
        """

        def register(function: Callable) -> Callable:
            if name is None:
                self.any_notification.append(function)
            else:
                self.notifications.setdefault(name, []).append(function)
            return function

        return register(function) if function is not None else register

    def update(self, other: "Handlers") -> "Handlers":
        """Add every operation and listener of ``other`` to this registry."""
        self.operations.update(other.operations)
        for name, listeners in other.notifications.items():
            self.notifications.setdefault(name, []).extend(listeners)
        self.any_notification.extend(other.any_notification)
        return self

    def __contains__(self, name: str) -> bool:
        return name in self.operations

    def __repr__(self) -> str:
        ops = ", ".join(f"{n} ({o.kind})" for n, o in self.operations.items())
        return f"Handlers({ops or 'no operations'}; notifications: {sorted(self.notifications) or 'none'})"

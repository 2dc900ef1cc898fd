"""The demo operations shared by the tutorials, ``gotalk-lab serve`` and the Go demo peer.

Each behaves exactly as the table in PROTOCOL.md says, so that a notebook, the
CLI and the reference transcripts agree byte for byte. ``handlers()`` returns a
fresh registry; nothing here opens a connection.
"""

from __future__ import annotations

import asyncio

from .handlers import Handlers

#: Longest ``sleep`` honoured: a classroom demo should not hold a slot for long.
MAX_SLEEP_MS = 60_000


def handlers() -> Handlers:
    """A new registry with every demo operation and the ``hello`` notification."""
    demo = Handlers()

    @demo.handle("echo")
    def echo(payload: bytes) -> bytes:
        return payload

    @demo.handle("greet", json=True)
    def greet(value) -> dict:
        if not isinstance(value, dict) or "name" not in value:
            raise ValueError('greet expects JSON {"name": ...}')
        return {"greeting": f"Hello {value['name']}"}

    @demo.handle("fail")
    def fail(payload: bytes) -> bytes:
        raise RuntimeError("boom")

    @demo.handle("sleep", json=True)
    async def sleep(value) -> dict:
        ms = value.get("ms") if isinstance(value, dict) else None
        if not isinstance(ms, (int, float)) or isinstance(ms, bool) or not 0 <= ms <= MAX_SLEEP_MS:
            raise ValueError(f'sleep expects JSON {{"ms": 0..{MAX_SLEEP_MS}}}')
        await asyncio.sleep(ms / 1000)
        return {"slept": ms}

    @demo.handle("ping")
    def ping(payload: bytes) -> bytes:
        return b"ping:" + payload

    @demo.handle("callback")
    async def callback(payload: bytes, peer) -> bytes:
        # Ask the requestor's own "ping" on the same connection while its request waits.
        answer = await peer.request_bytes("ping", payload)
        return b"pong:" + answer

    @demo.handle_stream("upper-stream")
    async def upper_stream(parts):
        async for part in parts:
            yield part.upper()

    @demo.on_notification("hello")
    async def hello(payload: bytes, peer) -> None:
        await peer.notify_bytes("hello-back", payload)

    return demo

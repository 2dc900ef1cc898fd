"""Load: 10 000 requests in flight on one connection, 200 connections held by one server.

Every answer must carry the payload of its own request under its own request
ID, and afterwards no table of any peer may hold anything (no pending-state
leak). Pipe and TCP carry the 10 000; TCP and WebSocket the 200 connections.
"""

from __future__ import annotations

import asyncio

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.peer import Peer
from gotalk_lab.trace import IN, OUT
from gotalk_lab.wire import SingleRequest, SingleResult
from reliability_support import settle, wait_until, within

CONCURRENT_REQUESTS = 10_000
CONNECTIONS = 200


def tagged_handlers(in_flight: list[int]) -> gl.Handlers:
    """``tag``: answers its payload after a turn of the loop, so that requests overlap."""
    handlers = demo.handlers()

    @handlers.handle("tag")
    async def tag(payload: bytes) -> bytes:
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        await asyncio.sleep(0)
        in_flight[0] -= 1
        return payload

    return handlers


async def a_pair(transport: str, handlers: gl.Handlers, **server_options) -> tuple[Peer, Peer, object]:
    if transport == "pipe":
        client, served = await within(gl.pipe(None, handlers, options_b=server_options))
        return client, served, None
    accepted: asyncio.Queue = asyncio.Queue()
    server = await within(gl.serve("tcp://127.0.0.1:0", handlers, **server_options))
    server.on_connect(accepted.put_nowait)
    client = await within(gl.connect(server.addresses[0]))
    served = await within(accepted.get())
    return client, served, server


def assert_every_answer_matches_its_request(client: Peer, count: int) -> None:
    asked = {e.message.request_id: e.message.payload for e in client.trace if e.direction == OUT and type(e.message) is SingleRequest}
    answered = {e.message.request_id: e.message.payload for e in client.trace if e.direction == IN and type(e.message) is SingleResult}
    assert len(asked) == count, "request IDs were reused among requests in flight"
    assert answered == asked


@pytest.mark.parametrize("transport", ["pipe", "tcp"])
async def test_10000_concurrent_requests_on_one_connection_all_answered_under_their_own_ids(transport):
    in_flight = [0, 0]
    client, served, server = await a_pair(transport, tagged_handlers(in_flight), max_requests=None)
    try:
        payloads = [b"request %05d" % index for index in range(CONCURRENT_REQUESTS)]
        results = await within(asyncio.gather(*(client.request_bytes("tag", payload) for payload in payloads)), 25)
        assert results == payloads
        assert_every_answer_matches_its_request(client, CONCURRENT_REQUESTS)
        assert in_flight[1] >= 1000, f"only {in_flight[1]} requests were ever served at once"
        await settle(client, served)
    finally:
        await within(client.close())
        if server is not None:
            await within(server.close())
    await settle(client, served)


async def test_10000_concurrent_requests_with_the_default_limits_all_answered():
    """The demo echo (a plain function, answered inline) behind the default request limit."""
    client, served = await within(gl.pipe(None, demo.handlers()))
    payloads = [b"%d" % index for index in range(CONCURRENT_REQUESTS)]
    results = await within(asyncio.gather(*(client.request_bytes("echo", payload) for payload in payloads)), 25)
    assert results == payloads
    assert_every_answer_matches_its_request(client, CONCURRENT_REQUESTS)
    await settle(client, served)
    await within(client.close())
    await settle(client, served)


@pytest.mark.parametrize("scheme", ["tcp", "ws"])
async def test_200_connections_to_one_server_all_served_and_nothing_left_after(scheme):
    server = await within(gl.serve(f"{scheme}://127.0.0.1:0", demo.handlers()))
    served: list[Peer] = []
    server.on_connect(served.append)
    clients: list[Peer] = []
    try:
        for _ in range(CONNECTIONS // 50):  # in waves, within the listen backlog
            clients += await within(asyncio.gather(*(gl.connect(server.addresses[0], demo.handlers()) for _ in range(50))))
        await wait_until(lambda: len(server.peers) == CONNECTIONS)  # all held at once

        async def work(index: int, client: Peer) -> None:
            payload = b"client %03d" % index
            answers = await asyncio.gather(
                client.request_bytes("echo", payload),
                client.request("sleep", {"ms": 20}),
                client.request_bytes("callback", payload),  # the server asks this client back
            )
            assert answers == [payload, {"slept": 20}, b"pong:ping:" + payload]

        await within(asyncio.gather(*(work(index, client) for index, client in enumerate(clients))), 25)
        assert len(server.peers) == CONNECTIONS and server.connections_accepted == CONNECTIONS
    finally:
        await within(asyncio.gather(*(client.close() for client in clients)))
    await wait_until(lambda: not server.peers)
    await within(server.close())
    await settle(*clients, *served)

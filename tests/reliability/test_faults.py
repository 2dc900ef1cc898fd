"""Faults injected into live connections: every pending call ends with a clear error, nothing hangs,
and the server goes on serving its other connections.

Over TCP and WebSocket, each with a bystander client of the same server that
has work in flight: connections dropped mid-stream (either direction, either
side dropping), during a handler's own nested request and during the
handshake; handlers that raise or hang past ``handler_timeout``; a side that
never reads; heartbeats that stop (found out by the read timeout). Drops are
aborts (no goodbye, as when a program crashes); orderly closes are covered in
tests/test_peer.py and tests/test_transports.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.peer import ConnectionClosed, Peer, RequestError
from gotalk_lab.transports.websocket import CLOSE_TIMEOUT as WS_CLOSE_TIMEOUT
from reliability_support import SCHEMES, RawTcp, RawWebSocket, bystander, serving, settle, wait_until, within

MiB = 1024 * 1024


class Watched:
    """Handlers whose runs we can hold and whose ends we can see."""

    def __init__(self) -> None:
        self.handlers = demo.handlers()
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.ended: list[str] = []  # "cancelled", "closed" (a stream generator closed), "finished"
        self.nested_outcome: list[BaseException | bytes] = []
        handlers = self.handlers

        @handlers.handle_stream("held-stream")
        async def held_stream(parts):
            try:
                async for part in parts:
                    self.entered.set()
                    yield part.upper()
                await self.release.wait()
                self.ended.append("finished")
            except asyncio.CancelledError:
                self.ended.append("cancelled")
                raise
            except GeneratorExit:
                self.ended.append("closed")
                raise

        @handlers.handle("held")
        async def held(payload):
            self.entered.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.ended.append("cancelled")
                raise
            return payload

        @handlers.handle("nested")
        async def nested(payload, peer):
            try:
                answer = await peer.request_bytes("held", payload)
            except BaseException as error:  # what the handler's own request ended with
                self.nested_outcome.append(error)
                raise
            self.nested_outcome.append(answer)
            return answer


async def a_client(served, handlers=None, **options) -> tuple[Peer, Peer]:
    client = await within(gl.connect(served.address, handlers if handlers is not None else demo.handlers(), **options))
    return client, await served.next_peer()


def drop(peer: Peer) -> None:
    peer.transport.abort()


# -- connections dropped mid-stream, either direction --------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("streamer", ["client", "server"])
@pytest.mark.parametrize("dropper", ["requester", "responder"])
async def test_a_drop_mid_stream_fails_the_stream_and_ends_its_handler(scheme, streamer, dropper):
    client_side, server_side = Watched(), Watched()
    async with serving(scheme, server_side.handlers) as served:
        async with bystander(served):
            client, served_peer = await a_client(served, client_side.handlers)
            requester, responder = (client, served_peer) if streamer == "client" else (served_peer, client)
            handler = server_side if streamer == "client" else client_side
            async with requester.stream_request("held-stream") as stream:
                await within(stream.send(b"abc"))
                assert await within(stream.results.get()) == b"ABC"
                drop(requester if dropper == "requester" else responder)
                with pytest.raises(ConnectionClosed):
                    await within(stream.collect())
                with pytest.raises(ConnectionClosed):
                    await stream.send(b"more")
            await within(asyncio.gather(client.wait_closed(), served_peer.wait_closed()))
            survivor = responder if dropper == "requester" else requester
            assert "closed by the other side" in survivor.close_reason
            if scheme == "ws":  # no close frame: said so, not taken for an orderly close
                assert "dropped abnormally" in survivor.close_reason and "1006" in survivor.close_reason
            await wait_until(lambda: handler.ended)
            assert handler.ended[0] in ("cancelled", "closed")
            await settle(client, served_peer)


# -- a drop while a handler waits for its own nested request ----------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("dropper", ["client", "server"])
async def test_a_drop_during_a_handlers_nested_request_fails_every_level(scheme, dropper):
    client_side, server_side = Watched(), Watched()
    async with serving(scheme, server_side.handlers) as served:
        async with bystander(served):
            client, served_peer = await a_client(served, client_side.handlers)
            outer = asyncio.ensure_future(client.request_bytes("nested", b"zz"))
            await within(client_side.entered.wait())  # the server's handler asked us back; we hold it
            assert client.pending_count == 2 and served_peer.pending_count == 2
            drop(client if dropper == "client" else served_peer)
            with pytest.raises(ConnectionClosed):
                await within(outer)
            await wait_until(lambda: server_side.nested_outcome and client_side.ended)
            assert isinstance(server_side.nested_outcome[0], (ConnectionClosed, asyncio.CancelledError))
            assert client_side.ended == ["cancelled"]  # our handler for the nested request
            await settle(client, served_peer)


# -- drops during the handshake -----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("sent", [b"", b"0"])
async def test_a_client_dropping_during_the_handshake_fails_only_that_connections_handshake(scheme, sent):
    async with serving(scheme) as served:
        async with bystander(served):
            raw = await (RawTcp.open(served.address) if scheme == "tcp" else RawWebSocket.open(served.address))
            peer = await served.next_peer()
            if sent:
                await raw.send(sent)
            await asyncio.sleep(0.02)
            assert not peer.handshake.done()
            raw.drop()
            with pytest.raises(ConnectionClosed, match="closed by the other side"):
                await within(peer.handshake)
            await settle(peer)
        await wait_until(lambda: not served.server.peers)


async def test_a_server_dropping_during_the_handshake_fails_connect_at_once():
    async def accept_and_drop(reader, writer):
        writer.write(b"0")  # half a version, then gone
        await writer.drain()
        writer.transport.abort()

    listener = await asyncio.start_server(accept_and_drop, "127.0.0.1", 0)
    try:
        port = listener.sockets[0].getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConnectionClosed, match="closed by the other side"):
            await within(gl.connect(f"tcp://127.0.0.1:{port}"))
        assert time.monotonic() - started < 2  # not the handshake timeout
    finally:
        listener.close()


# -- handlers that raise, and handlers that hang ----------------------------------------------------------


async def test_handlers_that_raise_answer_an_error_and_the_connection_goes_on():
    handlers = demo.handlers()

    @handlers.handle("bad-type")
    def bad_type(payload):
        return 42  # not bytes, str or None

    @handlers.handle("bad-json", json=True)
    async def bad_json(value):
        return {"not json": object()}

    @handlers.handle_stream("breaks-midway")
    async def breaks_midway(parts):
        async for part in parts:
            yield part
            raise KeyError("midway")

    async with serving("tcp", handlers) as served:
        async with bystander(served):
            client, served_peer = await a_client(served)
            for operation, payload, text in [
                ("fail", b"", "boom"),
                ("bad-type", b"", "a handler must return bytes, str or None, not int"),
                ("bad-json", b"null", "is not JSON serializable"),
                ("greet", b"not json", "Expecting value"),
            ]:
                with pytest.raises(RequestError) as failed:
                    await within(client.request_bytes(operation, payload))
                assert text in failed.value.text
            async with client.stream_request("breaks-midway") as stream:
                await within(stream.send(b"one"))
                with pytest.raises(RequestError, match="midway"):
                    await within(stream.collect())
            assert await within(client.request_bytes("echo", b"fine")) == b"fine"
            await within(client.close())
            await settle(client, served_peer)


@pytest.mark.parametrize("scheme", ["pipe", "tcp"])
async def test_a_handler_hanging_past_handler_timeout_is_cancelled_and_answered_with_an_error(scheme):
    watched = Watched()
    if scheme == "pipe":
        client, served_peer = await within(gl.pipe(None, watched.handlers, options_b={"handler_timeout": 0.2}))
        server = None
    else:
        server = await within(gl.serve("tcp://127.0.0.1:0", watched.handlers, handler_timeout=0.2))
        accepted: asyncio.Queue = asyncio.Queue()
        server.on_connect(accepted.put_nowait)
        client = await within(gl.connect(server.addresses[0]))
        served_peer = await within(accepted.get())
    try:
        started = time.monotonic()
        with pytest.raises(RequestError) as failed:
            await within(client.request_bytes("held", b"x"))
        took = time.monotonic() - started
        assert failed.value.text == "handler timed out after 0.2 s"
        assert 0.19 <= took < 2
        await wait_until(lambda: watched.ended == ["cancelled"])
        assert served_peer.pending_count == 0  # its slot is free again
        # Handlers that finish in time are not touched by the timeout.
        assert await within(client.request("sleep", {"ms": 50})) == {"slept": 50}
        assert await within(client.request_bytes("echo", b"ok")) == b"ok"
        assert client.is_open and served_peer.is_open
    finally:
        await within(client.close())
        if server is not None:
            await within(server.close())
    await settle(client, served_peer)


async def test_a_handler_stuck_on_its_own_nested_request_times_out_and_forgets_that_request():
    client_side = Watched()  # the client holds the nested request forever
    server = await within(gl.serve("tcp://127.0.0.1:0", Watched().handlers, handler_timeout=0.2))
    accepted: asyncio.Queue = asyncio.Queue()
    server.on_connect(accepted.put_nowait)
    client = await within(gl.connect(server.addresses[0], client_side.handlers))
    served_peer = await within(accepted.get())
    try:
        with pytest.raises(RequestError, match="handler timed out after 0.2 s"):
            await within(client.request_bytes("nested", b"q"))
        assert served_peer.pending_count == 0  # the handler's nested request is forgotten with it
        client_side.release.set()  # our late answer to it is ignored, not an error
        await wait_until(lambda: client.pending_count == 0)
        assert await within(client.request_bytes("echo", b"still")) == b"still"
    finally:
        await within(client.close())
        await within(server.close())
    await settle(client, served_peer)


def test_handler_timeout_must_be_positive():
    async def make(timeout):
        return Peer(handler_timeout=timeout)

    for bad in (0, -1):
        with pytest.raises(ValueError, match="handler_timeout"):
            asyncio.run(make(bad))


# -- a side that never reads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_client_that_never_reads_is_held_back_and_the_server_still_closes_at_once(scheme):
    handlers = demo.handlers()
    blob = b"b" * MiB

    @handlers.handle("blob")
    def blob_handler(payload):
        return blob

    async with serving(scheme, handlers) as served:
        async with bystander(served):
            client, served_peer = await a_client(served)
            if scheme == "tcp":
                client.transport.pause_reading()  # the socket is not read any more
            else:
                client.transport.connection.transport.pause_reading()
            asked = [asyncio.ensure_future(client.request_bytes("blob")) for _ in range(40)]
            await wait_until(lambda: served_peer.transport.write_backlogged)
            await asyncio.sleep(0.2)
            # The server keeps what it could not write within bounds: answers wait for room.
            assert served_peer.transport.write_buffer_size() < 4 * MiB
            assert not any(request.done() for request in asked)
            started = time.monotonic()
            await within(served_peer.close())
            assert time.monotonic() - started < 3  # the close timeout, not forever
            # Once the client reads again it learns of the close: every call fails clearly.
            if scheme == "tcp":
                client.transport.resume_reading()
            else:
                client.transport.connection.transport.resume_reading()
            outcomes = await within(asyncio.gather(*asked, return_exceptions=True))
            assert all(isinstance(outcome, (ConnectionClosed, bytes)) for outcome in outcomes)
            assert any(isinstance(outcome, ConnectionClosed) for outcome in outcomes)
            await within(client.wait_closed())
            await settle(client, served_peer)


@pytest.mark.parametrize("scheme", SCHEMES)
async def test_a_server_whose_answers_are_not_read_stops_reading_and_refuses_garbage_once_read_again(scheme):
    """A client that does not read what it asked for: the server stops reading it (its
    queue stays near the high-water mark), as the Go peer does; the client's garbage is
    read when the client reads again, and then refused (f00000002, close)."""
    handlers = demo.handlers()
    blob = b"b" * MiB
    handlers.handle("blob", lambda payload: blob)
    async with serving(scheme, handlers) as served:
        async with bystander(served):
            client, served_peer = await a_client(served)
            socket_transport = client.transport if scheme == "tcp" else client.transport.connection.transport
            socket_transport.pause_reading()
            asked = [asyncio.ensure_future(client.request_bytes("blob")) for _ in range(10)]
            await wait_until(lambda: served_peer.transport.write_backlogged and served_peer.reading_paused)
            await within(client.send_raw(b"x000000000000"))  # garbage, not read while the server holds back
            await asyncio.sleep(0.2)
            assert served_peer.is_open and served_peer.transport.write_buffer_size() < 4 * MiB
            socket_transport.resume_reading()
            await within(served_peer.wait_closed())
            assert "byte" in served_peer.close_reason and served_peer not in served.server.peers
            await within(served_peer.transport.wait_closed())  # the socket itself is gone too
            await within(asyncio.gather(*asked, return_exceptions=True))
            await within(client.wait_closed())
            await settle(client, served_peer)


async def test_a_websocket_transport_close_does_not_hang_when_the_other_side_never_reads():
    async with serving("ws") as served:
        client, served_peer = await a_client(served)
        client.transport.connection.transport.pause_reading()  # the client's socket is not read

        async def flood():
            async with served_peer.stream_request("upper-stream") as stream:
                while True:
                    await stream.send(b"w" * MiB)

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(flood(), 1.0)  # the server is held back
        started = time.monotonic()
        served_peer.transport.close()
        await within(served_peer.transport.wait_closed())
        assert time.monotonic() - started < WS_CLOSE_TIMEOUT + 1
        await within(served_peer.wait_closed())
        client.transport.connection.transport.resume_reading()
        await within(client.wait_closed())
        await settle(client, served_peer)


# -- heartbeats that stop: the read timeout finds the silent side -----------------------------------------------


async def test_a_client_whose_heartbeats_stop_is_closed_by_the_servers_read_timeout():
    # A read timeout ten heartbeat intervals long: a loop held up by other work on a busy
    # machine must not close the connection while the heartbeats still come.
    async with serving("tcp", read_timeout=0.5) as served:
        async with bystander(served, heartbeat_interval=0.05):
            raw = await RawTcp.open(served.address)
            peer = await served.next_peer()
            await raw.send(b"01")
            for _ in range(24):  # 1.2 s of heartbeats and nothing else: well past the read timeout
                await raw.send(b"h0000%08x" % int(time.time()))
                await asyncio.sleep(0.05)
            assert peer.is_open
            await raw.send(b'r0001005sleep0000000b{"ms":5000}')
            started = time.monotonic()
            assert await within(raw.read_to_end()) == b"01f00000003"  # the pending request is dropped with it
            assert 0.4 <= time.monotonic() - started < 2.5
            assert "read timeout" in peer.close_reason
            await settle(peer)


async def test_a_server_whose_heartbeats_stop_is_found_out_by_the_clients_read_timeout():
    async with serving("tcp", heartbeat_interval=0.05) as served:
        client, served_peer = await a_client(served, read_timeout=0.25)
        pending = asyncio.ensure_future(client.request("sleep", {"ms": 5000}))
        await asyncio.sleep(0.6)  # only heartbeats arrive: enough to stay open
        assert client.is_open and not pending.done()
        served_peer._timers.pop("heartbeat").cancel()  # the server's heartbeats stop
        with pytest.raises(ConnectionClosed, match=r"nothing read for 0.25 s \(read timeout\)"):
            await within(pending)
        await within(served_peer.wait_closed())
        assert "f00000003" in served_peer.close_reason  # the client told the server why
        await settle(client, served_peer)

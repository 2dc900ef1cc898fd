"""Gotalk over TCP (optionally TLS) or a UNIX socket: a byte stream, exactly as the Go peer speaks it.

The transport batches the frames written while the receiver handles one chunk
of received bytes, or during one turn of the event loop, into a single socket
write (many small results become one system call) but writes large payloads as
they are, never copying them to join. The first frame of a turn written outside
a receive goes out at once and the rest of that turn joins one write: one request
in flight then waits for no extra turn of the loop (about a tenth of its
instructions), and many in flight cost one system call more a turn. It knows
nothing of messages; flow control comes from asyncio's pause/resume_writing.

It reads as a buffered protocol, into one buffer its thread's connections
share, and hands the receiver a copy of what arrived. The plain protocol's
path gives every read a fresh 256 KiB object that the allocator maps and
unmaps: at one request in flight that cost more than the read itself.
"""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module
import threading
from typing import Callable

from .base import DIRECT_WRITE_SIZE, HIGH_WATER, Transport, format_address, listen_backlog

#: The most one read takes in, as asyncio's own socket transport reads.
READ_SIZE = 256 * 1024
_thread_buffers = threading.local()


def read_buffer() -> memoryview:
    """This thread's read buffer. The loop fills it and calls ``buffer_updated`` at
    once, and that copies what arrived out of it, so one serves every connection
    of a thread; a thread of its own (another event loop) gets another."""
    buffer = getattr(_thread_buffers, "view", None)
    if buffer is None:
        buffer = _thread_buffers.view = memoryview(bytearray(READ_SIZE))
    return buffer


class TcpTransport(Transport, asyncio.BufferedProtocol):
    def __init__(self) -> None:
        Transport.__init__(self)
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._batch: list[bytes] = []
        self._batch_size = 0
        self._flush_scheduled = False
        self._receiving = False
        self._wrote_this_turn = False
        self._early: list[bytes] = []  # bytes received before a receiver was attached
        self._read_buffer = read_buffer()
        self.connected = self._loop.create_future()

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=HIGH_WATER)  # type: ignore[attr-defined]
        local = transport.get_extra_info("sockname")
        remote = transport.get_extra_info("peername")
        tls = "tls" if transport.get_extra_info("sslcontext") else "tcp"
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == getattr(socket, "AF_UNIX", None):
            # One end of a UNIX socket has the path, the other an empty name.
            self.description = f"unix {local or remote}"
        else:
            self.description = f"{tls} {format_address(local)} -> {format_address(remote)}"
        if not self.connected.done():
            self.connected.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_buffer[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        if self.receiver is None:
            self._early.append(data)
        else:
            self._receiving = True
            try:
                self.receiver.data_received(data)
            finally:
                self._receiving = False
            if self._batch:
                # The answers to this chunk go out now, in one write, not a turn of the loop later.
                self._flush()

    def eof_received(self) -> bool:
        return False  # close our side too: Gotalk has no half-closed state

    def connection_lost(self, exc: BaseException | None) -> None:
        self._batch.clear()
        self._set_closed(exc)

    def pause_writing(self) -> None:
        self.mark_backlogged()

    def resume_writing(self) -> None:
        self.mark_writable()

    # -- Transport ------------------------------------------------------------

    def attach(self, receiver) -> None:
        super().attach(receiver)
        early, self._early = self._early, []
        for data in early:
            receiver.data_received(data)

    def write(self, header: bytes, payload: bytes = b"") -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if len(payload) >= DIRECT_WRITE_SIZE:
            self._flush()
            self._transport.write(header)
            self._transport.write(payload)
            return
        if not self._batch and not self._wrote_this_turn and not self._receiving:
            self._wrote_this_turn = True
            self._loop.call_soon(self._new_turn)
            self._transport.write(header + payload if payload else header)
            return
        self._batch.append(header)
        self._batch_size += len(header)
        if payload:
            self._batch.append(payload)
            self._batch_size += len(payload)
        if self._batch_size >= HIGH_WATER:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _new_turn(self) -> None:
        self._wrote_this_turn = False

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._batch or self._transport is None:
            return
        data = self._batch[0] if len(self._batch) == 1 else b"".join(self._batch)
        self._batch.clear()
        self._batch_size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def write_buffer_size(self) -> int:
        size = self._batch_size
        if self._transport is not None:
            size += self._transport.get_write_buffer_size()
        return size

    def pause_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self) -> None:
        self._flush()
        if self._transport is not None:
            self._transport.close()  # asyncio writes out its buffer first
        else:
            self._set_closed(None)

    def abort(self) -> None:
        self._batch.clear()
        if self._transport is not None:
            self._transport.abort()
        else:
            self._set_closed(None)


async def open_tcp(host: str, port: int, *, ssl: ssl_module.SSLContext | None = None) -> TcpTransport:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(TcpTransport, host, port, ssl=ssl)
    await protocol.connected
    return protocol


async def serve_tcp(
    on_connection: Callable[[TcpTransport], None],
    host: str,
    port: int,
    *,
    ssl: ssl_module.SSLContext | None = None,
) -> asyncio.Server:
    """Listen; call ``on_connection(transport)`` for every accepted connection."""
    loop = asyncio.get_running_loop()

    def factory() -> TcpTransport:
        transport = TcpTransport()
        transport.connected.add_done_callback(lambda _: on_connection(transport))
        return transport

    return await loop.create_server(factory, host, port, ssl=ssl, backlog=listen_backlog())


async def open_unix(path: str) -> TcpTransport:
    """Connect to a UNIX socket at ``path`` (the Go peer's ``gotalk.Connect("unix", path)``)."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_unix_connection(TcpTransport, path)
    await protocol.connected
    return protocol


async def serve_unix(on_connection: Callable[[TcpTransport], None], path: str) -> asyncio.Server:
    """Listen on a UNIX socket at ``path`` (a stale socket file there is replaced, the file removed on close)."""
    loop = asyncio.get_running_loop()

    def factory() -> TcpTransport:
        transport = TcpTransport()
        transport.connected.add_done_callback(lambda _: on_connection(transport))
        return transport

    return await loop.create_unix_server(factory, path, backlog=listen_backlog())

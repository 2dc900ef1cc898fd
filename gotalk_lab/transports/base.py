"""What a peer needs from a connection, whatever carries the bytes.

A transport pushes received bytes into its receiver (``data_received``,
``connection_lost``) and takes whole frames to write (``write(header, payload)``)
without ever splitting or reordering them. Flow control both ways: ``drain``
waits while too much is queued for the other side, and ``pause_reading`` stops
delivery until ``resume_reading``. Transports know nothing of Gotalk messages.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

#: Bytes queued for writing above which ``drain`` makes writers wait. Large
#: enough for a burst of small results to go out in one system call, small
#: enough that a peer that never reads cannot make us buffer much.
HIGH_WATER = 256 * 1024
#: Payloads at least this large are written as they are, never joined with
#: other frames (joining would copy them).
DIRECT_WRITE_SIZE = 64 * 1024
#: Seconds a closing side waits for queued bytes (and, on a WebSocket, the
#: closing handshake) before dropping the connection. Gotalk has no closing
#: handshake of its own: what is still queued then is best effort, and a side
#: that never reads must not make closing hang.
CLOSE_TIMEOUT = 2.0



def listen_backlog() -> int:
    """How many connections may wait to be accepted: the system's maximum.

    asyncio's default is 100, so a burst of clients (a classroom connecting at
    once, a load test) waits on SYN retries; the kernel caps what is asked at
    ``net.core.somaxconn`` anyway, so that is what is asked for.
    """
    try:
        with open("/proc/sys/net/core/somaxconn") as limit:
            return max(int(limit.read()), socket.SOMAXCONN)
    except (OSError, ValueError):
        return socket.SOMAXCONN

def format_address(address: object) -> str:
    """A socket address as people write it: ``host:port``, ``[v6 host]:port``; anything else as text."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


class Receiver(Protocol):
    """The side that consumes a transport's bytes (a Peer, or the tap).

    A receiver may also have ``input_refused(reason)``: a transport that refuses
    received bytes itself (a WebSocket message over its size limit) calls it, and
    what the receiver writes during that call goes out before the connection ends.
    """

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, error: BaseException | None) -> None: ...


class Transport:
    """Base class: the flow-control bookkeeping shared by every transport."""

    #: A short human description, e.g. "tcp 127.0.0.1:52011 -> 127.0.0.1:8000".
    description = "transport"
    #: True when the other side reads one byte stream, so several whole frames
    #: may go out in one ``write``; False where each write is a message of its
    #: own that must hold one header or one payload (WebSocket, as gotalk.js reads it).
    joins_frames = True

    def __init__(self) -> None:
        self.receiver: Receiver | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        #: True while more is queued than the high-water mark (``drain`` would wait).
        #: A plain attribute, kept by the two marks below: peers read it per message.
        self.write_backlogged = False
        self._closed = asyncio.get_running_loop().create_future()

    def attach(self, receiver: Receiver) -> None:
        """Start delivering received bytes to ``receiver``."""
        self.receiver = receiver

    def write(self, header: bytes, payload: bytes = b"") -> None:
        raise NotImplementedError

    def write_buffer_size(self) -> int:
        raise NotImplementedError

    def mark_backlogged(self) -> None:
        """A subclass's queue went over the high-water mark: ``drain`` waits from now on."""
        self.write_backlogged = True
        self._writable.clear()

    def mark_writable(self) -> None:
        """A subclass's queue fell back under the mark: waiting writers go on."""
        self.write_backlogged = False
        self._writable.set()

    async def drain(self) -> None:
        """Wait until the queued bytes fall below the high-water mark."""
        # A loop, not an if: when room comes, every waiter wakes, and the first
        # to write may fill it again; the others then wait on, instead of all
        # writing at once (many large answers would pile up past the mark).
        while not self._writable.is_set() and not self._closed.done():
            waiter = asyncio.ensure_future(self._writable.wait())
            done, _ = await asyncio.wait({waiter, self._closed}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()

    def pause_reading(self) -> None:
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Write what is queued, then close. Idempotent."""
        raise NotImplementedError

    def abort(self) -> None:
        """Close at once, dropping what is queued (a dropped connection)."""
        self.close()

    @property
    def is_closing(self) -> bool:
        return self._closed.done()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def _set_closed(self, error: BaseException | None = None) -> None:
        """Mark closed and tell the receiver, exactly once."""
        if self._closed.done():
            return
        self._closed.set_result(None)
        self.mark_writable()
        if self.receiver is not None:
            self.receiver.connection_lost(error)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"

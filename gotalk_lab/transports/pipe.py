"""Two transports joined back to back in one event loop, for notebooks and tests.

Bytes written on one end are delivered to the other end's receiver on a later
turn of the loop (never re-entrantly), batched, in order, with the same flow
control as a socket: a reader that pauses makes the writer's ``drain`` wait.
No sockets, no threads.
"""

from __future__ import annotations

import asyncio

from .base import HIGH_WATER, Transport


class PipeTransport(Transport):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.description = f"pipe {name}"
        self.other: PipeTransport | None = None
        self._loop = asyncio.get_running_loop()
        self._inbox: list[bytes] = []  # bytes written by the other end, not yet delivered
        self._inbox_size = 0
        self._scheduled = False
        self._paused = False
        self._closing = False

    def write(self, header: bytes, payload: bytes = b"") -> None:
        other = self.other
        if self._closing or other is None or other._closing:
            return  # like a socket that has gone away: the bytes are lost
        other._inbox.append(header)
        other._inbox_size += len(header)
        if payload:
            other._inbox.append(payload)
            other._inbox_size += len(payload)
        if other._inbox_size > HIGH_WATER:
            self.mark_backlogged()
        other._schedule()

    def write_buffer_size(self) -> int:
        return self.other._inbox_size if self.other else 0

    def _schedule(self) -> None:
        if not self._scheduled and not self._paused:
            self._scheduled = True
            self._loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        self._scheduled = False
        if self._paused or self._closing or not self._inbox:
            return
        chunks, self._inbox, self._inbox_size = self._inbox, [], 0
        if self.other is not None:
            self.other.mark_writable()
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.receiver is not None:
            self.receiver.data_received(data)
        if self._eof_pending and not self._inbox:
            self._finish()

    _eof_pending = False

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if self._inbox:
                self._schedule()
            elif self._eof_pending:
                self._finish()

    def close(self) -> None:
        """Deliver what we wrote, then the other end sees the connection end."""
        if self._closing:
            return
        self._closing = True
        self._inbox.clear()
        self._inbox_size = 0
        other = self.other
        if other is not None:
            # What the other end queued for us is gone, as a socket's is: its
            # writers stop waiting (and so may a reader that held back for them).
            other.mark_writable()
        if other is not None and not other._closing:
            other._eof_pending = True
            if not other._inbox and not other._paused:
                self._loop.call_soon(other._finish)
        self._loop.call_soon(self._set_closed, None)

    def abort(self) -> None:
        """Drop the connection: nothing queued on either side is delivered."""
        other = self.other
        if other is not None:
            other._inbox.clear()
            other._inbox_size = 0
        self.close()

    def _finish(self) -> None:
        self._eof_pending = False
        self._closing = True
        self._set_closed(None)


def pipe_transports() -> tuple[PipeTransport, PipeTransport]:
    """Two connected transports; what ``a`` writes, ``b``'s receiver gets."""
    a, b = PipeTransport("a"), PipeTransport("b")
    a.other, b.other = b, a
    return a, b

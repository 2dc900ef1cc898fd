"""Streams of parts between a peer and user code, with flow control.

``PartQueue`` carries parts from the connection to user code; when user code
falls behind, it pauses reading on the connection so that a fast sender cannot
make us buffer without bound. ``InboundStream`` runs a stream handler for a
request from the other side; ``StreamRequestHandle`` is what the user holds for
a stream request of ours. Only the peer writes messages: these ask it through
the public methods named in ``StreamHost``, and never keep protocol state.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, AsyncIterator, Protocol

from .errors import error_text
from .handlers import json_payload, json_value, to_payload
from .wire import ErrorResult, Message, StreamResult

if TYPE_CHECKING:
    from .handlers import Operation

_END = object()


class StreamHost(Protocol):
    """What a stream needs from the peer that carries it (``Peer`` is one)."""

    @property
    def is_open(self) -> bool: ...

    def write(self, message: Message) -> None:
        """Write one message now (traced like every other)."""

    async def drain(self) -> None:
        """Wait while too much is queued for the other side."""

    def pause_reading(self, queue: object) -> None:
        """``queue`` is full: stop reading until ``resume_reading(queue)``."""

    def resume_reading(self, queue: object) -> None: ...

    def send_stream_part(self, request_id: bytes, payload: bytes) -> None:
        """Write the next part of our stream request ``request_id``."""

    def end_stream_request(self, request_id: bytes) -> None:
        """Write the end of our stream request, unless it has ended."""

    def forget_request(self, request_id: bytes) -> None:
        """Stop waiting for the answer to a request of ours."""

    def stream_answered(self, stream: "InboundStream") -> None:
        """Their stream request has its whole answer: forget it."""


class PartQueue:
    """Parts in arrival order, then an end or an error."""

    def __init__(self, peer: StreamHost, limit: int) -> None:
        self._peer = peer
        self._limit = max(1, limit)
        self._parts: deque = deque()
        self._ready = asyncio.Event()
        self._paused = False
        self.done = False
        self.discard = False  #: the reader went away: drop further parts

    def put(self, part: bytes) -> None:
        if self.done or self.discard:
            return
        self._parts.append(part)
        self._ready.set()
        if len(self._parts) >= self._limit and not self._paused:
            self._paused = True
            self._peer.pause_reading(self)

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self._parts.append(_END)
            self._ready.set()

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.done = True
            self._parts.append(error)
            self._ready.set()
        self._unpause()

    def stop_reading(self) -> None:
        """Nobody will read further parts: drop them, and never keep the connection paused for them."""
        self.discard = True
        self._unpause()

    def _unpause(self) -> None:
        if self._paused:
            self._paused = False
            self._peer.resume_reading(self)

    async def get(self):
        """The next part; ``_END`` at the end; raises the error it failed with."""
        while not self._parts:
            self._ready.clear()
            await self._ready.wait()
        item = self._parts.popleft()
        if self._paused and len(self._parts) <= self._limit // 2:
            self._unpause()
        if item is _END:
            self._parts.appendleft(_END)  # stays ended for later readers
            return _END
        if isinstance(item, BaseException):
            self._parts.appendleft(item)
            raise item
        return item

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            item = await self.get()
            if item is _END:
                return
            yield item


class InboundStream(PartQueue):
    """A stream request from the other side, served by a stream handler."""

    def __init__(self, peer: StreamHost, request_id: bytes, limit: int) -> None:
        super().__init__(peer, limit)
        self.request_id = request_id

    async def run(self, operation: "Operation") -> None:
        peer, request_id = self._peer, self.request_id
        parts: AsyncIterator[Any] = self.__aiter__()
        if operation.json:
            parts = _json_parts(parts)
        results = None
        try:
            results = operation.invoke(parts, peer)
            async for result in results:
                payload = operation.answer_payload(result)
                if payload:  # an empty part would end the stream early
                    peer.write(StreamResult(request_id, payload))
                    await peer.drain()
            peer.write(StreamResult(request_id, b""))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            peer.write(ErrorResult(request_id, error_text(error)))
        finally:
            self.stop_reading()
            peer.stream_answered(self)
            if results is not None:
                await results.aclose()


async def _json_parts(parts: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    async for part in parts:
        yield json_value(part)


class StreamRequestHandle:
    """A stream request of ours: send parts, end, and read the result parts.

    Use as ``async with peer.stream_request("upper-stream") as s:``; leaving the
    block ends the request stream if you have not (even when leaving by an
    exception), and result parts not read by then are dropped.
    """

    def __init__(self, peer: StreamHost, request_id: bytes, operation: str, results: PartQueue) -> None:
        self.peer = peer
        self.request_id = request_id
        self.operation = operation
        self.results = results
        self.started = False
        self.ended = False

    async def send(self, part: bytes | str) -> None:
        """Send one request part (the first travels in the ``s`` message)."""
        self.peer.send_stream_part(self.request_id, to_payload(part))
        if not self.started:
            self.started = True
            # An empty first part ends the request stream there (the other side
            # answers at once): no end-of-stream part may follow it.
            self.ended = not to_payload(part)
        await self.peer.drain()

    async def send_json(self, value: Any) -> None:
        await self.send(json_payload(value))

    async def end(self) -> None:
        """End the request stream (an empty ``p``); results may still follow."""
        if self.ended:
            return
        if not self.started:
            await self.send(b"")  # the empty first part is the end itself
            return
        self.ended = True
        if self.peer.is_open:
            self.peer.end_stream_request(self.request_id)
            await self.peer.drain()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.results.__aiter__()

    async def collect(self) -> list[bytes]:
        """Every result part until the end."""
        return [part async for part in self]

    async def __aenter__(self) -> "StreamRequestHandle":
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if self.peer.is_open and not self.ended:
            if exc_type is None:
                await self.end()
            elif self.started:
                # User code failed mid-stream: still end the request stream, so
                # that the other side's handler finishes and answers. No waiting
                # here: the block may be leaving because it was cancelled.
                self.ended = True
                self.peer.end_stream_request(self.request_id)
            else:
                self.peer.forget_request(self.request_id)  # nothing was sent: nothing to end
        # Nobody reads the results after the block: drop what is left and
        # never keep the connection paused on their account.
        self.results.stop_reading()

    def __repr__(self) -> str:
        state = "ended" if self.ended else ("open" if self.started else "not started")
        return f"<StreamRequest {self.operation} id={self.request_id!r} {state}>"

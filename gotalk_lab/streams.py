"""Streams of parts between a peer and user code, with flow control.

``PartQueue`` carries parts from the connection to user code; when user code
falls behind, it pauses reading on the connection so that a fast sender cannot
make us buffer without bound. ``InboundStream`` runs a stream handler for a
request from the other side; ``StreamRequestHandle`` is what the user holds for
a stream request of ours. Only the peer sends messages; these call it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any, AsyncIterator

from .handlers import json_payload, json_value, to_payload
from .wire import ErrorResult, StreamRequest, StreamRequestPart, StreamResult

if TYPE_CHECKING:
    from .handlers import Operation
    from .peer import Peer

_END = object()


class PartQueue:
    """Parts in arrival order, then an end or an error."""

    def __init__(self, peer: "Peer", limit: int) -> None:
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
            self._peer._pause_reading(self)

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

    def _unpause(self) -> None:
        if self._paused:
            self._paused = False
            self._peer._resume_reading(self)

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

    def __init__(self, peer: "Peer", request_id: bytes, limit: int) -> None:
        super().__init__(peer, limit)
        self.request_id = request_id

    async def run(self, operation: "Operation") -> None:
        peer, request_id = self._peer, self.request_id
        parts: AsyncIterator[Any] = self.__aiter__()
        if operation.json:
            parts = _json_parts(parts)
        results = None
        try:
            results = operation.function(parts, peer) if operation.wants_peer else operation.function(parts)
            async for result in results:
                payload = json_payload(result) if operation.json else to_payload(result)
                if payload:  # an empty part would end the stream early
                    peer._send(StreamResult(request_id, payload))
                    await peer._drain()
            peer._send(StreamResult(request_id, b""))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            from .peer import _error_text

            peer._send(ErrorResult(request_id, _error_text(error)))
        finally:
            self.discard = True
            self._unpause()
            peer._stream_done(self)
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

    def __init__(self, peer: "Peer", request_id: bytes, operation: str, results: PartQueue) -> None:
        self.peer = peer
        self.request_id = request_id
        self.operation = operation
        self.results = results
        self.started = False
        self.ended = False
        # Parts sent before any answer: replayed if the other side asks us to retry.
        self._unanswered: list[bytes] | None = []

    async def send(self, part: bytes | str) -> None:
        """Send one request part (the first travels in the ``s`` message)."""
        payload = to_payload(part)
        if self.ended:
            raise ValueError("this stream request has already ended")
        if not payload and self.started:
            raise ValueError("an empty part would end the stream: call end() instead")
        self.peer._check_open()
        if self._unanswered is not None:
            self._unanswered.append(payload)
        self.peer._send(self._part_message(payload))
        if not payload:
            # An empty first part ends the request stream there (the other side
            # answers at once): no end-of-stream part may follow it.
            self.ended = True
        self.started = True
        await self.peer._drain()

    async def send_json(self, value: Any) -> None:
        await self.send(json_payload(value))

    def _part_message(self, payload: bytes):
        if not self.started:
            return StreamRequest(self.request_id, self.operation, payload)
        return StreamRequestPart(self.request_id, payload)

    async def end(self) -> None:
        """End the request stream (an empty ``p``); results may still follow."""
        if self.ended:
            return
        if not self.started:
            await self.send(b"")  # the empty first part is the end itself
            return
        self.ended = True
        if self.peer.is_open:
            self.peer._send(StreamRequestPart(self.request_id, b""))
            await self.peer._drain()

    def answered(self) -> None:
        """The other side took the stream: nothing will need replaying."""
        self._unanswered = None

    def resend(self, peer: "Peer") -> None:
        """Replay the stream after a RetryResult: ``s``, the parts so far, the end."""
        parts = self._unanswered or [b""]
        peer._send(StreamRequest(self.request_id, self.operation, parts[0]))
        for part in parts[1:]:
            peer._send(StreamRequestPart(self.request_id, part))
        if self.ended and parts[0]:  # an empty first part was the end already
            peer._send(StreamRequestPart(self.request_id, b""))

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
                self.peer._send(StreamRequestPart(self.request_id, b""))
            else:
                self.peer._forget_request(self.request_id)  # nothing was sent: nothing to end
        # Nobody reads the results after the block: drop what is left and
        # never keep the connection paused on their account.
        self.results.discard = True
        self.results._unpause()

    def __repr__(self) -> str:
        state = "ended" if self.ended else ("open" if self.started else "not started")
        return f"<StreamRequest {self.operation} id={self.request_id!r} {state}>"

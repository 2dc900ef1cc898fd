"""An asyncio Gotalk peer: either side may request, answer, stream and notify.

The peer owns one connection's protocol state: the handshake, requests in flight
(matched by ID, in any order), streams, limits, heartbeats, the read timeout and
the trace. Bytes come in through ``data_received`` and go out through a
transport's ``write``; the codec does all parsing and framing. Every request ends
in exactly one outcome, and closing fails everything still pending with a clear
error. Errors reach the wire (``f`` messages, closes) only in ``_fail``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from typing import Any, AsyncIterator

from .decoder import DEFAULT_MAX_PAYLOAD_SIZE, Decoder
from .errors import GotalkError, ProtocolViolation
from .handlers import SINGLE, Handlers, Operation, json_payload, json_value, to_payload
from .streams import InboundStream, PartQueue, StreamRequestHandle
from .trace import IN, OUT, Trace
from .transports.base import DIRECT_WRITE_SIZE, HIGH_WATER, Transport
from .wire import (
    MAX_UINT32,
    VERSION_BYTES,
    ErrorResult,
    Heartbeat,
    Message,
    Notification,
    ProtocolError,
    ProtocolErrorCode,
    ProtocolVersion,
    RetryResult,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
    encode_header,
    encode_id_size_header,
)

log = logging.getLogger(__name__)

#: Text of the RetryResult sent when too many requests run at once (as the Go peer writes it).
RATE_LIMIT_TEXT = b"request rate limit"
STREAMS_DISABLED_TEXT = b"stream requests not supported"
#: Seconds ``close`` waits for queued bytes to go out before dropping the
#: connection. Gotalk has no closing handshake: what is still queued then is
#: best effort, like the rest of a connection that is going away.
CLOSE_TIMEOUT = 2.0


class RequestError(GotalkError):
    """The other side answered with an ErrorResult; ``text`` is its payload."""

    def __init__(self, operation: str, payload: bytes) -> None:
        self.operation = operation
        self.payload = payload
        self.text = payload.decode("utf-8", "replace")
        super().__init__(f"{operation}: {self.text}")


class RetryExhausted(RequestError):
    """The other side kept answering RetryResult; we gave up after ``attempts``."""

    def __init__(self, operation: str, payload: bytes, attempts: int) -> None:
        super().__init__(operation, payload)
        self.attempts = attempts
        self.args = (f"{operation}: gave up after {attempts} retries ({self.text})",)


class HandlerTimeout(GotalkError):
    """A handler of ours ran past ``handler_timeout``; its text is what the other side is told."""


class ConnectionClosed(GotalkError):
    """The connection ended before this could finish; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class PeerState(enum.Enum):
    HANDSHAKE = "handshake"  #: our version is written; the other side's is not read yet
    OPEN = "open"  #: versions agreed; messages flow both ways
    CLOSED = "closed"  #: the connection is over; every pending call has failed


#: Allowed state changes (anything else is a bug in the peer).
TRANSITIONS = {
    PeerState.HANDSHAKE: {PeerState.OPEN, PeerState.CLOSED},
    PeerState.OPEN: {PeerState.CLOSED},
    PeerState.CLOSED: set(),
}

ID_ALPHABET = b"0123456789abcdefghijklmnopqrstuvwxyz"
#: Every pair of base-36 digits, "00" to "zz": a text request ID is two of them.
ID_PAIRS = tuple(bytes((high, low)) for high in ID_ALPHABET for low in ID_ALPHABET)


class _Pending:
    """A request we sent and still wait for."""

    __slots__ = ("operation", "future", "message", "attempts", "stream", "parts")

    def __init__(self, operation: str, future: asyncio.Future | None, message: Message, stream: StreamRequestHandle | None = None) -> None:
        self.operation = operation
        self.future = future  #: a single request's outcome
        self.message = message  #: what to send again on a RetryResult
        self.attempts = 0
        self.stream = stream  #: a stream request's handle (results arrive in its queue)
        self.parts: list[bytes] = []  #: a streaming answer to a single request, so far


class Peer:
    """One end of a Gotalk connection. Create with ``pipe()``, ``connect()`` or ``serve()``.

    Options: ``max_payload_size`` (larger payloads: f00000002 and close);
    ``max_requests`` / ``max_streams`` (single requests and streams handled at
    once, an answer still waiting to be written included; over the limit the
    other side gets a RetryResult; ``max_streams=0`` refuses streams);
    ``retry_wait`` (min, max) ms for those RetryResults (min equal to max, and
    0, are fine); ``read_timeout`` seconds (f00000003 and close): also how a
    peer whose heartbeats stop is found out; ``heartbeat_interval`` seconds;
    ``handler_timeout`` seconds an async single-result handler may take before
    it is cancelled and the other side gets ErrorResult "handler timed out
    after N s" (None: no limit; stream handlers are not timed);
    ``max_retries`` of our requests on RetryResult; ``trace`` (a
    ``Trace``, ``True`` for a new one, ``False`` for none); ``request_ids``:
    "text" (4 base-36 digits, like gotalk.js) or "binary" (a little-endian
    counter, like the Go peer).
    """

    def __init__(
        self,
        handlers: Handlers | None = None,
        *,
        name: str = "peer",
        max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
        max_requests: int | None = 256,
        max_streams: int | None = 64,
        retry_wait: tuple[int, int] = (100, 100),
        read_timeout: float | None = None,
        heartbeat_interval: float | None = None,
        handler_timeout: float | None = None,
        max_retries: int = 5,
        trace: Trace | bool = True,
        request_ids: str = "text",
        stream_buffer: int = 64,
    ) -> None:
        self.name = name
        self.handlers = handlers if handlers is not None else Handlers()
        self.max_payload_size = max_payload_size
        self.max_requests = max_requests
        self.max_streams = max_streams
        self.retry_wait = (min(retry_wait), max(retry_wait))
        if self.retry_wait[0] < 0 or self.retry_wait[1] > MAX_UINT32:
            # Checked here: a wait that cannot be written would fail while answering, mid-read.
            raise ValueError(f"retry_wait must be within 0..{MAX_UINT32} ms, got {retry_wait!r}")
        if handler_timeout is not None and handler_timeout <= 0:
            raise ValueError(f"handler_timeout must be a positive number of seconds or None, got {handler_timeout!r}")
        self.handler_timeout = handler_timeout
        self.read_timeout = read_timeout
        self.heartbeat_interval = heartbeat_interval
        self.max_retries = max_retries
        self.stream_buffer = stream_buffer
        # Not ``trace or None``: an empty Trace is falsy (it has a length).
        self.trace: Trace | None = Trace() if trace is True else (None if trace is False or trace is None else trace)
        self.request_ids = request_ids
        self.state = PeerState.HANDSHAKE
        #: Why the connection ended (None while open).
        self.close_reason: str | None = None
        #: The last heartbeat received, and when (monotonic seconds).
        self.last_heartbeat: Heartbeat | None = None
        self.last_heartbeat_at: float | None = None
        self._heartbeat_listeners: list = []
        self._loop = asyncio.get_running_loop()
        self._decoder = Decoder(expect_version=True, max_payload_size=max_payload_size)
        self._transport: Transport | None = None
        self.handshake: asyncio.Future = self._loop.create_future()
        self._closed: asyncio.Future = self._loop.create_future()
        self._pending: dict[bytes, _Pending] = {}  # our requests in flight, by ID
        self._serving: dict[bytes, asyncio.Future | None] = {}  # their single requests we run
        self._inbound_streams: dict[bytes, InboundStream] = {}  # their stream requests we run
        self._tasks: set[asyncio.Future] = set()
        self._next_id = 0
        self._last_read = time.monotonic()
        # Timers by purpose: "read", "heartbeat", or the request ID of a retry. One
        # each, replaced when rescheduled, so a long-lived connection piles none up.
        self._timers: dict[object, asyncio.TimerHandle] = {}
        self._drop_timer: asyncio.TimerHandle | None = None  # see _fail
        self._refused_streams: set[bytes] = set()  # stream IDs we refused: their parts are dropped
        self._paused_by: set[int] = set()  # part queues that asked us to stop reading
        self._sync = None

    # -- connection lifecycle -------------------------------------------------

    def attach(self, transport: Transport) -> "Peer":
        """Start speaking on ``transport``: write our version, then read theirs."""
        self._transport = transport
        self._send(ProtocolVersion())
        transport.attach(self)
        if self.read_timeout:
            self._timers["read"] = self._loop.call_later(self.read_timeout, self._check_read_timeout)
        if self.heartbeat_interval:
            self._send_heartbeat()
        return self

    @property
    def transport(self) -> Transport | None:
        return self._transport

    @property
    def is_open(self) -> bool:
        return self.state is not PeerState.CLOSED

    def _set_state(self, state: PeerState) -> None:
        if state is not self.state:
            assert state in TRANSITIONS[self.state], f"{self.state} -> {state}"
            self.state = state

    def data_received(self, data: bytes) -> None:
        """Bytes from the transport (any chunking)."""
        if self.state is PeerState.CLOSED:
            return
        self._last_read = time.monotonic()
        # Without a trace nothing needs the header bytes: bare messages, no Frame each.
        traced = self.trace is not None
        violation = None
        try:
            received = self._decoder.feed_frames(data) if traced else self._decoder.feed(data)
        except ProtocolViolation as error:
            received, violation = error.messages, error
        if not self._receive_batch(received, traced):
            return
        if violation is not None:
            self._fail(f"invalid input from the other side: {violation}", send_code=violation.code, cause=violation)

    def _receive_batch(self, received: list, traced: bool) -> bool:
        """Act on what one chunk of input completed (``Frame``s when ``traced``): the hot path.

        A single request for a plain operation (``function(payload)``, see
        ``Operation.plain``) is answered right here, and the answers to one chunk
        of input are joined into one write; everything else goes through
        ``_receive``, after the answers before it are written, so that the order
        on the wire is the order of the requests. Traced, each request and its
        answer are noted in the trace as they are read and made. False if a
        message closed us.
        """
        closed = PeerState.CLOSED
        operations = self.handlers.operations
        serving, streams = self._serving, self._inbound_streams
        limit = self.max_requests
        transport = self._transport
        note = self.trace.add if traced else None
        joined = transport.joins_frames
        answers: list[bytes] = []
        size = 0
        header = None
        for message in received:
            if traced:
                header, message = message.header, message.message
            if type(message) is SingleRequest:
                operation = operations.get(message.operation)
                request_id = message.request_id
                if (
                    operation is not None
                    and operation.plain
                    and request_id not in serving
                    and request_id not in streams
                    and (limit is None or len(serving) < limit)
                    and not transport.write_backlogged
                ):
                    if traced:
                        note(IN, header, message)
                    try:
                        result = operation.function(message.payload)
                        if type(result) is not bytes:
                            result = to_payload(result)
                        cls = SingleResult
                    except Exception as error:
                        result, cls = _error_text(error), ErrorResult
                    if self.state is closed:
                        return False  # (the handler closed the connection: nothing more is written)
                    if not joined or len(result) >= DIRECT_WRITE_SIZE:  # written as it is, not joined
                        if answers:
                            transport.write(b"".join(answers))
                            answers, size = [], 0
                        self._answer(cls, request_id, result)
                        continue
                    answer = b"%s%s%08x" % (cls.TYPE, request_id, len(result))
                    if traced:
                        note(OUT, answer, cls(request_id, result))
                    answers.append(answer)
                    answers.append(result)
                    size += len(result) + 13
                    if size >= HIGH_WATER:
                        transport.write(b"".join(answers))  # may make the transport backlogged
                        answers, size = [], 0
                    continue
            if answers:
                transport.write(b"".join(answers))
                answers, size = [], 0
            self._receive(header, message)
            if self.state is closed:
                return False  # (a message closed us: what follows it, even a violation, is not acted on)
        if answers:
            transport.write(b"".join(answers))
        return True

    def input_refused(self, reason: str) -> None:
        """The transport refused received bytes before passing them on (a WebSocket
        message over its size limit): answered like any invalid input, f00000002 and close."""
        if self.state is not PeerState.CLOSED:
            self._fail(f"invalid input from the other side: {reason}", send_code=ProtocolErrorCode.INVALID)

    def connection_lost(self, error: BaseException | None) -> None:
        if self._drop_timer is not None:  # gone by itself: nothing left to drop
            self._drop_timer.cancel()
            self._drop_timer = None
        if self.state is not PeerState.CLOSED:
            detail = f": {error}" if error else ""
            self._fail(f"connection closed by the other side{detail}", cause=error)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close the connection; every pending call fails with ``ConnectionClosed``.

        What is already queued may go out for ``timeout`` seconds; then the
        connection is dropped, so that a peer that never reads cannot make
        closing hang.
        """
        self._fail("closed by this side")
        if self._transport is None:
            return
        try:
            await asyncio.wait_for(self._transport.wait_closed(), timeout)
        except asyncio.TimeoutError:
            self._transport.abort()
            await self._transport.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection has ended (for any reason)."""
        await asyncio.shield(self._closed)

    def _fail(self, reason: str, *, send_code: int | None = None, cause: BaseException | None = None, abort: bool = False) -> None:
        """End the connection: optionally tell the other side why (an ``f``), then clean up."""
        if self.state is PeerState.CLOSED:
            return
        if send_code is not None:
            self._send(ProtocolError(send_code))
        self._set_state(PeerState.CLOSED)
        self.close_reason = reason
        error = ConnectionClosed(reason)
        error.__cause__ = cause
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        pending, self._pending = self._pending, {}
        for request in pending.values():
            if request.future is not None and not request.future.done():
                request.future.set_exception(error)
            if request.stream is not None:
                request.stream.results.fail(error)
        for stream in self._inbound_streams.values():
            stream.fail(error)
        self._inbound_streams.clear()
        self._serving.clear()
        self._refused_streams.clear()
        self._paused_by.clear()
        for task in list(self._tasks):
            task.cancel()
        if not self.handshake.done():
            self.handshake.set_exception(error)
            self.handshake.exception()  # retrieved: nobody may be waiting for it
        if self.trace is not None:
            self.trace.close_open_exchanges()
        if self._transport is not None:
            if abort:
                self._transport.abort()
            else:
                self._transport.close()
                # However the connection ends (an f we sent, a read timeout, close()),
                # what is queued gets CLOSE_TIMEOUT to go out; then it is dropped, so
                # that a side that never reads cannot hold the socket open.
                self._drop_timer = self._loop.call_later(CLOSE_TIMEOUT, self._drop_if_still_open)
        if not self._closed.done():
            self._closed.set_result(reason)

    def _drop_if_still_open(self) -> None:
        self._drop_timer = None
        if not self._transport.is_closing:
            log.debug("%s: closed %s s ago and still not gone: dropping it", self.name, CLOSE_TIMEOUT)
            self._transport.abort()

    def _check_read_timeout(self) -> None:
        if self.state is PeerState.CLOSED:
            return
        if self._paused_by:
            # We stopped reading ourselves (a reader of ours is behind): the
            # connection is not idle. Count again from when reading resumes.
            self._last_read = time.monotonic()
        idle = time.monotonic() - self._last_read
        if idle >= self.read_timeout:
            self._fail(f"nothing read for {self.read_timeout:g} s (read timeout)", send_code=ProtocolErrorCode.TIMEOUT)
        else:
            self._timers["read"] = self._loop.call_later(self.read_timeout - idle, self._check_read_timeout)

    # -- writing --------------------------------------------------------------

    def _send(self, message: Message) -> None:
        header = encode_header(message)
        if self.trace is not None:
            self.trace.add(OUT, header, message)
        if self._transport is not None:
            self._transport.write(header, getattr(message, "payload", b""))

    def _answer(self, cls: type, request_id: bytes, payload: bytes) -> None:
        """Send a SingleResult, StreamResult or ErrorResult: a server's hot path.

        The message object is made only when the trace records it; otherwise
        the header is written straight from the fields.
        """
        if self.trace is not None:
            self._send(cls(request_id, payload))
        elif self._transport is not None:
            self._transport.write(encode_id_size_header(cls.TYPE, request_id, payload), payload)

    async def _drain(self) -> None:
        if self._transport is not None:
            await self._transport.drain()

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are, bypassing the encoder (for malformed-message experiments).

        The trace records the leading whole frames that decode; malformed or
        incomplete bytes are written but cannot be shown as a message.
        """
        self._check_open()
        if self.trace is not None:
            decoder = Decoder(expect_version=False, max_payload_size=max(len(data), 1))
            try:
                frames = decoder.feed_frames(data)
            except ProtocolViolation as violation:
                frames = violation.messages
            for frame in frames:
                self.trace.record(OUT, frame.header, frame.message)
        self._transport.write(bytes(data))
        await self._drain()

    def _pause_reading(self, queue: object) -> None:
        """A part queue is full: stop reading until its reader catches up."""
        if not self._paused_by and self._transport is not None:
            self._transport.pause_reading()
        self._paused_by.add(id(queue))

    def _resume_reading(self, queue: object) -> None:
        was_paused = bool(self._paused_by)
        self._paused_by.discard(id(queue))
        if was_paused and not self._paused_by and self._transport is not None and self.state is not PeerState.CLOSED:
            self._last_read = time.monotonic()  # the read timeout counts from here, not from the pause
            self._transport.resume_reading()

    def _check_open(self) -> None:
        if self.state is PeerState.CLOSED:
            raise ConnectionClosed(self.close_reason or "connection closed")
        if self._transport is None:
            raise GotalkError("this peer is not attached to a connection")

    def _forget_request(self, request_id: bytes) -> None:
        """Stop waiting for the answer to a request that was never sent."""
        self._pending.pop(request_id, None)

    def _new_request_id(self) -> bytes:
        for _ in range(0x10000):
            counter = self._next_id
            self._next_id = (counter + 1) & 0xFFFFFFFF
            if self.request_ids == "binary":
                request_id = counter.to_bytes(4, "little")
            else:
                counter %= 36**4
                request_id = ID_PAIRS[counter // 36**2] + ID_PAIRS[counter % 36**2]
            if request_id not in self._pending:
                return request_id
        raise GotalkError("no free request ID: too many requests in flight")

    # -- requesting -----------------------------------------------------------

    async def request_bytes(self, operation: str, payload: bytes | str = b"", *, timeout: float | None = None) -> bytes:
        """Send a single request; return the result payload.

        Raises ``RequestError`` for an ErrorResult, ``RetryExhausted`` when the
        other side stays busy, ``ConnectionClosed`` if the connection ends first.
        """
        self._check_open()
        request_id = self._new_request_id()
        message = SingleRequest(request_id, operation, to_payload(payload))
        future = self._loop.create_future()
        self._pending[request_id] = _Pending(operation, future, message)
        try:
            self._send(message)
            if self._transport.write_backlogged:
                await self._drain()
            if timeout is None:
                return await future
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            if not future.done() or future.cancelled():
                self._pending.pop(request_id, None)

    async def request(self, operation: str, value: Any = None, *, timeout: float | None = None) -> Any:
        """Send a JSON value; return the result decoded from JSON."""
        payload = await self.request_bytes(operation, json_payload(value), timeout=timeout)
        return json_value(payload)

    def stream_request(self, operation: str) -> StreamRequestHandle:
        """Open a stream request: ``async with peer.stream_request(op) as s``.

        ``await s.send(part)`` sends parts (the first goes in the ``s`` message),
        ``await s.end()`` ends the request stream, ``async for part in s`` reads
        the streaming result until its end.
        """
        self._check_open()
        request_id = self._new_request_id()
        handle = StreamRequestHandle(self, request_id, operation, PartQueue(self, self.stream_buffer))
        self._pending[request_id] = _Pending(operation, None, StreamRequest(request_id, operation), handle)
        return handle

    async def notify(self, name: str, value: Any = None) -> None:
        """Send a notification with a JSON value (never answered)."""
        await self.notify_bytes(name, json_payload(value))

    async def notify_bytes(self, name: str, payload: bytes | str = b"") -> None:
        self._check_open()
        self._send(Notification(name, to_payload(payload)))
        await self._drain()

    async def send_heartbeat(self, load: int | None = None) -> None:
        """Send one heartbeat now (with our load, 0..0xffff, and Unix time)."""
        self._check_open()
        self._send(Heartbeat(self.load if load is None else load, int(time.time()) & 0xFFFFFFFF))
        await self._drain()

    def _send_heartbeat(self) -> None:
        if self.state is PeerState.CLOSED:
            return
        self._send(Heartbeat(self.load, int(time.time()) & 0xFFFFFFFF))
        self._timers["heartbeat"] = self._loop.call_later(self.heartbeat_interval, self._send_heartbeat)

    @property
    def load(self) -> int:
        """Our load for heartbeats: the share of the request limit in use, 0..0xffff."""
        if not self.max_requests:
            return 0
        return min(0xFFFF, len(self._serving) * 0xFFFF // self.max_requests)

    def on_heartbeat(self, listener) -> None:
        """Call ``listener(heartbeat)`` for every heartbeat received."""
        self._heartbeat_listeners.append(listener)

    # -- receiving ------------------------------------------------------------

    def _receive(self, header: bytes, message: Message) -> None:
        if self.trace is not None:
            self.trace.add(IN, header, message)
        cls = type(message)
        if cls is SingleRequest:
            self._on_single_request(message)
        elif cls is SingleResult or cls is ErrorResult or cls is StreamResult or cls is RetryResult:
            self._on_result(message)
        elif cls is StreamRequest:
            self._on_stream_request(message)
        elif cls is StreamRequestPart:
            self._on_stream_part(message)
        elif cls is Notification:
            self._on_notification(message)
        elif cls is Heartbeat:
            self.last_heartbeat, self.last_heartbeat_at = message, time.monotonic()
            for listener in self._heartbeat_listeners:
                self._call_listener(listener, message)
        elif cls is ProtocolVersion:
            self._set_state(PeerState.OPEN)
            if not self.handshake.done():
                self.handshake.set_result(message.version)
        elif cls is ProtocolError:
            self._fail(f"the other side reported a protocol error: f{message.code:08x} ({message.meaning})")

    def _on_result(self, message) -> None:
        request = self._pending.get(message.request_id)
        if request is None:
            return  # an answer to nothing we asked (or asked and gave up on): ignored, but traced
        cls = type(message)
        if cls is RetryResult:
            self._retry(request, message)
            return
        if request.stream is not None:
            request.stream.answered()
            results = request.stream.results
            if cls is StreamResult:
                if message.payload:
                    results.put(message.payload)
                    return
                results.finish()
            elif cls is SingleResult:  # a single answer to a stream request: one part
                results.put(message.payload)
                results.finish()
            else:
                results.fail(RequestError(request.operation, message.payload))
            del self._pending[message.request_id]
            return
        if cls is StreamResult and message.payload:
            request.parts.append(message.payload)  # a streaming answer to a single request
            return
        del self._pending[message.request_id]
        future = request.future
        if future.done():
            return
        if cls is SingleResult:
            future.set_result(message.payload)
        elif cls is StreamResult:
            future.set_result(b"".join(request.parts))
        else:
            future.set_exception(RequestError(request.operation, message.payload))

    def _retry(self, request: _Pending, message: RetryResult) -> None:
        request.attempts += 1
        if request.attempts > self.max_retries:
            del self._pending[message.request_id]
            error = RetryExhausted(request.operation, message.payload, request.attempts - 1)
            if request.future is not None and not request.future.done():
                request.future.set_exception(error)
            if request.stream is not None:
                request.stream.results.fail(error)
            return
        # The wait is a floor: the responder asked us not to come back sooner.
        self._timers[message.request_id] = self._loop.call_later(message.wait / 1000, self._resend, message.request_id, request)

    def _resend(self, request_id: bytes, request: _Pending) -> None:
        self._timers.pop(request_id, None)
        if self.state is PeerState.CLOSED or self._pending.get(request_id) is not request:
            return
        if request.stream is not None:
            request.stream.resend(self)
        else:
            self._send(request.message)

    def _on_single_request(self, message: SingleRequest) -> None:
        request_id = message.request_id
        if request_id in self._serving or request_id in self._inbound_streams:
            self._duplicate_id(request_id)
            return
        operation = self.handlers.operations.get(message.operation)
        if operation is None:
            self._send(ErrorResult(request_id, f'unknown operation "{message.operation}"'.encode()))
            return
        if operation.kind != SINGLE:
            stream = self._open_inbound_stream(message, operation)
            if stream is not None:
                stream.put(message.payload)
                stream.finish()
            return
        if self.max_requests is not None and len(self._serving) >= self.max_requests:
            self._send_retry(request_id)
            return
        if not operation.is_async and not self._transport.write_backlogged:
            # Plain functions run inline: no task, no extra turn of the loop.
            try:
                result = self._call(operation, message.payload)
            except Exception as error:
                self._answer(ErrorResult, request_id, _error_text(error))
            else:
                self._answer(SingleResult, request_id, result)
            return
        # An async handler, or a plain one whose answer could not be written now.
        self._serving[request_id] = None
        task = self._loop.create_task(self._run_handler(operation, request_id, message.payload))
        self._serving[request_id] = task
        self._track(task)

    def _call(self, operation: Operation, payload: bytes):
        argument = json_value(payload) if operation.json else payload
        result = operation.function(argument, self) if operation.wants_peer else operation.function(argument)
        if operation.json:
            return json_payload(result)
        return result if type(result) is bytes else to_payload(result)  # bytes: no call, as they are

    async def _run_handler(self, operation: Operation, request_id: bytes, payload: bytes) -> None:
        try:
            argument = json_value(payload) if operation.json else payload
            function = operation.function
            result = function(argument, self) if operation.wants_peer else function(argument)
            if operation.is_async:
                result = await (result if self.handler_timeout is None else self._within_handler_timeout(result))
            reply: Message = SingleResult(request_id, json_payload(result) if operation.json else to_payload(result))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            reply = ErrorResult(request_id, _error_text(error))
        # The request keeps its slot until its answer can be written: a requester
        # that does not read its answers meets the request limit (RetryResults)
        # instead of filling our write buffer without bound.
        await self._drain()
        if self._serving.pop(request_id, None) is not None and self.state is not PeerState.CLOSED:
            self._send(reply)

    async def _within_handler_timeout(self, awaitable) -> Any:
        """A handler's result, if it comes within ``handler_timeout``; else cancel the handler and raise."""
        task = asyncio.ensure_future(awaitable)
        self._track(task)  # closing the connection cancels it too
        try:
            done, _ = await asyncio.wait((task,), timeout=self.handler_timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            raise HandlerTimeout(f"handler timed out after {self.handler_timeout:g} s")
        return task.result()

    def _send_retry(self, request_id: bytes) -> None:
        low, high = self.retry_wait
        wait = low if low == high else random.randint(low, high)
        self._send(RetryResult(request_id, wait, RATE_LIMIT_TEXT))

    def _duplicate_id(self, request_id: bytes) -> None:
        self._fail(
            f"the other side reused request ID {request_id!r} while it was still in flight",
            send_code=ProtocolErrorCode.INVALID,
        )

    def _on_stream_request(self, message: StreamRequest) -> None:
        request_id = message.request_id
        if request_id in self._serving or request_id in self._inbound_streams:
            self._duplicate_id(request_id)
            return
        operation = self.handlers.operations.get(message.operation)
        if operation is None:
            self._refuse_stream(request_id)
            self._send(ErrorResult(request_id, f'unknown operation "{message.operation}"'.encode()))
            return
        stream = self._open_inbound_stream(message, operation)
        if stream is None:
            self._refuse_stream(request_id)
            return
        self._refused_streams.discard(request_id)  # a retried stream, now accepted
        if message.payload:
            stream.put(message.payload)
        else:
            # An empty first part is already the end of the request stream, as
            # the Go peer reads it: the handler runs on no parts and answers now.
            stream.finish()

    def _refuse_stream(self, request_id: bytes) -> None:
        # The requester may already have sent more parts; they are dropped
        # quietly until its end-of-stream part, not treated as unknown streams.
        if len(self._refused_streams) < 4096:
            self._refused_streams.add(request_id)

    def _open_inbound_stream(self, message, operation: Operation) -> InboundStream | None:
        request_id = message.request_id
        # A single request to a stream operation runs as a stream too, so the
        # stream limits hold for it as well (else they could be walked around).
        if self.max_streams == 0:
            self._send(ErrorResult(request_id, STREAMS_DISABLED_TEXT))
            return None
        if type(message) is StreamRequest and operation.kind == SINGLE:
            self._send(ErrorResult(request_id, f'operation "{operation.name}" does not take stream requests'.encode()))
            return None
        if self.max_streams is not None and len(self._inbound_streams) >= self.max_streams:
            self._send_retry(request_id)
            return None
        stream = InboundStream(self, request_id, self.stream_buffer)
        self._inbound_streams[request_id] = stream
        task = self._loop.create_task(stream.run(operation))
        self._track(task)
        return stream

    def _on_stream_part(self, message: StreamRequestPart) -> None:
        stream = self._inbound_streams.get(message.request_id)
        if stream is None and message.request_id in self._refused_streams:
            if not message.payload:
                self._refused_streams.discard(message.request_id)
            return
        if stream is None:
            self._fail(
                f"the other side sent a stream part for request {message.request_id!r}, which is not an open stream",
                send_code=ProtocolErrorCode.INVALID,
            )
            return
        if message.payload:
            stream.put(message.payload)
        else:
            stream.finish()

    def _stream_done(self, stream: InboundStream) -> None:
        """A stream handler has answered: forget the stream."""
        if self._inbound_streams.get(stream.request_id) is stream:
            del self._inbound_streams[stream.request_id]
            if not stream.done:
                # Answered (or failed) before the requester's end-of-stream part:
                # its remaining parts are still on their way and must not be
                # taken for parts of an unknown stream.
                self._refuse_stream(stream.request_id)

    def _on_notification(self, message: Notification) -> None:
        for listener in self.handlers.notifications.get(message.name, ()):
            self._call_listener(listener, message.payload)
        for listener in self.handlers.any_notification:
            self._call_listener(listener, message.name, message.payload)

    def _call_listener(self, listener, *args) -> None:
        """Run a notification or heartbeat listener; never answered, errors only logged."""
        try:
            if len(args) == 1 and _takes_peer(listener):
                result = listener(*args, self)
            else:
                result = listener(*args)
            if asyncio.iscoroutine(result):
                self._track(self._loop.create_task(result))
        except Exception:
            log.exception("listener %r failed", listener)

    def _track(self, task: asyncio.Future) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("peer task failed", exc_info=task.exception())

    # -- conveniences ---------------------------------------------------------

    def handle(self, name: str, function=None, *, json: bool = False):
        """Register a single-result operation on this peer (see ``Handlers.handle``)."""
        return self.handlers.handle(name, function, json=json)

    def handle_stream(self, name: str, function=None, *, json: bool = False):
        return self.handlers.handle_stream(name, function, json=json)

    def on_notification(self, name: str | None = None, function=None):
        return self.handlers.on_notification(name, function)

    @property
    def sync(self):
        """Blocking versions of the request methods, for notebook cells and scripts."""
        if self._sync is None:
            from .sync import SyncPeer

            self._sync = SyncPeer(self)
        return self._sync

    @property
    def pending_count(self) -> int:
        """Requests sent and not yet answered, plus requests being served."""
        return len(self._pending) + len(self._serving) + len(self._inbound_streams)

    def timeline(self, **options):
        """A live Timeline widget of this peer's trace."""
        from .widgets import Timeline

        return Timeline(self.trace, **options)

    def __repr__(self) -> str:
        where = self._transport.description if self._transport else "not attached"
        return f"<Peer {self.name} {self.state.value} {where}, {self.pending_count} pending>"

    async def __aenter__(self) -> "Peer":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def _error_text(error: Exception) -> bytes:
    return (str(error) or type(error).__name__).encode("utf-8", "replace")


def _takes_peer(function) -> bool:
    from .handlers import _wants_peer

    return _wants_peer(function)

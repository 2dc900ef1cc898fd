"""An asyncio Gotalk peer: the ``Connection`` state machine driven by a transport.

The protocol (handshake, request IDs, the request and stream tables, what may
come next) lives in ``connection.Connection``; the peer adds what needs an event
loop: futures for our requests, tasks for handlers, timers (retries, read
timeout, heartbeats), flow control and the trace. Every request ends in exactly
one outcome; errors reach the wire (``f`` messages, closes) only in ``_fail``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Callable

from .connection import TRANSITIONS  # noqa: F401  (re-exported: the peer's transitions are its connection's)
from .connection import (
    RATE_LIMIT_TEXT,
    STREAMS_DISABLED_TEXT,
    Answer,
    Connection,
    ConnectionState,
    OutgoingRequest,
)
from .decoder import DEFAULT_MAX_PAYLOAD_SIZE, Decoder
from .errors import (
    ConnectionClosed,
    GotalkError,
    HandlerTimeout,
    ProtocolViolation,
    RemoteProtocolError,
    RequestError,
    RequestTimeout,
    RetryExhausted,
    error_text,
)
from .handlers import SINGLE, Handlers, Operation, json_payload, json_value, to_payload, wants_peer
from .streams import InboundStream, PartQueue, StreamRequestHandle
from .trace import IN, OUT, Trace
from .transports.base import CLOSE_TIMEOUT, DIRECT_WRITE_SIZE, HIGH_WATER, Transport
from .wire import (
    ID_SIZE_HEADER,
    MAX_UINT32,
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

#: A peer's states are its connection's.
PeerState = ConnectionState
# Read once: in Python 3.11 an Enum member read through its class costs a dict lookup.
_CLOSED = ConnectionState.CLOSED
#: How long a single request waits for its answer unless told otherwise (the CLI's default too).
DEFAULT_REQUEST_TIMEOUT = 30.0
#: Async notification listeners running at once before the peer stops reading.
MAX_LISTENERS = 256
# Reasons, besides full part queues, for which reading pauses (``pause_reading``).
_QUEUED_WRITES = object()  # what our answers queued is over the high-water mark
_LISTENERS = object()  # MAX_LISTENERS listener tasks are running
#: Seconds between checks of the requests' deadlines (at most; sooner when one is due).
DEADLINE_CHECK = 1.0
INFINITY = float("inf")
#: ``timeout=`` not given: the peer's ``request_timeout`` applies.
PEER_TIMEOUT: Any = object()

#: What the layers built on the peer lend it, by name: ``peer.sync`` comes from
#: ``gotalk_lab.sync`` and ``peer.timeline()`` from ``gotalk_lab.widgets``. They
#: register here when imported, because the peer must never import them.
VIEWS: dict[str, Callable[..., Any]] = {}
#: Imports the module that registers a view, when one is asked for before it was
#: (the package sets it: only it may know every layer).
view_loader: Callable[[str], None] | None = None


def register_view(name: str, factory: Callable[..., Any]) -> None:
    """Lend every peer ``factory(peer, ...)`` under ``name`` (see ``VIEWS``)."""
    VIEWS[name] = factory


def _view(name: str) -> Callable[..., Any]:
    if name not in VIEWS and view_loader is not None:
        view_loader(name)
    try:
        return VIEWS[name]
    except KeyError:
        raise GotalkError(f"peer.{name} needs gotalk_lab's upper layers: import gotalk_lab first") from None


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
    ``max_retries`` of our requests on RetryResult; ``request_timeout``
    seconds a single request of ours waits for its answer before it raises
    ``RequestTimeout`` and is forgotten (default 30, as the CLI; None waits
    forever; ``timeout=`` of a call overrides it); ``trace`` (a
    ``Trace``, ``True`` for a new one, ``False`` for none); ``request_ids``:
    "text" (4 base-36 digits, like gotalk.js) or "binary" (a little-endian
    counter, like the Go peer). ``peer.connection`` is the protocol state.

    Memory per connection is bounded against a side that sends and never
    reads: once what this side wrote in answer to its input is over the
    transport's high-water mark (256 KiB), it reads no more until that
    drains, as the Go peer does; at most ``MAX_LISTENERS`` (256) async
    notification listeners run at once, the input behind them waiting. So a
    flood costs its queue, one read (256 KiB) and the handlers running under
    ``max_requests``/``max_streams``; measured in tests/reliability/test_floods.py.
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
        request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
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
        if request_timeout is not None and request_timeout <= 0:
            raise ValueError(f"request_timeout must be a positive number of seconds or None, got {request_timeout!r}")
        self.handler_timeout = handler_timeout
        self.request_timeout = request_timeout
        self.read_timeout = read_timeout
        self.heartbeat_interval = heartbeat_interval
        self.max_retries = max_retries
        self.stream_buffer = stream_buffer
        # Not ``trace or None``: an empty Trace is falsy (it has a length).
        self.trace: Trace | None = Trace() if trace is True else (None if trace is False or trace is None else trace)
        self.request_ids = request_ids
        #: The protocol state of this side: tables, IDs, handshake (sans-IO).
        self.connection = Connection(request_ids=request_ids, max_payload_size=max_payload_size, max_retries=max_retries)
        #: The last heartbeat received, and when (monotonic seconds).
        self.last_heartbeat: Heartbeat | None = None
        self.last_heartbeat_at: float | None = None
        self._heartbeat_listeners: list[Callable[..., Any]] = []
        self._loop = asyncio.get_running_loop()
        # The loop's clock, read per request with a timeout: asyncio's own loop reads
        # time.monotonic, called here directly (one Python call less per request).
        plain_clock = type(self._loop).time is asyncio.BaseEventLoop.time
        self._time = time.monotonic if plain_clock else self._loop.time
        self._transport: Transport | None = None
        self.handshake: asyncio.Future = self._loop.create_future()
        self._closed: asyncio.Future = self._loop.create_future()
        self._tasks: set[asyncio.Future] = set()
        self._last_read = time.monotonic()
        # Timers by purpose: "read", "heartbeat", or the request ID of a retry. One
        # each, replaced when rescheduled, so a long-lived connection piles none up.
        self._timers: dict[object, asyncio.TimerHandle] = {}
        # Our single requests that wait with a timeout carry their deadline (loop clock)
        # in the connection's table; one timer checks them all.
        self._next_check = INFINITY  # when the deadlines are next checked (loop clock)
        self._drop_timer: asyncio.TimerHandle | None = None  # see _fail
        self._paused_by: set[int] = set()  # part queues (and the reasons below) that stopped our reading
        self._input_held: asyncio.Task | None = None  # see _hold_input
        self._listeners_running = 0  # notification and heartbeat listener tasks not yet done
        self._events_held: set[object] = set()  # reasons to leave received events unread (see _act_on_received)
        self._finished = False  # _fail has run
        self._sync: Any = None

    # -- connection lifecycle -------------------------------------------------

    def attach(self, transport: Transport) -> "Peer":
        """Start speaking on ``transport``: write our version, then read theirs."""
        self._transport = transport
        self.write(self.connection.start())
        transport.attach(self)
        if self.read_timeout:
            self._timers["read"] = self._loop.call_later(self.read_timeout, self._check_read_timeout)
        if self.heartbeat_interval:
            self._send_heartbeat()
        return self

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this peer lives on."""
        return self._loop

    @property
    def transport(self) -> Transport | None:
        return self._transport

    @property
    def state(self) -> ConnectionState:
        return self.connection.state

    @property
    def close_reason(self) -> str | None:
        """Why the connection ended (None while open)."""
        return self.connection.close_reason

    @property
    def is_open(self) -> bool:
        return self.connection.state is not _CLOSED

    def data_received(self, data: bytes) -> None:
        """Bytes from the transport (any chunking)."""
        connection = self.connection
        if connection.state is _CLOSED:
            return
        self._last_read = time.monotonic()
        # Without a trace nothing needs the header bytes: bare messages, no Frame each.
        traced = self.trace is not None
        connection.headers = traced
        connection.receive_data(data)
        self._act_on_received(traced)

    def _act_on_received(self, traced: bool) -> None:
        """Act on the events received so far, unless reading is paused: those wait for ``resume_reading``."""
        connection = self.connection
        transport = self._transport
        # Sizes are read only when the queue is over its mark (rare): the common case pays two flags.
        was_backlogged = transport is not None and transport.write_backlogged
        queued = transport.write_buffer_size() if was_backlogged else 0  # type: ignore[union-attr]
        try:
            self._receive_events(traced)
        except RemoteProtocolError as error:
            if traced and error.received is not None:
                self.trace.add(IN, connection.last_header, error.received)  # type: ignore[union-attr]
            self._fail(connection.close_reason or str(error), send_code=error.code, cause=error)
            return
        # What this input made us write (answers, RetryResults, errors) went past
        # the high-water mark: read no more of it until the other side takes
        # what is queued, as the Go peer does by writing from its read loop.
        # Only then: a side that reads answers while its own requests queue up
        # (a streaming client) keeps reading, or both sides would wait forever.
        if (
            transport is not None
            and transport.write_backlogged
            and (not was_backlogged or transport.write_buffer_size() > queued)
        ):
            self._hold_input()

    def _receive_events(self, traced: bool) -> None:
        """Act on every event the connection has ready: the hot path.

        A single request for a plain operation (``function(payload)``, see
        ``Operation.plain``) is answered right here, and the answers to one chunk
        of input are joined into one write; everything else goes through
        ``_receive``, after the answers before it are written, so that the order
        on the wire is the order of the requests. Traced, each request and its
        answer are noted in the trace as they are read and made.
        """
        connection = self.connection
        next_event = connection.next_event
        closed = _CLOSED
        operations = self.handlers.operations
        serving = connection.serving
        limit = self.max_requests
        transport = self._transport
        note = self.trace.add if traced else None  # type: ignore[union-attr]
        joined = transport.joins_frames
        # Read again after each write of ours: nothing else writes while this loop runs
        # (a plain handler only returns its answer), so the transport's answer holds.
        backlogged = transport.write_backlogged
        answers: list[bytes] = []
        size = 0
        header = b""
        # Too many listeners running: the rest of this input waits in the
        # connection until they finish (``_listener_done``).
        held = self._events_held
        try:
            while not held:
                message = next_event()
                if message is None:
                    break
                if traced:
                    header = connection.last_header
                if type(message) is SingleRequest:
                    operation = operations.get(message.operation)
                    if (
                        operation is not None
                        and operation.plain
                        and (limit is None or len(serving) < limit)
                        and not backlogged
                    ):
                        request_id = message.request_id
                        if traced:
                            note(IN, header, message)
                        try:
                            # A plain operation: argument, call and answer are the identity (Operation.plain).
                            result = operation.function(message.payload)
                            if type(result) is not bytes:
                                result = to_payload(result)
                            cls = SingleResult
                        except Exception as error:
                            result, cls = error_text(error), ErrorResult
                        if connection.state is closed:
                            return  # (the handler closed the connection: nothing more is written)
                        if not joined or len(result) >= DIRECT_WRITE_SIZE:  # written as it is, not joined
                            if answers:
                                transport.write(b"".join(answers))
                                answers, size = [], 0
                            self._answer(cls, request_id, result)
                            backlogged = transport.write_backlogged
                            continue
                        # Wire's header layout, filled in directly: the ID was just
                        # decoded and the result is bytes (the hot path of a server).
                        answer = ID_SIZE_HEADER % (cls.TYPE, request_id, len(result))
                        if traced:
                            note(OUT, answer, cls(request_id, result))
                        answers.append(answer)
                        answers.append(result)
                        size += len(result) + 13
                        if size >= HIGH_WATER:
                            transport.write(b"".join(answers))  # may make the transport backlogged
                            answers, size = [], 0
                            backlogged = transport.write_backlogged
                        continue
                if answers:
                    transport.write(b"".join(answers))
                    answers, size = [], 0
                    backlogged = transport.write_backlogged
                if type(message) is Answer:  # an answer to a request of ours: a client's hot path
                    if traced:
                        note(IN, header, message.message)
                    self._on_answer(message)
                    continue
                self._receive(header, message)
                if connection.state is closed:
                    return  # (a message closed us: what follows it, even a violation, is not acted on)
                backlogged = transport.write_backlogged
        finally:
            # Also when the connection refused what came next: the answers before it go first.
            if answers and not self._finished:
                transport.write(b"".join(answers))

    def input_refused(self, reason: str) -> None:
        """The transport refused received bytes before passing them on (a WebSocket
        message over its size limit): answered like any invalid input, f00000002 and close."""
        if self.is_open:
            self._fail(f"invalid input from the other side: {reason}", send_code=ProtocolErrorCode.INVALID)

    def connection_lost(self, error: BaseException | None) -> None:
        if self._drop_timer is not None:  # gone by itself: nothing left to drop
            self._drop_timer.cancel()
            self._drop_timer = None
        if not self._finished:
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

    def on_close(self, callback: Callable[["Peer"], Any]) -> None:
        """Call ``callback(peer)`` once the connection has ended (at once if it has)."""
        self._closed.add_done_callback(lambda _: callback(self))

    def _fail(self, reason: str, *, send_code: int | None = None, cause: BaseException | None = None, abort: bool = False) -> None:
        """End the connection: optionally tell the other side why (an ``f``), then clean up."""
        if self._finished:
            return
        self._finished = True
        connection = self.connection
        pending, streams = connection.requests, connection.inbound_streams
        goodbye = connection.close(reason, send_code)
        if goodbye is not None:
            self.write(goodbye)
        error = ConnectionClosed(connection.close_reason or reason)
        error.__cause__ = cause
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for request in pending.values():
            self._request_failed(request, error)
        for stream in streams.values():
            stream.fail(error)
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
            self._closed.set_result(connection.close_reason)

    def _drop_if_still_open(self) -> None:
        self._drop_timer = None
        if not self._transport.is_closing:
            log.debug("%s: closed %s s ago and still not gone: dropping it", self.name, CLOSE_TIMEOUT)
            self._transport.abort()

    def _check_read_timeout(self) -> None:
        if not self.is_open:
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

    def write(self, message: Message) -> None:
        """Write one message now, as it is (traced); the other methods say what to write."""
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
            self.write(cls(request_id, payload))
        elif self._transport is not None:
            self._transport.write(encode_id_size_header(cls.TYPE, request_id, payload), payload)

    async def drain(self) -> None:
        """Wait while too much is queued for the other side."""
        if self._transport is not None:
            await self._transport.drain()

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are, bypassing the encoder (for malformed-message experiments).

        The trace records the leading whole frames that decode; malformed or
        incomplete bytes are written but cannot be shown as a message.
        """
        self.check_open()
        if self.trace is not None:
            decoder = Decoder(expect_version=False, max_payload_size=max(len(data), 1))
            try:
                frames = decoder.feed_frames(data)
            except ProtocolViolation as violation:
                frames = violation.messages
            for frame in frames:
                self.trace.record(OUT, frame.header, frame.message)
        self._transport.write(bytes(data))
        await self.drain()

    def pause_reading(self, queue: object) -> None:
        """A part queue is full: stop reading until its reader catches up."""
        if not self._paused_by and self._transport is not None:
            self._transport.pause_reading()
        self._paused_by.add(id(queue))

    def resume_reading(self, queue: object) -> None:
        """``queue`` has room again: read on once no other queue is full."""
        was_paused = bool(self._paused_by)
        self._paused_by.discard(id(queue))
        if was_paused and not self._paused_by and self._transport is not None and self.is_open:
            self._last_read = time.monotonic()  # the read timeout counts from here, not from the pause
            self._transport.resume_reading()

    @property
    def reading_paused(self) -> bool:
        """True while this side reads nothing more: a part queue is full, its own
        answers wait for the other side to read, or too many listeners are running."""
        return bool(self._paused_by)

    def _hold_input(self) -> None:
        """Stop reading until the transport's queue falls under its high-water mark."""
        if self._input_held is None and self._transport is not None:
            self.pause_reading(_QUEUED_WRITES)
            self._input_held = self._loop.create_task(self._release_input())

    async def _release_input(self) -> None:
        try:
            await self.drain()
        finally:
            self._input_held = None
            self.resume_reading(_QUEUED_WRITES)

    def check_open(self) -> None:
        """Raise unless requests may be sent now (``ConnectionClosed`` once closed)."""
        if self.connection.state is _CLOSED:
            self.connection.check_open()
        if self._transport is None:
            raise GotalkError("this peer is not attached to a connection")

    def forget_request(self, request_id: bytes) -> None:
        """Stop waiting for the answer to a request of ours (never sent, or given up)."""
        self.connection.forget(request_id)

    # -- requesting -----------------------------------------------------------

    async def request_bytes(
        self, operation: str, payload: bytes | str = b"", *, timeout: float | None | object = PEER_TIMEOUT
    ) -> bytes:
        """Send a single request; return the result payload.

        Raises ``RequestError`` for an ErrorResult, ``RetryExhausted`` when the
        other side stays busy, ``RequestTimeout`` when no answer comes within
        ``timeout`` seconds (default: the peer's ``request_timeout``; None waits
        forever), ``ConnectionClosed`` if the connection ends first.
        """
        connection = self.connection
        if connection.state is _CLOSED or self._transport is None:
            self.check_open()
        future = self._loop.create_future()
        if type(payload) is not bytes:
            payload = to_payload(payload)
        seconds = self.request_timeout if timeout is PEER_TIMEOUT else timeout
        if seconds is None:
            message = connection.request(operation, payload, future)
        else:
            # A deadline in the request table, checked by one timer for the whole peer:
            # a timer per request would fill the loop's heap with cancelled ones.
            deadline = self._time() + seconds
            message = connection.request(operation, payload, future, deadline, seconds)
            if deadline < self._next_check:
                self._check_at(min(deadline, deadline - seconds + DEADLINE_CHECK))
        try:
            header = encode_header(message)  # what ``write`` does, inline: the requester's hot path
            if self.trace is not None:
                self.trace.add(OUT, header, message)
            self._transport.write(header, payload)
            if self._transport.write_backlogged:
                await self.drain()
            return await future
        finally:
            if not future.done() or future.cancelled():
                connection.forget(message.request_id)

    def _check_at(self, when: float) -> None:
        """Check the deadlines at ``when`` (the loop's clock), instead of any later check."""
        check = self._timers.pop("deadlines", None)
        if check is not None:
            check.cancel()
        self._next_check = when
        self._timers["deadlines"] = self._loop.call_at(when, self._check_deadlines)

    def _check_deadlines(self) -> None:
        """Fail the requests whose answer is overdue (``RequestTimeout``); come back for the rest."""
        del self._timers["deadlines"]
        self._next_check = INFINITY
        now = self._loop.time()
        overdue, soonest = self.connection.overdue(now)
        for request in overdue:
            future = request.owner
            if not future.done():
                future.set_exception(RequestTimeout(request.operation, request.timeout))
        if soonest is not None and self.is_open:
            self._check_at(now + min(DEADLINE_CHECK, soonest - now))

    async def request(self, operation: str, value: Any = None, *, timeout: float | None | object = PEER_TIMEOUT) -> Any:
        """Send a JSON value; return the result decoded from JSON."""
        payload = await self.request_bytes(operation, json_payload(value), timeout=timeout)
        return json_value(payload)

    def stream_request(self, operation: str) -> StreamRequestHandle:
        """Open a stream request: ``async with peer.stream_request(op) as s``.

        ``await s.send(part)`` sends parts (the first goes in the ``s`` message),
        ``await s.end()`` ends the request stream, ``async for part in s`` reads
        the streaming result until its end.
        """
        self.check_open()
        request = self.connection.open_stream(operation)
        handle = StreamRequestHandle(self, request.request_id, operation, PartQueue(self, self.stream_buffer))
        request.owner = handle
        return handle

    def send_stream_part(self, request_id: bytes, payload: bytes) -> None:
        """Write the next part of our stream request (``StreamRequestHandle.send`` calls it)."""
        self.check_open()
        self.write(self.connection.stream_part(request_id, payload))

    def end_stream_request(self, request_id: bytes) -> None:
        """Write the end of our stream request, unless it has ended."""
        message = self.connection.end_stream(request_id)
        if message is not None:
            self.write(message)

    async def notify(self, name: str, value: Any = None) -> None:
        """Send a notification with a JSON value (never answered)."""
        await self.notify_bytes(name, json_payload(value))

    async def notify_bytes(self, name: str, payload: bytes | str = b"") -> None:
        self.check_open()
        self.write(self.connection.notification(name, to_payload(payload)))
        await self.drain()

    async def send_heartbeat(self, load: int | None = None) -> None:
        """Send one heartbeat now (with our load, 0..0xffff, and Unix time)."""
        self.check_open()
        self.write(self.connection.heartbeat(self.load if load is None else load, int(time.time())))
        await self.drain()

    def _send_heartbeat(self) -> None:
        if not self.is_open:
            return
        self.write(self.connection.heartbeat(self.load, int(time.time())))
        self._timers["heartbeat"] = self._loop.call_later(self.heartbeat_interval, self._send_heartbeat)

    @property
    def load(self) -> int:
        """Our load for heartbeats: the share of the request limit in use, 0..0xffff."""
        if not self.max_requests:
            return 0
        return min(0xFFFF, len(self.connection.serving) * 0xFFFF // self.max_requests)

    def on_heartbeat(self, listener: Callable[..., Any]) -> None:
        """Call ``listener(heartbeat)`` for every heartbeat received."""
        self._heartbeat_listeners.append(listener)

    # -- receiving ------------------------------------------------------------

    def _receive(self, header: bytes, event: Any) -> None:
        """Act on one event that is not an answer to us (those go to ``_on_answer``)."""
        cls = type(event)
        if self.trace is not None:
            self.trace.add(IN, header, event)
        if cls is SingleRequest:
            self._on_single_request(event)
        elif cls is StreamRequest:
            self._on_stream_request(event)
        elif cls is StreamRequestPart:
            stream = self.connection.inbound_streams.get(event.request_id)
            if stream is None:
                return  # a part of a stream we refused: dropped (the connection checked it)
            if event.payload:
                stream.put(event.payload)
            else:
                stream.finish()
        elif cls is Notification:
            self._on_notification(event)
        elif cls is Heartbeat:
            self.last_heartbeat, self.last_heartbeat_at = event, time.monotonic()
            for listener in self._heartbeat_listeners:
                self._call_listener(listener, event)
        elif cls is ProtocolVersion:
            if not self.handshake.done():
                self.handshake.set_result(event.version)
        elif cls is ProtocolError:
            self._fail(self.connection.close_reason or "the other side reported a protocol error")
        # Anything else is an answer to nothing we asked (or asked and gave up on): ignored, but traced.

    def _on_answer(self, event: Answer) -> None:
        message, request, final, exhausted = event
        cls = type(message)
        if final and not exhausted and not request.stream:  # a single request's outcome: the common case
            future = request.owner
            if future.done():
                return
            if cls is SingleResult:
                future.set_result(message.payload)
            elif cls is StreamResult:
                future.set_result(b"".join(request.parts or ()))
            else:
                future.set_exception(RequestError(request.operation, message.payload))
            return
        if exhausted:
            self._request_failed(request, RetryExhausted(request.operation, message.payload, request.attempts - 1, getattr(message, "wait", None)))
            return
        if cls is RetryResult:
            # The wait is a floor: the responder asked us not to come back sooner.
            self._timers[message.request_id] = self._loop.call_later(message.wait / 1000, self._resend, message.request_id)
            return
        if request.stream:
            results = request.owner.results
            if cls is StreamResult:
                if message.payload:
                    results.put(message.payload)
                else:
                    results.finish()
            elif cls is SingleResult:  # a single answer to a stream request: one part
                results.put(message.payload)
                results.finish()
            else:
                results.fail(RequestError(request.operation, message.payload))
            return
        # What is left: a part of a streaming answer to a single request (the connection keeps it).

    def _request_failed(self, request: OutgoingRequest, error: BaseException) -> None:
        owner = request.owner
        if request.stream:
            if owner is not None:
                owner.results.fail(error)
        elif owner is not None and not owner.done():
            owner.set_exception(error)

    def _resend(self, request_id: bytes) -> None:
        self._timers.pop(request_id, None)
        for message in self.connection.resend(request_id):
            self.write(message)

    def _on_single_request(self, message: SingleRequest) -> None:
        request_id = message.request_id
        operation = self.handlers.operations.get(message.operation)
        if operation is None:
            self.write(self.connection.unknown_operation(request_id, message.operation))
            return
        if operation.kind != SINGLE:
            stream = self._open_inbound_stream(message, operation)
            if stream is not None:
                stream.put(message.payload)
                stream.finish()
            return
        if self.max_requests is not None and len(self.connection.serving) >= self.max_requests:
            self._send_retry(request_id)
            return
        if not operation.is_async and not self._transport.write_backlogged:
            # Plain functions run inline: no task, no extra turn of the loop.
            try:
                result = operation.answer_payload(operation.invoke(operation.argument(message.payload), self))
            except Exception as error:
                self._answer(ErrorResult, request_id, error_text(error))
            else:
                self._answer(SingleResult, request_id, result)
            return
        # An async handler, or a plain one whose answer could not be written now.
        self.connection.accept_request(request_id)
        task = self._loop.create_task(self._run_handler(operation, request_id, message.payload))
        self.connection.accept_request(request_id, task)
        self._track(task)

    async def _run_handler(self, operation: Operation, request_id: bytes, payload: bytes) -> None:
        try:
            result = operation.invoke(operation.argument(payload), self)
            if operation.is_async:
                result = await (result if self.handler_timeout is None else self._within_handler_timeout(result))
            reply: Message = SingleResult(request_id, operation.answer_payload(result))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            reply = ErrorResult(request_id, error_text(error))
        # The request keeps its slot until its answer can be written: a requester
        # that does not read its answers meets the request limit (RetryResults)
        # instead of filling our write buffer without bound.
        await self.drain()
        if self.connection.serving.pop(request_id, None) is not None and self.is_open:
            self.write(reply)

    async def _within_handler_timeout(self, awaitable: Any) -> Any:
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
        self.write(self.connection.retry(request_id, wait, RATE_LIMIT_TEXT))

    def _on_stream_request(self, message: StreamRequest) -> None:
        request_id = message.request_id
        operation = self.handlers.operations.get(message.operation)
        if operation is None:
            self.connection.refuse_stream(request_id)
            self.write(self.connection.unknown_operation(request_id, message.operation))
            return
        stream = self._open_inbound_stream(message, operation)
        if stream is None:
            self.connection.refuse_stream(request_id)
            return
        if message.payload:
            stream.put(message.payload)
        else:
            # An empty first part is already the end of the request stream, as
            # the Go peer reads it: the handler runs on no parts and answers now.
            stream.finish()

    def _open_inbound_stream(self, message: SingleRequest | StreamRequest, operation: Operation) -> InboundStream | None:
        request_id = message.request_id
        # A single request to a stream operation runs as a stream too, so the
        # stream limits hold for it as well (else they could be walked around).
        if self.max_streams == 0:
            self.write(ErrorResult(request_id, STREAMS_DISABLED_TEXT))
            return None
        if type(message) is StreamRequest and operation.kind == SINGLE:
            self.write(ErrorResult(request_id, f'operation "{operation.name}" does not take stream requests'.encode()))
            return None
        if self.max_streams is not None and len(self.connection.inbound_streams) >= self.max_streams:
            self._send_retry(request_id)
            return None
        stream = InboundStream(self, request_id, self.stream_buffer)
        self.connection.accept_stream(request_id, stream)
        self._track(self._loop.create_task(stream.run(operation)))
        return stream

    def stream_answered(self, stream: InboundStream) -> None:
        """A stream handler has answered: forget the stream (``InboundStream.run`` calls it)."""
        self.connection.stream_answered(stream.request_id, stream, stream.done)

    def _on_notification(self, message: Notification) -> None:
        for listener in self.handlers.notifications.get(message.name, ()):
            self._call_listener(listener, message.payload)
        for listener in self.handlers.any_notification:
            self._call_listener(listener, message.name, message.payload)

    def _call_listener(self, listener: Callable[..., Any], *args: Any) -> None:
        """Run a notification or heartbeat listener; never answered, errors only logged."""
        try:
            if len(args) == 1 and wants_peer(listener):
                result = listener(*args, self)
            else:
                result = listener(*args)
            if asyncio.iscoroutine(result):
                task = self._loop.create_task(result)
                self._track(task)
                # Listeners that write (a notification answered by another) wait on
                # the transport like anyone: past MAX_LISTENERS of them at once, read
                # no more notifications until some finish, so that a flood that is
                # never read costs a bounded amount.
                self._listeners_running += 1
                task.add_done_callback(self._listener_done)
                if self._listeners_running >= MAX_LISTENERS:
                    self._events_held.add(_LISTENERS)
                    self.pause_reading(_LISTENERS)
        except Exception:
            log.exception("listener %r failed", listener)

    def _listener_done(self, task: asyncio.Future) -> None:
        self._listeners_running -= 1
        if self._events_held and self._listeners_running < MAX_LISTENERS:
            self._events_held.discard(_LISTENERS)
            # What was read before the hold goes first, on a later turn (this
            # runs as a task's callback, not inside data_received); reading
            # resumes only once that is done (``_act_on_waiting``).
            self._loop.call_soon(self._act_on_waiting)

    def _act_on_waiting(self) -> None:
        """Act on the events held for the listeners; read on once none is left.

        Reading must not resume before: an event loop may deliver the next chunk
        of input before this call (uvloop polls the socket before it runs what
        ``call_soon`` queued), and a flood of notifications would then queue up
        decoded, a chunk more at each turn, while only ``MAX_LISTENERS`` of them
        are acted on.
        """
        if self.is_open and not self._events_held:
            self._act_on_received(self.trace is not None)
        if _LISTENERS not in self._events_held:  # all acted on, or not held again
            self.resume_reading(_LISTENERS)

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
    def sync(self) -> Any:
        """Blocking versions of the request methods, for notebook cells and scripts (``gotalk_lab.sync``)."""
        if self._sync is None:
            self._sync = _view("sync")(self)
        return self._sync

    @property
    def pending_count(self) -> int:
        """Requests sent and not yet answered, plus requests being served."""
        connection = self.connection
        return len(connection.requests) + len(connection.serving) + len(connection.inbound_streams)

    def timeline(self, **options: Any) -> Any:
        """A live Timeline widget of this peer's trace (``gotalk_lab.widgets``)."""
        return _view("timeline")(self.trace, **options)

    def __repr__(self) -> str:
        where = self._transport.description if self._transport else "not attached"
        return f"<Peer {self.name} {self.state.value} {where}, {self.pending_count} pending>"

    async def __aenter__(self) -> "Peer":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

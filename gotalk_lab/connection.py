"""One side of a Gotalk connection as a state machine, without any I/O (sans-IO).

``Connection`` takes received bytes (``receive_data``) and hands back events one
at a time (``next_event``); it takes calls (request, result, stream part, ...)
and hands back the messages to write (``wire.encode`` makes them bytes). It owns
the handshake, request IDs, the tables of requests and streams and the rules of
what may happen next. It never reads a socket, never waits and never runs user code.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Any, NamedTuple, Union

from .decoder import DEFAULT_MAX_PAYLOAD_SIZE, Decoder, Waiting
from .errors import ConnectionClosed, LocalProtocolError, ProtocolViolation, RemoteProtocolError
from .wire import (
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
)


class ConnectionState(enum.Enum):
    """Where a whole connection is."""

    HANDSHAKE = "handshake"  #: our version is written; the other side's is not read yet
    OPEN = "open"  #: versions agreed; messages flow both ways
    CLOSED = "closed"  #: the connection is over; nothing more is read or written


#: The connection's allowed state changes; anything else is refused.
TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    ConnectionState.HANDSHAKE: frozenset({ConnectionState.OPEN, ConnectionState.CLOSED}),
    ConnectionState.OPEN: frozenset({ConnectionState.CLOSED}),
    ConnectionState.CLOSED: frozenset(),
}


class RequestState(enum.Enum):
    """Where one request of ours is, from the first byte written to its outcome."""

    UNSENT = "unsent"  #: a stream request whose first part is not written yet
    SENT = "sent"  #: written; no answer yet
    RETRY_WAIT = "retry wait"  #: answered RetryResult: to be written again after the wait
    ANSWERING = "answering"  #: result parts are arriving (a streaming answer)
    DONE = "done"  #: it has its outcome and has left the table


#: A request's allowed state changes. DONE is reachable from everywhere: a
#: request may be forgotten (timed out, never sent) or failed by a close at any time.
REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.UNSENT: frozenset({RequestState.SENT, RequestState.DONE}),
    RequestState.SENT: frozenset({RequestState.RETRY_WAIT, RequestState.ANSWERING, RequestState.DONE}),
    RequestState.RETRY_WAIT: frozenset({RequestState.SENT, RequestState.DONE}),
    RequestState.ANSWERING: frozenset({RequestState.ANSWERING, RequestState.DONE}),
    RequestState.DONE: frozenset(),
}

# The members read on every message, looked up once: in Python 3.11 reading an
# Enum member through its class costs as much as a dict lookup.
_HANDSHAKE, _OPEN, _CLOSED = ConnectionState.HANDSHAKE, ConnectionState.OPEN, ConnectionState.CLOSED
_UNSENT, _SENT, _DONE = RequestState.UNSENT, RequestState.SENT, RequestState.DONE

#: Text of the RetryResult sent when too many requests run at once (as the Go peer writes it).
RATE_LIMIT_TEXT = b"request rate limit"
#: Text of the ErrorResult answering a stream request when streams are off (as the Go peer writes it).
STREAMS_DISABLED_TEXT = b"stream requests not supported"
#: Stream IDs remembered as refused at most: their late parts are dropped quietly;
#: past the bound a hostile peer cannot grow the set, and a late part is then
#: taken for what it is, a part of no open stream.
MAX_REFUSED_STREAMS = 4096

ID_ALPHABET = b"0123456789abcdefghijklmnopqrstuvwxyz"
#: Every pair of base-36 digits, "00" to "zz": a text request ID is two of them.
ID_PAIRS = tuple(bytes((high, low)) for high in ID_ALPHABET for low in ID_ALPHABET)

AnswerMessage = Union[SingleResult, StreamResult, ErrorResult, RetryResult]
Event = Union[Message, "Answer"]


#: What an exchange (a request and its answers) has come to, as traces and timelines
#: show it: still waiting, told to retry, a streaming answer under way, or over.
PENDING, RETRYING, STREAMING, RESULT, ERROR, CLOSED = "pending", "retrying", "stream", "result", "error", "closed"
#: The outcomes after which more frames of the exchange are still to come.
OPEN_OUTCOMES = frozenset({PENDING, RETRYING, STREAMING})


def answer_outcome(message: Message) -> str:
    """What an answer (``R``, ``S``, ``E`` or ``e``) makes of the exchange it answers.

    The one place this is decided: ``Trace`` files exchanges with it and the
    timeline draws them with it.
    """
    cls = type(message)
    if cls is RetryResult:
        return RETRYING
    if cls is StreamResult:
        return STREAMING if message.payload else RESULT  # type: ignore[attr-defined]
    return ERROR if cls is ErrorResult else RESULT


def unknown_operation_text(name: str) -> bytes:
    """What an ErrorResult says to a request for an operation nobody registered (the Go peer's words)."""
    return f'unknown operation "{name}"'.encode()


class OutgoingRequest:
    """A request of ours in the table: what it asked and how far it has got."""

    __slots__ = (
        "request_id", "operation", "stream", "state", "message", "attempts", "parts", "unanswered", "ended", "owner",
        "deadline", "timeout",
    )  # fmt: skip

    def __init__(self, request_id: bytes, operation: str, stream: bool, message: Message | None, owner: Any) -> None:
        self.request_id = request_id
        self.operation = operation
        self.stream = stream  #: a stream request (``s`` then ``p`` parts)
        self.state = _UNSENT if message is None else _SENT
        self.message = message  #: a single request: what is written again after a RetryResult
        self.attempts = 0  #: RetryResults received so far
        self.parts: list[bytes] | None = None  #: a streaming answer to a single request, so far
        #: A stream request's parts written before any answer: replayed after a RetryResult.
        self.unanswered: list[bytes] | None = [] if stream else None
        self.ended = False  #: a stream request whose end (or empty first part) is written
        self.owner = owner  #: whatever the caller keeps with the request (a future, a stream handle)
        #: When the caller stops waiting, on the caller's clock, and after how many
        #: seconds (None: never). The connection keeps them for the caller; it has no clock.
        self.deadline: float | None = None
        self.timeout: float | None = None

    def move_to(self, state: RequestState) -> None:
        if state not in REQUEST_TRANSITIONS[self.state]:
            raise LocalProtocolError(f"request {self.request_id!r}: {self.state.value} cannot become {state.value}")
        self.state = state

    def __repr__(self) -> str:
        kind = "stream" if self.stream else "single"
        return f"<OutgoingRequest {self.request_id!r} {self.operation} ({kind}) {self.state.value}, {self.attempts} retries>"


class Answer(NamedTuple):
    """An event: a message that answers one of our requests, matched in the table.

    ``final``: the request has its outcome and has left the table. A RetryResult
    past the retry limit is final too, with ``exhausted`` set. (A tuple: one is
    made per answer received, and a tuple is the cheapest object to make.)
    """

    message: AnswerMessage
    request: OutgoingRequest
    final: bool
    exhausted: bool = False

    def __repr__(self) -> str:
        how = "exhausted" if self.exhausted else ("final" if self.final else "more to come")
        return f"<Answer to {self.request.operation} {self.message!r}, {how}>"


# Made directly, past NamedTuple's Python-level __new__ (twice the cost, once per answer).
_new_answer = tuple.__new__


class Connection:
    """One side of a Gotalk connection. Feed it bytes; ask it for messages to write.

    ``request_ids``: "text" (4 base-36 digits, like gotalk.js) or "binary" (a
    little-endian counter, like the Go peer). ``max_retries``: RetryResults a
    request of ours may receive before it is given up. ``headers``: keep each
    received message's exact header bytes in ``last_header`` (for a trace).
    """

    def __init__(
        self,
        *,
        request_ids: str = "text",
        max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
        max_retries: int = 5,
        headers: bool = False,
    ) -> None:
        if request_ids not in ("text", "binary"):
            raise ValueError(f'request_ids must be "text" or "binary", got {request_ids!r}')
        self.request_ids = request_ids
        self.max_retries = max_retries
        self.state = _HANDSHAKE
        #: Why the connection ended (None while it has not).
        self.close_reason: str | None = None
        #: Our requests in flight, by request ID.
        self.requests: dict[bytes, OutgoingRequest] = {}
        #: Their single requests we are running, by ID (the value is the caller's: a task).
        self.serving: dict[bytes, Any] = {}
        #: Their stream requests we are running, by ID (the value is the caller's: a stream).
        self.inbound_streams: dict[bytes, Any] = {}
        #: Their stream requests we refused or finished early: late parts are dropped.
        self.refused_streams: set[bytes] = set()
        #: Our stream requests already answered whose request stream is not ended
        #: yet: their remaining parts and end may still be written.
        self.unended_streams: dict[bytes, OutgoingRequest] = {}
        #: The counter the next request ID is made from.
        self.next_id = 0
        self.last_heartbeat: Heartbeat | None = None
        #: The header bytes of the message ``next_event`` returned last (with ``headers``).
        self.last_header = b""
        #: Keep each received message's header bytes (``last_header``); the peer turns it on with a trace.
        self.headers = headers
        self._decoder = Decoder(expect_version=True, max_payload_size=max_payload_size)
        self._received: deque[Any] = deque()
        self._violation: ProtocolViolation | None = None
        self._goodbye_written = False

    # -- the connection as a whole --------------------------------------------

    def start(self) -> ProtocolVersion:
        """The first message to write: our protocol version."""
        if self.state is not _HANDSHAKE:
            raise LocalProtocolError(f"the version is written first, and only once (the connection is {self.state.value})")
        return ProtocolVersion()

    def _move_to(self, state: ConnectionState) -> None:
        if state is not self.state:
            if state not in TRANSITIONS[self.state]:
                raise LocalProtocolError(f"a connection that is {self.state.value} cannot become {state.value}")
            self.state = state

    @property
    def is_open(self) -> bool:
        return self.state is not _CLOSED

    @property
    def buffered(self) -> int:
        """Received bytes held until the rest of their message comes."""
        return self._decoder.buffered

    def waiting(self) -> Waiting:
        """What the unfinished message held so far still needs (``Decoder.waiting``)."""
        return self._decoder.waiting()

    def check_open(self) -> None:
        """Raise ``ConnectionClosed`` once the connection is over."""
        if self.state is _CLOSED:
            raise ConnectionClosed(self.close_reason or "connection closed")

    def close(self, reason: str, code: int | None = None) -> ProtocolError | None:
        """End the connection; with ``code``, the ``f`` message to write first.

        The tables are emptied (the caller fails what they held before calling).
        Closing twice is allowed; an ``f`` is handed out at most once.
        """
        if self.state is not _CLOSED:
            self._move_to(_CLOSED)
        if self.close_reason is None:
            self.close_reason = reason
        self.requests, self.serving, self.inbound_streams = {}, {}, {}
        self.refused_streams, self.unended_streams = set(), {}
        self._received.clear()
        if code is None or self._goodbye_written:
            return None
        self._goodbye_written = True
        return ProtocolError(code)

    # -- receiving ------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the other side, in any chunking; read the events with ``next_event``.

        Bad bytes are not raised here: the messages before them come out of
        ``next_event`` first, then it raises the ``ProtocolViolation``.
        """
        if self.state is _CLOSED or self._violation is not None:
            return
        try:
            received = self._decoder.feed_frames(data) if self.headers else self._decoder.feed(data)
        except ProtocolViolation as violation:
            received, self._violation = violation.messages, violation
        self._received.extend(received)

    def next_event(self) -> Event | None:
        """The next thing the other side did, with the tables already updated; None when none is ready.

        Events are the received messages themselves, except answers to our
        requests, which come as ``Answer``. Raises ``RemoteProtocolError`` (the
        ``f`` code to answer in its ``code``) for what the protocol forbids; the
        connection is then closed.
        """
        # Runs once per message received: each branch returns, and a state that
        # ends the connection empties the queue, so nothing is read past it.
        received = self._received
        if received:
            message = received.popleft()
            if self.headers:
                self.last_header, message = message.header, message.message
            cls = type(message)
            if cls is SingleRequest or cls is StreamRequest:
                request_id = message.request_id
                if request_id in self.serving or request_id in self.inbound_streams:
                    self._refuse_input(f"the other side reused request ID {request_id!r} while it was still in flight", message)
                return message  # type: ignore[no-any-return]
            if cls is SingleResult or cls is StreamResult or cls is ErrorResult or cls is RetryResult:
                request = self.requests.get(message.request_id)
                if request is None:
                    return message  # type: ignore[no-any-return]  # an answer to nothing asked (or given up): no event of its own
                if (cls is SingleResult or cls is ErrorResult) and not request.stream:
                    # The common case, here rather than in _answer: a single request is
                    # over. (DONE may follow every state but itself, and a request in
                    # the table is never DONE.)
                    request.state = _DONE
                    del self.requests[message.request_id]
                    return _new_answer(Answer, (message, request, True, False))
                return self._answer(message, request)
            if cls is StreamRequestPart:
                request_id = message.request_id
                if request_id not in self.inbound_streams:
                    if request_id not in self.refused_streams:
                        self._refuse_input(
                            f"the other side sent a stream part for request {request_id!r}, which is not an open stream",
                            message,
                        )
                    elif not message.payload:
                        self.refused_streams.discard(request_id)  # its end: nothing more will come
                return message  # type: ignore[no-any-return]
            if cls is ProtocolVersion:
                self._move_to(_OPEN)
            elif cls is Heartbeat:
                self.last_heartbeat = message
            elif cls is ProtocolError:
                self._move_to(_CLOSED)
                self.close_reason = f"the other side reported a protocol error: f{message.code:08x} ({message.meaning})"
                self._goodbye_written = True  # it said goodbye: ours would never be read
                received.clear()
            return message  # type: ignore[no-any-return]
        if self._violation is not None and self.state is not _CLOSED:
            violation = self._violation
            self._move_to(_CLOSED)
            self.close_reason = f"invalid input from the other side: {violation}"
            raise violation
        return None

    def _refuse_input(self, text: str, message: Message) -> None:
        self._move_to(_CLOSED)
        self._received.clear()
        self.close_reason = text
        error = RemoteProtocolError(text, ProtocolErrorCode.INVALID)
        error.received = message
        raise error

    def _answer(self, message: Any, request: OutgoingRequest) -> Answer:
        cls = type(message)
        if cls is SingleResult or cls is ErrorResult:  # the common case, first: the request is over
            # DONE may follow every state but itself, and a request in the table is never DONE.
            request.state = _DONE
            request.unanswered = None
            del self.requests[request.request_id]
            if request.stream and not request.ended:
                self.unended_streams[request.request_id] = request
            return _new_answer(Answer, (message, request, True, False))
        if cls is RetryResult:
            request.attempts += 1
            if request.attempts > self.max_retries:
                self._finish(request)
                return Answer(message, request, True, exhausted=True)
            request.move_to(RequestState.RETRY_WAIT)
            return Answer(message, request, False)
        # Any other answer means the other side took the request: nothing of it
        # will be replayed.
        request.unanswered = None
        if cls is StreamResult and message.payload:
            request.move_to(RequestState.ANSWERING)
            if not request.stream:  # a streaming answer to a single request: kept until its end
                if request.parts is None:
                    request.parts = []
                request.parts.append(message.payload)
            return Answer(message, request, False)
        self._finish(request)
        return Answer(message, request, True)

    def _finish(self, request: OutgoingRequest) -> None:
        request.move_to(_DONE)
        if self.requests.get(request.request_id) is request:
            del self.requests[request.request_id]
            if request.stream and not request.ended:
                # Answered early (an error, say): the protocol still lets us end
                # the request stream, and the other side drops what comes.
                self.unended_streams[request.request_id] = request

    # -- their requests -------------------------------------------------------

    def accept_request(self, request_id: bytes, owner: Any = None) -> None:
        """Note that we run their single request ``request_id`` (its answer will come later)."""
        self.serving[request_id] = owner

    def accept_stream(self, request_id: bytes, owner: Any) -> None:
        """Note that we run their stream request ``request_id``; its parts go to ``owner``."""
        self.inbound_streams[request_id] = owner
        self.refused_streams.discard(request_id)  # a retried stream, accepted this time

    def refuse_stream(self, request_id: bytes) -> None:
        """Their stream request was not taken: its further parts are dropped, not an error."""
        if len(self.refused_streams) < MAX_REFUSED_STREAMS:
            self.refused_streams.add(request_id)

    def stream_answered(self, request_id: bytes, owner: Any, request_ended: bool) -> None:
        """We have answered their stream request; ``request_ended``: its end part had come."""
        if self.inbound_streams.get(request_id) is owner:
            del self.inbound_streams[request_id]
            if not request_ended:
                # Answered before their end-of-stream part: the rest is still on
                # its way and must not be taken for parts of an unknown stream.
                self.refuse_stream(request_id)

    def retry(self, request_id: bytes, wait: int, text: bytes = RATE_LIMIT_TEXT) -> RetryResult:
        """A RetryResult: ask them to send ``request_id`` again after ``wait`` ms."""
        if not 0 <= wait <= MAX_UINT32:
            raise LocalProtocolError(f"a retry wait must be within 0..{MAX_UINT32} ms, got {wait}")
        return RetryResult(request_id, wait, text)

    def unknown_operation(self, request_id: bytes, name: str) -> ErrorResult:
        """The ErrorResult for a request naming an operation we do not have."""
        return ErrorResult(request_id, unknown_operation_text(name))

    # -- our requests ---------------------------------------------------------

    def new_request_id(self) -> bytes:
        """The next free request ID (never one still in the table)."""
        # Almost always the next number is free: tried once here, searched for below.
        counter = self.next_id
        if self.request_ids == "binary":
            request_id = counter.to_bytes(4, "little")
        else:
            text = counter % 36**4
            request_id = ID_PAIRS[text // 36**2] + ID_PAIRS[text % 36**2]
        if request_id not in self.requests and request_id not in self.unended_streams:
            self.next_id = (counter + 1) & 0xFFFFFFFF
            return request_id
        return self._search_request_id()

    def _search_request_id(self) -> bytes:
        for _ in range(0x10000):
            counter = self.next_id
            self.next_id = (counter + 1) & 0xFFFFFFFF
            if self.request_ids == "binary":
                request_id = counter.to_bytes(4, "little")
            else:
                counter %= 36**4
                request_id = ID_PAIRS[counter // 36**2] + ID_PAIRS[counter % 36**2]
            if request_id not in self.requests and request_id not in self.unended_streams:
                return request_id
        raise LocalProtocolError("no free request ID: too many requests in flight")

    def request(
        self, operation: str, payload: bytes = b"", owner: Any = None, deadline: float | None = None, timeout: float | None = None
    ) -> SingleRequest:
        """A single request, entered in the table under a new ID (with the caller's ``deadline``, if any)."""
        if self.state is _CLOSED:
            self.check_open()
        request_id = self.new_request_id()
        message = SingleRequest(request_id, operation, payload)
        request = self.requests[request_id] = OutgoingRequest(request_id, operation, False, message, owner)
        if deadline is not None:
            request.deadline, request.timeout = deadline, timeout
        return message

    def overdue(self, now: float) -> tuple[list[OutgoingRequest], float | None]:
        """The requests whose deadline is at or before ``now`` (taken out of the table), and the soonest deadline left."""
        due: list[OutgoingRequest] = []
        soonest: float | None = None
        for request in self.requests.values():
            deadline = request.deadline
            if deadline is None:
                continue
            if deadline <= now:
                due.append(request)
            elif soonest is None or deadline < soonest:
                soonest = deadline
        for request in due:
            self.forget(request.request_id)
        return due, soonest

    def open_stream(self, operation: str, owner: Any = None) -> OutgoingRequest:
        """A stream request, entered in the table; nothing is written until its first part."""
        self.check_open()
        request_id = self.new_request_id()
        request = OutgoingRequest(request_id, operation, True, None, owner)
        self.requests[request_id] = request
        return request

    def _stream(self, request_id: bytes) -> OutgoingRequest:
        request = self.requests.get(request_id) or self.unended_streams.get(request_id)
        if request is None or not request.stream:
            raise LocalProtocolError(f"{request_id!r} is not a stream request of ours in flight")
        return request

    def stream_part(self, request_id: bytes, payload: bytes) -> StreamRequest | StreamRequestPart:
        """The next part of our stream request: the first is the ``s`` message, the rest ``p``.

        An empty first part is the whole stream (the other side answers at
        once); an empty later part would end it, so it is refused: use ``end_stream``.
        """
        self.check_open()
        request = self._stream(request_id)
        if request.ended:
            raise LocalProtocolError(f"stream request {request_id!r} has already ended")
        first = request.state is _UNSENT
        if not payload and not first:
            raise LocalProtocolError("an empty part would end the stream: call end() instead")
        if request.unanswered is not None:
            request.unanswered.append(payload)
        if first:
            request.move_to(_SENT)
            request.ended = not payload
            return StreamRequest(request_id, request.operation, payload)
        return StreamRequestPart(request_id, payload)

    def _ended(self, request: OutgoingRequest) -> None:
        request.ended = True
        self.unended_streams.pop(request.request_id, None)

    def end_stream(self, request_id: bytes) -> StreamRequest | StreamRequestPart | None:
        """The message that ends our stream request; None if it has ended already."""
        request = self._stream(request_id)
        if request.ended:
            return None
        if request.state is _UNSENT:
            return self.stream_part(request_id, b"")  # the empty first part is the end itself
        self._ended(request)
        return StreamRequestPart(request_id, b"")

    def forget(self, request_id: bytes) -> OutgoingRequest | None:
        """Stop waiting for ``request_id`` (timed out, cancelled, never sent); late answers are ignored."""
        request = self.requests.pop(request_id, None)
        if request is not None:
            request.move_to(_DONE)
        self.unended_streams.pop(request_id, None)
        return request

    def resend(self, request_id: bytes) -> list[Message]:
        """After a RetryResult's wait: the messages that ask again (empty if the request is gone)."""
        request = self.requests.get(request_id)
        if request is None or request.state is not RequestState.RETRY_WAIT or self.state is _CLOSED:
            return []
        request.move_to(_SENT)
        if not request.stream:
            assert request.message is not None
            return [request.message]
        parts = request.unanswered or [b""]
        messages: list[Message] = [StreamRequest(request_id, request.operation, parts[0])]
        messages.extend(StreamRequestPart(request_id, part) for part in parts[1:])
        if request.ended and parts[0]:  # an empty first part was the end already
            messages.append(StreamRequestPart(request_id, b""))
        return messages

    # -- one-way messages -----------------------------------------------------

    def notification(self, name: str, payload: bytes = b"") -> Notification:
        self.check_open()
        return Notification(name, payload)

    def heartbeat(self, load: int, unix_time: int) -> Heartbeat:
        self.check_open()
        return Heartbeat(load, unix_time & MAX_UINT32)

    def __repr__(self) -> str:
        return (
            f"<Connection {self.state.value}: {len(self.requests)} requests of ours, "
            f"{len(self.serving)} of theirs, {len(self.inbound_streams)} streams of theirs>"
        )


__all__ = [
    "Answer",
    "Connection",
    "ConnectionState",
    "OutgoingRequest",
    "REQUEST_TRANSITIONS",
    "RequestState",
    "TRANSITIONS",
    "OPEN_OUTCOMES",
    "answer_outcome",
    "unknown_operation_text",
]

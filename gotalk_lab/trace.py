"""The record of every frame a peer (or a tap) wrote or read, and the exchanges they form.

A ``Trace`` is plain data plus listeners: ``record`` appends an event (monotonic
time, direction, exact bytes, decoded message) and files it under its exchange
(request -> retries -> result parts -> end); ``add``, a peer's hot path, queues
the frame and leaves the filing to the first read. It never touches a connection
and never imports a widget; widgets subscribe to it. Size is capped: past the cap
the oldest events are dropped and counted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import monotonic
from typing import Callable, Iterable, Iterator

from .capture import CapturedMessage, read_capture
from .connection import OPEN_OUTCOMES, answer_outcome
from .decoder import Decoder
from .wire import (
    ErrorResult,
    Message,
    ProtocolVersion,
    RetryResult,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
)

log = logging.getLogger(__name__)

OUT = "out"  #: written by the side that owns the trace
IN = "in"  #: read from the other side
_OTHER = {OUT: IN, IN: OUT}

#: What a trace calls its two sides unless told otherwise: the one that owns it (OUT), then the other (IN).
DEFAULT_SIDES = ("this side", "other side")
#: A tap's sides: OUT is what the connecting program sent, IN what the upstream program answered.
TAP_SIDES = ("client", "upstream")
#: A capture's two sides: who opened the TCP connection, and who accepted it.
CAPTURE_SIDES = ("client", "server")

#: Events kept by default: enough for a long classroom session, small enough
#: (a few hundred bytes each plus payloads) not to matter in a kernel.
DEFAULT_TRACE_CAP = 100_000
#: Memory the kept frames may take by default (their bytes and ``FRAME_COST`` each):
#: past it the oldest go, as past the cap.
DEFAULT_TRACE_BYTES = 64 * 1024 * 1024
#: Memory a kept frame takes beyond its own bytes: its event, its message and its
#: share of an exchange (measured on CPython 3.11 by benchmarks/trace_memory.py:
#: 496-519 bytes a kept frame over a million 16-byte echoes). Counted against
#: ``max_bytes``, so the bound holds for the trace's memory, not only for the
#: bytes on the wire.
FRAME_COST = 512
#: A payload longer than this is kept as its first this-many bytes, its real size noted (``TraceEvent.cut``).
DEFAULT_PAYLOAD_LIMIT = 64 * 1024

_ANSWERS = frozenset({SingleResult, StreamResult, ErrorResult, RetryResult})


@dataclass(slots=True, eq=False)
class TraceEvent:
    """One frame on the wire."""

    index: int  #: position in the trace since it started (keeps counting past drops)
    time: float  #: seconds since the trace started (monotonic clock)
    direction: str  #: OUT or IN
    header: bytes  #: the exact header bytes (the payload follows them on the wire)
    message: Message
    exchange: int | None = None  #: the Exchange id this frame belongs to, if any
    #: What an intercepting tap did to this frame: None (passed as it came), "forwarded"
    #: (held, then sent), "edited", "dropped" (recorded, never sent), "delayed",
    #: "duplicated" or "injected" (made by the tap).
    action: str | None = None
    original: bytes | None = None  #: an edited frame's bytes as they arrived at the tap
    sent: bytes | None = None  #: the bytes sent, when they do not decode (a deliberately malformed edit)
    #: The payload's real size when only its first bytes were kept (the trace's
    #: ``payload_limit``); None when the message is whole. ``raw`` is then only a prefix.
    cut: int | None = None

    @property
    def raw(self) -> bytes:
        """The exact bytes of the frame: header then payload (what was sent, for a malformed edit)."""
        if self.sent is not None:
            return self.sent
        payload = getattr(self.message, "payload", b"")
        return self.header + payload if payload else self.header

    @property
    def length(self) -> int:
        """The frame's size on the wire (a cut payload counted whole)."""
        if self.cut is not None:
            return len(self.header) + self.cut
        return len(self.header) + len(getattr(self.message, "payload", b""))

    @property
    def kept(self) -> int:
        """Memory this event takes, as the trace's bound counts it: header, (kept) payload and ``FRAME_COST``."""
        return len(self.header) + len(getattr(self.message, "payload", b"")) + FRAME_COST

    def __repr__(self) -> str:
        arrow = "->" if self.direction == OUT else "<-"
        return f"<TraceEvent #{self.index} {self.time * 1000:.3f} ms {arrow} {self.message!r}>"


@dataclass(slots=True, eq=False)
class Exchange:
    """A request and everything that answers it, in order."""

    id: int
    request_id: bytes
    operation: str
    requester: str  #: OUT: this side asked; IN: the other side asked
    kind: str  #: "single" or "stream"
    started: float
    ended: float | None = None
    outcome: str = "pending"  #: pending, result, error, retrying, stream (open), closed (never answered)
    retries: int = 0
    events: list[int] = field(default_factory=list)  #: indices of its TraceEvents

    @property
    def latency(self) -> float | None:
        """Seconds from the first request frame to the last result frame."""
        return None if self.ended is None else self.ended - self.started


class Trace:
    """Every frame, live. Subscribe with ``trace.subscribe(callback)``.

    A peer notes each frame with ``add``, which only queues it while nobody is
    listening; the queue is filed into events and exchanges the moment anything
    reads the trace (or subscribes), so a busy peer that nobody watches pays
    for filing only the frames still within the cap. With a listener, every
    frame is filed as it comes, and the listener hears it at once. A watcher
    (``watch``) is only woken when frames come, once per batch: the frames stay
    queued until it reads them (``events_after``), so a live view costs the peer
    nothing per frame beyond the queueing.

    ``sides`` names the two ends for the people reading it (timelines, players):
    the writer of OUT frames first, then the writer of IN frames.
    """

    #: ``gotalk_lab.findings.findings``, set by the package (it sits in a layer above the trace).
    findings_runner: Callable[..., list] | None = None

    def findings(self, **options) -> list:
        """Expert Info on this trace: ``gotalk_lab.findings(trace, **options)``."""
        runner = Trace.findings_runner
        if runner is None:
            from importlib import import_module

            import_module(__package__ or "gotalk_lab")  # the package sets the runner when loaded
            runner = Trace.findings_runner
        return runner(self, **options)  # type: ignore[misc]

    def __init__(
        self,
        cap: int | None = DEFAULT_TRACE_CAP,
        *,
        enabled: bool = True,
        sides: tuple[str, str] = DEFAULT_SIDES,
        max_bytes: int | None = DEFAULT_TRACE_BYTES,
        payload_limit: int | None = DEFAULT_PAYLOAD_LIMIT,
    ) -> None:
        self.cap = cap
        self.max_bytes = max_bytes
        self.payload_limit = payload_limit
        self._bytes = 0  # kept bytes of the frames filed and queued
        self.enabled = enabled
        self.sides = _two_names(sides)
        self.connection: str | None = None  #: a capture's connection, both endpoints
        self._events: deque[TraceEvent] = deque(maxlen=cap)
        self._exchanges: dict[int, Exchange] = {}
        self._dropped = 0
        # Frames noted by ``add`` and not filed yet: (index, direction, header, message, time).
        self._queued: deque[tuple] = deque(maxlen=cap)
        self.started_wall = time.time()
        self._started = monotonic()
        self._next_index = 0  # of the next frame noted or recorded
        self._filed_up_to = 0  # the index after the last one filed (or dropped, or cleared)
        # Exchanges still waiting, by requester (OUT or IN), then request ID.
        self._open: dict[str, dict[bytes, Exchange]] = {OUT: {}, IN: {}}
        self._listeners: list[Callable[[TraceEvent], None]] = []
        #: Watchers (``watch``) and those of them to wake at the next frame, noted or recorded.
        self._watchers: list[Callable[[], object]] = []
        self._armed: list[Callable[[], object]] = []
        self._arming = threading.Lock()

    # The bounds, held as numbers (no bound: infinity) for the hot path's comparisons.
    _byte_bound: float = float("inf")
    _payload_bound: float = float("inf")

    @property
    def max_bytes(self) -> int | None:
        """Memory the kept frames may take (their bytes and ``FRAME_COST`` each; None: no bound); the oldest go first."""
        return None if self._byte_bound == float("inf") else int(self._byte_bound)

    @max_bytes.setter
    def max_bytes(self, limit: int | None) -> None:
        self._byte_bound = float("inf") if limit is None else limit

    @property
    def payload_limit(self) -> int | None:
        """Payload bytes kept per frame (None: all); a longer payload keeps its start (``TraceEvent.cut``)."""
        return None if self._payload_bound == float("inf") else int(self._payload_bound)

    @payload_limit.setter
    def payload_limit(self, limit: int | None) -> None:
        self._payload_bound = float("inf") if limit is None else limit

    def now(self) -> float:
        """Seconds since the trace started, on the clock its events' ``time`` uses."""
        return monotonic() - self._started

    @property
    def events(self) -> deque[TraceEvent]:
        """The frames within the cap, oldest first."""
        self._file_queued()
        return self._events

    @property
    def exchanges(self) -> dict[int, Exchange]:
        """Exchanges by id (the index of their first frame), oldest first."""
        self._file_queued()
        return self._exchanges

    @property
    def dropped(self) -> int:
        """Frames dropped because of the cap."""
        self._file_queued()
        return self._dropped

    @dropped.setter
    def dropped(self, count: int) -> None:
        self._file_queued()
        self._dropped = count

    # -- recording ------------------------------------------------------------

    def add(self, direction: str, header: bytes, message: Message) -> None:
        """Note one frame a peer wrote or read: the hot path, filed when the trace is read."""
        if self._listeners or self.cap == 0:
            self.record(direction, header, message)
        elif self.enabled:
            index = self._next_index
            self._next_index = index + 1
            length = len(getattr(message, "payload", b""))
            cut = None
            if length > self._payload_bound:
                cut, message = length, _cut(message, int(self._payload_bound))
                length = int(self._payload_bound)
            size = len(header) + length + FRAME_COST
            self._queued.append((index, direction, header, message, monotonic() - self._started, cut, size))
            total = self._bytes = self._bytes + size
            if total > self._byte_bound:
                self._shed_bytes()
            if self._armed:
                self._wake()

    def _shed_bytes(self) -> None:
        """Drop the oldest frames (queued ones first) until the kept bytes fit ``max_bytes``."""
        queued = self._queued
        bound = self._byte_bound
        while self._bytes > bound and len(queued) > 1:
            self._bytes -= queued.popleft()[6]  # counted as dropped when the queue is filed (a gap)
        if self._bytes > bound:
            self._file_queued()
            while self._bytes > bound and len(self._events) > 1:
                self._drop_oldest()

    @property
    def kept_bytes(self) -> int:
        """Memory this trace's frames take now, as its bound counts it (each event's ``kept``)."""
        return self._bytes

    def _file_queued(self) -> None:
        """File the frames ``add`` queued, in order.

        Frames that the cap pushed out of the queue before it was filed (a gap in
        the indices) are counted as dropped, never filed, so an exchange whose
        request went that way has no record of it. A reader on another thread
        than the peer's may file while the peer adds: the queue hands out each
        frame once, and what comes after the last check waits for the next read.
        """
        queued = self._queued
        file = self._file
        while queued:
            try:
                index, direction, header, message, at, cut, size = queued.popleft()
            except IndexError:  # (emptied by another reader in between)
                break
            if index > self._filed_up_to:
                self._dropped += index - self._filed_up_to
            self._bytes -= size  # counted again as it is filed
            event = file(direction, header, message, at, index)
            if event is not None and cut is not None:
                event.cut = cut

    def record(
        self, direction: str, header: bytes, message: Message, at: float | None = None, *,
        action: str | None = None, original: bytes | None = None, sent: bytes | None = None,
    ) -> TraceEvent | None:
        """Append one frame now; returns the event (None when recording is off).

        ``action``, ``original`` and ``sent`` mark what a tap changed (``TraceEvent``)."""
        if not self.enabled:
            return None
        if self._queued:
            self._file_queued()
        index = self._next_index
        self._next_index = index + 1
        payload = getattr(message, "payload", b"")
        if len(payload) <= self._payload_bound or sent is not None:
            event = self._file(direction, header, message, at, index, action, original, sent)
        else:
            event = self._file(direction, header, _cut(message, int(self._payload_bound)), at, index, action, original, sent)
            if event is not None:
                event.cut = len(payload)
        if self._armed:  # (a frame noted by ``add`` woke them as it was queued)
            self._wake()
        return event

    def _file(
        self, direction: str, header: bytes, message: Message, at: float | None, index: int,
        action: str | None = None, original: bytes | None = None, sent: bytes | None = None,
    ) -> TraceEvent | None:
        """Make the event for one frame and file it under its exchange.

        Kept flat, since it runs for every frame: the exchange is found before
        the event is made, and the oldest event is only looked at at the cap.
        """
        cap = self.cap
        self._filed_up_to = index + 1
        if cap == 0:  # keeps nothing: every event is dropped as it comes
            self._dropped += 1
            return None
        if at is None:
            at = monotonic() - self._started
        cls = type(message)
        exchange = None
        if cls in _ANSWERS:
            opened = self._open[_OTHER[direction]]  # the requester is the other side
            exchange = opened.get(message.request_id)
            if exchange is not None:
                outcome = exchange.outcome = answer_outcome(message)
                if outcome not in OPEN_OUTCOMES:
                    exchange.ended = at
                    del opened[message.request_id]
        elif cls is SingleRequest or cls is StreamRequest:
            exchange = self._open_exchange(direction, message, cls, index, at)
        elif cls is StreamRequestPart:
            exchange = self._open[direction].get(message.request_id)
        if exchange is None:
            event = TraceEvent(index, at, direction, header, message)
        else:
            event = TraceEvent(index, at, direction, header, message, exchange.id)
            exchange.events.append(index)
        if action is not None:
            event.action, event.original, event.sent = action, original, sent
        events = self._events
        if len(events) == cap:
            self._drop_oldest()
        events.append(event)
        total = self._bytes = self._bytes + len(header) + len(getattr(message, "payload", b"")) + FRAME_COST
        if total > self._byte_bound:
            while self._bytes > self._byte_bound and len(events) > 1:
                self._drop_oldest()
        if self._listeners:
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:  # a broken listener must never break the peer
                    log.exception("trace listener %r failed", listener)
        return event

    def _wake(self) -> None:
        """Wake the armed watchers: once each, and again at the next frame those that answer True."""
        with self._arming:
            armed, self._armed = self._armed, []
        for wake in armed:
            try:
                again = wake()
            except Exception:  # a broken watcher must never break the peer
                log.exception("trace watcher %r failed", wake)
                continue
            if again:
                self.rearm(wake)

    def _drop_oldest(self) -> None:
        oldest = self._events.popleft()
        self._dropped += 1
        self._bytes -= oldest.kept
        if oldest.exchange is not None:
            exchange = self._exchanges.get(oldest.exchange)
            if exchange is not None and exchange.events and exchange.events[0] == oldest.index:
                exchange.events.pop(0)
                if not exchange.events and exchange.ended is not None:
                    del self._exchanges[exchange.id]

    def _open_exchange(self, direction: str, message, cls: type, index: int, at: float) -> Exchange:
        """The exchange a (single or stream) request starts, or continues when it is a retry."""
        opened = self._open[direction]
        exchange = opened.get(message.request_id)
        if exchange is not None and exchange.outcome == "retrying":
            exchange.retries += 1
            exchange.outcome = "pending"
            return exchange
        if exchange is not None:
            # Its ID reused while it was in flight: no answer can be told
            # apart any more (a peer refuses this and closes), so it ends here.
            exchange.outcome = "closed"
            exchange.ended = at
        # Positional (id, request_id, operation, requester, kind, started):
        # once per request, and keywords cost twice as much.
        kind = "single" if cls is SingleRequest else "stream"
        exchange = Exchange(index, message.request_id, message.operation, direction, kind, at)
        self._exchanges[index] = exchange
        opened[message.request_id] = exchange
        return exchange

    def close_open_exchanges(self, reason: str = "closed") -> None:
        """Mark exchanges still waiting when the connection ends as never answered."""
        self._file_queued()
        now = monotonic() - self._started
        for opened in self._open.values():
            for exchange in opened.values():
                exchange.outcome = reason
                exchange.ended = now
            opened.clear()

    # -- reading --------------------------------------------------------------

    def subscribe(self, listener: Callable[[TraceEvent], None]) -> Callable[[], None]:
        """Call ``listener(event)`` for every new event; returns an unsubscribe function."""
        self._file_queued()  # what came before is history: the listener hears only what is new
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def watch(self, wake: Callable[[], object]) -> Callable[[], None]:
        """Call ``wake()`` when the next frame comes; returns an unwatch function.

        Unlike ``subscribe``, a watcher hears of a batch, not of each frame, and the
        frames are not filed for it: ``wake`` is called once, at the first new frame
        (noted by ``add`` or recorded), and again only after ``rearm(wake)``, or at once
        for the next frame when it returns True. It reads what came with ``events_after``.
        Call ``rearm`` before reading, so that a frame noted meanwhile wakes it again.
        """
        self._file_queued()  # what came before is history, as for a listener
        with self._arming:
            self._watchers.append(wake)
            self._armed.append(wake)

        def unwatch() -> None:
            with self._arming:
                if wake in self._watchers:
                    self._watchers.remove(wake)
                if wake in self._armed:
                    self._armed.remove(wake)

        return unwatch

    def rearm(self, wake: Callable[[], object]) -> None:
        """Wake this watcher again at the next frame (see ``watch``)."""
        with self._arming:
            if wake in self._watchers and wake not in self._armed:
                self._armed.append(wake)

    def events_after(self, index: int) -> list[TraceEvent]:
        """The events kept whose index is above ``index``, oldest first (filing what is queued)."""
        events = self.events
        newer: list[TraceEvent] = []
        try:
            for event in reversed(events):  # new ones are at the end: no walk through the old ones
                if event.index <= index:
                    break
                newer.append(event)
        except RuntimeError:  # another thread recorded meanwhile: read a copy (made at once)
            newer = []
            for event in reversed(list(events)):
                if event.index <= index:
                    break
                newer.append(event)
        newer.reverse()
        return newer

    @property
    def next_index(self) -> int:
        """The index the next frame will get: frames noted or recorded so far, dropped ones too."""
        return self._next_index

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(self.events)

    def __getitem__(self, position: int) -> TraceEvent:
        return self.events[position]

    def exchange_of(self, event: TraceEvent) -> Exchange | None:
        return None if event.exchange is None else self.exchanges.get(event.exchange)

    def clear(self) -> None:
        self._queued.clear()
        self._filed_up_to = self._next_index
        self._events.clear()
        self._exchanges.clear()
        for opened in self._open.values():
            opened.clear()
        self._dropped = 0
        self._bytes = 0

    def __repr__(self) -> str:
        return f"<Trace {len(self.events)} frames ({self.kept_bytes:,} bytes), {len(self.exchanges)} exchanges, {self.dropped} dropped>"

    # -- saving and loading (JSON lines) --------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the trace as JSON lines: a header line, then one line per frame."""
        with open(path, "w", encoding="utf-8") as out:
            header = {"gotalk_lab_trace": 1, "started": self.started_wall, "dropped": self.dropped, "sides": list(self.sides)}
            out.write(json.dumps(header) + "\n")
            for event in self.events:
                out.write(json.dumps(event_to_json(event)) + "\n")

    @classmethod
    def load(cls, path: str | Path, cap: int | None = DEFAULT_TRACE_CAP, *, connection: int | None = None) -> "Trace":
        """Read a trace written by ``save`` (or by ``gotalk-lab tap --trace``).

        Exchanges are rebuilt from the frames. A tap's file holds several
        connections, each line marked with ``conn``; ``connection`` picks one
        (default: the first in the file), since request IDs only mean something
        within their own connection. A tap's trace names its sides client and upstream.
        """
        with open(path, encoding="utf-8") as source:
            lines = [json.loads(line) for line in source if line.strip()]
        return cls.from_json(lines, cap=cap, connection=connection)

    @classmethod
    def from_json(cls, records: Iterable[dict], cap: int | None = DEFAULT_TRACE_CAP, *, connection: int | None = None) -> "Trace":
        trace = cls(cap=cap)
        for record in records:
            if "conn" in record:
                trace.sides = TAP_SIDES  # only a tap marks its lines with a connection
                if connection is None:
                    connection = record["conn"]
                if record["conn"] != connection:
                    continue
            if "findings" in record:  # a tap's Expert Info on the connection, not a frame
                continue
            if "gotalk_lab_trace" in record:
                trace.started_wall = record.get("started", trace.started_wall)
                trace.dropped = record.get("dropped", 0)
                if "sides" in record:
                    trace.sides = _two_names(record["sides"])
                continue
            raw = bytes.fromhex(record["hex"])
            original = bytes.fromhex(record["original"]) if "original" in record else None
            sent = None
            if record.get("malformed") and original is not None:
                header, message = frame_from_bytes(original)  # what was sent does not decode
                sent = raw
            elif "cut" in record:
                header, message = _cut_frame_from_bytes(raw, record["header"], record["cut"])
            else:
                header, message = frame_from_bytes(raw)
            event = trace.record(record["dir"], header, message, at=record["t"], action=record.get("action"), original=original, sent=sent)
            if event is not None and "cut" in record:
                event.cut = record["cut"]
        return trace

    @classmethod
    def from_pcap(cls, path: str | Path, *, port: int | None = None, cap: int | None = DEFAULT_TRACE_CAP) -> list["Trace"]:
        """One trace per Gotalk connection in a pcap or pcapng capture, in the order they start.

        ``out`` is what the side that opened the TCP connection sent, ``in`` the other
        side; times count from the connection's first packet. ``port``: decode the
        connections on that port as Gotalk even when their handshake was not captured.
        """
        traces: dict[int, Trace] = {}
        for event in read_capture(path, port=port):
            if not isinstance(event, CapturedMessage):
                continue
            connection = event.connection
            trace = traces.get(connection.number)
            if trace is None:
                trace = traces[connection.number] = cls(cap=cap, sides=CAPTURE_SIDES)
                trace.started_wall = connection.first_time
                trace.connection = connection.describe()
            direction = OUT if event.direction == "client" else IN
            trace.record(direction, event.frame.header, event.frame.message, at=max(0.0, event.time - trace.started_wall))
        return list(traces.values())


def _two_names(sides) -> tuple[str, str]:
    names = tuple(str(name) for name in sides)
    if len(names) != 2:
        raise ValueError(f"a trace has two sides, not {len(names)}: {sides!r}")
    return names  # type: ignore[return-value]


def event_to_json(event: TraceEvent) -> dict:
    record = {"i": event.index, "t": round(event.time, 6), "dir": event.direction, "hex": event.raw.hex()}
    if event.cut is not None:  # the hex holds the header and the start of the payload
        record["cut"] = event.cut
        record["header"] = len(event.header)
    if event.action is not None:  # only a tap that changed something writes these keys
        record["action"] = event.action
        if event.original is not None:
            record["original"] = event.original.hex()
        if event.sent is not None:
            record["malformed"] = True
    return record


def frame_from_bytes(raw: bytes) -> tuple[bytes, Message]:
    """One whole frame's bytes (or the two-digit version) as (header, message)."""
    if len(raw) == 2:  # the version preamble; may be a version this kit refuses
        return raw, ProtocolVersion(int(raw, 16))
    frames = Decoder(expect_version=False, max_payload_size=max(len(raw), 1)).feed_frames(raw)
    if len(frames) != 1:
        raise ValueError(f"expected one frame, got {len(frames)} in {raw[:32]!r}")
    return frames[0].header, frames[0].message


def _cut(message: Message, limit: int) -> Message:
    """``message`` with only the first ``limit`` bytes of its payload."""
    return replace(message, payload=message.payload[:limit])  # type: ignore[attr-defined]


def _cut_frame_from_bytes(raw: bytes, header_length: int, size: int) -> tuple[bytes, Message]:
    """A saved cut frame (its header and the start of its payload) as (header, message with that start)."""
    header, start = raw[:header_length], raw[header_length:]
    _, message = frame_from_bytes(header + start + bytes(size - len(start)))
    return header, _cut(message, len(start))

"""The live sequence diagram of a trace: one arrow per frame, one bar per exchange.

Kernel side, this module turns trace events into rows (a short label per frame)
and exchanges into bars (each gets the lowest column free while it is open), and
sends them to the browser in batches. It watches the trace (``Trace.watch``) rather
than listening to each frame: the peer's frames stay queued in the trace, which
wakes the timeline once per batch; at most one flush per ``batch_interval`` files
them, and sends the new rows and the exchanges they changed as one "append"
message. A browser view asks for everything with "sync" and gets it in chunks. It
never re-sends history unasked and never touches a connection; drawing (only the
rows in sight, at most once per animation frame) is ``static/timeline.js``'s job.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import anywidget
import ipywidgets
import traitlets

from ..annotate import VERSION_TYPE, reads_as_text, show_bytes
from ..annotate import error_code_words  # the words the field table uses for the same codes
from ..connection import OPEN_OUTCOMES, RETRYING, STREAMING, answer_outcome
from ..findings import Finding
from ..findings import findings as run_findings
from ..findings import markers as markers_of
from ..html import trace_html, with_html_fallback
from ..trace import Trace, TraceEvent
from .frames import FieldTable, FrameView, widget_css
from .unframed import Unframed, unframed_log
from ..wire import (
    MAX_LOAD,
    RESULT_TYPES,
    ErrorResult,
    Heartbeat,
    Notification,
    ProtocolError,
    ProtocolVersion,
    RetryResult,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"

#: Rows per custom message: one message stays well under a megabyte of JSON,
#: so a big flush or a history never blocks the comm channel for long.
CHUNK_EVENTS = 2000
#: Without a running event loop (a script feeding a trace by hand) a flush
#: happens as soon as this many events wait, so nothing piles up unseen.
SYNC_BATCH = 100
#: While exchanges are open, look this often for ones closed without a frame
#: (a connection that ended while they waited).
CLOSED_CHECK_SECONDS = 1.0
#: Seconds at least between two runs of the findings rules over a live trace (they read it all).
FINDINGS_INTERVAL = 1.0
#: A findings run that takes longer than this (a big trace) spaces the next runs out in
#: proportion: with ``FINDINGS_INTERVAL`` at 1 s, the rules take at most 2 % of the kernel's time.
FINDINGS_SLOW = 0.02
#: Payload characters shown in a row label; the full frame is one click away.
PREVIEW_CHARS = 32

#: A row, as sent to the browser: one array per frame (a tuple here), in this order (not
#: dicts: a 10 000-frame history is one long JSON stream, and keys would double it).
#:   i  event index; t  seconds since the trace started; d  "out" or "in"
#:   y  type character ("v" for the version preamble); x  exchange id or None
#:   id printable request ID, only when there is no exchange to take it from
#:   op notification name (for n; an exchange's frames take its operation)
#:   s  what the label says after the ID and operation (payload, wait, fields)
#:   n  payload size; w  retry wait in ms (e only, else None)
ROW_FIELDS = ("i", "t", "d", "y", "x", "id", "op", "s", "n", "w")
#: Bytes written that are no frame (``unframed``) get a row too: type "?", ``i`` half
#: way between the event they followed and the next one (so rows stay sorted by ``i``),
#: ``s`` a preview, ``n`` their size, and two more values:
#:   r  the note's number (selected as -2 - r); why  the reason they are no frame
UNFRAMED_TYPE = "?"
UNFRAMED_ROW_FIELDS = ROW_FIELDS + ("r", "why")
#: An exchange, as sent: x id, c column, op, rq requester ("out": this side asked),
#: k "single" or "stream", id printable request ID, a first event index, z ending
#: event index (None: open, or closed without an answer), o outcome, lat ms from the
#: first request to the end (None while open), r retries, w last retry wait in ms.
EXCHANGE_FIELDS = ("x", "c", "op", "rq", "k", "id", "a", "z", "o", "lat", "r", "w")
# Positions in an exchange record (a list while open, a tuple once closed), for the hot loop.
_X, _C, _OP, _RQ, _K, _ID, _A, _Z, _O, _LAT, _R, _W = range(len(EXCHANGE_FIELDS))

#: Type characters by message class (the version preamble's is "v").
_TYPE_CHARS = {cls: cls.TYPE.decode() for cls in (
    SingleRequest, StreamRequest, StreamRequestPart, SingleResult, StreamResult, ErrorResult,
    RetryResult, Notification, Heartbeat, ProtocolError,
)}  # fmt: skip
_TYPE_CHARS[ProtocolVersion] = VERSION_TYPE
#: Messages whose label, when they carry a payload, is just its preview.
_PREVIEWED = frozenset({SingleRequest, StreamRequest, StreamRequestPart, SingleResult, StreamResult, ErrorResult, Notification})
#: Bytes a payload preview may show as they are: printable ASCII but the backslash.
_PLAIN_ASCII = bytes(byte for byte in range(0x20, 0x7F) if byte != 0x5C)


def type_of(message) -> str:
    """The type character of a message, ``"v"`` for the version preamble."""
    return VERSION_TYPE if isinstance(message, ProtocolVersion) else message.TYPE.decode()


def payload_preview(payload: bytes, limit: int = PREVIEW_CHARS) -> str:
    """A payload in a label: JSON-looking text as is, other text quoted, binary as \\xNN."""
    if not payload:
        return ""
    head = payload[: limit * 4]  # enough bytes for ``limit`` characters of any UTF-8
    if not head.translate(None, _PLAIN_ASCII):  # the usual case: nothing to decode or escape
        more = len(payload) > limit
        text = head[:limit].decode("ascii")
        if text[:1] in '{["':
            return text + ("…" if more else "")
        return '"' + text.replace('"', '\\"') + ("…" if more else "") + '"'
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by ``head`` is not binary data.
        cut_short = len(head) < len(payload) and error.start >= len(head) - 3
        text = head[: error.start].decode("utf-8") if cut_short else None
    if text is None or not reads_as_text(text):
        shown = show_bytes(payload[: limit // 2])
        return f'"{shown}{"…" if len(payload) > limit // 2 else ""}"'
    more = len(text) > limit or len(head) < len(payload)
    text = text[:limit].replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if text[:1] in '{["':  # JSON objects, arrays and strings read best as they are
        return text + ("…" if more else "")
    return '"' + text.replace('"', '\\"') + ("…" if more else "") + '"'


def printable_id(request_id: bytes) -> str:
    """A request ID as a student reads it: gotalk.js's "0001" as is, the Go peer's as \\x00\\x00\\x00\\x01."""
    if request_id.isalnum():  # bytes.isalnum is ASCII-only: the common case, without a loop
        return request_id.decode("ascii")
    return show_bytes(request_id)


def frame_detail(event: TraceEvent) -> str:
    """What a frame's label says after its request ID and operation: payload, wait or fields."""
    message = event.message
    cls = type(message)
    if cls is ProtocolVersion:
        return f"protocol version {message.version}, written first by each side"
    if cls is Heartbeat:
        moment = datetime.fromtimestamp(message.time, tz=timezone.utc).strftime("%H:%M:%SZ")
        return f"load {message.load * 100 / MAX_LOAD:.0f} % at {moment}"
    if cls is ProtocolError:
        return f"code {message.code}: {error_code_words(message.code)[0]}"
    payload = message.payload
    preview = payload_preview(payload) if payload else ""
    if cls is RetryResult:
        return f"wait {message.wait} ms {preview}".rstrip()
    if not payload and (cls is StreamResult or cls is StreamRequestPart):
        return "(end of stream)"
    return preview


def frame_label(event: TraceEvent) -> str:
    """The words after the type badge on a frame's arrow: ID, operation or name, then the detail."""
    message = event.message
    parts = []
    request_id = getattr(message, "request_id", None)
    if request_id is not None:
        parts.append(printable_id(request_id))
    name = getattr(message, "operation", None) or getattr(message, "name", None)
    if name:
        parts.append(name)
    detail = frame_detail(event)
    if detail:
        parts.append(detail)
    action = getattr(event, "action", None)
    if action:  # what an intercepting tap did to it; the original bytes, when it changed them
        original = getattr(event, "original", None)
        parts.append(f"[{action}" + (f", was {payload_preview(original)}]" if original else "]"))
    return " ".join(parts)



def trace_bounds(trace: Trace) -> str:
    """What a trace holds against its bounds: "showing the last 1,200 frames, 63.8 MB (the trace keeps ...)"."""
    def size(count: int) -> str:
        return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"

    kept = []
    if trace.cap:
        kept.append(f"{trace.cap:,} frames")
    if trace.max_bytes:
        kept.append(size(trace.max_bytes))
    limit = f"; payloads over {trace.payload_limit:,} bytes keep their start" if trace.payload_limit else ""
    bound = f" (the trace keeps {' and '.join(kept)}{limit})" if kept else ""
    return f"showing the last {len(trace.events):,} frames, {size(trace.kept_bytes)}{bound}"

class Timeline(anywidget.AnyWidget):
    """A live sequence diagram of a ``Trace``: ``Timeline(peer.trace)`` or ``peer.timeline()``.

    Two lanes (named by ``lanes``, by default the trace's ``sides``), time
    flowing down, one arrow per frame; each exchange (request to last result) is
    a bar in its own column, so multiplexed requests stand side by side. Bytes
    written that are no frame (the Composer's broken messages, see ``unframed``)
    get an arrow of their own. Click an arrow to select it (``selected``): a
    ``frame_view`` given here then shows that frame, and without one the
    timeline opens its own detail panel under the arrows, a ``FrameView`` and
    ``FieldTable`` of the frame (``detail_view``, ``detail_table``; made on the
    first click; ``detail=False`` for none). The header filters by message type
    and operation and pauses (``paused``: new frames are held, then sent on
    resume). ``cursor`` >= 0 shows only the frames up to that event index and
    marks it (the ``Player`` drives it).
    """

    _esm = STATIC / "timeline.js"
    _css = widget_css("timeline.css")

    title = traitlets.Unicode("").tag(sync=True)
    #: Names of the two lanes: the writer of "out" frames, then of "in" frames (``Trace.sides``).
    lanes = traitlets.List(traitlets.Unicode(), default_value=["this side", "other side"]).tag(sync=True)
    #: True: new frames are held in the kernel (``held`` counts them) until resumed.
    paused = traitlets.Bool(False).tag(sync=True)
    held = traitlets.Int(0).tag(sync=True)
    #: Event index of the clicked frame, -1 for none; -2 - r for unframed note r.
    selected = traitlets.Int(-1).tag(sync=True)
    #: The detail panel's widgets (None until the first click, and with ``detail=False``).
    detail_view = traitlets.Instance(FrameView, allow_none=True).tag(sync=True, **ipywidgets.widget_serialization)
    detail_table = traitlets.Instance(FieldTable, allow_none=True).tag(sync=True, **ipywidgets.widget_serialization)
    #: Show frames up to this event index and mark it; -1: everything, live.
    cursor = traitlets.Int(-1).tag(sync=True)
    #: Frames recorded so far (sent to the browser or held), counting dropped ones.
    frame_count = traitlets.Int(0).tag(sync=True)
    #: Frames the trace dropped to stay under its cap, and that cap (0: none).
    dropped = traitlets.Int(0).tag(sync=True)
    cap = traitlets.Int(0).tag(sync=True)
    #: What the trace holds against its bounds, for people: "showing the last N frames, M MB ...".
    bounds = traitlets.Unicode("").tag(sync=True)
    #: Filters set from the header: type characters, operation and notification names not drawn.
    hidden_types = traitlets.List(traitlets.Unicode()).tag(sync=True)
    hidden_operations = traitlets.List(traitlets.Unicode()).tag(sync=True)
    hidden_notifications = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: Projector mode: 18 px text, taller rows, full contrast (``Dashboard(projector=True)``).
    projector = traitlets.Bool(False).tag(sync=True)
    #: What a click on an arrow does, as its tooltip's last line says it (for frames, for unframed bytes).
    click_hint = traitlets.Unicode("click to show its bytes").tag(sync=True)
    click_hint_unframed = traitlets.Unicode("click to show them byte by byte").tag(sync=True)
    #: Expert Info badges by event index (as a string): {"severity", "symbol", "text": [sentences]}.
    markers = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        trace: Trace,
        *,
        title: str | None = None,
        batch_interval: float = 0.25,
        frame_view: Any = None,
        lanes: tuple[str, str] | list[str] | None = None,
        detail: bool | None = None,
        findings: dict | bool = True,
        **kwargs: Any,
    ) -> None:
        if trace is None:
            raise ValueError("no trace to show: this peer was made with trace=False")
        options: dict[str, Any] = {"title": title or "", "cap": trace.cap or 0}
        options["lanes"] = list(lanes if lanes is not None else getattr(trace, "sides", ("this side", "other side")))
        super().__init__(**options, **kwargs)
        self.trace = trace
        self.batch_interval = batch_interval
        self.frame_view = frame_view
        #: Whether a click opens the timeline's own detail panel (not when a frame_view shows it).
        self.detail = frame_view is None if detail is None else bool(detail)
        if frame_view is None and not self.detail:  # no view to show the bytes in: a click only selects
            self.click_hint = self.click_hint_unframed = "click to select it"
        self._unframed = unframed_log(trace)
        self._pending_notes: deque[Unframed] = deque()
        self._notes_sent = 0  # notes of the log sent to the browser (in order)
        self._lock = threading.RLock()
        # Frames the trace noted since the last flush, when there is no event loop (counted
        # frame by frame then, so that a flush comes every SYNC_BATCH of them).
        self._unflushed = 0
        #: Exchanges as the browser knows them: open ones (``EXCHANGE_FIELDS`` lists, by id,
        #: holding a column) and closed ones (tuples of the same, in the order they closed).
        self._open: dict[int, list] = {}
        self._closed: dict[int, tuple] = {}
        self._started_at: dict[int, float] = {}  # an open exchange's first request, trace time
        self._free_columns: list[int] = []  # a heap: the lowest free column first
        self._next_column = 0
        self._upto = -1  # index of the last event absorbed (sent, or history at creation)
        self._seq = 0  # number of the last "append" message
        self._flush_handle: asyncio.Handle | threading.Timer | None = None
        self._watch_handle: asyncio.Handle | None = None
        self._findings_handle: asyncio.Handle | None = None
        self._last_flush = float("-inf")
        #: Options for ``gotalk_lab.findings`` (False: no Expert Info); ``findings`` holds the last result.
        self.findings_options: dict | None = None if findings is False else ({} if findings is True else dict(findings))
        self.findings: list[Finding] = []
        self._findings_at = float("-inf")
        self._findings_scale = 1.0  # times FINDINGS_INTERVAL between runs: more once a run takes long
        self._findings_stale = False
        self._findings_listeners: list[Callable[[list[Finding]], None]] = []
        with self._lock:
            self._unsubscribe = trace.watch(self._on_frames)
            self._unsubscribe_notes = self._unframed.subscribe(self._on_note)
            self._notes_sent = len(self._unframed)  # history too
            self._absorb(list(trace.events))  # what happened before: history, not news
            self._find_closed({})  # the connection may have ended already
            self.frame_count = self._upto + 1
            self.dropped = trace.dropped
            self.bounds = trace_bounds(trace)
            self.update_findings()
        self.on_msg(self._on_custom_message)
        self.observe(self._on_selected, "selected")
        self.observe(self._on_paused, "paused")

    # -- from the trace to rows and exchanges -------------------------------------

    def _on_frames(self) -> bool:
        """The trace's watcher: frames came (they wait in the trace). Schedules a flush.

        Called once per batch (the flush rearms it); without an event loop, for every
        frame instead (it answers True), so that a flush comes every SYNC_BATCH frames."""
        if self._flush_handle is None:
            self._schedule_flush()
        if type(self._flush_handle) is threading.Timer:
            self._unflushed += 1
            if self._unflushed >= SYNC_BATCH:
                self.flush()
            return True
        return False

    def _on_note(self, note: Unframed) -> None:
        self._pending_notes.append(note)
        if self._flush_handle is None:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        with self._lock:
            if self._flush_handle is not None:
                return
            delay = max(0.0, self._last_flush + self.batch_interval - time.monotonic())
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None:
                self._flush_handle = loop.call_later(delay, self._scheduled_flush)
            elif delay == 0.0:
                self.flush()
            else:
                # No loop: a timer thread flushes what is left once the interval is over.
                timer = threading.Timer(delay, self._scheduled_flush)
                timer.daemon = True
                self._flush_handle = timer
                timer.start()

    def _scheduled_flush(self) -> None:
        with self._lock:
            self._flush_handle = None
            self.flush()

    def _allocate_column(self) -> int:
        if self._free_columns:
            return heapq.heappop(self._free_columns)
        self._next_column += 1
        return self._next_column - 1

    def _close_exchange(self, record: list, outcome: str, end_index: int | None, end_time: float | None) -> tuple:
        exchange_id = record[_X]
        record[_O] = outcome
        record[_Z] = end_index
        started = self._started_at.pop(exchange_id, None)
        if end_time is not None and started is not None:
            record[_LAT] = round((end_time - started) * 1000, 3)
        heapq.heappush(self._free_columns, record[_C])
        del self._open[exchange_id]
        # Closed for good: kept as a tuple of plain values, which the garbage collector
        # stops tracking, so that thousands of them cost the kernel nothing per collection.
        closed = tuple(record)
        self._closed[exchange_id] = closed
        return closed

    def _absorb(self, events: list[TraceEvent]) -> tuple[list[tuple], dict[int, Any]]:
        """Rows for new events, columns for new exchanges; returns (rows, changed exchanges).

        Runs over every frame: kept flat, and the usual frames (a payload) take a short
        way; ``_row`` says the same for any frame."""
        rows: list[tuple] = []
        changed: dict[int, Any] = {}
        open_records = self._open
        closed = self._closed
        upto = self._upto
        for event in events:
            index = event.index
            if index <= upto:
                continue  # already absorbed (subscribed while copying the history)
            upto = index
            message = event.message
            cls = type(message)
            exchange_id = event.exchange
            if exchange_id is not None:
                record = open_records.get(exchange_id)
                if record is None and exchange_id not in closed:
                    exchange = self.trace.exchanges.get(exchange_id)
                    record = [
                        exchange_id,
                        self._allocate_column(),
                        getattr(message, "operation", None) or (exchange.operation if exchange else ""),
                        exchange.requester if exchange else event.direction,
                        exchange.kind if exchange else "single",
                        printable_id(message.request_id),
                        index, None, "pending", None, 0, None,
                    ]  # fmt: skip
                    open_records[exchange_id] = record
                    self._started_at[exchange_id] = exchange.started if exchange else event.time
                elif record is not None and (cls is SingleRequest or cls is StreamRequest):
                    record[_R] += 1  # the same request again, after a RetryResult
                    record[_O] = "pending"
                if record is not None:
                    outcome = answer_outcome(message) if cls in RESULT_TYPES else None
                    if outcome == RETRYING:
                        record[_O] = outcome
                        record[_W] = message.wait
                    elif outcome == STREAMING:
                        record[_O] = outcome
                    elif outcome is not None:
                        changed[exchange_id] = self._close_exchange(record, outcome, index, event.time)
                        record = None
                    if record is not None:
                        changed[exchange_id] = record
            # Rows are tuples of plain values: the garbage collector stops tracking them at
            # its first look, so a big batch does not hasten the next full collection.
            if cls in _PREVIEWED and message.payload:  # the usual frame: its label is its payload
                payload = message.payload
                rows.append((
                    index, round(event.time, 6), event.direction, _TYPE_CHARS[cls], exchange_id,
                    None if exchange_id is not None else printable_id(message.request_id) if cls is not Notification else None,
                    message.name if cls is Notification else None,
                    payload_preview(payload), len(payload), None,
                ))  # fmt: skip
            else:
                rows.append(self._row(event, exchange_id is not None))
        self._upto = upto
        return rows, changed

    @staticmethod
    def _row(event: TraceEvent, in_exchange: bool) -> tuple:
        """A frame as ``ROW_FIELDS``; a frame of a known exchange takes ID and operation from it."""
        message = event.message
        cls = type(message)
        request_id = getattr(message, "request_id", None)
        return (
            event.index,
            round(event.time, 6),
            event.direction,
            VERSION_TYPE if cls is ProtocolVersion else message.TYPE.decode(),
            event.exchange if in_exchange else None,
            None if in_exchange or request_id is None else printable_id(request_id),
            message.name if cls is Notification else None,
            frame_detail(event),
            len(getattr(message, "payload", b"")),
            message.wait if cls is RetryResult else None,
        )

    @staticmethod
    def _note_row(note: Unframed) -> tuple:
        """An unframed note as ``UNFRAMED_ROW_FIELDS``."""
        return (
            note.position, round(note.time, 6), note.direction, UNFRAMED_TYPE, None, None, None,
            payload_preview(note.data), len(note.data), None, note.number, note.problem,
        )  # fmt: skip

    def _find_closed(self, changed: dict[int, Any]) -> None:
        """Exchanges the trace closed without a frame (the connection ended while they waited)."""
        for exchange_id, record in list(self._open.items()):
            exchange = self.trace.exchanges.get(exchange_id)
            if exchange is None:  # dropped by the trace's cap while open
                changed[exchange_id] = self._close_exchange(record, "dropped", None, None)
            elif exchange.ended is not None and exchange.outcome not in OPEN_OUTCOMES and (
                not exchange.events or exchange.events[-1] <= self._upto
            ):
                changed[exchange_id] = self._close_exchange(record, exchange.outcome, None, exchange.ended)

    def _forget_dropped(self) -> None:
        """Let closed exchanges go once the trace has dropped all of their frames."""
        events = self.trace.events
        first_kept = events[0].index if events else self._upto + 1
        closed = self._closed
        a, z = EXCHANGE_FIELDS.index("a"), EXCHANGE_FIELDS.index("z")
        # One pass, then the deletions: ``next(iter(closed))`` after each deletion
        # would walk past every slot already deleted (quadratic in a big flush).
        forgotten = []
        for exchange_id, record in closed.items():
            if max(record[a], record[z] or 0) >= first_kept:
                break
            forgotten.append(exchange_id)
        for exchange_id in forgotten:
            del closed[exchange_id]

    # -- to the browser -----------------------------------------------------------------

    def flush(self) -> None:
        """Send what is new now (normally done for you, at most once per ``batch_interval``)."""
        with self._lock:
            if isinstance(self._flush_handle, (asyncio.Handle, threading.Timer)):
                self._flush_handle.cancel()
            self._flush_handle = None
            self._last_flush = time.monotonic()
            self._unflushed = 0
            trace = self.trace
            trace.rearm(self._on_frames)  # before reading: a frame noted meanwhile wakes it again
            if self.paused:
                # Held in the trace itself, which keeps no more than its cap of them.
                held = max(0, trace.next_index - 1 - self._upto)
                self.held = min(held, trace.cap) if trace.cap else held
                self.frame_count = self._upto + 1 + self.held
                return
            rows, changed = self._absorb(trace.events_after(self._upto))
            notes = self._pending_notes
            for _ in range(len(notes)):
                rows.append(self._note_row(notes.popleft()))
                self._notes_sent += 1
            self._find_closed(changed)
            if self.trace.dropped != self.dropped:
                self._forget_dropped()
            exchanges = [_as_sent(record) for record in changed.values()]
            for start in range(0, max(len(rows), 1 if exchanges else 0), CHUNK_EVENTS):
                self._seq += 1
                self.send(
                    {
                        "kind": "append",
                        "seq": self._seq,
                        "events": rows[start : start + CHUNK_EVENTS],
                        # Exchanges go first: the browser finds a row's exchange when the row arrives.
                        "exchanges": exchanges if start == 0 else [],
                        "dropped": self.trace.dropped,
                    }
                )
            self.held = 0
            self.frame_count = self._upto + 1
            if self.trace.dropped != self.dropped:
                self.bounds = trace_bounds(self.trace)
            self.dropped = self.trace.dropped
            if rows or changed or self._findings_stale or self._open:  # (open ones may go unanswered)
                self._findings_stale = True
                self._maybe_update_findings()
            self._watch_for_closed()

    # -- Expert Info ----------------------------------------------------------------

    def _maybe_update_findings(self) -> None:
        """Recompute the findings at most once per ``FINDINGS_INTERVAL`` (a later flush catches up).

        On a trace so big that the rules take long, less often (``FINDINGS_SLOW``)."""
        wait = self._findings_at + FINDINGS_INTERVAL * self._findings_scale - time.monotonic()
        if wait <= 0:
            self.update_findings()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next flush (or ``update_findings()``) catches up
        if self._findings_handle is None:
            self._findings_handle = loop.call_later(wait, self._findings_fired)

    def _findings_fired(self) -> None:
        self._findings_handle = None
        with self._lock:
            if self._findings_stale:
                self.update_findings()

    def update_findings(self) -> list[Finding]:
        """Run the findings rules over the trace now (by its own clock) and refresh ``markers``."""
        started = self._findings_at = time.monotonic()
        self._findings_stale = False
        if self.findings_options is None:
            return self.findings
        for _attempt in range(3):
            try:
                found = run_findings(self.trace, now=self.trace.now(), **self.findings_options)
                break
            except RuntimeError:  # the recording thread appended while the rules read: read again
                continue
        else:
            return self.findings
        self._findings_scale = max(1.0, (time.monotonic() - started) / FINDINGS_SLOW)
        self.findings = found
        self.markers = {str(index): marker for index, marker in markers_of(found).items()}
        for listener in list(self._findings_listeners):
            try:
                listener(found)
            except Exception:
                log.exception("findings listener %r failed", listener)
        return found

    def on_findings(self, listener: Callable[[list[Finding]], None]) -> Callable[[], None]:
        """Call ``listener(findings)`` each time they are recomputed; returns an unsubscribe function."""
        self._findings_listeners.append(listener)
        return lambda: self._findings_listeners.remove(listener) if listener in self._findings_listeners else None

    def _watch_for_closed(self) -> None:
        if not self._open or self._watch_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._watch_handle = loop.call_later(CLOSED_CHECK_SECONDS, self._watch_fired)

    def _watch_fired(self) -> None:
        self._watch_handle = None
        self.flush()

    def _on_custom_message(self, _widget: Any, content: dict, _buffers: list) -> None:
        if isinstance(content, dict) and content.get("kind") == "sync":
            self.send_history(str(content.get("token", "")))

    def send_history(self, token: str = "") -> int:
        """Answer a view's "sync": every frame sent so far, in chunks; returns the chunk count."""
        with self._lock:
            upto = self._upto
            known = self._closed.keys() | self._open.keys()
            rows = [self._row(e, e.exchange in known) for e in list(self.trace.events) if e.index <= upto]
            notes = [self._note_row(note) for note in self._unframed.notes[: self._notes_sent]]
            if notes:  # in their places between the frames (a stable sort keeps notes' own order)
                rows = sorted(rows + notes, key=lambda row: row[0])
            records = sorted(
                [*self._closed.values(), *(_as_sent(record) for record in self._open.values())]
            )
            seq = self._seq
            parts = max(1, -(-max(len(rows), len(records)) // CHUNK_EVENTS))
            for part in range(parts):
                window = slice(part * CHUNK_EVENTS, (part + 1) * CHUNK_EVENTS)
                self.send(
                    {
                        "kind": "history",
                        "token": token,
                        "seq": seq,
                        "part": part,
                        "parts": parts,
                        "events": rows[window],
                        "exchanges": records[window],
                        "dropped": self.trace.dropped,
                    }
                )
            return parts

    # -- reacting to the browser ------------------------------------------------------

    def _on_paused(self, change: dict) -> None:
        if not change["new"]:
            self.flush()  # resume: everything held goes now, in chunks

    def _on_selected(self, change: dict) -> None:
        item = self.item(change["new"])
        if item is None:
            return
        view = self.frame_view
        if view is None and self.detail:
            view = self._detail()
        if view is None:
            return
        if isinstance(item, Unframed):
            view.show(item.data, expect_version=False, title=unframed_title(item, self.lanes))
        else:
            view.show(item)

    def _detail(self) -> FrameView:
        """The detail panel's FrameView and FieldTable, made on the first click."""
        if self.detail_view is None:
            view = FrameView()
            table = FieldTable(view)
            with self.hold_sync():
                self.detail_view, self.detail_table = view, table
        return self.detail_view

    def item(self, selected: int) -> TraceEvent | Unframed | None:
        """What ``selected`` stands for: a trace event, an unframed note, or None."""
        if selected >= 0:
            return self.event(selected)
        number = -2 - selected
        notes = self._unframed.notes
        return notes[number] if 0 <= number < len(notes) else None

    @property
    def selected_item(self) -> TraceEvent | Unframed | None:
        """The clicked frame (a ``TraceEvent``) or unframed bytes (an ``Unframed``), or None."""
        return self.item(self.selected)

    def event(self, index: int) -> TraceEvent | None:
        """The trace event with this index, or None once the trace has dropped it."""
        events = self.trace.events
        if not events:
            return None
        position = index - events[0].index  # indices are consecutive within the trace
        if 0 <= position < len(events) and events[position].index == index:
            return events[position]
        return next((event for event in events if event.index == index), None)

    @property
    def exchange_columns(self) -> dict[int, int]:
        """Exchange id -> the column its bar is drawn in."""
        columns = {exchange_id: record[_C] for exchange_id, record in self._closed.items()}
        columns.update((exchange_id, record[_C]) for exchange_id, record in self._open.items())
        return columns

    def close(self) -> None:
        """Stop following the trace, let go of it and close the widget."""
        unsubscribe = getattr(self, "_unsubscribe", None)  # None: __init__ failed early
        if unsubscribe is not None:
            unsubscribe()
            self._unsubscribe_notes()
            self._unsubscribe = self._unsubscribe_notes = _nothing  # the trace's closure holds the trace
            for widget in (self.detail_table, self.detail_view):
                if widget is not None:
                    widget.close()
            self.detail_view = self.detail_table = None
            for handle in (self._flush_handle, self._watch_handle):
                if handle is not None:
                    handle.cancel()
            self._flush_handle = self._watch_handle = None
            # anywidget keeps every instance whose _esm is a file alive (its hot-reload
            # signal holds a closure over it: manzt/anywidget#929), so a closed timeline
            # must not keep a whole trace alive with it.
            self.trace = Trace(cap=0)
            self._unframed = unframed_log(self.trace)
            self.frame_view = None
            self._open.clear()
            self._started_at.clear()
            self._closed.clear()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any):
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), trace_html(self.trace))


def unframed_title(note: Unframed, lanes: list[str] | tuple[str, str] = ("this side", "other side")) -> str:
    """The detail panel's title for unframed bytes: who wrote how many, after which frame, and why."""
    writer, reader = (lanes[0], lanes[1]) if note.direction == "out" else (lanes[1], lanes[0])
    where = f"after #{note.after}" if note.after >= 0 else "first"
    return f"{len(note.data)} bytes {writer} → {reader}, {where}, no frame: {note.problem}"


def _nothing() -> None:
    pass


def _as_sent(record: list | tuple) -> tuple:
    """An exchange as sent: its ``EXCHANGE_FIELDS`` values in order (a copy of an open one's)."""
    return record if type(record) is tuple else tuple(record)

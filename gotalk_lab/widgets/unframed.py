"""Bytes on a connection that are no frame, kept beside the trace, and what they do to the reader.

A ``Trace`` holds decoded frames only. When the Composer writes bytes that do not decode
as a message (broken on purpose, or cut short), ``Peer.send_raw`` writes them all but
records only the whole frames at their front; the rest would vanish from every timeline.
This module keeps that rest per trace, as ``Unframed`` notes placed after the trace event
they followed on the wire, so that any timeline of the trace, made before or after, shows
them in their place. ``ReceiverModel`` replays everything one side wrote (its OUT frames
and its unframed bytes, in wire order) through a decoder of its own: the other side's
decoder saw exactly those bytes, so the model knows what it is still waiting for, even
when the other side is a program elsewhere. Nothing here touches a connection.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable
from weakref import WeakKeyDictionary

from ..decoder import DEFAULT_MAX_PAYLOAD_SIZE, Decoder, Frame, Waiting
from ..errors import ProtocolViolation
from ..trace import OUT, Trace

__all__ = ["Unframed", "UnframedLog", "ReceiverModel", "unframed_log", "split_raw", "last_index", "waiting_words"]


@dataclass(frozen=True)
class Unframed:
    """Bytes written (``direction``) that the trace could not file as a frame."""

    number: int  #: its place among the trace's unframed notes, from 0
    after: int  #: index of the last trace event written before these bytes (-1: none)
    direction: str
    data: bytes
    time: float  #: seconds since the trace started, as ``TraceEvent.time``
    problem: str  #: why they are no frame: the located violation, or what is missing

    @property
    def position(self) -> float:
        """Where it sits among the trace's event indices: just after event ``after``."""
        return self.after + 0.5


class UnframedLog:
    """The unframed notes of one trace, in the order they were written; listeners hear new ones."""

    def __init__(self) -> None:
        self.notes: list[Unframed] = []
        self._listeners: list[Callable[[Unframed], None]] = []
        self._lock = threading.Lock()

    def add(self, trace: Trace, after: int, direction: str, data: bytes, problem: str) -> Unframed:
        at = trace.now()  # the trace's clock: a note sits on the same time axis as its frames
        with self._lock:
            note = Unframed(len(self.notes), after, direction, bytes(data), at, problem)
            self.notes.append(note)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(note)
        return note

    def subscribe(self, listener: Callable[[Unframed], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def __len__(self) -> int:
        return len(self.notes)


# Weak keys: a trace that nobody holds any more takes its notes with it.
_LOGS: "WeakKeyDictionary[Trace, UnframedLog]" = WeakKeyDictionary()
_LOGS_LOCK = threading.Lock()


def unframed_log(trace: Trace) -> UnframedLog:
    """The unframed notes kept for ``trace`` (an empty log the first time)."""
    with _LOGS_LOCK:
        log = _LOGS.get(trace)
        if log is None:
            log = _LOGS[trace] = UnframedLog()
        return log


def split_raw(data: bytes) -> tuple[list[Frame], int, str]:
    """What ``Peer.send_raw`` makes of ``data``: the frames it records, where the rest starts, why.

    The frames are the whole ones at the front (decoded as ``send_raw`` decodes them, each
    send on its own); the rest, from the returned offset on, is no frame: the reason is the
    located violation, or "an unfinished message" with the bytes it still needs.
    """
    decoder = Decoder(expect_version=False, max_payload_size=max(len(data), 1))
    try:
        frames = decoder.feed_frames(data)
        violation = None
    except ProtocolViolation as error:
        frames, violation = error.messages, error
    rest = frames[-1].offset + frames[-1].length if frames else 0
    if violation is not None:
        v = violation
        return frames, rest, f"not a message (byte {v.offset} of the {len(data)} written): {v.field}: expected {v.expected}, found {v.found}"
    waiting = decoder.waiting()
    return frames, rest, f"an unfinished message: {waiting_words(waiting)} would finish it"


def waiting_words(waiting: Waiting) -> str:
    """``Waiting(24, 1, True)`` as "1 more byte"; "at least 8 more bytes" while not exact."""
    count = f"{waiting.needed} more byte{'' if waiting.needed == 1 else 's'}"
    return count if waiting.exact else f"at least {count}"


def last_index(trace: Trace) -> int:
    """The index of the last event the trace holds, -1 for none."""
    events = trace.events
    return events[-1].index if events else -1


class ReceiverModel:
    """The other side's decoder, fed what one side (``direction``) of ``trace`` wrote, in order.

    ``catch_up()`` feeds what was written since the last call and returns what the model
    waits for; ``violation`` is set once the bytes stop making sense to it. ``lost`` is
    True when the trace dropped frames the model never saw (its cap): it can no longer tell.
    """

    def __init__(self, trace: Trace, *, direction: str = OUT, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE) -> None:
        self.trace = trace
        self.direction = direction
        self.log = unframed_log(trace)
        self.decoder = Decoder(expect_version=True, max_payload_size=max_payload_size)
        self.violation: ProtocolViolation | None = None
        self.lost = False
        self._next_event = 0  # index of the first event not fed yet
        self._next_note = 0  # number of the first note not fed yet

    def catch_up(self) -> Waiting:
        pieces: list[tuple[float, bytes]] = []
        events = self.trace.events
        if events and events[0].index > self._next_event:
            self.lost = True
        for event in list(events):
            if event.index >= self._next_event and event.direction == self.direction:
                pieces.append((event.index, event.raw))
        if events:
            self._next_event = max(self._next_event, events[-1].index + 1)
        for note in self.log.notes[self._next_note :]:
            if note.direction == self.direction:
                pieces.append((note.position, note.data))
        self._next_note = len(self.log.notes)
        pieces.sort(key=lambda piece: piece[0])  # stable: notes after the same event keep their order
        for _, data in pieces:
            if self.violation is not None:
                break
            try:
                self.decoder.feed(data)
            except ProtocolViolation as violation:
                self.violation = violation
        return self.decoder.waiting()

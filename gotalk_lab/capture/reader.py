"""Gotalk conversations found in a packet capture: a capture file in, messages and notes out.

``read_capture(path)`` streams the file (one packet at a time, never the whole file),
reassembles every TCP connection (``reassembly``), decides which connections speak
Gotalk (each side writes the 2-hex-digit version first; or the caller names the
port) and runs the kit's ``Decoder`` over each direction. It yields
``CapturedMessage`` for every message, with the time of the packet that completed
it, and ``CaptureNote`` for what a reader should know (a connection skipped, a
capture that starts mid-connection, bytes never captured, a connection cut
mid-message, invalid bytes). A file that cannot be read on raises ``CaptureError``
once everything before the damage has been yielded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Union

from ..decoder import DEFAULT_MAX_PAYLOAD_SIZE, Decoder, Frame
from ..errors import ProtocolViolation
from .packets import LINK_NAMES, UnsupportedLink, tcp_segment
from .pcapfile import CaptureError, read_packets
from .reassembly import CLIENT, SERVER, TcpConnection, Tracker

#: Bytes of a direction looked at when hunting for the first whole message in a
#: connection whose start was not captured; a Gotalk header is at most 4 KiB.
RESYNC_WINDOW = 64 * 1024
#: Consecutive whole messages that make a resync position believable: one could be
#: chance (a payload holding "R0001..."), two in a row rarely are.
RESYNC_MESSAGES = 2
_TYPE_BYTES = frozenset(b"rspRSEenhf")
_HEX = frozenset(b"0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class CapturedMessage:
    """One Gotalk message seen in a capture."""

    connection: TcpConnection
    direction: str  #: "client" (from the side that opened the TCP connection) or "server"
    time: float  #: Unix seconds of the packet that completed the message
    frame: Frame  #: offset in its direction's byte stream, header bytes, message


@dataclass(frozen=True, slots=True)
class CaptureNote:
    """Something the reader of a capture should know; ``error`` when input was invalid."""

    connection: TcpConnection | None
    text: str
    error: bool = False
    direction: str | None = None  #: "client" or "server", for a note on one direction's bytes
    violation: ProtocolViolation | None = None  #: the decoder's error, for invalid Gotalk bytes


CaptureEvent = Union[CapturedMessage, CaptureNote]


class _Direction:
    """The Gotalk decoding of one direction of one connection."""

    def __init__(self, at_start: bool, max_payload_size: int) -> None:
        self.max_payload_size = max_payload_size
        self.at_start = at_start  # the stream starts where the connection did
        self.decoder: Decoder | None = None
        self.base = 0  # stream offset where ``decoder`` started
        self.hunt = b""  # bytes kept while looking for a message boundary
        self.hunt_base = 0
        self.stopped = False
        self.skipped = 0  # bytes passed over before the first message found
        self.lost_reported = 0  # bytes never captured, as last reported

    def start(self, expect_version: bool, base: int) -> None:
        self.decoder = Decoder(expect_version=expect_version, max_payload_size=self.max_payload_size)
        self.base = base

    def feed(self, data: bytes, offset: int) -> list[Frame]:
        """Frames completed by ``data`` (which starts at stream offset ``offset``)."""
        if self.stopped:
            return []
        if self.decoder is None:
            if not self.hunt:
                self.hunt_base = offset
            self.hunt += data
            found = resync_point(self.hunt, self.max_payload_size, final=len(self.hunt) >= RESYNC_WINDOW)
            if found is None:
                if len(self.hunt) >= RESYNC_WINDOW:
                    self.stopped = True
                    raise _Lost(f"no Gotalk message boundary found in its first {len(self.hunt)} bytes")
                return []
            data, self.hunt = self.hunt[found:], b""
            self.skipped = found
            self.start(False, self.hunt_base + found)
        frames = self.decoder.feed_frames(data)
        if self.base:
            frames = [frame._replace(offset=frame.offset + self.base) for frame in frames]
        return frames

    def finish(self) -> list[Frame]:
        """At the end of the stream: a last try at a short hunt."""
        if self.decoder is None and self.hunt and not self.stopped:
            found = resync_point(self.hunt, self.max_payload_size, final=True)
            if found is not None:
                data, self.hunt = self.hunt[found:], b""
                self.skipped = found
                self.start(False, self.hunt_base + found)
                return [frame._replace(offset=frame.offset + self.base) for frame in self.decoder.feed_frames(data)]
        return []


class _Lost(Exception):
    pass


def resync_point(data: bytes, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE, *, final: bool = False) -> int | None:
    """The first offset in ``data`` where whole Gotalk messages plausibly begin.

    Plausible: ``RESYNC_MESSAGES`` messages decode there in a row, or fewer that end
    exactly where ``data`` ends when ``final`` (no more bytes will come to check).
    None: not found (yet).
    """
    for start in range(len(data)):
        if data[start] not in _TYPE_BYTES:
            continue
        decoder = Decoder(expect_version=False, max_payload_size=max_payload_size)
        try:
            frames = decoder.feed_frames(data[start:])
        except ProtocolViolation:
            continue
        if len(frames) >= RESYNC_MESSAGES or (final and frames and not decoder.buffered):
            return start
    return None


def _starts_like_gotalk(data: bytes) -> bool:
    """Two hex digits (the version), then a message type or at least no third hex digit.

    A bad type byte right after the version is still a Gotalk connection (one with an
    invalid message, reported as such); a run of hex digits is more likely something else.
    """
    if len(data) < 2 or data[0] not in _HEX or data[1] not in _HEX:
        return False
    return len(data) == 2 or data[2] in _TYPE_BYTES or data[2] not in _HEX


class _Connection:
    """What the reader knows about one TCP connection."""

    def __init__(self, tcp: TcpConnection, forced: bool) -> None:
        self.tcp = tcp
        self.forced = forced  # on the port the caller named
        self.verdict: bool | None = True if forced else None  # Gotalk or not; None: undecided
        self.waiting: list[tuple[str, float, bytes, int]] = []  # data before the verdict
        self.directions: dict[str, _Direction] = {}
        self.violated = False
        self.last_time = tcp.first_time  # of its latest packet


def read_capture(
    source: str | Path | BinaryIO, *, port: int | None = None, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE
) -> Iterator[CaptureEvent]:
    """Every Gotalk message of every Gotalk connection in the capture, as it completes."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            yield from read_capture(handle, port=port, max_payload_size=max_payload_size)
        return
    tracker = Tracker(server_port=port)
    known: dict[int, _Connection] = {}
    unsupported: set[int] = set()
    for packet in read_packets(source):
        try:
            segment = tcp_segment(packet.linktype, packet.data)
        except UnsupportedLink:
            if packet.linktype not in unsupported:
                unsupported.add(packet.linktype)
                yield CaptureNote(None, f"packet {packet.number}: link type {packet.linktype} is not supported (only "
                                  f"{', '.join(sorted(set(LINK_NAMES.values())))}); its packets are skipped")
            continue
        if segment is None:
            continue
        tcp, direction, data, replaced = tracker.add(segment, packet.time)
        if replaced is not None and replaced.number in known:
            yield from _finish(known.pop(replaced.number))
        connection = known.get(tcp.number)
        if connection is None:
            connection = known[tcp.number] = _Connection(tcp, port is not None and port in (tcp.client[1], tcp.server[1]))
        connection.last_time = packet.time
        if data:
            offset = tcp.streams[direction].delivered - len(data)
            yield from _data(connection, direction, packet.time, data, offset, max_payload_size)
    for connection in known.values():
        yield from _finish(connection)


def _data(connection: _Connection, direction: str, moment: float, data: bytes, offset: int, limit: int) -> Iterator[CaptureEvent]:
    if connection.verdict is False:
        return
    if connection.verdict is None:
        connection.waiting.append((direction, moment, data, offset))
        yield from _decide(connection, limit, final=False)
        return
    yield from _decode(connection, direction, moment, data, offset, limit)


def _decide(connection: _Connection, limit: int, *, final: bool) -> Iterator[CaptureEvent]:
    """Gotalk or not, from the first bytes of the connection."""
    tcp = connection.tcp
    first_direction = connection.waiting[0][0]
    stream = tcp.streams[first_direction]
    seen = b"".join(data for direction, _, data, _ in connection.waiting if direction == first_direction)
    if stream.from_syn and connection.waiting[0][3] == 0:
        if len(seen) < 3 and not final:
            return
        if not _starts_like_gotalk(seen):
            connection.verdict = False
            connection.waiting = []
            yield CaptureNote(tcp, f"{tcp.describe()}: not Gotalk (it starts with {seen[:16]!r}), skipped; "
                              "if it is Gotalk, name its port with --port")
            return
    else:
        if len(seen) < RESYNC_WINDOW and resync_point(seen, limit, final=final) is None and not final:
            return
        if resync_point(seen[:RESYNC_WINDOW], limit, final=True) is None:
            connection.verdict = False
            connection.waiting = []
            yield CaptureNote(tcp, f"{tcp.describe()}: its start was not captured (no TCP handshake) and no Gotalk "
                              "message was recognised, skipped; if it is Gotalk, name its port with --port")
            return
    connection.verdict = True
    waiting, connection.waiting = connection.waiting, []
    for direction, moment, data, offset in waiting:
        yield from _decode(connection, direction, moment, data, offset, limit)


def _direction(connection: _Connection, direction: str, offset: int, limit: int) -> Iterator[CaptureEvent]:
    tcp = connection.tcp
    state = _Direction(tcp.streams[direction].from_syn and offset == 0, limit)
    if state.at_start:
        state.start(True, 0)
    else:
        side = "its client" if direction == CLIENT else "its server"
        guess = "" if tcp.handshake_seen else "; which side is the client is a guess (lower port = server)"
        yield CaptureNote(tcp, f"{tcp.describe()}: the capture starts mid-connection for the bytes of {side} (no "
                          f"handshake seen): decoding resumes at the next plausible message{guess}")
    connection.directions[direction] = state


def _decode(connection: _Connection, direction: str, moment: float, data: bytes, offset: int, limit: int) -> Iterator[CaptureEvent]:
    if direction not in connection.directions:
        yield from _direction(connection, direction, offset, limit)
    state = connection.directions[direction]
    tcp = connection.tcp
    try:
        frames = state.feed(data, offset)
    except ProtocolViolation as violation:
        state.stopped = True
        connection.violated = True
        for frame in violation.messages:
            yield CapturedMessage(tcp, direction, moment, frame._replace(offset=frame.offset + state.base))
        yield CaptureNote(tcp, f"{tcp.describe()}, {direction} bytes: invalid at stream byte "
                          f"{violation.offset + state.base} ({violation.field}: expected {violation.expected}, "
                          f"found {violation.found}); the rest of this direction is not decoded", error=True,
                          direction=direction, violation=violation)
        return
    except _Lost as lost:
        yield CaptureNote(tcp, f"{tcp.describe()}, {direction} bytes: {lost}; this direction is not decoded")
        return
    for frame in frames:
        yield CapturedMessage(tcp, direction, moment, frame)
    stream = tcp.streams[direction]
    if stream.lost != state.lost_reported:
        state.lost_reported = stream.lost
        yield CaptureNote(tcp, f"{tcp.describe()}, {direction} bytes: {stream.lost} bytes were never captured")


def _finish(connection: _Connection) -> Iterator[CaptureEvent]:
    """The end of a connection (or of the capture): holes, unfinished messages."""
    tcp = connection.tcp
    limit = DEFAULT_MAX_PAYLOAD_SIZE
    if connection.verdict is None and connection.waiting:
        yield from _decide(connection, limit, final=True)
    if connection.verdict is not True:
        return
    for direction in (CLIENT, SERVER):
        stream = tcp.streams[direction]
        while stream.holding:  # bytes after a hole that never filled: decode them after a resync
            before = stream.delivered
            data = stream.skip_hole()
            yield CaptureNote(tcp, f"{tcp.describe()}, {direction} bytes: the capture lacks stream bytes "
                              f"{before} to {stream.delivered - len(data)}; decoding resumes at the next plausible message")
            state = connection.directions.get(direction)
            if state is not None and not state.stopped:
                state.decoder = None
                state.hunt = b""
            yield from _decode(connection, direction, connection.last_time, data, stream.delivered - len(data), limit)
        state = connection.directions.get(direction)
        if state is None:
            continue
        for frame in state.finish():
            yield CapturedMessage(tcp, direction, connection.last_time, frame)
        decoder = state.decoder
        if decoder is not None and not state.stopped and decoder.buffered:
            yield CaptureNote(tcp, f"{tcp.describe()}, {direction} bytes: the connection ends {decoder.buffered} "
                              f"bytes into a message that starts at stream byte {decoder.offset + state.base} "
                              "(cut mid-message)")

"""TCP reassembly: captured segments in, each connection's two byte streams out, in order.

``HalfStream`` is one direction: it places every segment by its sequence number, drops
what was already delivered (retransmissions, overlaps), holds what came early until the
hole before it is filled, and hands out bytes only once they are contiguous, with the
time of the packet that made them so. ``Tracker`` finds the connections (a SYN opens a
new one on a reused address pair) and says which side opened each. Bounded: a hole
that never fills is given up after ``MAX_HELD_BYTES`` and reported as a gap.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from .packets import ACK, FIN, RST, SYN, Segment, endpoint_text

CLIENT, SERVER = "client", "server"

#: Out-of-order bytes one direction may hold while waiting for a missing segment. A
#: capture that lost a segment for good would otherwise make the reader hold the rest
#: of the connection; past this the hole is declared lost and reading goes on after it.
MAX_HELD_BYTES = 32 * 1024 * 1024

_WRAP = 1 << 32


class HalfStream:
    """One direction of a TCP connection, reassembled."""

    def __init__(self) -> None:
        self.started = False  #: its first sequence number is known
        self.from_syn = False  #: ...because its SYN was seen (else: mid-connection)
        self.delivered = 0  #: bytes handed out so far (the stream offset of the next byte)
        self._next_raw = 0  # the sequence number of the next byte, modulo 2^32
        self._held: list[tuple[int, int, bytes]] = []  # heap of (offset, arrival order, bytes)
        self._held_bytes = 0
        self._order = itertools.count()
        self.lost = 0  #: bytes never captured (holes given up)
        self.fin = False

    def _offset(self, seq: int) -> int:
        """The stream offset of sequence number ``seq`` (near the next expected byte)."""
        distance = (seq - self._next_raw) % _WRAP
        if distance >= _WRAP // 2:
            distance -= _WRAP
        return self.delivered + distance

    def add(self, seq: int, payload: bytes, flags: int) -> bytes:
        """Place one segment; return the bytes that are now contiguous (often empty)."""
        if flags & SYN:
            if not self.started or (not self.from_syn and self.delivered == 0):
                self.started, self.from_syn = True, True
                self._next_raw = (seq + 1) % _WRAP
            seq = (seq + 1) % _WRAP  # a SYN may carry data after its own sequence number
        if flags & FIN:
            self.fin = True
        if not payload:
            return b""
        if not self.started:
            self.started = True
            self._next_raw = seq
        start = self._offset(seq)
        end = start + len(payload)
        if end <= self.delivered:
            return b""  # all of it was delivered already: a retransmission
        if start > self.delivered:
            heapq.heappush(self._held, (start, next(self._order), payload))
            self._held_bytes += len(payload)
            if self._held_bytes > MAX_HELD_BYTES:
                return self.skip_hole()
            return b""
        return self._deliver([payload[self.delivered - start :]])

    def _deliver(self, pieces: list[bytes]) -> bytes:
        self.delivered += len(pieces[0])
        held = self._held
        while held and held[0][0] <= self.delivered:
            start, _, payload = heapq.heappop(held)
            self._held_bytes -= len(payload)
            if start + len(payload) > self.delivered:
                pieces.append(payload[self.delivered - start :])
                self.delivered = start + len(payload)
        self._next_raw = (self._next_raw + sum(map(len, pieces))) % _WRAP
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    @property
    def holding(self) -> int:
        """Bytes received after a hole that is not filled yet."""
        return self._held_bytes

    def skip_hole(self) -> bytes:
        """Give up the first hole: count it as lost and return what follows it."""
        if not self._held:
            return b""
        start = self._held[0][0]
        self.lost += start - self.delivered
        self._next_raw = (self._next_raw + start - self.delivered) % _WRAP
        self.delivered = start
        start, _, payload = heapq.heappop(self._held)
        self._held_bytes -= len(payload)
        return self._deliver([payload])


@dataclass(eq=False)
class TcpConnection:
    """One TCP connection: its endpoints, who opened it, its two directions."""

    number: int
    client: tuple[bytes, int]
    server: tuple[bytes, int]
    handshake_seen: bool  #: the opening SYN was captured; else ``client`` is a guess
    first_time: float
    streams: dict[str, HalfStream] = field(default_factory=lambda: {CLIENT: HalfStream(), SERVER: HalfStream()})
    ended: bool = False  #: RST seen, or FIN seen both ways

    @property
    def client_text(self) -> str:
        return endpoint_text(self.client)

    @property
    def server_text(self) -> str:
        return endpoint_text(self.server)

    def describe(self) -> str:
        return f"connection {self.number} ({self.client_text} -> {self.server_text})"


class Tracker:
    """Segments in, (connection, direction, bytes) out, connection by connection.

    ``server_port``: without a handshake, the side on this port is taken for the
    server (otherwise the side with the lower port number is).
    """

    def __init__(self, server_port: int | None = None) -> None:
        self.server_port = server_port
        self.connections: dict[frozenset, TcpConnection] = {}
        self._numbers = itertools.count(1)

    def add(self, segment: Segment, moment: float) -> tuple[TcpConnection, str, bytes, TcpConnection | None]:
        """File one segment: (its connection, its direction, bytes now contiguous, a connection it replaced)."""
        key = frozenset((segment.source, segment.destination))
        connection = self.connections.get(key)
        flags = segment.flags
        opening = flags & SYN and not flags & ACK
        replaced = None
        if connection is not None and opening and (connection.ended or connection.streams[CLIENT].delivered or connection.client != segment.source):
            replaced, connection = connection, None  # the address pair is reused by a new connection
        if connection is None:
            connection = self._new(segment, moment)
            self.connections[key] = connection
        direction = CLIENT if segment.source == connection.client else SERVER
        stream = connection.streams[direction]
        data = stream.add(segment.seq, segment.payload, flags)
        if flags & RST or (connection.streams[CLIENT].fin and connection.streams[SERVER].fin):
            connection.ended = True
        return connection, direction, data, replaced

    def _new(self, segment: Segment, moment: float) -> TcpConnection:
        source, destination = segment.source, segment.destination
        flags = segment.flags
        if flags & SYN:
            # SYN from the opener; SYN+ACK (its SYN lost) from the other side.
            client, server = (source, destination) if not flags & ACK else (destination, source)
            return TcpConnection(next(self._numbers), client, server, not flags & ACK, moment)
        if self.server_port is not None and self.server_port in (source[1], destination[1]):
            server = source if source[1] == self.server_port else destination
        else:
            server = source if source[1] < destination[1] else destination
        client = destination if server == source else source
        return TcpConnection(next(self._numbers), client, server, False, moment)

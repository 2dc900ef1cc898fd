"""TCP connections made up as packets: what ``tap --pcap`` writes and what the tests build.

``TcpConversation`` turns "the client sent these bytes at this time" into Ethernet,
IPv4 and TCP headers with correct checksums and sequence numbers (a three-way
handshake, data segments of at most ``MSS`` bytes acknowledged by the other side's
next segment, FIN at the end) and hands each frame to a ``PcapWriter``. Tests also call
``segment`` directly to write segments out of order, twice or overlapping.
"""

from __future__ import annotations

import socket
import struct

from .packets import ACK, FIN, PSH, RST, SYN
from .pcapfile import PcapWriter

CLIENT, SERVER = "client", "server"

#: Largest TCP payload per synthesized segment: Ethernet's usual 1460 would multiply the
#: packets of a busy tap by 40; loopback captures show segments this large anyway.
MSS = 32768

_MACS = {CLIENT: bytes.fromhex("020000000001"), SERVER: bytes.fromhex("020000000002")}


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_address(host: str) -> bytes:
    """The 4 bytes of an IPv4 address; other addresses (IPv6, names) become 127.0.0.1."""
    try:
        return socket.inet_aton(host)
    except OSError:
        return socket.inet_aton("127.0.0.1")


class TcpConversation:
    """One TCP connection between ``client`` and ``server`` ((host, port) each), as frames."""

    def __init__(
        self,
        writer: PcapWriter,
        client: tuple[str, int],
        server: tuple[str, int],
        *,
        client_isn: int = 0x10000000,
        server_isn: int = 0x20000000,
    ) -> None:
        self.writer = writer
        self.address = {CLIENT: ipv4_address(client[0]), SERVER: ipv4_address(server[0])}
        self.port = {CLIENT: client[1], SERVER: server[1]}
        self.next_seq = {CLIENT: client_isn, SERVER: server_isn}
        self.isn = dict(self.next_seq)
        self._ip_id = 0
        self.closed = {CLIENT: False, SERVER: False}

    def open(self, moment: float) -> None:
        """The three-way handshake."""
        self.segment(CLIENT, b"", SYN, moment, ack=0)
        self.next_seq[CLIENT] += 1
        self.segment(SERVER, b"", SYN | ACK, moment)
        self.next_seq[SERVER] += 1
        self.segment(CLIENT, b"", ACK, moment)

    def send(self, side: str, data: bytes, moment: float) -> None:
        """``data`` from ``side``, in segments of at most ``MSS`` bytes."""
        for start in range(0, len(data), MSS):
            piece = data[start : start + MSS]
            self.segment(side, piece, ACK | PSH, moment)
            self.next_seq[side] += len(piece)

    def close(self, side: str, moment: float) -> None:
        """``side`` closes first (FIN), the other answers with its own FIN, then the last ACK."""
        other = SERVER if side == CLIENT else CLIENT
        for closing in (side, other):
            if not self.closed[closing]:
                self.segment(closing, b"", FIN | ACK, moment)
                self.next_seq[closing] += 1
                self.closed[closing] = True
        self.segment(side, b"", ACK, moment)

    def reset(self, side: str, moment: float) -> None:
        self.segment(side, b"", RST | ACK, moment)
        self.closed = {CLIENT: True, SERVER: True}

    def segment(self, side: str, payload: bytes, flags: int, moment: float, *, seq: int | None = None, ack: int | None = None) -> None:
        """Write one frame from ``side``; ``seq`` defaults to that side's next sequence number."""
        other = SERVER if side == CLIENT else CLIENT
        seq = self.next_seq[side] if seq is None else seq
        ack = self.next_seq[other] if ack is None else ack
        source, destination = self.address[side], self.address[other]
        tcp = struct.pack(
            "!HHIIHHHH",
            self.port[side],
            self.port[other],
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            (5 << 12) | flags,
            65535,
            0,
            0,
        )
        pseudo = source + destination + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp + payload)) + tcp[18:]
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), self._ip_id, 0x4000, 64, 6, 0, source, destination)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        ethernet = _MACS[other] + _MACS[side] + b"\x08\x00"
        self.writer.write(moment, ethernet + ip + tcp + payload)

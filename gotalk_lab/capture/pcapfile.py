"""Packet capture files, streamed: classic pcap (libpcap) and pcapng, in and out.

``read_packets(source)`` yields one ``Packet`` at a time (its time in Unix seconds, its
link type and its bytes) from a binary file, never holding more than one packet; the
format is told by the magic number. ``PcapWriter`` writes classic pcap. This module
knows nothing of IP, TCP or Gotalk; a file it cannot read raises ``CaptureError`` after
every whole packet before the damage has been yielded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

#: Link types (https://www.tcpdump.org/linktypes.html) that ``packets`` can take apart.
LINKTYPE_NULL = 0  #: BSD loopback: a 4-byte address family in the capturing host's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  #: raw IPv4 or IPv6, told by the version nibble
LINKTYPE_LOOP = 108  #: OpenBSD loopback: the address family in network byte order
LINKTYPE_LINUX_SLL = 113  #: Linux cooked capture v1 (tcpdump -i any before libpcap 1.10)
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276  #: Linux cooked capture v2 (tcpdump -i any)

#: Classic pcap magic numbers as they appear in the file -> (byte order, seconds per tick).
PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),  # nanosecond timestamps
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"  #: a pcapng file starts with its Section Header Block

#: Largest packet record accepted. Real snapshot lengths are at most 256 KiB; a record
#: that claims more is a damaged file, and is refused before anything is allocated.
MAX_RECORD_SIZE = 16 * 1024 * 1024

# pcapng block types read here; all others are skipped whole.
_SHB, _IDB, _OPB, _SPB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000002, 0x00000003, 0x00000006


class CaptureError(Exception):
    """A capture file that cannot be read on: names the byte offset and what was wrong."""

    def __init__(self, offset: int, problem: str) -> None:
        super().__init__(f"byte {offset}: {problem}")
        self.offset = offset
        self.problem = problem


@dataclass(slots=True)
class Packet:
    """One captured packet: as much of it as was captured."""

    number: int  #: 1 for the first packet of the file, as Wireshark counts
    time: float  #: Unix seconds
    linktype: int
    data: bytes
    interface: int = 0  #: the pcapng interface it was captured on (0 in classic pcap)


def capture_format(head: bytes) -> str | None:
    """``"pcap"``, ``"pcapng"`` or None, from a file's first four bytes."""
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC:
        return "pcapng"
    return None


def read_packets(source: BinaryIO) -> Iterator[Packet]:
    """Every packet of a pcap or pcapng file, in file order, one at a time."""
    head = _read_exactly(source, 4, 0, "the file's magic number")
    kind = capture_format(head)
    if kind == "pcap":
        yield from _read_pcap(source, head)
    elif kind == "pcapng":
        yield from _read_pcapng(source, head)
    else:
        raise CaptureError(0, f"not a pcap or pcapng capture (it starts with {head!r})")


def _read_exactly(source: BinaryIO, size: int, offset: int, what: str) -> bytes:
    data = source.read(size)
    if len(data) < size:
        raise CaptureError(offset + len(data), f"the file is cut short in {what} ({len(data)} of {size} bytes)")
    return data


def _read_pcap(source: BinaryIO, magic: bytes) -> Iterator[Packet]:
    order, tick = PCAP_MAGICS[magic]
    header = _read_exactly(source, 20, 4, "the pcap file header")
    _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(order + "HHiIII", header)
    linktype = network & 0xFFFF  # the upper bits carry FCS information
    record = struct.Struct(order + "IIII")
    offset, number = 24, 0
    read = source.read
    while True:
        raw = read(16)
        if not raw:
            return
        number += 1
        if len(raw) < 16:
            raise CaptureError(offset + len(raw), f"the file is cut short in the record header of packet {number}")
        seconds, fraction, captured, _original = record.unpack(raw)
        if captured > MAX_RECORD_SIZE:
            raise CaptureError(offset + 8, f"packet {number} claims {captured} bytes: the file is damaged")
        data = read(captured)
        if len(data) < captured:
            raise CaptureError(
                offset + 16 + len(data), f"the file is cut short in packet {number} ({len(data)} of {captured} bytes)"
            )
        yield Packet(number, seconds + fraction * tick, linktype, data)
        offset += 16 + captured


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    tick: float = 1e-6  # if_tsresol, default microseconds
    offset_seconds: int = 0  # if_tsoffset


def _read_pcapng(source: BinaryIO, magic: bytes) -> Iterator[Packet]:
    offset, number = 0, 0
    order = "<"
    interfaces: list[_Interface] = []
    head = magic + _read_exactly(source, 4, 4, "the section header")
    while True:
        if head[:4] == PCAPNG_MAGIC:  # a new section: its own byte order and interfaces
            bom = _read_exactly(source, 4, offset + 8, "the section header")
            if bom == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise CaptureError(offset + 8, "a pcapng section header without its byte-order magic")
            block_type, already = _SHB, 4
            interfaces = []
        else:
            block_type, already = struct.unpack(order + "I", head[:4])[0], 0
        (length,) = struct.unpack(order + "I", head[4:8])
        if length < 12 + already or length % 4 or length > MAX_RECORD_SIZE:
            raise CaptureError(offset + 4, f"a pcapng block of {length} bytes: the file is damaged")
        body = _read_exactly(source, length - 12 - already, offset + 8 + already, f"a pcapng block (type {block_type:#x})")
        _read_exactly(source, 4, offset + length - 4, "a pcapng block's trailing length")
        if block_type == _IDB:
            interfaces.append(_interface(body, order))
        elif block_type in (_EPB, _OPB, _SPB):
            number += 1
            yield _packet(block_type, body, order, interfaces, number, offset)
        offset += length
        head = source.read(8)
        if not head:
            return
        if len(head) < 8:
            raise CaptureError(offset + len(head), "the file is cut short in a pcapng block header")


def _packet(block_type: int, body: bytes, order: str, interfaces: list, number: int, offset: int) -> Packet:
    high = low = None
    if block_type == _SPB:  # Simple Packet Block: interface 0, no timestamp
        interface_id, data_at = 0, 4
        (captured,) = struct.unpack_from(order + "I", body)
    elif block_type == _EPB:
        interface_id, high, low, captured, _original = struct.unpack_from(order + "IIIII", body)
        data_at = 20
    else:  # the obsolete Packet Block
        interface_id, _drops, high, low, captured, _original = struct.unpack_from(order + "HHIIII", body)
        data_at = 20
    if interface_id >= len(interfaces):
        raise CaptureError(offset, f"packet {number} names interface {interface_id}, which the file never described")
    interface = interfaces[interface_id]
    if block_type == _SPB:
        captured = min(captured, interface.snaplen or captured, len(body) - data_at)
    if captured > len(body) - data_at:
        raise CaptureError(offset, f"packet {number} claims more bytes than its block holds")
    moment = 0.0 if high is None else ((high << 32) | low) * interface.tick + interface.offset_seconds
    return Packet(number, moment, interface.linktype, body[data_at : data_at + captured], interface_id)


def _interface(body: bytes, order: str) -> _Interface:
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
    interface = _Interface(linktype, snaplen)
    at = 8
    while at + 4 <= len(body):
        code, size = struct.unpack_from(order + "HH", body, at)
        value = body[at + 4 : at + 4 + size]
        if code == 0:  # opt_endofopt
            break
        if code == 9 and size >= 1:  # if_tsresol: 10^-n, or 2^-n when the top bit is set
            exponent = value[0] & 0x7F
            interface.tick = 2.0**-exponent if value[0] & 0x80 else 10.0**-exponent
        elif code == 14 and size == 8:  # if_tsoffset, whole seconds
            (interface.offset_seconds,) = struct.unpack(order + "q", value)
        at += 4 + size + (-size % 4)
    return interface


class PcapWriter:
    """Writes a classic pcap file (microsecond timestamps) one packet at a time.

    Each packet is flushed as it is written, so a file being written can be opened
    by Wireshark or ``decode`` at any time and shows whole packets only.
    """

    def __init__(self, sink: BinaryIO, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144) -> None:
        self.sink = sink
        self.linktype = linktype
        self.packets = 0
        sink.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
        sink.flush()

    def write(self, moment: float, data: bytes) -> None:
        seconds = int(moment)
        micros = min(int(round((moment - seconds) * 1_000_000)), 999_999)
        self.sink.write(struct.pack("<IIII", seconds, micros, len(data), len(data)) + data)
        self.sink.flush()
        self.packets += 1

    def close(self) -> None:
        self.sink.close()

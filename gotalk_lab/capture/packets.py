"""Link, IP and TCP headers taken apart: a captured packet in, a ``Segment`` (or None) out.

Only what TCP reassembly needs is read: the two endpoints, the sequence number, the
flags and the payload, cut to the length the IP header gives (Ethernet pads short
frames). Anything that is not TCP over IPv4 or IPv6 is None, never an error; a link
type this module cannot read is ``UnsupportedLink``. No file I/O here.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from .pcapfile import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

#: Link types by their usual names, for messages.
LINK_NAMES = {
    LINKTYPE_NULL: "BSD loopback",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW: "raw IP",
    12: "raw IP",  # DLT_RAW on OpenBSD
    14: "raw IP",  # DLT_RAW on other BSDs
    LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_IPV6: "raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked (SLL2)",
}

ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD
_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)
# Address family values that mean IPv6 in a BSD loopback header, by operating system.
_AF_INET6 = frozenset({10, 24, 28, 30})
_TCP = 6
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class UnsupportedLink(Exception):
    """A link type this kit cannot take apart."""


@dataclass(slots=True)
class Segment:
    """One TCP segment: endpoints as (packed IP address, port)."""

    source: tuple[bytes, int]
    destination: tuple[bytes, int]
    seq: int
    ack: int
    flags: int
    payload: bytes


def endpoint_text(endpoint: tuple[bytes, int]) -> str:
    """``127.0.0.1:9000`` or ``[::1]:9000``."""
    address, port = endpoint
    if len(address) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, address)}:{port}"
    return f"[{socket.inet_ntop(socket.AF_INET6, address)}]:{port}"


def tcp_segment(linktype: int, data: bytes) -> Segment | None:
    """The TCP segment inside a captured frame, or None when there is none."""
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        ethertype, at = struct.unpack_from("!H", data, 12)[0], 14
        while ethertype in _VLAN_TAGS and len(data) >= at + 4:
            ethertype, at = struct.unpack_from("!H", data, at + 2)[0], at + 4
        return _ip(ethertype, data, at)
    if linktype == LINKTYPE_LINUX_SLL:
        return _ip(struct.unpack_from("!H", data, 14)[0], data, 16) if len(data) >= 16 else None
    if linktype == LINKTYPE_LINUX_SLL2:
        return _ip(struct.unpack_from("!H", data, 0)[0], data, 20) if len(data) >= 20 else None
    if linktype in (LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not data:
            return None
        return _ip(ETHERTYPE_IPV4 if data[0] >> 4 == 4 else ETHERTYPE_IPV6, data, 0)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            return None
        # The family is in the capturing host's byte order (NULL) or network order (LOOP):
        # a small number read one way is the right one.
        family = struct.unpack_from("!I", data)[0]
        if family > 0xFFFF:
            family = struct.unpack_from("<I", data)[0]
        ethertype = ETHERTYPE_IPV4 if family == 2 else ETHERTYPE_IPV6 if family in _AF_INET6 else 0
        return _ip(ethertype, data, 4)
    raise UnsupportedLink(f"link type {linktype}")


def _ip(ethertype: int, data: bytes, at: int) -> Segment | None:
    if ethertype == ETHERTYPE_IPV4:
        if len(data) < at + 20 or data[at] >> 4 != 4:
            return None
        header_size = (data[at] & 0x0F) * 4
        total, fragment, protocol = struct.unpack_from("!H2xHxB", data, at + 2)
        if protocol != _TCP or fragment & 0x3FFF:  # fragments are not reassembled (TCP avoids them)
            return None
        source, destination = data[at + 12 : at + 16], data[at + 16 : at + 20]
        # Total length 0: TCP segmentation offload, the real length is what was captured.
        end = at + total if total else len(data)
        return _tcp(data, at + header_size, min(end, len(data)), source, destination)
    if ethertype == ETHERTYPE_IPV6:
        if len(data) < at + 40:
            return None
        payload_size, next_header = struct.unpack_from("!HB", data, at + 4)
        source, destination = data[at + 8 : at + 24], data[at + 24 : at + 40]
        end = min(at + 40 + payload_size, len(data)) if payload_size else len(data)
        at += 40
        while next_header in (0, 43, 60) and len(data) >= at + 8:  # hop-by-hop, routing, destination options
            next_header, at = data[at], at + 8 + data[at + 1] * 8
        return _tcp(data, at, end, source, destination) if next_header == _TCP else None
    return None


def _tcp(data: bytes, at: int, end: int, source: bytes, destination: bytes) -> Segment | None:
    if end < at + 20:
        return None
    source_port, destination_port, seq, ack, offset_flags = struct.unpack_from("!HHIIH", data, at)
    header_size = (offset_flags >> 12) * 4
    return Segment(
        (source, source_port), (destination, destination_port), seq, ack, offset_flags & 0x3F, data[at + header_size : end]
    )

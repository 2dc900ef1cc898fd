"""Packet captures: read pcap/pcapng files into Gotalk messages, write what a tap relays as pcap.

A layer over the codec (``decoder``) and below the trace: it reads files and never
opens a socket. ``read_capture`` is the reader (``Trace.from_pcap`` is built on it);
``PcapWriter`` and ``TcpConversation`` the writer, which ``tap_pcap`` uses for the tap.
"""

from __future__ import annotations

from .pcapfile import CaptureError, Packet, PcapWriter, capture_format, read_packets
from .reader import CaptureNote, CapturedMessage, read_capture, resync_point
from .synth import TcpConversation

__all__ = [
    "CaptureError",
    "CaptureNote",
    "CapturedMessage",
    "Packet",
    "PcapWriter",
    "TcpConversation",
    "capture_format",
    "read_capture",
    "read_packets",
    "resync_point",
]

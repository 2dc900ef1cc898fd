"""Packet captures: read pcap/pcapng files into Gotalk messages, write what a tap relays as pcap.

A tool layer over the codec (``decoder``) and the trace: it reads files and never opens
a socket. ``read_capture`` is the reader; ``PcapWriter`` and ``TcpConversation`` the
writer; ``traces_from_capture`` feeds ``Trace``, ``Timeline`` and ``Player``.
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
    "traces_from_capture",
]


def traces_from_capture(path, *, port: int | None = None, cap=None):
    """One ``Trace`` per Gotalk connection in the capture: ``out`` = client, ``in`` = server."""
    from ..trace import DEFAULT_TRACE_CAP, IN, OUT, Trace

    traces: dict[int, Trace] = {}
    for event in read_capture(path, port=port):
        if not isinstance(event, CapturedMessage):
            continue
        connection = event.connection
        trace = traces.get(connection.number)
        if trace is None:
            trace = traces[connection.number] = Trace(cap=DEFAULT_TRACE_CAP if cap is None else cap)
            trace.started_wall = connection.first_time
            trace.connection = connection.describe()
        direction = OUT if event.direction == "client" else IN
        trace.record(direction, event.frame.header, event.frame.message, at=max(0.0, event.time - trace.started_wall))
    return list(traces.values())

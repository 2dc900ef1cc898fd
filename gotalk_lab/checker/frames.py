"""A case's wire log as a ``Trace``: what the timeline and frame widgets show.

Each connection's sent and received bytes are decoded separately with the codec's
``Decoder`` (chunk boundaries do not matter); every whole message becomes a trace
event at the time its last chunk came. Bytes that are not Gotalk (a case sends some
on purpose) end the decoding of that direction; the raw log still has them. Pure
data: no widgets, no sockets.
"""

from __future__ import annotations

from ..decoder import Decoder
from ..errors import ProtocolViolation
from ..trace import IN, OUT, Trace
from .report import CaseResult
from .session import SENT


def case_trace(result: CaseResult) -> Trace:
    """Every whole message of the case's wire log, in order: the checker is OUT, the server IN."""
    trace = Trace(cap=None)
    decoders: dict[tuple[int, str], Decoder | None] = {}
    for number, chunk in result.frames:
        key = (number, chunk.direction)
        if key not in decoders:
            # A stream that starts with a message type has no version (a server that skips it).
            decoders[key] = Decoder(expect_version=chunk.data[:1].isdigit(), max_payload_size=1 << 30)
        decoder = decoders[key]
        if decoder is None:
            continue
        try:
            frames = decoder.feed_frames(chunk.data)
        except ProtocolViolation as violation:
            frames = violation.messages
            decoders[key] = None
        direction = OUT if chunk.direction == SENT else IN
        for frame in frames:
            trace.record(direction, frame.header, frame.message, at=chunk.time)
    return trace

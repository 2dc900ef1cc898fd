"""Incremental, sans-IO decoding of a Gotalk byte stream.

``Decoder.feed(data)`` takes bytes in any chunking (one byte at a time is fine)
and returns the messages completed so far. It owns buffering and validation; it
never reads a socket, never writes a reply and never interprets request IDs. A
header is only committed once it is whole; a size field is checked against the
limit before any of the payload is kept. Bad input raises a ``ProtocolViolation``
naming the absolute byte offset, the field, what was expected and what was found.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import ProtocolViolation
from .wire import (
    MESSAGE_TYPES,
    ErrorResult,
    Heartbeat,
    Message,
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

#: Largest payload accepted by default. The wire allows 4 GiB; a learning kit
#: that buffered that much on a peer's say-so could be made to exhaust memory
#: by one header, so anything larger must be asked for explicitly.
DEFAULT_MAX_PAYLOAD_SIZE = 64 * 1024 * 1024

_HEX = frozenset(b"0123456789abcdefABCDEF")
_H3 = rb"([0-9a-fA-F]{3})"
_H8 = rb"([0-9a-fA-F]{8})"

# Fast paths: one compiled pattern per header shape, matched right after the type
# byte. When a pattern does not match, ``_locate`` walks the header field by
# field to say exactly which byte is wrong (or that more bytes are needed).
_ID_SIZE = re.compile(rb"(.{4})" + _H8, re.S)  # R S E p
_ID_NAMESIZE = re.compile(rb"(.{4})" + _H3, re.S)  # r s (then name, size)
_ID_WAIT_SIZE = re.compile(rb"(.{4})" + _H8 + _H8, re.S)  # e
_NAMESIZE = re.compile(_H3)  # n (then name, size)
_SIZE = re.compile(_H8)  # after a name
_LOAD_TIME = re.compile(rb"([0-9a-fA-F]{4})" + _H8)  # h
_CODE = re.compile(_H8)  # f

_ID_SIZE_CLASSES = {ord("R"): SingleResult, ord("S"): StreamResult, ord("E"): ErrorResult, ord("p"): StreamRequestPart}
_REQUEST_CLASSES = {ord("r"): SingleRequest, ord("s"): StreamRequest}

#: Header fields per type byte, in wire order: (field name, size in bytes or
#: None for the name whose size comes from the field before, kind). Shared with
#: ``annotate`` so that the error locator and the explainer agree on layout.
LAYOUTS: dict[bytes, tuple[tuple[str, int | None, str], ...]] = {
    b"r": (("type", 1, "type"), ("request_id", 4, "id"), ("name_size", 3, "hex"), ("operation", None, "name"), ("payload_size", 8, "hex")),
    b"s": (("type", 1, "type"), ("request_id", 4, "id"), ("name_size", 3, "hex"), ("operation", None, "name"), ("payload_size", 8, "hex")),
    b"p": (("type", 1, "type"), ("request_id", 4, "id"), ("payload_size", 8, "hex")),
    b"R": (("type", 1, "type"), ("request_id", 4, "id"), ("payload_size", 8, "hex")),
    b"S": (("type", 1, "type"), ("request_id", 4, "id"), ("payload_size", 8, "hex")),
    b"E": (("type", 1, "type"), ("request_id", 4, "id"), ("payload_size", 8, "hex")),
    b"e": (("type", 1, "type"), ("request_id", 4, "id"), ("wait", 8, "hex"), ("payload_size", 8, "hex")),
    b"n": (("type", 1, "type"), ("name_size", 3, "hex"), ("name", None, "name"), ("payload_size", 8, "hex")),
    b"h": (("type", 1, "type"), ("load", 4, "hex"), ("time", 8, "hex")),
    b"f": (("type", 1, "type"), ("code", 8, "hex")),
}

_TYPE_LIST = "one of r s p R S E e n h f"


def _show(raw: bytes) -> str:
    """Bytes as a student reads them: printable ASCII as is, the rest as \\xNN."""
    text = "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)
    return f"'{text}'"


class Frame(NamedTuple):
    """A decoded message with where it was: absolute offset and its header bytes."""

    offset: int
    header: bytes
    message: Message

    @property
    def length(self) -> int:
        return len(self.header) + len(getattr(self.message, "payload", b""))


class Decoder:
    """Turns a byte stream into Gotalk messages, chunk by chunk.

    ``expect_version``: the stream starts with the two-digit protocol version (a
    whole conversation as one side wrote it); it is returned as a
    ``ProtocolVersion`` message. ``max_payload_size`` refuses larger payloads
    from their size field alone.
    """

    def __init__(self, *, expect_version: bool = True, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE) -> None:
        self.max_payload_size = max_payload_size
        self._need_version = expect_version
        self._buf = b""  # bytes not yet part of a committed header
        self._base = 0  # absolute stream offset of self._buf[0]
        self._located = False
        # A committed header whose payload is still arriving (large or split payloads).
        self._pending: tuple | None = None  # (offset, header, class, leading fields)
        self._chunks: list[bytes] = []
        self._missing = 0
        #: The violation that stopped this decoder, if any; ``feed`` raises it again.
        self.error: ProtocolViolation | None = None

    @property
    def offset(self) -> int:
        """Absolute offset of the first byte not yet part of a returned message."""
        if self._pending is not None:
            return self._pending[0]
        return self._base

    @property
    def buffered(self) -> int:
        """How many bytes are held waiting for the rest of their message."""
        return len(self._buf) + sum(map(len, self._chunks)) + (len(self._pending[1]) if self._pending else 0)

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return every message it completes, in order."""
        self._located = False
        return self._feed(data)

    def feed_frames(self, data: bytes) -> list[Frame]:
        """Like ``feed``, but each message comes with its offset and raw header bytes."""
        self._located = True
        return self._feed(data)

    def _feed(self, data) -> list:
        if self.error is not None:
            raise self.error
        if type(data) is not bytes:
            data = bytes(data)
        out: list = []
        try:
            if self._missing:
                data = self._continue_payload(data, out)
                if self._missing:
                    return out
            buf = self._buf + data if self._buf else data
            if self._need_version:
                if len(buf) < 2:
                    self._check_partial_version(buf)
                    self._buf = buf
                    return out
                self._read_version(buf, out)
                buf = buf[2:]
                self._base += 2
            self._parse(buf, out)
        except ProtocolViolation as violation:
            violation.messages = out
            self.error = violation
            raise
        return out

    # -- the version preamble -------------------------------------------------

    def _check_partial_version(self, buf: bytes) -> None:
        for i, b in enumerate(buf):
            if b not in _HEX:
                raise ProtocolViolation(self._base + i, "version", "2 hex digits (\"01\")", _show(buf[i : i + 1]))

    def _read_version(self, buf: bytes, out: list) -> None:
        self._check_partial_version(buf[:2])
        version = int(buf[:2], 16)
        if version != 1:
            raise ProtocolViolation(self._base, "version", "protocol version \"01\"", _show(buf[:2]), code=1)
        self._need_version = False
        message = ProtocolVersion(version)
        out.append(Frame(self._base, buf[:2], message) if self._located else message)

    # -- payloads that span feeds ---------------------------------------------

    def _continue_payload(self, data: bytes, out: list) -> bytes:
        missing = self._missing
        if len(data) < missing:
            self._chunks.append(data)
            self._missing -= len(data)
            self._base += len(data)
            return b""
        self._chunks.append(data[:missing] if len(data) > missing else data)
        self._base += missing
        payload = b"".join(self._chunks)
        offset, header, cls, leading = self._pending
        self._pending, self._chunks, self._missing = None, [], 0
        message = cls(*leading, payload)
        out.append(Frame(offset, header, message) if self._located else message)
        return data[missing:] if len(data) > missing else b""

    # -- the message loop -----------------------------------------------------

    def _parse(self, buf: bytes, out: list) -> None:
        """Decode whole messages from ``buf``; keep the unfinished tail."""
        limit = self.max_payload_size
        located = self._located
        end = len(buf)
        pos = 0
        while pos < end:
            t = buf[pos]
            cls = _ID_SIZE_CLASSES.get(t)
            if cls is not None:
                m = _ID_SIZE.match(buf, pos + 1)
                if m is None:
                    break
                leading = (m.group(1),)
                size = int(m.group(2), 16)
                start = pos + 13
            elif t in _REQUEST_CLASSES:
                cls = _REQUEST_CLASSES[t]
                m = _ID_NAMESIZE.match(buf, pos + 1)
                if m is None:
                    break
                name_end = pos + 8 + int(m.group(2), 16)
                m2 = _SIZE.match(buf, name_end)
                if m2 is None:
                    break
                try:
                    leading = (m.group(1), buf[pos + 8 : name_end].decode())
                except UnicodeDecodeError:
                    break
                size = int(m2.group(1), 16)
                start = name_end + 8
            elif t == 0x65:  # e
                cls = RetryResult
                m = _ID_WAIT_SIZE.match(buf, pos + 1)
                if m is None:
                    break
                leading = (m.group(1), int(m.group(2), 16))
                size = int(m.group(3), 16)
                start = pos + 21
            elif t == 0x6E:  # n
                cls = Notification
                m = _NAMESIZE.match(buf, pos + 1)
                if m is None:
                    break
                name_end = pos + 4 + int(m.group(1), 16)
                m2 = _SIZE.match(buf, name_end)
                if m2 is None:
                    break
                try:
                    leading = (buf[pos + 4 : name_end].decode(),)
                except UnicodeDecodeError:
                    break
                size = int(m2.group(1), 16)
                start = name_end + 8
            elif t == 0x68:  # h
                m = _LOAD_TIME.match(buf, pos + 1)
                if m is None:
                    break
                message = Heartbeat(int(m.group(1), 16), int(m.group(2), 16))
                out.append(Frame(self._base + pos, buf[pos : pos + 13], message) if located else message)
                pos += 13
                continue
            elif t == 0x66:  # f
                m = _CODE.match(buf, pos + 1)
                if m is None:
                    break
                message = ProtocolError(int(m.group(1), 16))
                out.append(Frame(self._base + pos, buf[pos : pos + 9], message) if located else message)
                pos += 9
                continue
            else:
                break  # unknown type: _locate reports it
            if size > limit:
                break  # _locate reports it
            stop = start + size
            if stop > end:
                # The header is whole; collect the payload across feeds.
                header = buf[pos:start]
                self._pending = (self._base + pos, header, cls, leading)
                self._chunks = [buf[start:]] if end > start else []
                self._missing = stop - end
                self._base += end
                self._buf = b""
                return
            message = cls(*leading, buf[start:stop])
            out.append(Frame(self._base + pos, buf[pos:start], message) if located else message)
            pos = stop
        if pos < end:
            self._locate(buf, pos)  # raises if the bytes at pos are wrong
        self._buf = buf[pos:]
        self._base += pos

    def _locate(self, buf: bytes, pos: int) -> None:
        """Walk the header at ``pos`` field by field; raise at the first wrong byte.

        Returns quietly when every byte present is valid so far (more are needed).
        """
        base = self._base
        type_byte = buf[pos : pos + 1]
        layout = LAYOUTS.get(type_byte)
        if layout is None:
            raise ProtocolViolation(base + pos, "type", _TYPE_LIST, _show(type_byte))
        cursor = pos + 1
        name_size = 0
        for field, size, kind in layout[1:]:
            if kind == "name":
                size = name_size
            chunk = buf[cursor : cursor + size]
            if kind == "hex":
                for i, b in enumerate(chunk):
                    if b not in _HEX:
                        raise ProtocolViolation(
                            base + cursor + i, field, f"{size} hex digits", f"{_show(chunk[i : i + 1])} at digit {i + 1}"
                        )
                if len(chunk) < size:
                    return
                value = int(chunk, 16)
                if field == "name_size":
                    name_size = value
                elif field == "payload_size" and value > self.max_payload_size:
                    raise ProtocolViolation(
                        base + cursor,
                        field,
                        f"at most {self.max_payload_size} bytes (the payload limit)",
                        f"0x{value:x} = {value} bytes",
                    )
            elif kind == "name":
                try:
                    chunk.decode()
                except UnicodeDecodeError as e:
                    if e.reason != "unexpected end of data" or len(chunk) == size:
                        bad = chunk[e.start : e.end]
                        raise ProtocolViolation(base + cursor + e.start, field, "UTF-8 text", f"{_show(bad)} ({e.reason})")
                if len(chunk) < size:
                    return
            elif len(chunk) < size:
                return
            cursor += size
        raise AssertionError(f"header at {base + pos} is valid but was not decoded")  # pragma: no cover


def decode(data: bytes, *, expect_version: bool = False, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE) -> Message:
    """Decode exactly one whole message (no version preamble by default).

    Raises ``ProtocolViolation`` for bad bytes, for bytes left over, and for a
    message cut short.
    """
    messages = decode_all(data, expect_version=expect_version, max_payload_size=max_payload_size)
    if expect_version:
        messages = messages[1:]
    if len(messages) != 1:
        raise ProtocolViolation(0, "message", "exactly one message", f"{len(messages)} messages")
    return messages[0]


def decode_all(data: bytes, *, expect_version: bool = True, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE) -> list[Message]:
    """Decode a whole stream; raise if it ends in the middle of a message."""
    decoder = Decoder(expect_version=expect_version, max_payload_size=max_payload_size)
    messages = decoder.feed(data)
    check_complete(decoder, messages)
    return messages


def check_complete(decoder: Decoder, messages: list) -> None:
    """Raise a located violation if ``decoder`` holds an unfinished message."""
    if decoder.buffered or (decoder._need_version and decoder.error is None):
        error = ProtocolViolation(decoder.offset, _unfinished_field(decoder), "more bytes", "end of input")
        error.messages = messages
        raise error


def _unfinished_field(decoder: Decoder) -> str:
    if decoder._need_version:
        return "version"
    if decoder._pending is not None:
        return "payload"
    return "header"

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
from typing import Any, NamedTuple, Pattern

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
    encode_header,
    field_setters,
    payload_of,
)

#: Largest payload accepted by default. The wire allows 4 GiB; a learning kit
#: that buffered that much on a peer's say-so could be made to exhaust memory
#: by one header, so anything larger must be asked for explicitly.
DEFAULT_MAX_PAYLOAD_SIZE = 64 * 1024 * 1024

_HEX = frozenset(b"0123456789abcdefABCDEF")
_HEX_DIGITS = b"0123456789abcdefABCDEF"
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
_CODE = re.compile(_H8)  # f

#: Header fields a decoder remembers once checked (``Decoder._name_tail``,
#: ``Decoder._id_size``), per kind: a peer meets the same few operations and
#: payload sizes over and over; the bound keeps ever-new ones from growing it.
HEADER_MEMO = 256

_ID_SIZE_CLASSES = {ord("R"): SingleResult, ord("S"): StreamResult, ord("E"): ErrorResult, ord("p"): StreamRequestPart}

# The hot loop builds messages as ``object.__new__`` and a setter per field
# (``wire.field_setters``): the same objects as the constructors make, in about
# half the time. R S E p by type byte, then r s: (class, its fields' setters).
_new_object = object.__new__
_ID_SIZE_MAKERS: dict[int, tuple[Any, ...]] = {kind: (cls, *field_setters(cls)) for kind, cls in _ID_SIZE_CLASSES.items()}
_REQUEST_MAKERS: dict[int, tuple[Any, ...]] = {ord(cls.TYPE): (cls, *field_setters(cls)) for cls in (SingleRequest, StreamRequest)}
_SET_NAME, _SET_NOTIFICATION_PAYLOAD = field_setters(Notification)
_SET_LOAD, _SET_TIME = field_setters(Heartbeat)

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


class Waiting(NamedTuple):
    """What a decoder holds of an unfinished message (``Decoder.waiting``)."""

    held: int  #: bytes of it already received (0: no message is unfinished)
    needed: int  #: bytes it still needs, at least; exact when ``exact``
    exact: bool  #: False while the header is cut before its sizes: more may be announced


# Frames are made in the decoder's hot loop, where ``Frame(...)`` (a Python-level
# ``__new__``) costs twice what building the tuple directly does.
_new_tuple = tuple.__new__


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
        self._pending: tuple[int, bytes, Any, tuple[Any, ...]] | None = None  # (offset, header, class, leading fields)
        self._chunks: list[bytes] = []
        self._missing = 0
        # r/s header bytes after the request ID, already checked -> (operation, payload size).
        self._request_tails: dict[bytes, tuple[str, int]] = {}
        # n header bytes after the type, already checked -> (name, payload size).
        self._notification_tails: dict[bytes, tuple[str, int]] = {}
        # R/S/E/p payload size fields, already checked -> their value.
        self._payload_sizes: dict[bytes, int] = {}
        self._name_sizes: dict[bytes, int] = {}  # name size fields (3 bytes) read before: cheaper than int()
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

    def waiting(self) -> Waiting:
        """How far the decoder is into an unfinished message: bytes held, bytes still needed.

        A receiver that holds part of a message waits silently for the rest; this says
        for how many more bytes. Once the header is whole the count is exact (the payload
        size is known); before, it is the least that could finish the message: the rest
        of the header, plus the name and payload whose sizes have not arrived yet. Between
        messages, and after a violation (nothing more is read), it is ``Waiting(0, 0, True)``.
        """
        if self.error is not None:
            return Waiting(0, 0, True)
        if self._pending is not None:
            return Waiting(self.buffered, self._missing, True)
        buf = self._buf
        if not buf:
            return Waiting(0, 0, True)
        if self._need_version:
            return Waiting(len(buf), 2 - len(buf), True)
        # The header is valid so far (``_locate`` raised otherwise): walk its fields.
        cursor, name_size, payload_size = 0, None, None
        for field, layout_size, kind in LAYOUTS[buf[:1]]:
            size = (name_size or 0) if kind == "name" else (layout_size or 0)  # a name unknown yet: at least empty
            if kind == "hex" and cursor + size <= len(buf):
                value = int(buf[cursor : cursor + size], 16)
                if field == "name_size":
                    name_size = value
                elif field == "payload_size":
                    payload_size = value
            cursor += size
        has_payload = LAYOUTS[buf[:1]][-1][0] == "payload_size"
        exact = payload_size is not None or not has_payload
        return Waiting(len(buf), cursor + (payload_size or 0) - len(buf), exact)

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return every message it completes, in order."""
        self._located = False
        return self._feed(data)

    def feed_frames(self, data: bytes) -> list[Frame]:
        """Like ``feed``, but each message comes with its offset and raw header bytes."""
        self._located = True
        return self._feed(data)

    def _feed(self, data: bytes) -> list[Any]:
        if self.error is not None:
            raise self.error
        if type(data) is not bytes:
            data = bytes(data)
        out: list[Any] = []
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

    def _read_version(self, buf: bytes, out: list[Any]) -> None:
        self._check_partial_version(buf[:2])
        version = int(buf[:2], 16)
        if version != 1:
            raise ProtocolViolation(self._base, "version", "protocol version \"01\"", _show(buf[:2]), code=1)
        self._need_version = False
        message = ProtocolVersion(version)
        out.append(Frame(self._base, buf[:2], message) if self._located else message)

    # -- payloads that span feeds ---------------------------------------------

    def _continue_payload(self, data: bytes, out: list[Any]) -> bytes:
        missing = self._missing
        if len(data) < missing:
            self._chunks.append(data)
            self._missing -= len(data)
            self._base += len(data)
            return b""
        self._chunks.append(data[:missing] if len(data) > missing else data)
        self._base += missing
        payload = b"".join(self._chunks)
        assert self._pending is not None  # a payload is missing only after its header
        offset, header, cls, leading = self._pending
        self._pending, self._chunks, self._missing = None, [], 0
        message = cls(*leading, payload)
        out.append(Frame(offset, header, message) if self._located else message)
        return data[missing:] if len(data) > missing else b""

    # -- the message loop -----------------------------------------------------

    def _parse(self, buf: bytes, out: list[Any]) -> None:
        """Decode whole messages from ``buf``; keep the unfinished tail.

        The hot loop: one regex match validates a header's fixed fields, and a
        message is built straight from its slices. Anything the fast path does
        not accept (a wrong byte, a header cut short, a payload over the limit)
        ends the loop and ``_locate`` decides whether to raise or wait.
        """
        limit = self.max_payload_size
        located = self._located
        base = self._base
        append = out.append
        request_tails = self._request_tails
        notification_tails = self._notification_tails
        payload_sizes = self._payload_sizes
        name_sizes = self._name_sizes
        id_size_maker = _ID_SIZE_MAKERS.get
        request_makers = _REQUEST_MAKERS
        new = _new_object
        end = len(buf)
        pos = 0
        # (class, leading fields, payload start, payload stop) of a payload still arriving
        held: tuple[Any, tuple[Any, ...], int, int] | None = None
        cls: Any  # the message class of the header at hand: any of them
        while pos < end:
            kind = buf[pos]
            maker = id_size_maker(kind)
            if maker is not None:  # R S E p: request ID, payload size
                cls, set_id, set_payload = maker
                size = payload_sizes.get(buf[pos + 5 : pos + 13])
                if size is None:
                    size = self._id_size(buf, pos)
                    if size is None:
                        break
                request_id = buf[pos + 1 : pos + 5]
                start = pos + 13
                stop = start + size
                if stop > end or size > limit:
                    held = (cls, (request_id,), start, stop)
                    break
                message = new(cls)
                set_id(message, request_id)
                set_payload(message, buf[start:stop])
            elif kind == 0x72 or kind == 0x73:  # r s: request ID, name size, name, payload size
                field = buf[pos + 5 : pos + 8]
                name_size = name_sizes.get(field)
                if name_size is None:
                    name_size = self._name_size(field)
                    if name_size is None:
                        break
                name_end = pos + 8 + name_size
                # Name size, name and payload size as bytes: seen (and checked) before, or checked now.
                known = request_tails.get(buf[pos + 5 : name_end + 8]) or self._name_tail(
                    buf, _ID_NAMESIZE, pos, name_end, request_tails
                )
                if known is None:
                    break
                operation, size = known
                cls, set_id, set_operation, set_payload = request_makers[kind]
                request_id = buf[pos + 1 : pos + 5]
                start = name_end + 8
                stop = start + size
                if stop > end or size > limit:
                    held = (cls, (request_id, operation), start, stop)
                    break
                message = new(cls)
                set_id(message, request_id)
                set_operation(message, operation)
                set_payload(message, buf[start:stop])
            elif kind == 0x6E:  # n: name size, name, payload size
                field = buf[pos + 1 : pos + 4]
                name_size = name_sizes.get(field)
                if name_size is None:
                    name_size = self._name_size(field)
                    if name_size is None:
                        break
                name_end = pos + 4 + name_size
                known = notification_tails.get(buf[pos + 1 : name_end + 8]) or self._name_tail(
                    buf, _NAMESIZE, pos, name_end, notification_tails
                )
                if known is None:
                    break
                name, size = known
                start = name_end + 8
                stop = start + size
                if stop > end or size > limit:
                    held = (Notification, (name,), start, stop)
                    break
                message = new(Notification)
                _SET_NAME(message, name)
                _SET_NOTIFICATION_PAYLOAD(message, buf[start:stop])
            elif kind == 0x65:  # e: request ID, wait, payload size
                m = _ID_WAIT_SIZE.match(buf, pos + 1)
                if m is None:
                    break
                request_id, wait_field, size_field = m.groups()
                start = pos + 21
                stop = start + int(size_field, 16)
                if stop > end or stop - start > limit:
                    held = (RetryResult, (request_id, int(wait_field, 16)), start, stop)
                    break
                message = RetryResult(request_id, int(wait_field, 16), buf[start:stop])
            elif kind == 0x68:  # h: load, time
                fields = buf[pos + 1 : pos + 13]
                # Twelve hex digits: nothing is left once they are deleted (cheaper than the regex).
                if len(fields) < 12 or fields.translate(None, _HEX_DIGITS):
                    break
                start = stop = pos + 13
                message = new(Heartbeat)
                _SET_LOAD(message, int(fields[:4], 16))
                _SET_TIME(message, int(fields[4:], 16))
            elif kind == 0x66:  # f: code
                m = _CODE.match(buf, pos + 1)
                if m is None:
                    break
                start = stop = pos + 9
                message = ProtocolError(int(m.group(1), 16))
            else:
                break  # unknown type: _locate reports it
            append(_new_tuple(Frame, (base + pos, buf[pos:start], message)) if located else message)
            pos = stop
        if held is not None:
            cls, leading, start, stop = held
            if stop - start <= limit:  # (over the limit: _locate reports it)
                # The header is whole; collect the payload across feeds.
                self._pending = (base + pos, buf[pos:start], cls, leading)
                self._chunks = [buf[start:]] if end > start else []
                self._missing = stop - end
                self._base = base + end
                self._buf = b""
                return
        if pos < end:
            self._locate(buf, pos)  # raises if the bytes at pos are wrong
        self._buf = buf[pos:]
        self._base = base + pos

    def _name_size(self, field: bytes) -> int | None:
        """A name size field as a number (None: not one), remembered when whole.

        ``int`` is lenient (spaces, ``_``): what it lets through is refused by
        the check of the whole header that follows (``_name_tail``).
        """
        try:
            size = int(field, 16)
        except ValueError:
            return None
        if len(field) == 3 and len(self._name_sizes) < HEADER_MEMO:
            self._name_sizes[field] = size
        return size

    def _id_size(self, buf: bytes, pos: int) -> int | None:
        """Check the request ID and payload size of the R/S/E/p at ``pos``: the size, or None.

        None leaves the verdict to ``_locate``; a good size field is remembered.
        """
        m = _ID_SIZE.match(buf, pos + 1)
        if m is None:
            return None
        size_field = m.group(2)
        size = int(size_field, 16)
        if len(self._payload_sizes) < HEADER_MEMO:
            self._payload_sizes[size_field] = size
        return size

    def _name_tail(
        self, buf: bytes, head: Pattern[bytes], pos: int, name_end: int, memo: dict[bytes, tuple[str, int]]
    ) -> tuple[str, int] | None:
        """Check the ``r``/``s``/``n`` header at ``pos`` field by field: (name, payload size), or None.

        ``head`` matches what lies between the type byte and the name (request
        ID and name size, or the name size alone). None leaves the verdict (wrong
        byte, or more bytes needed) to ``_locate``. A header that passes is
        remembered in ``memo`` by its bytes from the name size on.
        """
        head_match = head.match(buf, pos + 1)
        size_match = _SIZE.match(buf, name_end)
        if head_match is None or size_match is None:
            return None
        name_start = head_match.end()
        try:
            name = buf[name_start:name_end].decode()
        except UnicodeDecodeError:
            return None
        known = (name, int(size_match.group(1), 16))
        if len(memo) < HEADER_MEMO:
            memo[buf[name_start - 3 : name_end + 8]] = known
        return known

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
        for field, layout_size, kind in layout[1:]:
            size = name_size if layout_size is None else layout_size  # None: the name, sized by the field before
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


def decimal_size_hint(data: bytes) -> str | None:
    """The classic mistake, named: a size field of decimal digits in the message ``data`` starts with.

    Sizes are hexadecimal; a writer that puts ``010`` for a 10-byte name announces 16
    bytes, and the reader takes the wrong bytes as the name, or waits for bytes that
    never come. For the first name or payload size whose digits mean different numbers
    in decimal and in hex, this says both; None when there is none (or the header is cut
    before one).
    """
    layout = LAYOUTS.get(data[:1])
    if layout is None:
        return None
    cursor, name_size = 0, 0
    for field, size, kind in layout:
        width = name_size if kind == "name" else (size or 0)
        digits = data[cursor : cursor + width]
        if len(digits) < width:
            return None
        if kind == "hex":
            if not all(byte in _HEX for byte in digits):
                return None
            if field in ("name_size", "payload_size") and digits.isdigit() and int(digits) != int(digits, 16):
                return (
                    f"sizes are hexadecimal: {field} {digits.decode()} is {int(digits, 16)} bytes; "
                    f"if {int(digits)} was meant, it is written {int(digits):0{width}x}"
                )
            if field == "name_size":
                name_size = int(digits, 16)
        cursor += width
    return None


def decode(data: bytes, *, expect_version: bool = False, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE) -> Message:
    """Decode exactly one whole message (no version preamble by default).

    Raises ``ProtocolViolation`` for bad bytes, for bytes left over (located at
    the first of them), and for a message cut short; when a size written in decimal
    is the likely cause, the error says so (``hint``).
    """
    try:
        return _decode_one(data, expect_version, max_payload_size)
    except ProtocolViolation as error:
        error.add_hint(decimal_size_hint(data[2:] if expect_version else data))
        raise


def _decode_one(data: bytes, expect_version: bool, max_payload_size: int) -> Message:
    messages = decode_all(data, expect_version=expect_version, max_payload_size=max_payload_size)
    skip = 1 if expect_version else 0
    if len(messages) == skip + 1:
        return messages[skip]
    if len(messages) == skip:
        error = ProtocolViolation(len(data), "message", "one message", "end of input")
    else:
        first_end = sum(_wire_length(message) for message in messages[: skip + 1])
        error = ProtocolViolation(
            first_end, "message", "end of input after one message", f"{len(messages) - skip - 1} more message(s)"
        )
    error.messages = messages
    raise error


def decode_all(data: bytes, *, expect_version: bool = True, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE) -> list[Message]:
    """Decode a whole stream; raise if it ends in the middle of a message."""
    decoder = Decoder(expect_version=expect_version, max_payload_size=max_payload_size)
    messages = decoder.feed(data)
    check_complete(decoder, messages)
    return messages


def check_complete(decoder: Decoder, messages: list[Any]) -> None:
    """Raise a located violation if ``decoder`` holds an unfinished message.

    The offset is where the input ends (the first byte missing) and the field is
    the one cut short; ``expected`` names the message that is unfinished.
    """
    if not (decoder.buffered or (decoder._need_version and decoder.error is None)):
        return
    end_of_input = decoder._base + len(decoder._buf)
    if decoder._need_version:
        field, expected = "version", "the 2-digit protocol version"
    elif decoder._pending is not None:
        field = "payload"
        expected = f"{decoder._missing} more payload bytes of the message at byte {decoder._pending[0]}"
    else:
        field = _cut_field(decoder._buf)
        expected = f"the rest of the header that starts at byte {decoder._base}"
    error = ProtocolViolation(end_of_input, field, expected, "end of input")
    error.messages = messages
    raise error


def _cut_field(header: bytes) -> str:
    """The field in which ``header`` (valid so far, but unfinished) is cut short."""
    cursor = 0
    name_size = 0
    for field, layout_size, kind in LAYOUTS[header[:1]]:
        size = name_size if layout_size is None else layout_size  # None: the name, sized by the field before
        if cursor + size > len(header):
            return field
        if field == "name_size":
            name_size = int(header[cursor : cursor + size], 16)
        cursor += size
    return "header"  # pragma: no cover (a whole header is never left unfinished)


def _wire_length(message: Message) -> int:
    return len(encode_header(message)) + len(payload_of(message))

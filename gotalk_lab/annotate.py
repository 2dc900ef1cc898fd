"""Explain Gotalk bytes field by field: where each field is, its exact bytes, its value, what it means.

``annotate`` explains one message, ``annotate_stream`` a whole conversation as one side
wrote it, keeping every message before the first bad byte and the located violation.
Messages are found by ``decoder.Decoder`` and laid out by ``decoder.LAYOUTS``: this
module never decides what is valid, it only labels bytes the decoder accepted. No I/O,
no asyncio, no notebook imports; the CLI and the HTML views are built on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, Union

from .decoder import DEFAULT_MAX_PAYLOAD_SIZE, LAYOUTS, Decoder, Frame, check_complete
from .errors import ProtocolViolation
from .wire import (
    MAX_LOAD,
    MESSAGE_TYPES,
    Message,
    ProtocolErrorCode,
    ProtocolVersion,
    encode_header,
    payload_of,
)

FieldValue = Union[str, int, bytes]

#: The ``"type"`` written by ``to_dict`` for the version preamble. The preamble has no
#: type byte on the wire; "v" keeps every JSON line's "type" one character long and
#: is not a Gotalk message type, so it can never be mistaken for one.
VERSION_TYPE = "v"

#: What each message type is for, in the words a student needs first.
TYPE_PURPOSES: dict[str, str] = {
    "r": "ask the other side to run an operation once",
    "s": "open a stream request: the operation and its first part",
    "p": "a further part of a stream request (an empty one ends it)",
    "R": "the one answer to a request",
    "S": "one part of a streaming answer (an empty one ends it)",
    "E": "the request failed; the payload says why",
    "e": "the responder is busy; ask again after the wait",
    "n": "a one-way message, never answered",
    "h": "\"I am alive\", with the sender's load and clock",
    "f": "the sender cannot go on and is about to close",
}

_ERROR_CODE_MEANINGS = {
    ProtocolErrorCode.ABNORMAL: ("abnormal", "something went wrong that has no better code"),
    ProtocolErrorCode.UNSUPPORTED: ("unsupported protocol", "the other side speaks another protocol version"),
    ProtocolErrorCode.INVALID: ("invalid message", "a message could not be read"),
    ProtocolErrorCode.TIMEOUT: ("timeout", "nothing was read for longer than the read timeout"),
}

# Payload prefixes per type; empty p and S parts are the end-of-stream markers.
_PAYLOAD_ROLES = {
    "r": "request payload (the operation's input)",
    "s": "first part of the stream request",
    "p": "stream request part",
    "R": "result payload",
    "S": "result part",
    "E": "error message",
    "e": "why the responder is busy",
    "n": "notification payload",
}
_END_OF_STREAM = {
    "p": "empty part: ends the stream request",
    "S": "empty part: ends the streaming result",
}

_SUMMARY_PAYLOAD_CHARS = 40


@dataclass(frozen=True)
class Field:
    """One field of a message as a byte span: ``data[start:end] == raw``."""

    name: str  #: as in PROTOCOL.md and decoder.LAYOUTS: "type", "request_id", "payload", ...
    start: int  #: absolute offset of the first byte
    end: int  #: absolute offset just past the last byte (a field may be empty)
    raw: bytes  #: the exact bytes, as written (uppercase hex digits stay uppercase)
    value: FieldValue  #: str for type and names, int for numbers, bytes for IDs and payloads
    meaning: str  #: one line a student understands
    hint: str | None = None  #: payload only: "json", "text", "binary" or "empty"
    #: True only for the last field of an interrupted message whose bytes ran out
    #: (``Annotation.unfinished``); its ``value`` is then just the bytes that were there.
    cut_short: bool = False

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class AnnotatedMessage:
    """A message with every byte of it explained."""

    offset: int  #: absolute offset of the message's first byte
    length: int  #: the whole message, header and payload
    message: Message
    fields: list[Field]
    raw: bytes  #: header then payload, the exact bytes
    kind: str  #: the message class name: "SingleRequest", "ProtocolVersion", ...
    summary: str  #: one line, e.g. ``r 0001 echo "hello" (5 bytes, text)``

    @property
    def end(self) -> int:
        return self.offset + self.length

    @property
    def type(self) -> str:
        """The type character ("r", "R", ...), or ``VERSION_TYPE`` for the preamble."""
        return VERSION_TYPE if isinstance(self.message, ProtocolVersion) else self.message.TYPE.decode()

    def field(self, name: str) -> Field:
        for candidate in self.fields:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


@dataclass(frozen=True)
class Annotation:
    """A whole byte stream explained: its messages, and where and why reading stopped."""

    messages: list[AnnotatedMessage]
    #: The first bad byte (or the end of input in the middle of a message); None if all is well.
    error: ProtocolViolation | None = None
    #: Every byte after the last whole message: the bad or unfinished bytes.
    trailing: bytes = b""
    trailing_offset: int = 0
    #: Fields of the message the error interrupted, as far as its bytes were valid;
    #: the last one may be cut short (its ``raw`` then holds fewer bytes than it needs).
    unfinished: list[Field] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def size(self) -> int:
        """How many bytes were read in all."""
        return self.trailing_offset + len(self.trailing)


# -- showing bytes and text -------------------------------------------------


def show_bytes(raw: bytes) -> str:
    """Bytes as a student reads them: printable ASCII as is, anything else as \\xNN.

    The backslash itself is written \\x5c so that every escape is unambiguous.
    """
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in raw)


def _text_pieces(text: str) -> list[str]:
    pieces = []
    for char in text:
        if char in '"\\':
            pieces.append("\\" + char)
        elif char == "\n":
            pieces.append("\\n")
        elif char == "\t":
            pieces.append("\\t")
        elif char == "\r":
            pieces.append("\\r")
        elif char.isprintable():
            pieces.append(char)
        else:
            pieces.append(f"\\u{ord(char):04x}")
    return pieces


def _cut_middle(pieces: list[str], limit: int) -> str:
    if len(pieces) <= limit:
        return "".join(pieces)
    tail = limit // 4
    return "".join(pieces[: limit - tail]) + "…" + "".join(pieces[-tail:])


def reads_as_text(text: str) -> bool:
    """True when decoded payload text is fit to show as text: printable, line breaks and tabs allowed.

    The one rule every view (field table, timeline label, composer form, CLI)
    uses to choose between showing a payload as text and showing its bytes.
    """
    return text.isprintable() or all(char.isprintable() or char in "\n\r\t" for char in text)


def payload_text(payload: bytes) -> str | None:
    """The payload as text if it reads as text (UTF-8, see ``reads_as_text``), else None."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if reads_as_text(text) else None


def payload_hint(payload: bytes) -> str:
    """"empty", "json" (parses as JSON), "text" (printable UTF-8) or "binary"."""
    if not payload:
        return "empty"
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        return "json"
    return "text" if reads_as_text(text) else "binary"


def _payload_preview(payload: bytes, hint: str) -> str:
    """The payload in a summary line: JSON bare, text quoted, binary quoted with \\xNN."""
    if hint == "json":
        return _cut_middle(list(payload.decode("utf-8")), _SUMMARY_PAYLOAD_CHARS)
    if hint == "text":
        return '"' + _cut_middle(_text_pieces(payload.decode("utf-8")), _SUMMARY_PAYLOAD_CHARS) + '"'
    pieces = [show_bytes(bytes([b])) if b != 0x22 else '\\"' for b in payload]
    return '"' + _cut_middle(pieces, _SUMMARY_PAYLOAD_CHARS) + '"'


def _count(size: int, unit: str = "byte") -> str:
    return f"{size} {unit}" if size == 1 else f"{size} {unit}s"


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load_percent(load: int) -> str:
    percent = load * 100 / MAX_LOAD
    if 0 < percent < 0.1:
        return "under 0.1 %"
    return f"{percent:.1f} %"


def error_code_words(code: int) -> tuple[str, str]:
    try:
        return _ERROR_CODE_MEANINGS[ProtocolErrorCode(code)]
    except ValueError:
        return "unknown code", "not defined by protocol version 1"


def _go_counter(request_id: bytes) -> int | None:
    """The Go peer's little-endian request counter, if the ID looks like one.

    Only a hint: IDs are opaque. It is offered when the ID is not printable ASCII
    (gotalk.js writes base-36 digits) and reads as a small little-endian number.
    """
    if all(0x20 <= b < 0x7F for b in request_id):
        return None
    number = int.from_bytes(request_id, "little")
    return number if number < 0x10000 else None


# -- meanings ---------------------------------------------------------------


def _meaning(name: str, raw: bytes, value: FieldValue, type_char: str, hint: str | None) -> str:
    # Each field has one kind of value (see ``Field.value``): read it as that kind.
    number = value if isinstance(value, int) else 0
    text = value if isinstance(value, str) else ""
    if name == "version":
        return f"protocol version: '{show_bytes(raw)}' = {number} — each side writes it before anything else"
    if name == "type":
        kind = MESSAGE_TYPES[raw].__name__
        return f"type '{text}': {kind} — {TYPE_PURPOSES[text]}"
    if name == "request_id":
        counter = _go_counter(raw)
        guess = "" if counter is None else f" (looks like a Go peer's little-endian counter: {counter})"
        return f"request ID: 4 opaque bytes '{show_bytes(raw)}'{guess} — matched, never interpreted"
    if name == "name_size":
        what = "notification name" if type_char == "n" else "operation name"
        return f"{what} size: 0x{show_bytes(raw)} = {_count(number)} of UTF-8 follow"
    if name == "operation":
        return f"operation name: '{text}' — the responder runs its handler for this name"
    if name == "name":
        return f"notification name: '{text}' — handled if the receiver knows it, ignored otherwise"
    if name == "payload_size":
        if value == 0:
            return f"payload size: 0x{show_bytes(raw)} = 0 — no payload follows"
        return f"payload size: 0x{show_bytes(raw)} = {_count(number)} follow{'s' if number == 1 else ''}"
    if name == "wait":
        advice = "retry at will" if value == 0 else "do not send the request again before then"
        return f"retry wait: 0x{show_bytes(raw)} = {number} ms — {advice}"
    if name == "load":
        return f"heartbeat load: 0x{show_bytes(raw)} = {number} of 0xffff = {_load_percent(number)} busy"
    if name == "time":
        return f"sender's clock: 0x{show_bytes(raw)} = {number} Unix seconds = {_utc(number)} (UTC)"
    if name == "code":
        label, explanation = error_code_words(number)
        return f"protocol error code: 0x{show_bytes(raw)} = {number}: {label} — {explanation}; the sender closes"
    if name == "payload":
        if hint == "empty":
            return _END_OF_STREAM.get(type_char, f"{_PAYLOAD_ROLES[type_char]}: empty")
        description = {
            "json": f"{_count(len(raw))} of JSON",
            "text": f"{_count(len(raw))} of UTF-8 text",
            "binary": f"{_count(len(raw))} of binary data (not printable UTF-8)",
        }[hint or "binary"]
        return f"{_PAYLOAD_ROLES[type_char]}: {description}"
    raise AssertionError(f"no meaning for field {name!r}")  # pragma: no cover


def _make_field(name: str, kind: str, start: int, raw: bytes, type_char: str) -> Field:
    """A whole field: decode its value from its raw bytes (already checked by the decoder)."""
    hint = None
    if kind == "type":
        value: FieldValue = raw.decode("ascii")
    elif kind == "hex":
        value = int(raw, 16)
    elif kind == "name":
        value = raw.decode("utf-8")
    elif kind == "payload":
        value = raw
        hint = payload_hint(raw)
    else:  # the request ID stays bytes: it is opaque
        value = raw
    return Field(name, start, start + len(raw), raw, value, _meaning(name, raw, value, type_char, hint), hint)


def _layout_spans(buf: bytes) -> Iterator[tuple[str, int, int, str]]:
    """(field, start, end, kind) for the message starting at ``buf[0]``, payload included.

    Offsets are relative to ``buf``. The walk stops after the first span that runs past
    the end of ``buf``, so it also lays out a message that is cut short. Sizes are read
    from bytes the decoder has already accepted.
    """
    cursor = 0
    name_size = 0
    for name, layout_size, kind in LAYOUTS[buf[:1]]:
        size = name_size if layout_size is None else layout_size  # None: the name, sized by the field before
        end = cursor + size
        yield name, cursor, end, kind
        if end > len(buf):
            return
        if name == "name_size":
            name_size = int(buf[cursor:end], 16)
        elif name == "payload_size":
            yield "payload", end, end + int(buf[cursor:end], 16), "payload"
        cursor = end


# -- annotating -------------------------------------------------------------


def _summary(message: Message, fields: list[Field]) -> str:
    if isinstance(message, ProtocolVersion):
        return f"{show_bytes(fields[0].raw)} protocol version {message.version}"
    by_name = {f.name: f for f in fields}
    type_char = str(by_name["type"].value)
    parts = [type_char]
    if "request_id" in by_name:
        parts.append(show_bytes(by_name["request_id"].raw))
    for name in ("operation", "name"):
        if name in by_name:
            parts.append("".join(_text_pieces(str(by_name[name].value))))
    if "wait" in by_name:
        parts.append(f"wait {_number(by_name['wait'])} ms")
    if "load" in by_name:
        load = _number(by_name["load"])
        parts.append(f"load {load} ({_load_percent(load)})")
        parts.append(f"at {_utc(_number(by_name['time']))}")
    if "code" in by_name:
        code = _number(by_name["code"])
        parts.append(f"code {code}: {error_code_words(code)[0]}")
    payload = by_name.get("payload")
    if payload is not None:
        if payload.hint == "empty":
            parts.append("(empty: end of stream)" if type_char in _END_OF_STREAM else "(empty)")
        else:
            parts.append(f"{_payload_preview(payload.raw, payload.hint or 'binary')} ({_count(payload.size)}, {payload.hint})")
    return " ".join(parts)


def _number(field: Field) -> int:
    """The value of a numeric field (hex sizes, wait, load, time, code)."""
    value = field.value
    return value if isinstance(value, int) else 0


def annotate_frame(header: bytes, message: Message, *, offset: int = 0) -> AnnotatedMessage:
    """Explain a message from its exact header bytes (as read, e.g. a ``decoder.Frame``
    or a trace event) and its decoded value; nothing is re-encoded."""
    payload = payload_of(message)
    raw = header + payload if payload else header
    if isinstance(message, ProtocolVersion):
        fields = [_make_field("version", "hex", offset, raw, "")]
    else:
        type_char = raw[:1].decode("ascii")
        fields = [
            _make_field(name, kind, offset + start, raw[start:end], type_char)
            for name, start, end, kind in _layout_spans(raw)
        ]
    return AnnotatedMessage(
        offset=offset,
        length=len(raw),
        message=message,
        fields=fields,
        raw=raw,
        kind=type(message).__name__,
        summary=_summary(message, fields),
    )


def annotate(message_or_bytes: Message | bytes | bytearray | memoryview, *, offset: int = 0) -> AnnotatedMessage:
    """Explain one message, given as a message value or as its exact bytes.

    Bytes must hold exactly one whole message (two hex digits are read as the version
    preamble); anything else raises a located ``ProtocolViolation`` whose offset counts
    from the start of the bytes given. ``offset`` shifts the fields' absolute offsets,
    for a message that sits at that position in a longer stream.
    """
    if isinstance(message_or_bytes, Message):
        message = message_or_bytes
        return annotate_frame(encode_header(message), message, offset=offset)
    data = bytes(message_or_bytes)
    # No message is 2 bytes long (the shortest, "f", is 9), so 2 bytes can only be the preamble.
    result = annotate_stream(data, expect_version=len(data) == 2, max_payload_size=max(len(data), 1))
    if result.error is not None:
        raise result.error
    if len(result.messages) != 1:
        where = result.messages[1].offset if result.messages else 0
        found = f"{len(result.messages)} messages"
        raise ProtocolViolation(where, "message", "exactly one message", found)
    only = result.messages[0]
    if offset == 0:
        return only
    header = only.raw[: only.length - len(payload_of(only.message))]
    return annotate_frame(header, only.message, offset=offset)


def annotate_stream(
    data: bytes | bytearray | memoryview,
    *,
    expect_version: bool = True,
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
) -> Annotation:
    """Explain a whole byte stream: the version preamble (unless ``expect_version`` is
    false) and every message after it, in order.

    Reading stops at the first bad byte: ``error`` locates it, ``messages`` keeps all
    that came before, ``trailing`` holds the bytes from the end of the last whole
    message on. A stream that ends in the middle of a message is an error too
    (``decoder.check_complete`` locates it at the end of the input).
    """
    data = bytes(data)
    decoder = Decoder(expect_version=expect_version, max_payload_size=max_payload_size)
    error: ProtocolViolation | None = None
    try:
        frames: list[Frame] = decoder.feed_frames(data)
    except ProtocolViolation as violation:
        frames, error = violation.messages, violation
    messages = [annotate_frame(frame.header, frame.message, offset=frame.offset) for frame in frames]
    trailing_offset = messages[-1].end if messages else 0
    trailing = data[trailing_offset:]
    at_version = expect_version and not messages
    if error is None:
        try:
            check_complete(decoder, frames)
        except ProtocolViolation as violation:
            error = violation
    unfinished = []
    if error is not None:
        valid_end = min(max(error.offset, trailing_offset), len(data))
        unfinished = _unfinished_fields(data[trailing_offset:valid_end], trailing_offset, at_version)
    return Annotation(messages, error, trailing, trailing_offset, unfinished)


def _spans_of_unfinished(buf: bytes, at_version: bool) -> Iterator[tuple[str, int, int, str]]:
    if at_version:
        yield "version", 0, 2, "hex"
    elif buf:
        yield from _layout_spans(buf)


def _unfinished_fields(valid: bytes, offset: int, at_version: bool) -> list[Field]:
    """Fields of an interrupted message, from its bytes that were valid; the last may be cut."""
    fields = []
    type_char = valid[:1].decode("ascii", "replace")
    for name, start, end, kind in _spans_of_unfinished(valid, at_version):
        raw = valid[start:end]
        if end <= len(valid):
            fields.append(_make_field(name, kind, offset + start, raw, type_char))
        elif raw:
            meaning = f"{name}: cut short — {len(raw)} of {_count(end - start)} before reading stopped"
            fields.append(Field(name, offset + start, offset + start + len(raw), raw, raw, meaning, cut_short=True))
    return fields


# -- JSON -------------------------------------------------------------------


def _json_value(value: FieldValue) -> str | int:
    return value.hex() if isinstance(value, bytes) else value


def to_dict(annotated: AnnotatedMessage) -> dict[str, Any]:
    """The JSON object ``gotalk-lab decode --json`` prints for one message.

    Keys: "type" (the type character; ``VERSION_TYPE`` "v" for the version preamble,
    which has no type byte), "kind", "offset", "length" (header and payload), then
    where the type has them "id" (hex of the 4 ID bytes), "name" (operation or
    notification name), "wait", "load", "time", "code", "version", "payload" (hex)
    with "hint" and, for JSON and text payloads, "text"; then "summary" and "fields":
    one {"name", "start", "end", "value", "meaning"} per field, absolute offsets, end
    exclusive. Byte values (IDs, payloads) are hex; other fields also carry "raw",
    the hex of their exact bytes, and the payload field carries "hint".
    """
    message = annotated.message
    out: dict[str, Any] = {"type": annotated.type, "kind": annotated.kind, "offset": annotated.offset, "length": annotated.length}
    for field_ in annotated.fields:
        if field_.name == "request_id":
            out["id"] = field_.raw.hex()
        elif field_.name in ("operation", "name"):
            out["name"] = field_.value
        elif field_.name in ("wait", "load", "time", "code", "version"):
            out[field_.name] = field_.value
    if hasattr(message, "payload"):
        payload = annotated.field("payload")
        out["payload"] = payload.raw.hex()
        out["hint"] = payload.hint
        if payload.hint in ("json", "text"):
            out["text"] = payload.raw.decode("utf-8")
    out["summary"] = annotated.summary
    out["fields"] = [_field_dict(field_) for field_ in annotated.fields]
    return out


def _field_dict(field_: Field) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": field_.name, "start": field_.start, "end": field_.end, "value": _json_value(field_.value)}
    if not isinstance(field_.value, bytes):
        entry["raw"] = field_.raw.hex()
    if field_.hint is not None:
        entry["hint"] = field_.hint
    entry["meaning"] = field_.meaning
    return entry

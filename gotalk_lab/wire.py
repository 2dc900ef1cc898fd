"""Gotalk protocol version 1 messages as values, and how to write them as bytes.

This module owns the message types (one small frozen dataclass per type), the
protocol constants and ``encode``. It never reads bytes (that is ``decoder``)
and never touches a socket, an event loop or a notebook.
"""

from __future__ import annotations

import enum
import inspect
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, Union

from .errors import EncodeError

#: The only protocol version this kit speaks, as written on the wire.
PROTOCOL_VERSION = 1
VERSION_BYTES = b"01"

#: Names (operations, notifications) are sized by 3 hex digits: 0xfff bytes.
MAX_NAME_SIZE = 0xFFF
#: Payloads, waits, codes and times are 8 hex digits: 32 bits.
MAX_UINT32 = 0xFFFFFFFF
#: Heartbeat load is 4 hex digits: 0 (idle) .. 0xffff (overloaded).
MAX_LOAD = 0xFFFF
REQUEST_ID_SIZE = 4


class ProtocolErrorCode(enum.IntEnum):
    """The code carried by an ``f`` message."""

    ABNORMAL = 0  #: something went wrong that has no better code
    UNSUPPORTED = 1  #: the other side speaks another protocol version
    INVALID = 2  #: a message could not be read
    TIMEOUT = 3  #: nothing was read for longer than the read timeout


def _short(payload: bytes, limit: int = 48) -> str:
    """A payload as a Python literal; past ``limit`` bytes, cut and followed by how many more."""
    if len(payload) <= limit:
        return repr(payload)
    return f"{payload[:limit]!r}...(+{len(payload) - limit} bytes)"


class Message:
    """Base of every Gotalk message value (not instantiated itself)."""

    __slots__ = ()
    #: The one-character type byte that starts the message on the wire.
    TYPE: ClassVar[bytes] = b""

    def __repr__(self) -> str:
        parts = []
        for field in fields(self):  # type: ignore[arg-type]
            name = field.name
            value = getattr(self, name)
            if name == "payload":
                parts.append(f"payload={_short(value)}")
            elif name == "request_id":
                parts.append(f"request_id={value!r}")
            else:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True, slots=True, repr=False)
class ProtocolVersion(Message):
    """The two hex digits each side writes before anything else."""

    version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True, repr=False)
class SingleRequest(Message):
    """``r``: ask the other side to run ``operation`` once."""

    TYPE: ClassVar[bytes] = b"r"
    request_id: bytes
    operation: str
    payload: bytes = b""


@dataclass(frozen=True, slots=True, repr=False)
class StreamRequest(Message):
    """``s``: open a stream request; carries the operation and the first part."""

    TYPE: ClassVar[bytes] = b"s"
    request_id: bytes
    operation: str
    payload: bytes = b""


@dataclass(frozen=True, slots=True, repr=False)
class StreamRequestPart(Message):
    """``p``: a further part of a stream request; an empty payload ends it."""

    TYPE: ClassVar[bytes] = b"p"
    request_id: bytes
    payload: bytes = b""


@dataclass(frozen=True, slots=True, repr=False)
class SingleResult(Message):
    """``R``: the one answer to a request."""

    TYPE: ClassVar[bytes] = b"R"
    request_id: bytes
    payload: bytes = b""


@dataclass(frozen=True, slots=True, repr=False)
class StreamResult(Message):
    """``S``: one part of a streaming answer; an empty payload ends it."""

    TYPE: ClassVar[bytes] = b"S"
    request_id: bytes
    payload: bytes = b""


@dataclass(frozen=True, slots=True, repr=False)
class ErrorResult(Message):
    """``E``: the request failed; the payload says why (usually text)."""

    TYPE: ClassVar[bytes] = b"E"
    request_id: bytes
    payload: bytes = b""


@dataclass(frozen=True, slots=True, repr=False)
class RetryResult(Message):
    """``e``: the responder is busy; ask again after ``wait`` milliseconds."""

    TYPE: ClassVar[bytes] = b"e"
    request_id: bytes
    wait: int
    payload: bytes = b""


@dataclass(frozen=True, slots=True, repr=False)
class Notification(Message):
    """``n``: a one-way message; never answered."""

    TYPE: ClassVar[bytes] = b"n"
    name: str
    payload: bytes = b""


@dataclass(frozen=True, slots=True, repr=False)
class Heartbeat(Message):
    """``h``: "I am alive", with the sender's load and its clock."""

    TYPE: ClassVar[bytes] = b"h"
    load: int
    time: int


@dataclass(frozen=True, slots=True, repr=False)
class ProtocolError(Message):
    """``f``: the sender could not go on and is about to close."""

    TYPE: ClassVar[bytes] = b"f"
    code: int

    @property
    def meaning(self) -> str:
        try:
            return ProtocolErrorCode(self.code).name.lower()
        except ValueError:
            return "unknown code"


AnyMessage = Union[
    ProtocolVersion,
    SingleRequest,
    StreamRequest,
    StreamRequestPart,
    SingleResult,
    StreamResult,
    ErrorResult,
    RetryResult,
    Notification,
    Heartbeat,
    ProtocolError,
]

#: Type byte -> message class, for every message that has a type byte.
MESSAGE_TYPES: dict[bytes, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        SingleRequest,
        StreamRequest,
        StreamRequestPart,
        SingleResult,
        StreamResult,
        ErrorResult,
        RetryResult,
        Notification,
        Heartbeat,
        ProtocolError,
    )
}

#: Messages that answer a request, keyed by nothing but their request ID.
RESULT_TYPES = (SingleResult, StreamResult, ErrorResult, RetryResult)


# -- making the frequent messages quickly ------------------------------------------
# A frozen dataclass's generated __init__ assigns each field through
# object.__setattr__ (its own __setattr__ refuses). The decoder makes one message
# per frame and a peer one per request, so the messages that come by the thousand
# get an __init__ that assigns through their slots' descriptors instead: the same
# parameters, defaults and result, in two thirds of the time.


def _request_init(cls: Any) -> None:
    set_request_id, set_operation, set_payload = cls.request_id.__set__, cls.operation.__set__, cls.payload.__set__

    def __init__(self: Any, request_id: bytes, operation: str, payload: bytes = b"") -> None:
        set_request_id(self, request_id)
        set_operation(self, operation)
        set_payload(self, payload)

    _replace_init(cls, __init__)


def _id_payload_init(cls: Any) -> None:
    set_request_id, set_payload = cls.request_id.__set__, cls.payload.__set__

    def __init__(self: Any, request_id: bytes, payload: bytes = b"") -> None:
        set_request_id(self, request_id)
        set_payload(self, payload)

    _replace_init(cls, __init__)


def _replace_init(cls: Any, init: Callable[..., None]) -> None:
    def shape(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    # Checked once, at import: a field added, renamed or given a __post_init__ must
    # not be skipped silently by a hand-written __init__.
    if shape(init) != shape(cls.__init__) or hasattr(cls, "__post_init__"):
        raise TypeError(f"the fast __init__ of {cls.__name__} no longer matches its fields")
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init


def field_setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    """The setters of a message class's fields, in order.

    ``object.__new__(cls)`` followed by one setter call per field makes the same
    message as ``cls(...)`` does (every field is a slot, set once, and no
    ``__post_init__`` runs), without the Python-level ``__init__`` call: the
    decoder's hot loop builds its messages so.
    """
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__: build it with its constructor")
    return tuple(getattr(cls, field.name).__set__ for field in fields(cls))


for _request_class in (SingleRequest, StreamRequest):
    _request_init(_request_class)
for _answer_class in (SingleResult, StreamResult, ErrorResult, StreamRequestPart):
    _id_payload_init(_answer_class)
del _request_class, _answer_class


def _check_id(request_id: bytes) -> bytes:
    if type(request_id) is bytes and len(request_id) == REQUEST_ID_SIZE:  # the common case, first
        return request_id
    if type(request_id) is not bytes:
        if not isinstance(request_id, (bytearray, memoryview)):
            raise EncodeError(f"request ID must be 4 bytes, got {type(request_id).__name__}")
        request_id = bytes(request_id)
    if len(request_id) != REQUEST_ID_SIZE:
        raise EncodeError(f"request ID must be exactly 4 bytes, got {len(request_id)}: {request_id!r}")
    return request_id


def _check_uint(field: str, value: int, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodeError(f"{field} must be an int, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise EncodeError(f"{field} {value} is out of range 0..{maximum:#x}")
    return value


def _name_bytes(field: str, name: str) -> bytes:
    if type(name) is str and name.isascii() and len(name) <= MAX_NAME_SIZE:  # the common case, first
        return name.encode("ascii")
    if not isinstance(name, str):
        raise EncodeError(f"{field} must be a str, got {type(name).__name__}")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate has no UTF-8 form
        raise EncodeError(f"{field} is not valid Unicode: {error.reason} at character {error.start}") from None
    if len(raw) > MAX_NAME_SIZE:
        raise EncodeError(
            f"{field} is {len(raw)} bytes of UTF-8; the 3-hex-digit size allows at most {MAX_NAME_SIZE}"
        )
    return raw


#: Names as written (size, then bytes), by name: operations and notification names recur.
_NAME_FIELDS: dict[str, bytes] = {}
_NAME_FIELDS_KEPT = 4096


def _name_field(field: str, name: str) -> bytes:
    """``name`` as a header writes it: its 3-hex-digit size, then its bytes."""
    if type(name) is str:
        written = _NAME_FIELDS.get(name)
        if written is not None:
            return written
    raw = _name_bytes(field, name)
    written = b"%03x%s" % (len(raw), raw)
    if len(_NAME_FIELDS) >= _NAME_FIELDS_KEPT:
        _NAME_FIELDS.clear()
    _NAME_FIELDS[name] = written
    return written


def _payload_size(payload: bytes) -> int:
    if type(payload) is bytes and len(payload) <= MAX_UINT32:  # the common case, first
        return len(payload)
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise EncodeError(f"payload must be bytes, got {type(payload).__name__}")
    size = len(payload) if not isinstance(payload, memoryview) else payload.nbytes
    if size > MAX_UINT32:
        raise EncodeError(f"payload is {size} bytes; the 8-hex-digit size allows at most {MAX_UINT32}")
    return size


#: The layout of an ``R``, ``S``, ``E`` or ``p`` header: type byte, request ID, payload
#: size in 8 lowercase hex digits. ``ID_SIZE_HEADER % (type, request_id, size)`` is
#: that header for fields already known to be valid (a decoded request's ID, a
#: payload of bytes); ``encode_id_size_header`` checks them first.
ID_SIZE_HEADER = b"%s%s%08x"


def encode_id_size_header(type_byte: bytes, request_id: bytes, payload: bytes) -> bytes:
    """The header of an ``R``, ``S``, ``E`` or ``p`` message from its fields, without the message.

    Exactly what ``encode_header`` writes for those types; a peer answering
    many small requests calls it directly when nothing records the message.
    """
    if type(request_id) is not bytes or len(request_id) != REQUEST_ID_SIZE:
        request_id = _check_id(request_id)
    if type(payload) is bytes and len(payload) <= MAX_UINT32:  # checked here: two calls fewer per answer
        return ID_SIZE_HEADER % (type_byte, request_id, len(payload))
    return ID_SIZE_HEADER % (type_byte, request_id, _payload_size(payload))


def encode_header(message: Message) -> bytes:
    """The bytes of ``message`` that come before its payload (all of it if it has none).

    Peers write the header and the payload separately so that a large payload is
    never copied just to be framed; the WebSocket transport must send them as
    two WebSocket messages anyway (gotalk.js reads them that way).
    """
    cls = type(message)
    # Dispatch on the exact class (the cheapest test); mypy cannot narrow
    # ``message`` from ``cls is ...``, so its fields are read through ``values``.
    values: Any = message
    if cls is SingleResult or cls is StreamResult or cls is ErrorResult or cls is StreamRequestPart:
        return encode_id_size_header(cls.TYPE, values.request_id, values.payload)
    if cls is SingleRequest or cls is StreamRequest:
        # A requester's hot path: the usual fields pass the checks inline, without a call each.
        request_id, operation, payload = values.request_id, values.operation, values.payload
        if type(request_id) is not bytes or len(request_id) != REQUEST_ID_SIZE:
            request_id = _check_id(request_id)
        field = _NAME_FIELDS.get(operation) if type(operation) is str else None
        if field is None:
            field = _name_field("operation", operation)
        size = len(payload) if type(payload) is bytes and len(payload) <= MAX_UINT32 else _payload_size(payload)
        return b"%s%s%s%08x" % (cls.TYPE, request_id, field, size)
    if cls is RetryResult:
        return b"e%s%08x%08x" % (
            _check_id(values.request_id),
            _check_uint("wait", values.wait, MAX_UINT32),
            _payload_size(values.payload),
        )
    if cls is Notification:
        return b"n%s%08x" % (_name_field("name", values.name), _payload_size(values.payload))
    if cls is Heartbeat:
        return b"h%04x%08x" % (
            _check_uint("load", values.load, MAX_LOAD),
            _check_uint("time", values.time, MAX_UINT32),
        )
    if cls is ProtocolError:
        return b"f%08x" % _check_uint("code", values.code, MAX_UINT32)
    if cls is ProtocolVersion:
        return b"%02x" % _check_uint("version", values.version, 0xFF)
    raise EncodeError(f"not a Gotalk message: {message!r}")


def encode(message: Message) -> bytes:
    """The exact bytes of ``message`` on the wire (lowercase hex, as the Go peer writes)."""
    header = encode_header(message)
    payload = getattr(message, "payload", b"")
    return header + payload if payload else header


def payload_of(message: Message) -> bytes:
    """The payload of ``message``, or ``b""`` for types that carry none."""
    return getattr(message, "payload", b"")

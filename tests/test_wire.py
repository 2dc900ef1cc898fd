"""gotalk_lab.wire: every message type encodes byte for byte as the Go peer writes it,
out-of-range or mistyped fields raise a clear EncodeError, and messages are readable,
immutable and hashable values."""

from __future__ import annotations

import dataclasses
import re

import pytest

from gotalk_lab.errors import EncodeError, GotalkError
from gotalk_lab.wire import (
    MAX_LOAD,
    MAX_NAME_SIZE,
    MAX_UINT32,
    MESSAGE_TYPES,
    ErrorResult,
    Heartbeat,
    Message,
    Notification,
    ProtocolError,
    ProtocolErrorCode,
    ProtocolVersion,
    RetryResult,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
    encode,
    encode_header,
    payload_of,
)

GO_ID_ZERO = b"\x00\x00\x00\x00"  # the Go peer's first request ID (little-endian counter)

#: (message, exact bytes on the wire): every type, empty and non-empty payloads,
#: raw and printable request IDs, multi-byte names, the largest field values.
ENCODED_EXAMPLES = [
    (ProtocolVersion(), b"01"),
    (SingleRequest(b"0001", "echo", b"hello"), b"r0001004echo00000005hello"),
    (SingleRequest(b"0002", "echo", b""), b"r0002004echo00000000"),
    (SingleRequest(GO_ID_ZERO, "ping", b"zz"), b"r\x00\x00\x00\x00004ping00000002zz"),
    (SingleRequest(b"0001", "gr\u00fc\u00dfe", b"{}"), b"r0001007gr\xc3\xbc\xc3\x9fe00000002{}"),
    (StreamRequest(b"0001", "upper-stream", b"abc"), b"s000100cupper-stream00000003abc"),
    (StreamRequestPart(b"0001", b"def"), b"p000100000003def"),
    (StreamRequestPart(b"0001"), b"p000100000000"),
    (SingleResult(b"0001", b"hello \x00\xff world"), b"R00010000000ehello \x00\xff world"),
    (SingleResult(GO_ID_ZERO, b"ping:zz"), b"R\x00\x00\x00\x0000000007ping:zz"),
    (StreamResult(b"0001", b"ABC"), b"S000100000003ABC"),
    (StreamResult(b"0001"), b"S000100000000"),
    (ErrorResult(b"0001", b"boom"), b"E000100000004boom"),
    (RetryResult(b"0002", 100, b"request rate limit"), b"e00020000006400000012request rate limit"),
    (RetryResult(b"0003", 0xABCDEF01), b"e0003abcdef0100000000"),
    (Notification("hello", b'"hi"'), b'n005hello00000004"hi"'),
    (Notification("hello-back"), b"n00ahello-back00000000"),
    (Heartbeat(2, 0x54D7DE9A), b"h000254d7de9a"),
    (Heartbeat(MAX_LOAD, MAX_UINT32), b"hffffffffffff"),
    (Heartbeat(0, 0), b"h000000000000"),
    (ProtocolError(ProtocolErrorCode.INVALID), b"f00000002"),
    (ProtocolError(MAX_UINT32), b"fffffffff"),
    (SingleResult(b"0001", b"x" * 0xAB), b"R0001000000ab" + b"x" * 0xAB),
]


@pytest.mark.parametrize(("message", "wire"), ENCODED_EXAMPLES, ids=lambda value: None)
def test_encode_writes_exact_bytes(message: Message, wire: bytes) -> None:
    assert encode(message) == wire


@pytest.mark.parametrize(("message", "wire"), ENCODED_EXAMPLES, ids=lambda value: None)
def test_encode_header_is_everything_before_the_payload(message: Message, wire: bytes) -> None:
    payload = payload_of(message)
    header = encode_header(message)
    assert header + payload == wire
    assert len(header) == len(wire) - len(payload)


def test_hex_digits_are_lowercase() -> None:
    wire = encode(RetryResult(b"ABCD", 0xDEADBEEF, b"\xff" * 0xFE))
    header = wire[5:21]
    assert header == b"deadbeef000000fe"
    assert header == header.lower()


def test_every_type_byte_maps_to_its_class() -> None:
    assert set(MESSAGE_TYPES) == {b"r", b"s", b"p", b"R", b"S", b"E", b"e", b"n", b"h", b"f"}
    for type_byte, cls in MESSAGE_TYPES.items():
        assert cls.TYPE == type_byte


def test_bytes_like_request_ids_and_payloads_are_written_as_bytes() -> None:
    message = SingleResult(bytearray(b"0001"), memoryview(b"abc"))
    assert encode(message) == b"R000100000003abc"
    assert encode(ErrorResult(b"0001", bytearray(b"no"))) == b"E000100000002no"


def test_payload_of_is_empty_for_types_without_payload() -> None:
    assert payload_of(Heartbeat(1, 2)) == b""
    assert payload_of(ProtocolError(0)) == b""
    assert payload_of(SingleResult(b"0001", b"x")) == b"x"


# -- names: at most 4095 bytes of UTF-8, counted in bytes, not characters --------


@pytest.mark.parametrize(
    "name",
    [
        "a" * MAX_NAME_SIZE,
        "\u00e9" * 2047 + "a",  # 2047 two-byte characters and one ASCII: 4095 bytes
        "\u20ac" * 1365,  # three-byte characters: 4095 bytes
    ],
    ids=["ascii-4095", "two-byte-4095", "three-byte-4095"],
)
def test_names_of_exactly_4095_utf8_bytes_encode(name: str) -> None:
    assert len(name.encode()) == MAX_NAME_SIZE
    assert encode(SingleRequest(b"0001", name)).startswith(b"r0001fff")
    assert encode(Notification(name)).startswith(b"nfff")


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("a" * 4096, 4096),
        ("\u00e9" * 2048, 4096),  # 2048 characters, but 4096 bytes
        ("\u20ac" * 1366, 4098),
        ("\U0001f600" * 1024, 4096),  # four-byte characters
    ],
    ids=["ascii", "two-byte", "three-byte", "four-byte"],
)
@pytest.mark.parametrize("make", [SingleRequest, StreamRequest, Notification], ids=lambda cls: cls.__name__)
def test_names_over_4095_utf8_bytes_are_refused(make, name: str, size: int) -> None:
    message = Notification(name) if make is Notification else make(b"0001", name)
    field = "name" if make is Notification else "operation"
    with pytest.raises(EncodeError, match=rf"^{field} is {size} bytes of UTF-8; .* at most 4095$"):
        encode(message)


def test_name_that_is_not_unicode_text_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="operation is not valid Unicode"):
        encode(SingleRequest(b"0001", "bad\ud800"))
    with pytest.raises(EncodeError, match="name is not valid Unicode"):
        encode(Notification("\udcff"))


# -- numbers: each fits its hex digits ------------------------------------------


class ClaimedSizePayload(bytes):
    """Bytes that report a length they do not have: tests the 32-bit payload size without 4 GiB."""

    claimed_size = 0

    def __len__(self) -> int:
        return self.claimed_size


def payload_claiming(size: int) -> ClaimedSizePayload:
    payload = ClaimedSizePayload(b"")
    payload.claimed_size = size
    return payload


def test_payload_of_exactly_4_gib_minus_one_fits_the_size_field() -> None:
    assert encode_header(SingleResult(b"0001", payload_claiming(MAX_UINT32))) == b"R0001ffffffff"


@pytest.mark.parametrize(
    "make",
    [
        lambda payload: SingleRequest(b"0001", "echo", payload),
        lambda payload: StreamRequest(b"0001", "echo", payload),
        lambda payload: StreamRequestPart(b"0001", payload),
        lambda payload: SingleResult(b"0001", payload),
        lambda payload: StreamResult(b"0001", payload),
        lambda payload: ErrorResult(b"0001", payload),
        lambda payload: RetryResult(b"0001", 0, payload),
        lambda payload: Notification("hello", payload),
    ],
    ids=["r", "s", "p", "R", "S", "E", "e", "n"],
)
def test_payload_of_4_gib_is_refused(make) -> None:
    with pytest.raises(EncodeError, match=r"^payload is 4294967296 bytes; the 8-hex-digit size allows at most 4294967295$"):
        encode(make(payload_claiming(MAX_UINT32 + 1)))


@pytest.mark.parametrize(
    ("message", "field", "value", "maximum"),
    [
        (RetryResult(b"0001", MAX_UINT32 + 1), "wait", MAX_UINT32 + 1, "0xffffffff"),
        (Heartbeat(0, MAX_UINT32 + 1), "time", MAX_UINT32 + 1, "0xffffffff"),
        (ProtocolError(MAX_UINT32 + 1), "code", MAX_UINT32 + 1, "0xffffffff"),
        (Heartbeat(MAX_LOAD + 1, 0), "load", MAX_LOAD + 1, "0xffff"),
        (ProtocolVersion(0x100), "version", 0x100, "0xff"),
        (RetryResult(b"0001", -1), "wait", -1, "0xffffffff"),
        (Heartbeat(-1, 0), "load", -1, "0xffff"),
        (Heartbeat(0, -5), "time", -5, "0xffffffff"),
        (ProtocolError(-2), "code", -2, "0xffffffff"),
        (ProtocolVersion(-1), "version", -1, "0xff"),
    ],
    ids=lambda value: None,
)
def test_numbers_outside_their_hex_digits_are_refused(message: Message, field: str, value: int, maximum: str) -> None:
    with pytest.raises(EncodeError, match=rf"^{field} {value} is out of range 0\.\.{maximum}$"):
        encode(message)


@pytest.mark.parametrize("request_id", [b"", b"001", b"00001", b"\x00" * 8], ids=lambda value: f"{len(value)}-bytes")
@pytest.mark.parametrize(
    "make",
    [
        lambda request_id: SingleRequest(request_id, "echo"),
        lambda request_id: StreamRequest(request_id, "echo"),
        lambda request_id: StreamRequestPart(request_id),
        lambda request_id: SingleResult(request_id),
        lambda request_id: StreamResult(request_id),
        lambda request_id: ErrorResult(request_id),
        lambda request_id: RetryResult(request_id, 0),
    ],
    ids=["r", "s", "p", "R", "S", "E", "e"],
)
def test_request_ids_must_be_exactly_4_bytes(make, request_id: bytes) -> None:
    with pytest.raises(EncodeError, match=rf"^request ID must be exactly 4 bytes, got {len(request_id)}: "):
        encode(make(request_id))


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (SingleResult("0001", b""), "request ID must be 4 bytes, got str"),
        (SingleResult(1, b""), "request ID must be 4 bytes, got int"),
        (SingleResult(None, b""), "request ID must be 4 bytes, got NoneType"),
        (SingleRequest(b"0001", b"echo"), "operation must be a str, got bytes"),
        (Notification(None), "name must be a str, got NoneType"),
        (SingleResult(b"0001", "text"), "payload must be bytes, got str"),
        (Notification("hello", 5), "payload must be bytes, got int"),
        (RetryResult(b"0001", "100"), "wait must be an int, got str"),
        (RetryResult(b"0001", 1.0), "wait must be an int, got float"),
        (Heartbeat(True, 0), "load must be an int, got bool"),
        (Heartbeat(0, 1.5), "time must be an int, got float"),
        (ProtocolError(None), "code must be an int, got NoneType"),
    ],
    ids=lambda value: None,
)
def test_wrong_field_types_are_refused_with_the_field_name(message: Message, error: str) -> None:
    with pytest.raises(EncodeError, match=f"^{re.escape(error)}$"):
        encode(message)


@pytest.mark.parametrize("value", ["r0001", b"r0001004echo00000000", None], ids=["str", "bytes", "none"])
def test_only_message_values_encode(value) -> None:
    with pytest.raises(EncodeError, match="^not a Gotalk message: "):
        encode(value)


def test_encode_error_belongs_to_the_error_family() -> None:
    with pytest.raises(GotalkError):
        encode(Heartbeat(-1, 0))
    with pytest.raises(ValueError):
        encode(Heartbeat(-1, 0))


# -- values: readable, immutable, hashable --------------------------------------


def test_repr_shows_every_field_and_the_payload_as_a_bytes_literal() -> None:
    assert repr(SingleRequest(b"0001", "echo", b"hello")) == "SingleRequest(request_id=b'0001', operation='echo', payload=b'hello')"
    assert repr(RetryResult(b"0002", 100, b"request rate limit")) == (
        "RetryResult(request_id=b'0002', wait=100, payload=b'request rate limit')"
    )
    assert repr(Heartbeat(2, 0x54D7DE9A)) == "Heartbeat(load=2, time=1423433370)"
    assert repr(ProtocolVersion()) == "ProtocolVersion(version=1)"


def test_repr_escapes_raw_bytes_in_ids_and_payloads() -> None:
    text = repr(SingleResult(GO_ID_ZERO, b"\x00\xff ok"))
    assert text == "SingleResult(request_id=b'\\x00\\x00\\x00\\x00', payload=b'\\x00\\xff ok')"
    assert text.isprintable()


def test_repr_cuts_long_payloads_and_says_how_much_is_left_out() -> None:
    payload = bytes(range(256)) * 40  # 10240 bytes
    text = repr(SingleResult(b"0001", payload))
    assert len(text) < 300
    assert repr(payload[:48]) in text
    assert text.endswith("...(+10192 bytes))")


def test_repr_keeps_a_48_byte_payload_whole() -> None:
    payload = b"x" * 48
    assert repr(StreamResult(b"0001", payload)) == f"StreamResult(request_id=b'0001', payload={payload!r})"


@pytest.mark.parametrize(("message", "wire"), ENCODED_EXAMPLES, ids=lambda value: None)
def test_messages_are_immutable(message: Message, wire: bytes) -> None:
    for field in dataclasses.fields(message):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(message, field.name, getattr(message, field.name))
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        message.extra = "not allowed"  # type: ignore[attr-defined]
    assert encode(message) == wire


@pytest.mark.parametrize(("message", "wire"), ENCODED_EXAMPLES, ids=lambda value: None)
def test_equal_messages_hash_equal(message: Message, wire: bytes) -> None:
    twin = dataclasses.replace(message)
    assert twin == message and twin is not message
    assert hash(twin) == hash(message)
    assert len({message, twin}) == 1


def test_messages_differing_in_any_field_are_distinct_keys() -> None:
    messages = {
        SingleRequest(b"0001", "echo", b"a"),
        SingleRequest(b"0002", "echo", b"a"),
        SingleRequest(b"0001", "ping", b"a"),
        SingleRequest(b"0001", "echo", b"b"),
        StreamRequest(b"0001", "echo", b"a"),  # same fields, other type
    }
    assert len(messages) == 5
    assert {SingleResult(b"0001", b"x"): "answer"}[SingleResult(b"0001", b"x")] == "answer"


def test_protocol_error_names_its_code() -> None:
    assert [ProtocolError(code).meaning for code in range(4)] == ["abnormal", "unsupported", "invalid", "timeout"]
    assert ProtocolError(99).meaning == "unknown code"

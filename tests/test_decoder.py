"""gotalk_lab.decoder: the Go peer's transcripts and PROTOCOL.md's examples decode in any
chunking, every bad byte is reported at its exact offset, large payloads are kept by
reference, and hypothesis checks round trips, chunkings and garbage input."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gotalk_lab as gl
from gotalk_lab.decoder import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    LAYOUTS,
    Decoder,
    Frame,
    check_complete,
    decode,
    decode_all,
)
from gotalk_lab.errors import ProtocolViolation
from gotalk_lab.wire import (
    MAX_LOAD,
    MAX_NAME_SIZE,
    MAX_UINT32,
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
    encode,
    encode_header,
    payload_of,
)

MIB = 1024 * 1024
CHUNK_SIZE = 64 * 1024

# -- helpers ----------------------------------------------------------------------


@dataclass
class Outcome:
    """What a decoder gave for a sequence of feeds: every message, and the violation if any."""

    messages: list
    violation: ProtocolViolation | None
    failed_feed: int | None  # index of the feed that raised
    decoder: Decoder


def feed_all(chunks, *, frames: bool = False, **decoder_options) -> Outcome:
    """Feed ``chunks`` in order; collect messages from every feed, including the one that raised."""
    decoder = Decoder(**decoder_options)
    feed = decoder.feed_frames if frames else decoder.feed
    messages: list = []
    for index, chunk in enumerate(chunks):
        try:
            messages += feed(chunk)
        except ProtocolViolation as violation:
            return Outcome(messages + violation.messages, violation, index, decoder)
    return Outcome(messages, None, None, decoder)


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[index : index + 1] for index in range(len(data))]


def split_at(data: bytes, cuts) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[start:stop] for start, stop in zip(bounds, bounds[1:])]


def location(violation: ProtocolViolation | None):
    """Everything a violation says, for comparing two of them."""
    if violation is None:
        return None
    return (violation.offset, violation.field, violation.expected, violation.found, violation.code)


def reencode(messages) -> bytes:
    return b"".join(encode(message) for message in messages)


#: One message of every type (two stream parts), with raw IDs and a multi-byte name.
EVERY_TYPE = [
    SingleRequest(b"\x00\x00\x00\x00", "echo", b"hello \x00\xff world"),
    StreamRequest(b"0002", "upper-stream", b"abc"),
    StreamRequestPart(b"0002", b"def"),
    StreamRequestPart(b"0002", b""),
    SingleResult(b"\x00\x00\x00\x00", b"ping:zz"),
    StreamResult(b"0002", b"ABC"),
    StreamResult(b"0002", b""),
    ErrorResult(b"0003", b"boom"),
    RetryResult(b"0004", 100, b"request rate limit"),
    Notification("h\u00e9llo", b'"hi"'),
    Heartbeat(2, 0x54D7DE9A),
    ProtocolError(3),
]


# -- conformance transcripts: the Go reference peer's own bytes --------------------

DIRECTIONS = ("send", "recv")


@dataclass(frozen=True)
class ExpectedViolation:
    """A transcript direction that ends in deliberately bad bytes."""

    offset: int
    field: str
    code: int
    detected_at: int  # index of the byte whose arrival reveals the error
    messages_before: tuple


EXPECTED_VIOLATIONS = {
    # "x000100000000": no message type 'x'.
    ("10-protocol-error-unknown-type", "send"): ExpectedViolation(2, "type", 2, 2, (ProtocolVersion(),)),
    # "r0001004echo0000zzzz": the first 'z' of the payload size.
    ("11-bad-size-digits", "send"): ExpectedViolation(18, "payload_size", 2, 18, (ProtocolVersion(),)),
    # "02": a well-formed but unsupported version, known once both digits are in.
    ("12-version-mismatch", "send"): ExpectedViolation(0, "version", 1, 1, ()),
}


def test_every_expected_violation_names_a_transcript(conformance_files) -> None:
    stems = {path.stem for path in conformance_files}
    assert {stem for stem, _ in EXPECTED_VIOLATIONS} <= stems
    assert len(stems) >= 15


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_transcript_decodes_whole_and_reencodes_byte_for_byte(conformance_transcript, direction) -> None:
    stream = conformance_transcript.stream(direction)
    outcome = feed_all([stream])
    expected = EXPECTED_VIOLATIONS.get((conformance_transcript.stem, direction))
    if expected is None:
        assert outcome.violation is None
        check_complete(outcome.decoder, outcome.messages)
        assert outcome.messages[0] == ProtocolVersion(1)
        assert reencode(outcome.messages) == stream
    else:
        violation = outcome.violation
        assert (violation.offset, violation.field, violation.code) == (expected.offset, expected.field, expected.code)
        assert violation.messages == list(expected.messages_before)
        before = reencode(violation.messages)
        assert stream.startswith(before) and len(before) <= violation.offset


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_transcript_decodes_the_same_one_byte_at_a_time(conformance_transcript, direction) -> None:
    stream = conformance_transcript.stream(direction)
    whole = feed_all([stream])
    trickle = feed_all(one_byte_at_a_time(stream))
    assert trickle.messages == whole.messages
    assert location(trickle.violation) == location(whole.violation)
    expected = EXPECTED_VIOLATIONS.get((conformance_transcript.stem, direction))
    if expected is not None:
        assert trickle.failed_feed == expected.detected_at
        assert trickle.violation.messages == []  # earlier feeds already returned them


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_transcript_decodes_the_same_in_its_recorded_chunks(conformance_transcript, direction) -> None:
    chunks = conformance_transcript.chunks(direction)
    whole = feed_all([b"".join(chunks)])
    recorded = feed_all(chunks)
    assert recorded.messages == whole.messages
    assert location(recorded.violation) == location(whole.violation)


def test_stream_part_for_an_unknown_stream_is_fine_for_the_codec(transcript_named) -> None:
    # Only a peer knows which streams are open: the Go peer closes, the codec decodes.
    transcript = transcript_named("13-stream-part-without-request")
    assert decode_all(transcript.stream("send")) == [ProtocolVersion(), StreamRequestPart(b"0009", b"")]


def test_single_requests_carry_binary_payloads(transcript_named) -> None:
    transcript = transcript_named("02-single-requests")
    assert decode_all(transcript.stream("send"))[1:] == [
        SingleRequest(b"0001", "echo", b"hello \x00\xff world"),
        SingleRequest(b"0002", "echo", b""),
        SingleRequest(b"0003", "greet", b'{"name":"Rasmus"}'),
    ]
    assert decode_all(transcript.stream("recv"))[1:] == [
        SingleResult(b"0001", b"hello \x00\xff world"),
        SingleResult(b"0002", b""),
        SingleResult(b"0003", b'{"greeting":"Hello Rasmus"}'),
    ]


def test_error_results_carry_text(transcript_named) -> None:
    received = decode_all(transcript_named("03-error-results").stream("recv"))
    assert received[1:] == [ErrorResult(b"0001", b"boom"), ErrorResult(b"0002", b'unknown operation "nope"')]


def test_stream_parts_end_with_an_empty_part(transcript_named) -> None:
    transcript = transcript_named("04-streaming")
    assert decode_all(transcript.stream("send"))[1:] == [
        StreamRequest(b"0001", "upper-stream", b"abc"),
        StreamRequestPart(b"0001", b"def"),
        StreamRequestPart(b"0001", b""),
    ]
    assert [message.payload for message in decode_all(transcript.stream("recv"))[1:]] == [b"ABC", b"DEF", b""]


def test_results_come_back_in_completion_order(transcript_named) -> None:
    received = decode_all(transcript_named("05-multiplexing").stream("recv"))
    assert [message.request_id for message in received[1:]] == [b"000b", b"000c", b"000a"]


def test_go_peer_request_ids_are_raw_bytes(transcript_named) -> None:
    transcript = transcript_named("06-bidirectional")
    received = decode_all(transcript.stream("recv"))
    assert received[1] == SingleRequest(b"\x00\x00\x00\x00", "ping", b"zz")
    assert received[2] == SingleResult(b"0001", b"pong:ping:zz")
    assert decode_all(transcript.stream("send"))[2] == SingleResult(b"\x00\x00\x00\x00", b"ping:zz")


def test_notifications(transcript_named) -> None:
    transcript = transcript_named("07-notifications")
    assert decode_all(transcript.stream("send"))[1:] == [Notification("hello", b'"hi"')]
    assert decode_all(transcript.stream("recv"))[1:] == [Notification("hello-back", b'"hi"')]


def test_heartbeat_load_and_time(transcript_named) -> None:
    sent = decode_all(transcript_named("08-heartbeat").stream("send"))
    heartbeat = sent[1]
    assert heartbeat == Heartbeat(load=2, time=0x54D7DE9A)
    assert sent[2] == SingleRequest(b"0001", "echo", b"after")


def test_retry_result_wait_and_text(transcript_named) -> None:
    received = decode_all(transcript_named("09-retry-result").stream("recv"))
    retry = received[1]
    assert isinstance(retry, RetryResult)
    assert (retry.request_id, retry.wait, retry.payload) == (b"0002", 100, b"request rate limit")


def test_protocol_errors_from_the_go_peer(transcript_named) -> None:
    assert decode_all(transcript_named("10-protocol-error-unknown-type").stream("recv"))[1:] == [ProtocolError(2)]
    assert decode_all(transcript_named("14-read-timeout").stream("recv"))[1:] == [ProtocolError(3)]


def test_go_client_request_ids_are_little_endian_counters(transcript_named) -> None:
    transcript = transcript_named("15-go-client-session")
    sent = decode_all(transcript.stream("send"))
    request_ids = [message.request_id for message in sent if isinstance(message, (SingleRequest, StreamRequest))]
    assert request_ids[:3] == [b"\x00\x00\x00\x00", b"\x01\x00\x00\x00", b"\x02\x00\x00\x00"]
    counters = [int.from_bytes(request_id, "little") for request_id in request_ids]
    assert sorted(counters) == list(range(len(counters)))  # every number once, from 0
    received = decode_all(transcript.stream("recv"))
    answered = {message.request_id for message in received if isinstance(message, (SingleResult, StreamResult, ErrorResult))}
    assert answered == set(request_ids)  # every request answered, matched by its raw ID
    stream_parts = [message for message in sent if isinstance(message, StreamRequestPart)]
    assert stream_parts == [StreamRequestPart(b"\xd2\x00\x00\x00", b"def"), StreamRequestPart(b"\xd2\x00\x00\x00", b"")]


# -- PROTOCOL.md: every frame it writes out, and the header sizes it states ---------

#: Every frame PROTOCOL.md writes out literally, with the fields it gives them.
DOCUMENTED_FRAMES = {
    b"f00000001": ProtocolError(1),  # "On a mismatch gotalk.js writes `f00000001`"
    b"f00000002": ProtocolError(2),  # "an unknown message type gets `f00000002`"
    b"f00000003": ProtocolError(3),  # "a read timeout gets `f00000003`"
}

#: Further examples spelled out in the documents: the version both sides write
#: first ("01"), DESIGN.md's decode example, and the Go peer's request IDs
#: (`\x00\x00\x00\x00`, `\x01\x00\x00\x00`) inside the requests that carry them.
DOCUMENTED_EXAMPLES = [
    (b"01", True, ProtocolVersion(1)),
    (b"r0001004echo00000005hello", False, SingleRequest(b"0001", "echo", b"hello")),
    (b"r\x00\x00\x00\x00004ping00000002zz", False, SingleRequest(b"\x00\x00\x00\x00", "ping", b"zz")),
    (b"r\x01\x00\x00\x00004echo00000000", False, SingleRequest(b"\x01\x00\x00\x00", "echo", b"")),
]


@pytest.mark.parametrize(("wire", "message"), DOCUMENTED_FRAMES.items(), ids=lambda value: None)
def test_documented_frames_decode_to_their_fields(wire: bytes, message: Message) -> None:
    assert decode(wire) == message
    assert encode(message) == wire


def test_documented_protocol_error_codes_mean_what_the_document_says() -> None:
    meanings = [decode(wire).meaning for wire in DOCUMENTED_FRAMES]
    assert meanings == ["unsupported", "invalid", "timeout"]


@pytest.mark.parametrize(("wire", "with_version", "message"), DOCUMENTED_EXAMPLES, ids=lambda value: None)
def test_documented_examples_decode_to_their_fields(wire: bytes, with_version: bool, message: Message) -> None:
    assert decode_all(wire, expect_version=with_version) == [message]
    assert encode(message) == wire


def test_every_backticked_frame_in_protocol_md_is_checked(protocol_document: str) -> None:
    literals = re.findall(r"`([^`\n]+)`", protocol_document)
    frames = set()
    for literal in literals:
        try:
            decode(literal.encode())
        except ProtocolViolation:
            continue  # a word, a file name or a fragment: not a whole frame
        frames.add(literal.encode())
    assert frames == set(DOCUMENTED_FRAMES)


#: PROTOCOL.md: "`r`/`s` 1+4+3+len(name)+8; `R` `S` `E` `p` 13; `e` 21;
#: `n` 1+3+len(name)+8; `h` 13; `f` 9."
DOCUMENTED_HEADER_SIZES = [
    (SingleRequest(b"0001", "echo", b"x"), 1 + 4 + 3 + 4 + 8),
    (StreamRequest(b"0001", "upper-stream", b"x"), 1 + 4 + 3 + 12 + 8),
    (SingleResult(b"0001", b"x"), 13),
    (StreamResult(b"0001", b"x"), 13),
    (ErrorResult(b"0001", b"x"), 13),
    (StreamRequestPart(b"0001", b"x"), 13),
    (RetryResult(b"0001", 5, b"x"), 21),
    (Notification("hello-back", b"x"), 1 + 3 + 10 + 8),
    (Notification("h\u00e9", b"x"), 1 + 3 + 3 + 8),  # sizes count bytes of UTF-8
    (Heartbeat(1, 2), 13),
    (ProtocolError(0), 9),
]


@pytest.mark.parametrize(("message", "header_size"), DOCUMENTED_HEADER_SIZES, ids=lambda value: None)
def test_header_sizes_are_as_documented(message: Message, header_size: int) -> None:
    wire = encode(message)
    [frame] = Decoder(expect_version=False).feed_frames(wire)
    assert len(frame.header) == header_size
    assert frame.message == message
    assert frame.length == len(wire)  # the payload follows the header immediately


# -- located errors: offset, field, expected, found, code ---------------------------

#: A valid message and a lead before it, so that offsets must be absolute.
LEAD = b"01" + b"f00000000"
LEAD_MESSAGES = [ProtocolVersion(), ProtocolError(0)]

#: Every hex field of every type: (valid frame, field, start in the frame, digits).
HEX_FIELDS = [
    (b"r0001004echo00000005hello", "name_size", 5, 3),
    (b"r0001004echo00000005hello", "payload_size", 12, 8),
    (b"s000100cupper-stream00000003abc", "name_size", 5, 3),
    (b"s000100cupper-stream00000003abc", "payload_size", 20, 8),
    (b"p000100000003def", "payload_size", 5, 8),
    (b"R000100000005hello", "payload_size", 5, 8),
    (b"S000100000003ABC", "payload_size", 5, 8),
    (b"E000100000004boom", "payload_size", 5, 8),
    (b"e00020000006400000012request rate limit", "wait", 5, 8),
    (b"e00020000006400000012request rate limit", "payload_size", 13, 8),
    (b'n005hello00000004"hi"', "name_size", 1, 3),
    (b'n005hello00000004"hi"', "payload_size", 9, 8),
    (b"h000254d7de9a", "load", 1, 4),
    (b"h000254d7de9a", "time", 5, 8),
    (b"f00000002", "code", 1, 8),
]

#: Bytes that are not hex digits, as the violation shows them. Several are ones
#: Python's int(..., 16) would accept in some position ("_", " ", "+", "-", "x").
NOT_HEX = {
    b"g": "'g'",
    b"G": "'G'",
    b"x": "'x'",
    b"z": "'z'",
    b"_": "'_'",
    b" ": "' '",
    b"+": "'+'",
    b"-": "'-'",
    b".": "'.'",
    b"\x00": "'\\x00'",
    b"\xff": "'\\xff'",
    b"\xc3": "'\\xc3'",
    b"\\": "'\\x5c'",
}


def test_every_hex_field_of_every_type_is_covered() -> None:
    covered = {(frame[:1], field) for frame, field, _, _ in HEX_FIELDS}
    expected = {(type_byte, field) for type_byte, layout in LAYOUTS.items() for field, _, kind in layout if kind == "hex"}
    assert covered == expected


@pytest.mark.parametrize(
    ("frame", "field", "start", "digits"), HEX_FIELDS, ids=[f"{frame[:1].decode()}-{field}" for frame, field, _, _ in HEX_FIELDS]
)
def test_non_hex_digit_is_reported_at_its_exact_offset(frame: bytes, field: str, start: int, digits: int) -> None:
    assert decode(frame) is not None  # the frame itself is valid
    for digit in range(digits):
        for bad, shown in NOT_HEX.items():
            position = start + digit
            data = LEAD + frame[:position] + bad + frame[position + 1 :]
            offset = len(LEAD) + position
            whole = feed_all([data])
            violation = whole.violation
            assert (violation.offset, violation.field, violation.code) == (offset, field, 2), (bad, digit)
            assert violation.expected == f"{digits} hex digits"
            assert violation.found == f"{shown} at digit {digit + 1}"
            assert violation.messages == LEAD_MESSAGES
            trickle = feed_all(one_byte_at_a_time(data))
            assert location(trickle.violation) == location(violation)
            assert trickle.failed_feed == offset  # reported as soon as the byte arrives


@pytest.mark.parametrize(
    ("version", "offset", "code", "detected_at"),
    [
        (b"02", 0, 1, 1),
        (b"00", 0, 1, 1),
        (b"10", 0, 1, 1),
        (b"ff", 0, 1, 1),
        (b"FF", 0, 1, 1),
        (b"0g", 1, 2, 1),
        (b"g1", 0, 2, 0),
        (b" 1", 0, 2, 0),
        (b"+1", 0, 2, 0),
        (b"x", 0, 2, 0),
        (b"r0001004echo00000000", 0, 2, 0),  # a message where the version belongs
    ],
    ids=lambda value: None,
)
def test_version_unsupported_is_code_1_and_malformed_is_code_2(version: bytes, offset: int, code: int, detected_at: int) -> None:
    whole = feed_all([version + b"f00000000"])
    violation = whole.violation
    assert (violation.offset, violation.field, violation.code) == (offset, "version", code)
    assert whole.messages == []
    if code == 1:
        assert violation.expected == 'protocol version "01"'
        assert violation.found == repr(version[:2].decode())
    trickle = feed_all(one_byte_at_a_time(version))
    assert location(trickle.violation) == location(violation)
    assert trickle.failed_feed == detected_at


@pytest.mark.parametrize("type_byte", [b"x", b"\x00", b"\xff", b"0", b"F", b"P", b"q", b" ", b"\n"], ids=repr)
def test_unknown_type_byte_is_reported_with_the_known_ones(type_byte: bytes) -> None:
    data = LEAD + type_byte + b"000100000000"
    for outcome in (feed_all([data]), feed_all(one_byte_at_a_time(data))):
        violation = outcome.violation
        assert (violation.offset, violation.field, violation.code) == (len(LEAD), "type", 2)
        assert violation.expected == "one of r s p R S E e n h f"
        assert violation.found.isprintable()
        assert outcome.messages == LEAD_MESSAGES


@pytest.mark.parametrize(
    ("frame", "offset", "field", "detected_at", "reason"),
    [
        (b"r0001004ec\xffo00000000", 10, "operation", 10, "invalid start byte"),
        (b"s0001003\xc3(a00000000", 8, "operation", 9, "invalid continuation byte"),
        (b"r0001003ab\xc300000000", 10, "operation", 10, "unexpected end of data"),  # cut by the name's end
        (b"n002\xc0\xaf00000000", 4, "name", 4, "invalid start byte"),  # overlong "/"
        (b"n003\xed\xa0\x8000000000", 4, "name", 5, "invalid continuation byte"),  # a surrogate
        (b"n005hell\x8000000000", 8, "name", 8, "invalid start byte"),  # a lone continuation byte
    ],
    ids=lambda value: None,
)
def test_name_that_is_not_utf8_is_reported_at_the_bad_byte(frame: bytes, offset: int, field: str, detected_at: int, reason: str) -> None:
    data = LEAD + frame
    whole = feed_all([data])
    violation = whole.violation
    assert (violation.offset, violation.field, violation.code) == (len(LEAD) + offset, field, 2)
    assert violation.expected == "UTF-8 text"
    assert reason in violation.found
    assert whole.messages == LEAD_MESSAGES
    trickle = feed_all(one_byte_at_a_time(data))
    assert location(trickle.violation) == location(violation)
    assert trickle.failed_feed == len(LEAD) + detected_at


#: Headers announcing a 17-byte payload, and where their payload size starts.
HEADERS_ANNOUNCING_17_BYTES = [
    (b"r0001004echo00000011", 12),
    (b"s0001004echo00000011", 12),
    (b"p000100000011", 5),
    (b"R000100000011", 5),
    (b"S000100000011", 5),
    (b"E000100000011", 5),
    (b"e00010000000000000011", 13),
    (b"n005hello00000011", 9),
]


@pytest.mark.parametrize(("header", "size_offset"), HEADERS_ANNOUNCING_17_BYTES, ids=lambda value: None)
def test_payload_over_the_limit_is_refused_from_the_header_alone(header: bytes, size_offset: int) -> None:
    whole = feed_all([header], expect_version=False, max_payload_size=16)
    violation = whole.violation
    assert (violation.offset, violation.field, violation.code) == (size_offset, "payload_size", 2)
    assert violation.expected == "at most 16 bytes (the payload limit)"
    assert violation.found == "0x11 = 17 bytes"
    trickle = feed_all(one_byte_at_a_time(header), expect_version=False, max_payload_size=16)
    assert location(trickle.violation) == location(violation)
    assert trickle.failed_feed == len(header) - 1  # the last size digit


@pytest.mark.parametrize(("header", "size_offset"), HEADERS_ANNOUNCING_17_BYTES, ids=lambda value: None)
def test_payload_at_the_limit_is_accepted(header: bytes, size_offset: int) -> None:
    decoder = Decoder(expect_version=False, max_payload_size=17)
    assert decoder.feed(header) == []
    assert decoder.buffered == len(header)
    [message] = decoder.feed(b"p" * 17)
    assert payload_of(message) == b"p" * 17


def test_default_limit_is_checked_before_anything_is_kept() -> None:
    at_limit = b"R0001%08x" % DEFAULT_MAX_PAYLOAD_SIZE
    decoder = Decoder(expect_version=False)
    assert decoder.feed(at_limit) == []
    assert decoder.buffered == len(at_limit)  # the header only: nothing allocated for the payload
    for size in (DEFAULT_MAX_PAYLOAD_SIZE + 1, MAX_UINT32):
        with pytest.raises(ProtocolViolation) as raised:
            Decoder(expect_version=False).feed(b"R0001%08x" % size)
        assert (raised.value.offset, raised.value.field) == (5, "payload_size")


def test_violation_is_sticky() -> None:
    decoder = Decoder()
    with pytest.raises(ProtocolViolation) as first:
        decoder.feed(b"01x")
    assert decoder.error is first.value
    for more in (b"", b"f00000000", b"x"):
        with pytest.raises(ProtocolViolation) as again:
            decoder.feed(more)
        assert again.value is first.value
    with pytest.raises(ProtocolViolation) as framed:
        decoder.feed_frames(b"f00000000")
    assert framed.value is first.value


def test_violation_keeps_messages_decoded_before_it_in_the_same_feed() -> None:
    with pytest.raises(ProtocolViolation) as raised:
        Decoder().feed(b"01f00000001R000100000002okq")
    assert raised.value.messages == [ProtocolVersion(), ProtocolError(1), SingleResult(b"0001", b"ok")]
    assert raised.value.offset == 26
    assert str(raised.value) == "byte 26: type: expected one of r s p R S E e n h f, found 'q'"


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"r0001004echo0000000A0123456789", SingleRequest(b"0001", "echo", b"0123456789")),
        (b"s000100Aabcdefghij0000000B0123456789a", StreamRequest(b"0001", "abcdefghij", b"0123456789a")),
        (b"R00010000000Fhello, world!!!", SingleResult(b"0001", b"hello, world!!!")),
        (b"e0001000000FF00000000", RetryResult(b"0001", 0xFF, b"")),
        (b"n00Bhello-there00000000", Notification("hello-there", b"")),
        (b"hABCDDEADBEEF", Heartbeat(0xABCD, 0xDEADBEEF)),
        (b"haBcDdEaDbEeF", Heartbeat(0xABCD, 0xDEADBEEF)),
        (b"f0000000A", ProtocolError(10)),
    ],
    ids=lambda value: None,
)
def test_uppercase_hex_is_accepted(wire: bytes, message: Message) -> None:
    assert decode(wire) == message
    assert feed_all(one_byte_at_a_time(wire), expect_version=False).messages == [message]
    # Written back in lowercase (the names and payloads below the type byte have no capitals).
    assert encode(message) == wire[:1] + wire[1:].lower()


# -- large payloads: kept by reference, assembled once -------------------------------


def test_100_mib_payload_in_64_kib_chunks_is_kept_by_reference() -> None:
    size = 100 * MIB
    payload = bytes(range(256)) * (size // 256)
    stream = encode_header(SingleResult(b"big!", payload)) + payload
    chunks = [stream[start : start + CHUNK_SIZE] for start in range(0, len(stream), CHUNK_SIZE)]
    decoder = Decoder(expect_version=False, max_payload_size=size)
    for index, chunk in enumerate(chunks[:-1]):
        assert decoder.feed(chunk) == []
        assert decoder.buffered <= size + CHUNK_SIZE
        if index > 0:
            # Middle chunks are held as the very objects fed: no copy, no re-joining.
            assert decoder._chunks[-1] is chunk
    assert len(decoder._chunks) == len(chunks) - 1
    assert all(held is fed for held, fed in zip(decoder._chunks[1:], chunks[1:-1]))
    [message] = decoder.feed(chunks[-1])
    assert message.request_id == b"big!"
    assert len(message.payload) == size
    assert message.payload == payload
    assert decoder.buffered == 0
    assert decoder._chunks == []


def test_payload_split_over_feeds_is_followed_by_more_messages() -> None:
    stream = b"01" + encode(SingleResult(b"0001", b"a" * 1000)) + encode(Heartbeat(1, 2)) + encode(StreamResult(b"0002", b"z"))
    decoder = Decoder()
    assert decoder.feed(stream[:500]) == [ProtocolVersion()]
    assert decoder.offset == 2  # the unfinished message starts here
    assert decoder.feed(stream[500:900]) == []
    assert decoder.buffered == 900 - 2
    assert decoder.feed(stream[900:]) == [SingleResult(b"0001", b"a" * 1000), Heartbeat(1, 2), StreamResult(b"0002", b"z")]
    assert decoder.buffered == 0
    assert decoder.offset == len(stream)


@pytest.mark.parametrize("kind", ["request", "notification"])
def test_a_header_seen_before_is_still_checked_when_a_byte_differs(kind: str) -> None:
    """Named headers are remembered once checked; a look-alike with one wrong byte is not let through."""
    if kind == "request":
        good = encode(SingleRequest(b"0001", "echo", b"hi"))
        bad = good.replace(b"echo", b"ec\xffo")  # same sizes, name no longer UTF-8
        bad_offset = 10
    else:
        good = encode(Notification("tick", b"hi"))
        bad = good.replace(b"tick", b"ti\xffk")
        bad_offset = 6
    decoder = Decoder(expect_version=False)
    assert len(decoder.feed(good * 3)) == 3
    with pytest.raises(ProtocolViolation) as caught:
        decoder.feed(good + bad)
    assert caught.value.offset == 4 * len(good) + bad_offset
    assert caught.value.field in ("operation", "name") and len(caught.value.messages) == 1


def test_every_split_in_two_decodes_like_the_whole() -> None:
    stream = b"01" + reencode(EVERY_TYPE)
    expected = [ProtocolVersion(), *EVERY_TYPE]
    for cut in range(len(stream) + 1):
        assert feed_all([stream[:cut], stream[cut:]]).messages == expected, cut


# -- feed_frames: where each message was -------------------------------------------


def assert_frames_match(frames: list[Frame], stream: bytes) -> None:
    offset = 0
    for frame in frames:
        assert frame.offset == offset
        assert stream[frame.offset : frame.offset + len(frame.header)] == frame.header
        assert frame.header == encode_header(frame.message)
        offset += frame.length
    assert offset == len(stream)


@pytest.mark.parametrize("chunking", ["whole", "one-byte", "seven-bytes"])
def test_feed_frames_gives_offsets_and_raw_headers(chunking: str) -> None:
    stream = b"01" + reencode(EVERY_TYPE)
    chunks = {
        "whole": [stream],
        "one-byte": one_byte_at_a_time(stream),
        "seven-bytes": [stream[start : start + 7] for start in range(0, len(stream), 7)],
    }[chunking]
    frames = feed_all(chunks, frames=True).messages
    assert all(isinstance(frame, Frame) for frame in frames)
    assert [frame.message for frame in frames] == [ProtocolVersion(), *EVERY_TYPE]
    assert_frames_match(frames, stream)


def test_feed_frames_keeps_uppercase_headers_as_received() -> None:
    [frame] = Decoder(expect_version=False).feed_frames(b"R00010000000Aabcdefghij")
    assert frame.header == b"R00010000000A"
    assert frame.message == SingleResult(b"0001", b"abcdefghij")


def test_feed_frames_on_a_real_session(transcript_named) -> None:
    transcript = transcript_named("15-go-client-session")
    for direction in DIRECTIONS:
        outcome = feed_all(transcript.chunks(direction), frames=True)
        assert outcome.violation is None
        assert_frames_match(outcome.messages, transcript.stream(direction))


def test_violation_during_feed_frames_holds_frames() -> None:
    with pytest.raises(ProtocolViolation) as raised:
        Decoder().feed_frames(b"01f00000001x")
    assert raised.value.messages == [Frame(0, b"01", ProtocolVersion()), Frame(2, b"f00000001", ProtocolError(1))]


# -- decode, decode_all, check_complete: whole inputs only -------------------------

#: Where each byte of a request belongs: cut the input before byte i and the
#: violation names the field of byte i, at offset i (the first byte missing).
REQUEST = b"r0001004echo00000005hello"
REQUEST_FIELDS = ["type"] + ["request_id"] * 4 + ["name_size"] * 3 + ["operation"] * 4 + ["payload_size"] * 8 + ["payload"] * 5


@pytest.mark.parametrize("cut", range(1, len(REQUEST)))
def test_truncated_message_is_located_at_the_end_of_input(cut: int) -> None:
    with pytest.raises(ProtocolViolation) as raised:
        decode(REQUEST[:cut])
    violation = raised.value
    assert (violation.offset, violation.field, violation.found) == (cut, REQUEST_FIELDS[cut], "end of input")
    if REQUEST_FIELDS[cut] == "payload":
        assert violation.expected == f"{len(REQUEST) - cut} more payload bytes of the message at byte 0"
    else:
        assert violation.expected == "the rest of the header that starts at byte 0"


def test_decode_all_reports_where_a_conversation_is_cut() -> None:
    with pytest.raises(ProtocolViolation) as raised:
        decode_all(b"01R000100000005hel")
    violation = raised.value
    assert (violation.offset, violation.field) == (18, "payload")
    assert violation.expected == "2 more payload bytes of the message at byte 2"
    assert violation.messages == [ProtocolVersion()]


@pytest.mark.parametrize(("data", "offset"), [(b"", 0), (b"0", 1)])
def test_decode_all_reports_a_missing_version(data: bytes, offset: int) -> None:
    with pytest.raises(ProtocolViolation) as raised:
        decode_all(data)
    assert (raised.value.offset, raised.value.field, raised.value.found) == (offset, "version", "end of input")


def test_decode_rejects_leftover_messages_at_their_offset() -> None:
    with pytest.raises(ProtocolViolation) as raised:
        decode(b"f00000001f00000002R000100000000")
    violation = raised.value
    assert (violation.offset, violation.field, violation.found) == (9, "message", "2 more message(s)")
    assert violation.messages == [ProtocolError(1), ProtocolError(2), SingleResult(b"0001", b"")]


def test_decode_rejects_leftover_bytes_at_their_offset() -> None:
    with pytest.raises(ProtocolViolation) as raised:
        decode(b"f00000001R00")
    assert (raised.value.offset, raised.value.field) == (12, "request_id")
    with pytest.raises(ProtocolViolation) as raised:
        decode(b"R000100000002ok?")
    assert (raised.value.offset, raised.value.field) == (15, "type")


@pytest.mark.parametrize(("data", "with_version", "offset"), [(b"", False, 0), (b"01", True, 2)])
def test_decode_of_no_message_is_a_violation(data: bytes, with_version: bool, offset: int) -> None:
    with pytest.raises(ProtocolViolation) as raised:
        decode(data, expect_version=with_version)
    assert (raised.value.offset, raised.value.field, raised.value.found) == (offset, "message", "end of input")


def test_decode_skips_the_version_when_asked() -> None:
    assert decode(b"01f00000001", expect_version=True) == ProtocolError(1)


def test_check_complete_passes_between_messages_and_raises_inside_one() -> None:
    decoder = Decoder()
    messages = decoder.feed(b"01h000254d7de9a")
    assert check_complete(decoder, messages) is None
    messages = decoder.feed(b"n005hel")
    with pytest.raises(ProtocolViolation) as raised:
        check_complete(decoder, messages)
    assert (raised.value.offset, raised.value.field) == (22, "name")
    assert raised.value.expected == "the rest of the header that starts at byte 15"


# -- properties (hypothesis) ---------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

request_ids = st.binary(min_size=4, max_size=4)
payloads = st.binary(max_size=300)
uint32s = st.integers(0, MAX_UINT32)


def padded_to_the_largest_name(text: str) -> str:
    return text + "x" * (MAX_NAME_SIZE - len(text.encode()))


short_names = st.text(max_size=64)
largest_names = st.text(max_size=16).map(padded_to_the_largest_name)  # exactly 4095 bytes of UTF-8
# Mostly short names; one in ten is as long as the 3-hex-digit size allows.
names = st.integers(0, 9).flatmap(lambda draw: largest_names if draw == 0 else short_names)

any_message = st.one_of(
    st.builds(SingleRequest, request_ids, names, payloads),
    st.builds(StreamRequest, request_ids, names, payloads),
    st.builds(StreamRequestPart, request_ids, payloads),
    st.builds(SingleResult, request_ids, payloads),
    st.builds(StreamResult, request_ids, payloads),
    st.builds(ErrorResult, request_ids, payloads),
    st.builds(RetryResult, request_ids, uint32s, payloads),
    st.builds(Notification, names, payloads),
    st.builds(Heartbeat, st.integers(0, MAX_LOAD), uint32s),
    st.builds(ProtocolError, uint32s),
)
conversations = st.lists(any_message, max_size=12)


@PROPERTY_SETTINGS
@given(any_message)
def test_property_every_message_round_trips(message: Message) -> None:
    wire = encode(message)
    assert decode(wire) == message
    assert encode(decode(wire)) == wire


@PROPERTY_SETTINGS
@given(conversations, st.data())
def test_property_any_chunking_decodes_like_the_whole(messages: list, data) -> None:
    stream = b"01" + reencode(messages)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=24), label="cuts")
    whole = feed_all([stream], frames=True)
    chunked = feed_all(split_at(stream, cuts), frames=True)
    assert whole.violation is None and chunked.violation is None
    assert [frame.message for frame in whole.messages] == [ProtocolVersion(), *messages]
    assert chunked.messages == whole.messages  # same messages, offsets and headers
    assert_frames_match(whole.messages, stream)
    assert chunked.decoder.buffered == 0


def assert_only_located_violations(data: bytes, **decoder_options) -> None:
    """Whole, one byte at a time and in pieces, ``data`` gives the same messages and the
    same violation (or none), and nothing but a ProtocolViolation ever escapes."""
    whole = feed_all([data], **decoder_options)
    trickle = feed_all(one_byte_at_a_time(data), **decoder_options)
    pieces = feed_all(split_at(data, range(3, len(data), 5)), **decoder_options)
    assert trickle.messages == whole.messages == pieces.messages
    assert location(trickle.violation) == location(whole.violation) == location(pieces.violation)
    if whole.violation is not None:
        assert 0 <= whole.violation.offset <= len(data)
        assert whole.violation.code in (1, 2)


@PROPERTY_SETTINGS
@given(st.binary(max_size=300), st.booleans())
def test_property_random_bytes_raise_only_located_violations(data: bytes, with_version: bool) -> None:
    assert_only_located_violations(data, expect_version=with_version)
    assert_only_located_violations(b"01" + data)


HEX_DIGIT_STRINGS = st.text(alphabet="0123456789abcdefABCDEF", min_size=8, max_size=8).map(str.encode)


@st.composite
def mutated_conversations(draw) -> bytes:
    """A valid conversation with one to three edits: bit flips, cuts, swapped
    type bytes, rewritten size fields, bytes replaced, inserted or deleted."""
    messages = draw(st.lists(any_message, min_size=1, max_size=6))
    frames = [encode(message) for message in messages]
    starts = [2 + sum(map(len, frames[:index])) for index in range(len(frames))]
    header_ends = [start + len(encode_header(message)) for start, message in zip(starts, messages)]
    data = bytearray(b"01" + b"".join(frames))
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(st.sampled_from(["flip", "cut", "type", "size", "replace", "insert", "delete"]))
        which = draw(st.integers(0, len(messages) - 1))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "cut":
            del data[draw(st.integers(0, len(data))) :]
        elif edit == "type" and starts[which] < len(data):
            data[starts[which]] = draw(st.sampled_from(b"rspRSEenhfxq\x00"))
        elif edit == "size" and header_ends[which] <= len(data):
            # The last 8 header bytes: payload size, or time / code for h and f.
            digits = draw(st.one_of(HEX_DIGIT_STRINGS, st.binary(min_size=8, max_size=8)))
            data[header_ends[which] - 8 : header_ends[which]] = digits
        elif edit == "replace" and data:
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "delete" and data:
            del data[at]
    return bytes(data)


@PROPERTY_SETTINGS
@given(mutated_conversations())
def test_property_mutated_conversations_raise_only_located_violations(data: bytes) -> None:
    assert_only_located_violations(data)
    assert_only_located_violations(data, max_payload_size=64)


# -- the decimal-size mistake, named -------------------------------------------------------

def test_a_size_written_in_decimal_is_named_in_the_error():
    from gotalk_lab.decoder import decimal_size_hint

    right = gl.encode(gl.StreamRequest(b"0001", "upper-stream", b"abc"))  # name size 00c
    wrong = right.replace(b"00c", b"012", 1)
    with pytest.raises(gl.ProtocolViolation) as caught:
        gl.decode(wrong)
    assert caught.value.hint == "sizes are hexadecimal: name_size 012 is 18 bytes; if 12 was meant, it is written 00c"
    assert str(caught.value).endswith("(" + caught.value.hint + ")")
    assert decimal_size_hint(b"r0001004echo00000010hello worl").endswith("if 10 was meant, it is written 0000000a")


def test_no_hint_where_decimal_and_hex_agree_or_the_digits_are_not_hex():
    from gotalk_lab.decoder import decimal_size_hint

    assert decimal_size_hint(b"r0001004echo00000005hello") is None  # 5 is 5 either way
    assert decimal_size_hint(b"r0001004echo0000zzzz") is None  # not a size at all
    assert decimal_size_hint(b"x0001") is None and decimal_size_hint(b"r00") is None
    with pytest.raises(gl.ProtocolViolation) as caught:
        gl.decode(b"r0001004echo0000zzzz")
    assert caught.value.hint is None and "(" not in str(caught.value)

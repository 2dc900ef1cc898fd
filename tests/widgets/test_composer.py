"""Composer, kernel side: byte-exact messages from the form, each malformation located where
expected, inline form errors, and Send delivering the raw bytes to a live peer over a pipe."""

from __future__ import annotations

import asyncio

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.decoder import Waiting
from gotalk_lab.trace import IN, Trace
from gotalk_lab.widgets.composer import Composer, malform, malformations_for, parse_escaped, parse_request_id

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

#: One form per message type, and the message it must build.
FORMS = [
    (dict(type="r", request_id=b"0001", name="echo", payload="hello"), gl.SingleRequest(b"0001", "echo", b"hello")),
    (dict(type="s", request_id=b"0002", name="upper-stream", payload="a"), gl.StreamRequest(b"0002", "upper-stream", b"a")),
    (dict(type="p", request_id=b"0002", payload=""), gl.StreamRequestPart(b"0002", b"")),
    (dict(type="R", request_id=b"\x01\x00\x00\x00", payload=b"\x00\xff"), gl.SingleResult(b"\x01\x00\x00\x00", b"\x00\xff")),
    (dict(type="S", request_id=b"0003", payload="PART"), gl.StreamResult(b"0003", b"PART")),
    (dict(type="E", request_id=b"0004", payload="boom"), gl.ErrorResult(b"0004", b"boom")),
    (dict(type="e", request_id=b"0005", wait=500, payload="request rate limit"), gl.RetryResult(b"0005", 500, b"request rate limit")),
    (dict(type="n", name="hello", payload={"to": "Ada"}), gl.Notification("hello", b'{"to": "Ada"}')),
    (dict(type="h", load=0x8000, time=1_700_000_000), gl.Heartbeat(0x8000, 1_700_000_000)),
    (dict(type="f", code=3), gl.ProtocolError(3)),
    (dict(type="01", version=1), gl.ProtocolVersion(1)),
]


def error_of(composer: Composer) -> tuple[int, str] | None:
    error = composer.frame_view.annotation["error"]
    return None if error is None else (error["offset"], error["field"])


@pytest.mark.parametrize("form, message", FORMS, ids=[form["type"] for form, _ in FORMS])
def test_every_type_is_built_byte_exact(form, message):
    composer = Composer(**form)
    assert composer.message == message
    assert composer.value == gl.encode(message)
    assert composer.error is None
    assert composer.frame_view.data == composer.value
    assert error_of(composer) is None
    assert len(composer.frame_view.annotation["messages"]) == 1


def test_the_default_form_is_the_echo_request():
    composer = Composer()
    assert composer.value == b"r0001004echo00000005hello"
    assert composer.frame_view.title == "SingleRequest"


def test_only_the_inputs_of_the_chosen_type_are_shown():
    composer = Composer(type="h")
    shown = {name for name, row in composer._rows.items() if row.layout.display != "none"}
    assert shown == {"load", "time"}
    composer.set(type="e")
    shown = {name for name, row in composer._rows.items() if row.layout.display != "none"}
    assert shown == {"request_id", "wait", "payload"}


@pytest.mark.parametrize(
    "malformation, drop, expected_bytes, expected_error",
    [
        ("size+1", 1, b"r0001004echo00000006hello", (25, "payload")),
        ("size-1", 1, b"r0001004echo00000004hello", (24, "type")),
        ("bad-hex", 1, b"r0001004echo0000000zhello", (19, "payload_size")),
        ("unknown-type", 1, b"x0001004echo00000005hello", (0, "type")),
        ("truncated", 3, b"r0001004echo00000005he", (22, "payload")),
        ("truncated", 13, b"r0001004echo", (12, "payload_size")),
    ],
)
def test_each_malformation_gives_the_expected_located_error(malformation, drop, expected_bytes, expected_error):
    composer = Composer().set(malformation=malformation, drop=drop)
    assert composer.value == expected_bytes
    assert composer.message is None
    assert error_of(composer) == expected_error
    assert "malformed" in composer.frame_view.title


def test_malformations_of_types_without_a_payload():
    heartbeat = Composer(type="h", load=1, time=2)
    assert heartbeat.set(malformation="bad-hex").value == b"h000z00000002"
    assert error_of(heartbeat) == (4, "load")
    version = Composer(type="01")
    assert version.set(malformation="bad-hex").value == b"0z"
    assert error_of(version) == (1, "version")
    assert Composer(type="01", version=2).frame_view.annotation["error"]["code"] == 1  # version mismatch
    assert "size+1" not in malformations_for("h") and "unknown-type" not in malformations_for("01")
    with pytest.raises(ValueError, match="does not apply to type 'f'"):
        Composer(type="f").set(malformation="size-1")


def test_an_empty_payload_size_minus_one_wraps_and_is_refused_by_the_limit():
    composer = Composer(type="p", payload="", malformation="size-1")
    assert composer.value == b"p0001ffffffff"
    assert error_of(composer) == (5, "payload_size")


def test_a_type_without_the_chosen_malformation_falls_back_to_none():
    composer = Composer(malformation="size+1")
    composer.set(type="f", code=2)
    assert composer.malformation_input.value == "none"
    assert composer.value == b"f00000002" and composer.message == gl.ProtocolError(2)


def test_malform_refuses_what_does_not_apply():
    with pytest.raises(ValueError, match="no payload size"):
        malform(b"f00000002", "size+1")
    with pytest.raises(ValueError, match="no type byte"):
        malform(b"01", "unknown-type")
    with pytest.raises(ValueError, match="at least 1"):
        malform(b"f00000002", "truncated", drop=0)


def test_request_id_as_text_with_escapes_or_as_hex():
    assert parse_request_id("\\x01\\x00\\x00\\x00") == b"\x01\x00\x00\x00"
    assert parse_request_id("01 00 00 00", "hex") == b"\x01\x00\x00\x00"
    assert parse_request_id("a\\x5cbc") == b"a\\bc" and parse_escaped("\\\\") == b"\\"
    composer = Composer(request_id="01000000", request_id_format="hex")
    assert composer.value == b"r\x01\x00\x00\x00004echo00000005hello"
    assert composer.message.request_id == b"\x01\x00\x00\x00"
    # bytes given to set() come back as the escaped text the form shows
    assert Composer(request_id=b"\x01\x00\x00\x00").request_id_input.value == "\\x01\\x00\\x00\\x00"


@pytest.mark.parametrize(
    "request_id, format, complaint",
    [
        ("001", "text", "request ID must be exactly 4 bytes; '001' is 3"),
        ("00001", "text", "request ID must be exactly 4 bytes; '00001' is 5"),
        ("é123", "text", "request ID must be exactly 4 bytes; '\\xc3\\xa9123' is 5"),
        ("0001\\", "text", "a lone '\\' at character 5"),
        ("010000", "hex", "request ID must be exactly 4 bytes; '01 00 00' is 3"),
        ("0100000g", "hex", "'g' (hex digit 8) is not a hex digit"),
    ],
)
def test_a_bad_request_id_is_an_inline_error_and_no_bytes(request_id, format, complaint):
    composer = Composer(request_id=request_id, request_id_format=format)
    assert composer.value is None and composer.message is None
    assert complaint in composer.error
    assert complaint.replace("'", "&#x27;") in composer.form_error.value
    assert composer.frame_view.data == b""
    composer.set(request_id="0001", request_id_format="text")
    assert composer.error is None and composer.form_error.value == ""
    assert composer.value == b"r0001004echo00000005hello"


def test_payload_as_json_is_checked_and_as_hex_is_decoded():
    composer = Composer(payload='{"name": "Ada"', payload_format="json")
    assert composer.value is None
    assert composer.error == "payload is not JSON: Expecting ',' delimiter at line 1, column 15"
    composer.set(payload='{"name": "Ada"}', payload_format="json")
    assert composer.value == b'r0001004echo0000000f{"name": "Ada"}'
    composer.set(payload="00 ff 10", payload_format="hex")
    assert composer.message.payload == b"\x00\xff\x10"
    composer.set(payload="0f f", payload_format="hex")
    assert "3 hex digits" in composer.error
    composer.set(payload=b"\x00\xff")
    assert composer.payload_format.value == "hex" and composer.message.payload == b"\x00\xff"


def test_set_refuses_unknown_names_and_types():
    with pytest.raises(TypeError, match="unknown fields \\['colour'\\]"):
        Composer().set(colour="red")
    with pytest.raises(ValueError, match="type must be one of"):
        Composer().set(type="q")


def test_send_needs_a_peer():
    composer = Composer()
    assert composer.send_button.disabled
    assert composer.status.startswith("no connection")
    with pytest.raises(RuntimeError, match="no peer"):
        composer.send_to_peer()


def test_mime_bundle_keeps_the_widget_view_and_adds_static_html():
    composer = Composer(malformation="bad-hex")
    bundle = composer._repr_mimebundle_()
    assert bundle[WIDGET_VIEW]["model_id"] == composer.model_id
    assert 'class="gl-view"' in bundle["text/html"] and "byte 19: payload_size" in bundle["text/html"]


# -- sending to a live peer ------------------------------------------------------


async def test_send_delivers_an_unknown_type_and_the_other_side_answers_f2_and_closes():
    a, b = await gl.pipe(handlers_b=demo.handlers())
    composer = Composer(peer=a, malformation="unknown-type")
    assert not composer.send_button.disabled
    assert await composer.send_to_peer() is True
    status = await composer.wait_closed()
    # a wrote the bytes; the other side (b) read them, could not, and closed.
    assert status.startswith("sent 25 bytes from a to the other side; the other side cannot read it: byte 2: type: ")
    assert "; connection closed: the other side reported a protocol error" in status
    assert a.close_reason == "the other side reported a protocol error: f00000002 (invalid)"
    received = [event.message for event in a.trace if event.direction == IN]
    assert received == [gl.ProtocolVersion(1), gl.ProtocolError(2)]
    assert b.close_reason.startswith("invalid input from the other side: byte 2: type")


async def test_send_delivers_a_valid_notification_and_the_demo_answers_it():
    a, b = await gl.pipe(handlers_b=demo.handlers())
    answered = asyncio.Event()
    a.trace.subscribe(lambda event: event.direction == IN and isinstance(event.message, gl.Notification) and answered.set())
    composer = Composer(peer=a, type="n", name="hello", payload="hi")
    await composer.send_to_peer()
    await answered.wait()
    assert composer.status == "sent 19 bytes from a to the other side"
    assert a.trace[-1].message == gl.Notification("hello-back", b"hi")
    assert [event.message for event in b.trace if event.direction == IN][-1] == gl.Notification("hello", b"hi")
    await a.close()


async def test_send_on_a_closed_connection_says_so():
    a, b = await gl.pipe()
    await a.close()
    composer = Composer(peer=a)
    assert await composer.send_to_peer() is False
    assert composer.status == "connection closed: closed by this side"


async def settle() -> None:
    """A few turns of the loop: the pipe delivers, the other side answers, listeners run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_frame_one_byte_short_says_the_receiver_waits_for_one_more_byte():
    a, b = await gl.pipe(handlers_b=demo.handlers())
    composer = Composer(peer=a, malformation="truncated", drop=1)
    assert await composer.send_to_peer() is True
    await settle()
    assert composer.waiting == Waiting(24, 1, True)
    assert b.connection.waiting() == composer.waiting  # the model agrees with the real receiver
    assert composer.status == (
        "sent 24 bytes from a to the other side; "
        "the other side holds 24 bytes of an unfinished message and is waiting for 1 more byte"
    )
    assert not composer.send_button.disabled and b.is_open
    await a.close()


async def test_the_wait_is_followed_live_as_more_bytes_go_out_and_when_the_connection_ends():
    a, b = await gl.pipe(handlers_b=demo.handlers())
    header_only = Composer(peer=a, type="R", request_id=b"0009", payload="hello", malformation="truncated", drop=5)
    await header_only.send_to_peer()
    await settle()
    assert header_only.waiting == Waiting(13, 5, True)
    assert "waiting for 5 more bytes" in header_only.status
    # Another Composer on the same connection writes the version preamble, "01": two more
    # bytes the receiver takes as payload. The first Composer's status follows without a send.
    await Composer(peer=a, type="01").send_to_peer()
    await settle()
    assert header_only.waiting == b.connection.waiting() == Waiting(15, 3, True)
    assert "waiting for 3 more bytes" in header_only.status
    await a.close()
    await settle()
    assert header_only.status.endswith("the other side was still waiting for 3 more bytes; connection closed: closed by this side")
    assert header_only.send_button.disabled


async def test_ordinary_traffic_after_a_short_frame_is_taken_as_its_payload():
    a, b = await gl.pipe(handlers_b=demo.handlers())
    composer = Composer(peer=a, malformation="size+1")  # announces 6 payload bytes, writes 5
    await composer.send_to_peer()
    await settle()
    assert "waiting for 1 more byte" in composer.status
    await a.notify_bytes("hi", b"")  # its "n" ends the payload; "002hi..." is no message
    await b.wait_closed()
    await settle()
    assert "the other side cannot read it: byte 28: type: " in composer.status
    assert composer.waiting is None and composer.send_button.disabled


async def test_send_is_disabled_with_a_reason_once_the_connection_ends():
    a, b = await gl.pipe(handlers_b=demo.handlers())
    composer = Composer(peer=a)
    assert not composer.send_button.disabled
    await b.close()  # the other side goes: a sees its connection end
    await a.wait_closed()
    await settle()
    assert composer.send_button.disabled
    assert composer.send_button.tooltip.startswith("the connection is closed (connection closed by the other side")
    assert composer.status.startswith("connection closed: connection closed by the other side")
    composer.set(payload="changed")  # a new form does not bring Send back
    assert composer.send_button.disabled
    late = Composer(peer=a)  # made after the close: disabled from the start
    assert late.send_button.disabled and late.status.startswith("connection closed")


async def test_bytes_that_are_no_frame_are_kept_beside_the_trace():
    from gotalk_lab.widgets.unframed import unframed_log

    a, b = await gl.pipe(handlers_b=demo.handlers())
    before = a.trace.events[-1].index
    composer = Composer(peer=a, malformation="size-1")  # "hell" is a whole request, "o" no message
    await composer.send_to_peer()
    notes = unframed_log(a.trace).notes
    assert len(notes) == 1
    note = notes[0]
    assert (note.after, note.direction, note.data) == (before + 1, "out", b"o")
    assert a.trace.events[before + 1 - a.trace.events[0].index].message == gl.SingleRequest(b"0001", "echo", b"hell")
    assert note.problem.startswith("not a message (byte 24 of the 25 written): type: expected one of r s p")
    assert unframed_log(Trace()).notes == []
    await a.close()

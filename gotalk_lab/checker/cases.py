"""The conformance cases of sections 1-5: handshake, framing, request/result, errors,
notifications and heartbeats (sections 6-9 are in ``cases_more``).

Each case states one requirement and checks it alone: everything else it sends is
in its plainest form (request ID ``0001``, each message in one write, payloads under
ten bytes so that a size written in decimal reads the same). Verdicts follow what the
Go reference peer and gotalk.js actually do (PROTOCOL.md): where the two legitimately
differ the verdict is non-strict or informational, never fail.
"""

from __future__ import annotations

import time

from ..wire import (
    ErrorResult,
    Heartbeat,
    Notification,
    SingleRequest,
    SingleResult,
    encode,
)
from .model import (
    ECHO,
    FAIL,
    INFORMATIONAL,
    NON_STRICT,
    PASS,
    UNKNOWN_NOTIFICATION,
    UNKNOWN_OPERATION,
    WRITE_GAP,
    Case,
    Context,
    Outcome,
    error_text,
    shown,
    what_came,
)
from .session import Session

HANDSHAKE = "Handshake"
FRAMING = "Framing"
REQUESTS = "Request and result"
ERRORS = "Errors"
NOTIFICATIONS = "Notifications and heartbeats"

#: Every case, in the order they run; ``cases_more`` appends its own.
CASES: list[Case] = []


def case(case_id: str, section: str, title: str, requirement: str, *, needs=(), transport=None):
    def register(run):
        CASES.append(Case(case_id, section, title, requirement, run, frozenset(needs), transport))
        return run

    return register


async def echo_once(ctx: Context, session: Session, request: SingleRequest) -> Outcome | None:
    """Send one echo request and wait for its answer; an Outcome when it did not come right."""
    await session.send_message(request)
    request_id = request.request_id
    if not await session.wait_for(lambda s: bool(s.answers_for(request_id)), ctx.deadline):
        return Outcome(FAIL, f"expected an answer to {shown(encode(request))}; {what_came(session, waited=ctx.waited())}")
    answer = session.answers_for(request_id)[0]
    if not isinstance(answer, SingleResult):
        return Outcome(FAIL, f"the echo operation {ctx.echo!r} answered {shown(encode(answer))}, not a SingleResult R: is --echo the right operation?")
    return None


def result_header_digits(session: Session, request_id: bytes) -> bytes | None:
    """The 8 size digits after ``R`` + ID in the raw bytes received (read raw, not decoded,
    so that a size in the wrong base is still seen as written)."""
    data = bytes(session.received)
    at = data.find(b"R" + request_id)
    if at < 0 or len(data) < at + 13:
        return None
    return data[at + 5 : at + 13]


# -- 1 handshake -------------------------------------------------------------------------


@case("1.1", HANDSHAKE, "The server writes its version first",
      'Each side writes the protocol version "01" (two hex digits) before any message.')
async def version_first(ctx: Context) -> Outcome:
    session = await ctx.start()
    await session.wait_for(lambda s: len(s.received) >= 2, ctx.deadline)
    first = bytes(session.received[:2])
    if first == b"01":
        return Outcome(PASS, 'the server wrote "01" first, as the Go peer and gotalk.js do')
    if not first:
        return Outcome(FAIL, f'expected the version "01" as the first two bytes; {what_came(session, waited=ctx.waited())}. '
                             "Go and gotalk.js clients wait for it before anything else.")
    return Outcome(FAIL, f'expected the version "01" as the first two bytes, received {shown(bytes(session.received[:24]))}. '
                         "A peer that skips the version is dropped by the Go reader, which reads its first two bytes as the version.")


@case("1.2", HANDSHAKE, "An unsupported version is refused",
      'A peer that receives a version other than "01" closes the connection '
      "(gotalk.js writes f00000001 first, the Go peer closes without writing).")
async def version_mismatch(ctx: Context) -> Outcome:
    session = await ctx.connect()
    await session.send_version(b"02")
    closed = await session.wait_closed(ctx.deadline)
    error = session.protocol_error()
    if not closed:
        return Outcome(FAIL, f'sent the version "02"; expected the server to close the connection, but {what_came(session, waited=ctx.waited())}. '
                             "A peer that carries on with a version it does not speak will misread everything after it.")
    if error is None:
        return Outcome(PASS, f'sent "02": the server closed without writing f, as the Go peer does ({what_came(session)})')
    if error.code == 1:
        return Outcome(INFORMATIONAL, 'sent "02": the server wrote f00000001 (unsupported protocol) and closed, as gotalk.js does; '
                                      "the Go peer closes without writing anything. Both are legitimate.")
    return Outcome(NON_STRICT, f'sent "02": the server wrote f{error.code:08x} and closed; the code for a version mismatch is 1 '
                               "(f00000001, as gotalk.js writes); the Go peer writes nothing.")


# -- 2 framing ------------------------------------------------------------------------------


@case("2.1", FRAMING, "Sizes are hexadecimal",
      "Every size is fixed-width lowercase hexadecimal: a 16-byte payload is announced as 00000010.", needs=[ECHO])
async def hex_sizes(ctx: Context) -> Outcome:
    session = await ctx.start()
    payload = b"sixteen bytes!!!"
    await session.send_message(ctx.echo_request(b"0001", payload))
    await session.wait_for(lambda s: result_header_digits(s, b"0001") is not None, ctx.deadline)
    digits = result_header_digits(session, b"0001")
    if digits is None:
        return Outcome(FAIL, f"sent a 16-byte payload to {ctx.echo!r}; expected R0001 00000010 and the payload back; {what_came(session, waited=ctx.waited())}")
    if digits.lower() == b"00000010":
        return Outcome(PASS, f"the 16-byte result was announced as {shown(digits)}")
    if digits == b"00000016":
        return Outcome(FAIL, "expected the size 00000010 (16 in hexadecimal); received 00000016: the size was written in decimal. "
                             "A Gotalk reader takes it as 0x16 = 22 bytes and reads 6 bytes of the next message as payload.")
    return Outcome(FAIL, f"expected the size 00000010 after R0001; received {shown(digits)}")


@case("2.2", FRAMING, "Sizes are written in lowercase",
      "Writers use lowercase hex digits (the Go peer and gotalk.js do); readers accept both.", needs=[ECHO])
async def lowercase_sizes(ctx: Context) -> Outcome:
    session = await ctx.start()
    payload = b"abcdefghijklmnopqrstuvwxyz"
    await session.send_message(ctx.echo_request(b"0001", payload))
    await session.wait_for(lambda s: result_header_digits(s, b"0001") is not None, ctx.deadline)
    digits = result_header_digits(session, b"0001")
    if digits == b"0000001a":
        return Outcome(PASS, "the 26-byte result was announced as 0000001a")
    if digits == b"0000001A":
        return Outcome(NON_STRICT, "the 26-byte result was announced as 0000001A: readers accept either case, "
                                   "but the Go peer and gotalk.js write lowercase, and byte-for-byte comparisons of transcripts will differ")
    if digits is None:
        return Outcome(FAIL, f"expected R0001 0000001a and the 26 bytes back; {what_came(session, waited=ctx.waited())}")
    return Outcome(FAIL, f"expected the size 0000001a (26 in hexadecimal) after R0001; received {shown(digits)}")


@case("2.3", FRAMING, "Uppercase hex digits are read",
      "A reader accepts hex digits in either case (the Go reader does): 0000000A is ten bytes.", needs=[ECHO])
async def uppercase_read(ctx: Context) -> Outcome:
    session = await ctx.start()
    name = ctx.echo.encode("utf-8")
    wire = b"r0001" + b"%03x" % len(name) + name + b"0000000A" + b"0123456789"
    await session.send(wire)
    await session.wait_for(lambda s: bool(s.answers_for(b"0001")) or result_header_digits(s, b"0001") is not None, ctx.deadline)
    answers = session.answers_for(b"0001")
    if answers and isinstance(answers[0], SingleResult) and answers[0].payload == b"0123456789":
        return Outcome(PASS, "the size 0000000A was read as ten bytes and the payload echoed")
    if answers and isinstance(answers[0], ErrorResult):
        return Outcome(NON_STRICT, f"sent {shown(wire)} (size in uppercase hex); answered {shown(encode(answers[0]))}. "
                                   "The Go reader accepts either case; a peer that writes uppercase would be refused here.")
    digits = result_header_digits(session, b"0001")
    if digits is not None:
        return Outcome(PASS, f"the request with size 0000000A was read and answered (the result's size was written {shown(digits)}: see 2.1)")
    return Outcome(NON_STRICT, f"sent {shown(wire)} (size in uppercase hex); {what_came(session, waited=ctx.waited())}. "
                               "The Go reader accepts either case; a peer that writes uppercase would be refused here.")


@case("2.4", FRAMING, "A message delivered one byte at a time is answered",
      "Message boundaries do not depend on how the bytes arrive: a request written one byte per write is read whole.", needs=[ECHO])
async def trickle(ctx: Context) -> Outcome:
    session = await ctx.start()
    request = ctx.echo_request(b"0001", b"hello")
    wire = encode(request)
    for i in range(len(wire)):
        await session.send(wire[i : i + 1])
        await session.pause(0.003)
    if await session.wait_for(lambda s: bool(s.answers_for(b"0001")), ctx.deadline):
        answer = session.answers_for(b"0001")[0]
        if isinstance(answer, SingleResult) and answer.payload == b"hello":
            return Outcome(PASS, f"sent {shown(wire)} in {len(wire)} writes of one byte; answered R0001 'hello'")
        return Outcome(FAIL, f"sent {shown(wire)} one byte at a time; expected R0001 'hello', received {shown(encode(answer))}")
    verdict = NON_STRICT if ctx.target.websocket else FAIL
    why = (" On a WebSocket the Go server reads messages as one byte stream, gotalk.js reads one message as one header: "
           "a gotalk.js-style reader cannot do this." if ctx.target.websocket else
           " TCP delivers bytes in any chunks; a reader must keep a partial header until the rest arrives.")
    return Outcome(verdict, f"sent {shown(wire)} one byte per write; expected R0001 'hello'; {what_came(session, waited=ctx.waited())}.{why}")


@case("2.5", FRAMING, "A write holding one message and part of the next",
      "A reader keeps the bytes after a message: a request whole plus the start of a second, then the rest, "
      "gets both answered.", needs=[ECHO])
async def split_across_writes(ctx: Context) -> Outcome:
    session = await ctx.start()
    first, second = encode(ctx.echo_request(b"0001", b"one")), encode(ctx.echo_request(b"0002", b"two"))
    await session.send(first + second[:7])
    await session.pause(WRITE_GAP)
    await session.send(second[7:])
    got = await session.wait_for(lambda s: bool(s.answers_for(b"0001")) and bool(s.answers_for(b"0002")), ctx.deadline)
    answers = {m.request_id: m for m in session.answers() if hasattr(m, "request_id")}
    if got and getattr(answers[b"0001"], "payload", None) == b"one" and getattr(answers[b"0002"], "payload", None) == b"two":
        return Outcome(PASS, f"sent {shown(first + second[:7])} then {shown(second[7:])}: both requests answered")
    if not ctx.target.websocket or got:
        return Outcome(FAIL, f"sent {shown(first + second[:7])} then {shown(second[7:])}; expected R0001 'one' and R0002 'two'; "
                             f"{what_came(session, waited=ctx.waited())}")
    return Outcome(NON_STRICT, f"on a WebSocket, sent one message holding a request and part of the next; {what_came(session)}. "
                               "gotalk.js reads one message as one header, so this is legitimate for a gotalk.js-style reader; the Go server reads it.")


@case("2.6", FRAMING, "Every header and every payload is its own WebSocket message",
      'On a WebSocket, the version "01", each header and each payload travel as separate messages (gotalk.js reads '
      "one message as a header and the next as its payload).", needs=[ECHO], transport="ws")
async def websocket_messages(ctx: Context) -> Outcome:
    session = await ctx.start()
    if (problem := await echo_once(ctx, session, ctx.echo_request(b"0001", b"hello"))) is not None:
        return problem
    await session.wait_for(lambda s: len(s.ws_messages) >= 3, ctx.soon(0.5))
    messages = session.ws_messages
    listed = ", ".join(shown(m, 24) for m in messages[:4])
    if messages[:1] != [b"01"]:
        return Outcome(FAIL, f'expected "01" alone as the first WebSocket message; received {listed}. gotalk.js reads the first message as the version.')
    if messages[1:3] != [b"R000100000005", b"hello"]:
        return Outcome(FAIL, f"expected the header 'R000100000005' and the payload 'hello' as two messages; received {listed}. "
                             "A peer that packs header and payload into one message breaks gotalk.js.")
    return Outcome(PASS, f"received {listed}: one message per header and per payload")


@case("2.7", FRAMING, "Name sizes count bytes, not characters",
      "The 3-digit size of an operation or notification name counts the bytes of its UTF-8 encoding.")
async def name_size_in_bytes(ctx: Context) -> Outcome:
    session = await ctx.start()
    notification = Notification("gotalk-lab-check-\u00e9\u00e8\u2713", b"hello")
    wire = encode(notification)
    await session.send(wire)
    await session.pause(WRITE_GAP)
    if await ctx.probe_answered(session):
        return Outcome(PASS, f"sent a notification whose 21-character name is 24 bytes ({shown(wire)}); the next request was answered")
    return Outcome(FAIL, f"sent the notification {shown(wire)} (name size 018 = 24 bytes, 21 characters), then a request 0002; "
                         f"expected the request answered; {what_came(session, waited=ctx.waited())}. "
                         "A reader that counts characters reads 3 bytes too few and loses its place in the stream.")


# -- 3 request and result ---------------------------------------------------------------


@case("3.1", REQUESTS, "Payloads are bytes, returned exactly",
      "A payload is any bytes (not text): NUL, 0xff and invalid UTF-8 come back unchanged.", needs=[ECHO])
async def binary_payload(ctx: Context) -> Outcome:
    session = await ctx.start()
    payload = b"\x00\xff\x80\r\n\"\\0"
    if (problem := await echo_once(ctx, session, ctx.echo_request(b"0001", payload))) is not None:
        return problem
    answer = session.answers_for(b"0001")[0]
    if answer.payload == payload:
        return Outcome(PASS, f"sent {shown(payload)}, received the same {len(payload)} bytes")
    return Outcome(FAIL, f"sent the payload {shown(payload)}, received {shown(answer.payload)}: "
                         "the payload was treated as text. Gotalk payloads are opaque bytes (often JSON, not always).")


@case("3.2", REQUESTS, "An empty payload is size 00000000",
      "A request with an empty payload is valid and its result can be empty: R0001 00000000.", needs=[ECHO])
async def empty_payload(ctx: Context) -> Outcome:
    session = await ctx.start()
    request = ctx.echo_request(b"0001", b"")
    if (problem := await echo_once(ctx, session, request)) is not None:
        return problem
    answer = session.answers_for(b"0001")[0]
    if answer.payload == b"":
        return Outcome(PASS, f"sent {shown(encode(request))}; received R000100000000")
    return Outcome(FAIL, f"sent an empty payload; expected R000100000000, received {shown(encode(answer))}")


@case("3.3", REQUESTS, "Request IDs are echoed byte for byte",
      "A request ID is 4 opaque bytes: the result carries exactly those bytes, non-ASCII ones included "
      "(the Go peer's IDs are a little-endian counter: \\x01\\x00\\x00\\x00).", needs=[ECHO])
async def opaque_ids(ctx: Context) -> Outcome:
    session = await ctx.start()
    ids = [b"\x01\x00\x00\x00", b"\xff\xfe\x80\x7f", b"!00a"]
    for request_id in ids:
        await session.send_message(ctx.echo_request(request_id, b"id"))
        if not await session.wait_for(lambda s, rid=request_id: bool(s.answers_for(rid)), ctx.deadline):
            answers = [m for m in session.answers() if hasattr(m, "request_id")]
            seen = ", ".join(shown(m.request_id) for m in answers) or "none"
            return Outcome(FAIL, f"sent a request with ID {shown(request_id)}; no answer carried that ID (IDs answered: {seen}); "
                                 f"{what_came(session, waited=ctx.waited())}. A requestor matches results by the exact 4 bytes.")
    return Outcome(PASS, "results carried " + ", ".join(shown(i) for i in ids) + " exactly")


# -- 4 errors --------------------------------------------------------------------------------


@case("4.1", ERRORS, "An unknown operation gets an ErrorResult",
      "A request for an operation the server does not have is answered E with the same ID and a text payload, "
      "and the connection stays open.")
async def unknown_operation(ctx: Context) -> Outcome:
    session = await ctx.start()
    request = SingleRequest(b"0001", UNKNOWN_OPERATION, b"hello")
    await session.send_message(request)
    if not await session.wait_for(lambda s: bool(s.answers_for(b"0001")), ctx.deadline):
        return Outcome(FAIL, f"sent {shown(encode(request))}; expected E0001 with a reason; {what_came(session, waited=ctx.waited())}. "
                             "Dropping the connection fails every other request on it.")
    answer = session.answers_for(b"0001")[0]
    if not isinstance(answer, ErrorResult):
        return Outcome(FAIL, f"expected E0001 for an unknown operation, received {shown(encode(answer))}")
    await session.pause(WRITE_GAP)
    if not await ctx.probe_answered(session):
        return Outcome(FAIL, f"answered E0001 {shown(answer.payload)} but then did not answer the next request; {what_came(session)}")
    text = error_text(answer)
    style = ("the Go peer's wording" if text.startswith("unknown operation") else
             "gotalk.js's wording" if text.startswith("no such operation") else "its own wording")
    return Outcome(PASS, f"answered E0001 {shown(answer.payload)} ({style}) and kept serving")


async def refused_malformed(ctx: Context, wire: bytes, what: str) -> Outcome:
    session = await ctx.start()
    await session.send(wire)
    closed = await session.wait_closed(ctx.deadline)
    error = session.protocol_error()
    if closed and error is not None and error.code == 2:
        return Outcome(PASS, f"sent {shown(wire)} ({what}); the server wrote f00000002 and closed")
    if closed and error is None:
        return Outcome(NON_STRICT, f"sent {shown(wire)} ({what}); the server closed without writing f00000002 ({what_came(session)}). "
                                   "The other side cannot tell a protocol error from a crash.")
    if closed:
        return Outcome(NON_STRICT, f"sent {shown(wire)} ({what}); the server wrote f{error.code:08x} and closed; the code for an invalid message is 2")
    if error is not None:
        return Outcome(NON_STRICT, f"sent {shown(wire)} ({what}); the server wrote f{error.code:08x} but left the connection open for {ctx.waited()}")
    return Outcome(FAIL, f"sent {shown(wire)} ({what}, {len(wire)} bytes, more than a whole header); expected f00000002 and a close; "
                         f"{what_came(session, waited=ctx.waited())}. Silence leaves the requestor waiting forever.")


@case("4.2", ERRORS, "An unknown message type ends the connection",
      "A message with an unknown type byte is answered f00000002 and the connection closes; it is never met by silence.")
async def unknown_type(ctx: Context) -> Outcome:
    return await refused_malformed(ctx, b"Z000100000000", "type byte 'Z'")


@case("4.3", ERRORS, "Bad size digits end the connection",
      "A size field that is not hexadecimal ends the connection (f00000002 then close; the Go peer closes without f).")
async def bad_size_digits(ctx: Context) -> Outcome:
    return await refused_malformed(ctx, b"r0001004echo0000000g", "'g' in the payload size")


# -- 5 notifications and heartbeats ------------------------------------------------------


@case("5.1", NOTIFICATIONS, "An unknown notification does not end the connection",
      "A notification with a name the server does not know is ignored: the next request is still answered.")
async def unknown_notification(ctx: Context) -> Outcome:
    session = await ctx.start()
    wire = encode(Notification(UNKNOWN_NOTIFICATION, b"hello"))
    await session.send(wire)
    await session.pause(WRITE_GAP)
    if await ctx.probe_answered(session):
        return Outcome(PASS, f"sent {shown(wire)}; the next request was answered")
    return Outcome(FAIL, f"sent the notification {shown(wire)}, then a request 0002; expected it answered; "
                         f"{what_came(session, waited=ctx.waited())}. Unknown notifications are ignored by the Go peer and gotalk.js.")


@case("5.2", NOTIFICATIONS, "A notification is never answered",
      "Nothing is written in answer to a notification, not even an error.")
async def notification_unanswered(ctx: Context) -> Outcome:
    session = await ctx.start()
    wire = encode(Notification(UNKNOWN_NOTIFICATION, b"hi"))
    await session.send(wire)
    await session.pause(WRITE_GAP)
    answered = await ctx.probe_answered(session)
    extra = [m for m in session.answers() if getattr(m, "request_id", None) != b"0002" and not isinstance(m, Heartbeat)]
    if extra:
        return Outcome(FAIL, f"sent {shown(wire)}; expected nothing in answer, received {shown(encode(extra[0]))}. "
                             "A requestor receiving an answer to no request may drop the connection.")
    if not answered:
        return Outcome(PASS, f"nothing was written in answer to {shown(wire)} (but the connection did not carry on: see 5.1)")
    return Outcome(PASS, f"nothing was written in answer to {shown(wire)}; the next request was answered")


@case("5.3", NOTIFICATIONS, "A heartbeat is never answered",
      "A heartbeat from the client (load, UNIX time) is taken in silently and the connection carries on.")
async def heartbeat_unanswered(ctx: Context) -> Outcome:
    session = await ctx.start()
    wire = encode(Heartbeat(1, int(time.time())))
    await session.send(wire)
    await session.pause(WRITE_GAP)
    answered = await ctx.probe_answered(session)
    extra = [m for m in session.answers() if getattr(m, "request_id", None) != b"0002" and not isinstance(m, Heartbeat)]
    if answered and not extra:
        return Outcome(PASS, f"sent the heartbeat {shown(wire)}; nothing answered it and the next request was answered")
    if extra:
        return Outcome(FAIL, f"sent the heartbeat {shown(wire)}; expected no answer, received {shown(encode(extra[0]))}")
    return Outcome(FAIL, f"sent the heartbeat {shown(wire)} (a Go client sends one soon after the handshake, then every 20 s), "
                         f"then a request; {what_came(session, waited=ctx.waited())}")


#: How long the idle cases watch a quiet connection: long enough to see a heartbeat
#: sent at once, short enough to keep a whole run well under 30 s.
IDLE_WATCH = 1.0


@case("5.4", NOTIFICATIONS, "Heartbeats the server sends carry the current time",
      "A heartbeat's time is the sender's clock in UNIX seconds (8 hex digits); a Go server sends none "
      "unless its heartbeat interval is set.")
async def server_heartbeats(ctx: Context) -> Outcome:
    session = await ctx.start()
    await session.wait_for(lambda s: any(isinstance(m, Heartbeat) for m in s.messages), ctx.soon(IDLE_WATCH))
    beats = [m for m in session.messages if isinstance(m, Heartbeat)]
    if not beats:
        closed = f" (the connection closed: {session.close_reason}; see 9.1)" if session.closed else ""
        return Outcome(INFORMATIONAL, f"no heartbeat within {IDLE_WATCH:g} s of the handshake{closed}: a Go server sends none by default")
    beat = beats[0]
    off = beat.time - time.time()
    if abs(off) > 86400:
        return Outcome(FAIL, f"received a heartbeat with time {beat.time} (0x{beat.time:08x}), {off / 86400:+.0f} days from now: "
                             "the time field is the sender's clock in UNIX seconds (UTC)")
    return Outcome(PASS, f"the server sends heartbeats: load {beat.load} ({beat.load * 100 / 0xFFFF:.0f} %), time {beat.time} ({off:+.0f} s from this clock)")


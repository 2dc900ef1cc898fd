"""The conformance cases of sections 6-9: multiplexing, streams, limits, robustness.

Same rules as ``cases``: one requirement per case, everything else plain. The
aggressive ones (ID reuse, stray parts, a huge declared size, a flood) run only with
``--aggressive``; a server that dies during one is caught by the runner.
"""

from __future__ import annotations

import time

from ..wire import (
    ErrorResult,
    Notification,
    RetryResult,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
    encode,
)
from .cases import IDLE_WATCH, case, echo_once
from .model import (
    AGGRESSIVE,
    ECHO,
    FAIL,
    INFORMATIONAL,
    NON_STRICT,
    PASS,
    STREAM_ECHO,
    UNKNOWN_NOTIFICATION,
    WRITE_GAP,
    Context,
    Outcome,
    shown,
    what_came,
)
from .session import Session

MULTIPLEXING = "Multiplexing"
STREAMS = "Streams"
LIMITS = "Limits"
ROBUSTNESS = "Robustness"


def payloads_by_id(session: Session, kind=SingleResult) -> dict[bytes, bytes]:
    return {m.request_id: m.payload for m in session.answers() if isinstance(m, kind)}


def stream_parts(session: Session, request_id: bytes) -> list[bytes]:
    return [m.payload for m in session.answers_for(request_id) if isinstance(m, StreamResult)]


def streams_refused(ctx: Context, session: Session, request_id: bytes) -> Outcome | None:
    """Informational when the server answers the stream request with E (the Go default)."""
    for message in session.answers_for(request_id):
        if isinstance(message, ErrorResult):
            return Outcome(INFORMATIONAL, f"the stream request was answered E {shown(message.payload)}: stream requests are "
                                          "disabled here (the Go default limits disable them), so this requirement cannot be checked. "
                                          f"Is {ctx.stream_echo!r} a streaming operation?")
    return None


def stream_request(ctx: Context, request_id: bytes, payload: bytes) -> StreamRequest:
    return StreamRequest(request_id, ctx.stream_echo, payload)


# -- 6 multiplexing -----------------------------------------------------------------------


@case("6.1", MULTIPLEXING, "Outstanding requests are answered by ID",
      "Several requests sent without waiting are each answered with their own ID and payload, in any order.", needs=[ECHO])
async def outstanding(ctx: Context) -> Outcome:
    session = await ctx.start()
    sent = {b"0001": b"one", b"0002": b"two", b"0003": b"three"}
    for request_id, payload in sent.items():
        await session.send_message(ctx.echo_request(request_id, payload))
        await session.pause(WRITE_GAP)
    await session.wait_for(lambda s: set(payloads_by_id(s)) >= set(sent), ctx.deadline)
    got = payloads_by_id(session)
    if got == sent:
        order = [m.request_id.decode() for m in session.answers() if isinstance(m, SingleResult)]
        return Outcome(PASS, f"three requests in flight; answered in the order {', '.join(order)}, each with its own payload")
    return Outcome(FAIL, "sent 0001 'one', 0002 'two', 0003 'three' without waiting; expected each result under its own ID; "
                         f"received {', '.join(f'{k!r}: {v!r}' for k, v in got.items()) or 'no results'}; {what_came(session, waited=ctx.waited())}")


@case("6.2", MULTIPLEXING, "Pipelined results are matched by ID, in any order",
      "Five requests in one write are all answered; results may come back in any order (the Go peer reorders them) "
      "and each carries its request's ID.", needs=[ECHO])
async def pipelined(ctx: Context) -> Outcome:
    session = await ctx.start()
    sent = {f"000{i}".encode(): f"p{i}".encode() for i in range(1, 6)}
    await session.send(b"".join(encode(ctx.echo_request(rid, payload)) for rid, payload in sent.items()))
    await session.wait_for(lambda s: set(payloads_by_id(s)) >= set(sent), ctx.deadline)
    got = payloads_by_id(session)
    if got == sent:
        order = [m.request_id.decode() for m in session.answers() if isinstance(m, SingleResult)]
        how = "in order" if order == sorted(order) else "reordered, as the Go peer may"
        return Outcome(PASS, f"five pipelined requests answered {how} ({', '.join(order)}), each matched by ID")
    return Outcome(FAIL, "sent requests 0001..0005 (payloads p1..p5) in one write; expected five results matched by ID; "
                         f"received {', '.join(f'{k!r}: {v!r}' for k, v in got.items()) or 'no results'}; {what_came(session, waited=ctx.waited())}")


@case("6.3", MULTIPLEXING, "A request is answered while a stream is open",
      "Exchanges are independent: a single request sent while a stream request is still open is answered without "
      "waiting for the stream to end.", needs=[ECHO, STREAM_ECHO])
async def single_during_stream(ctx: Context) -> Outcome:
    session = await ctx.start()
    await session.send_message(stream_request(ctx, b"0001", b"ab"))
    await session.pause(WRITE_GAP)
    await session.send_message(ctx.echo_request(b"0002", b"hi"))
    got = await session.wait_for(lambda s: bool(s.answers_for(b"0002")) or bool(streams_refused(ctx, s, b"0001")), ctx.deadline)
    if (refused := streams_refused(ctx, session, b"0001")) is not None:
        return refused
    await session.send_message(StreamRequestPart(b"0001", b""))
    if got and isinstance(session.answers_for(b"0002")[0], SingleResult):
        return Outcome(PASS, "with stream 0001 open, request 0002 was answered at once")
    return Outcome(FAIL, f"opened stream 0001 ({ctx.stream_echo!r}) and left it open, then sent request 0002; expected R0002 'hi' "
                         f"before the stream ends; {what_came(session, waited=ctx.waited())}. "
                         "A server that answers one exchange at a time stalls every request behind a long stream.")


@case("6.4", MULTIPLEXING, "A request ID can be reused after its exchange ended",
      "Once a request's result has been sent its ID is free: gotalk.js wraps its IDs, the Go client reuses "
      "its counter values.", needs=[ECHO, AGGRESSIVE])
async def reuse_single_id(ctx: Context) -> Outcome:
    session = await ctx.start()
    if (problem := await echo_once(ctx, session, ctx.echo_request(b"0001", b"one"))) is not None:
        return problem
    await session.send_message(ctx.echo_request(b"0001", b"two"))
    await session.wait_for(lambda s: len(s.answers_for(b"0001")) >= 2, ctx.deadline)
    answers = session.answers_for(b"0001")
    if len(answers) >= 2 and getattr(answers[1], "payload", None) == b"two":
        return Outcome(PASS, "request 0001 answered 'one', then 0001 again answered 'two'")
    return Outcome(FAIL, f"sent 0001 'one' (answered), then 0001 'two'; expected a second R0001 'two'; {what_came(session, waited=ctx.waited())}")


@case("6.5", MULTIPLEXING, "A stream request ID can be reused after its stream ended",
      "After a stream request has ended, its ID may open a new stream.", needs=[STREAM_ECHO, AGGRESSIVE])
async def reuse_stream_id(ctx: Context) -> Outcome:
    session = await ctx.start()
    for payload in (b"one", b"two"):
        await session.send_message(stream_request(ctx, b"0001", payload))
        await session.pause(WRITE_GAP)
        await session.send_message(StreamRequestPart(b"0001", b""))
        want = payload.upper()
        await session.wait_for(lambda s: want in stream_parts(s, b"0001") or bool(streams_refused(ctx, s, b"0001")), ctx.deadline)
        if (refused := streams_refused(ctx, session, b"0001")) is not None:
            return refused
        if want not in stream_parts(session, b"0001"):
            first = "the first stream" if payload == b"one" else "the stream 0001 opened again after the first ended"
            return Outcome(FAIL, f"{first} ({payload!r}) got no {want!r} part; {what_came(session, waited=ctx.waited())}")
        await session.wait_for(lambda s: stream_parts(s, b"0001")[-1:] == [b""], ctx.soon(0.3))
    return Outcome(PASS, "stream 0001 ran twice: 'ONE', then 'TWO'")


# -- 7 streams --------------------------------------------------------------------------------


@case("7.1", STREAMS, "Stream parts are answered in order",
      "Each part of a stream request is answered by its result part, in the order sent (s, then p parts).", needs=[STREAM_ECHO])
async def parts_in_order(ctx: Context) -> Outcome:
    session = await ctx.start()
    await session.send_message(stream_request(ctx, b"0001", b"ab"))
    for part in (b"cd", b"ef", b""):
        await session.pause(WRITE_GAP)
        await session.send_message(StreamRequestPart(b"0001", part))
    want = [b"AB", b"CD", b"EF"]
    await session.wait_for(lambda s: len([p for p in stream_parts(s, b"0001") if p]) >= 3 or bool(streams_refused(ctx, s, b"0001")), ctx.deadline)
    if (refused := streams_refused(ctx, session, b"0001")) is not None:
        return refused
    parts = [p for p in stream_parts(session, b"0001") if p]
    if parts == want:
        return Outcome(PASS, "sent 'ab', 'cd', 'ef'; received S parts 'AB', 'CD', 'EF' in order")
    return Outcome(FAIL, f"sent parts 'ab', 'cd', 'ef' to {ctx.stream_echo!r}; expected S0001 'AB', 'CD', 'EF' in that order, "
                         f"received {[p.decode('latin-1') for p in parts]}; {what_came(session, waited=ctx.waited())}")


@case("7.2", STREAMS, "A stream whose first part is empty is ended",
      "An empty first part (s with size 00000000) ends the stream at once: the Go peer answers an empty S.", needs=[STREAM_ECHO])
async def empty_first_part(ctx: Context) -> Outcome:
    session = await ctx.start()
    request = stream_request(ctx, b"0001", b"")
    await session.send_message(request)
    await session.wait_for(lambda s: b"" in stream_parts(s, b"0001") or bool(streams_refused(ctx, s, b"0001")), ctx.deadline)
    if (refused := streams_refused(ctx, session, b"0001")) is not None:
        return refused
    if b"" in stream_parts(session, b"0001"):
        return Outcome(PASS, f"sent {shown(encode(request))}; received S000100000000: the stream ended")
    return Outcome(FAIL, f"sent {shown(encode(request))}; expected S0001 00000000 (end of stream); {what_came(session, waited=ctx.waited())}. "
                         "An empty part ends a stream, the first one too; a server waiting for more leaves the requestor hanging.")


@case("7.3", STREAMS, "A result stream is ended by an empty S",
      "After the request's last (empty) part, the responder ends its result stream with an empty S.", needs=[STREAM_ECHO])
async def stream_end(ctx: Context) -> Outcome:
    session = await ctx.start()
    await session.send_message(stream_request(ctx, b"0001", b"ab"))
    await session.pause(WRITE_GAP)
    await session.send_message(StreamRequestPart(b"0001", b""))
    await session.wait_for(lambda s: stream_parts(s, b"0001")[-1:] == [b""] or bool(streams_refused(ctx, s, b"0001")), ctx.deadline)
    if (refused := streams_refused(ctx, session, b"0001")) is not None:
        return refused
    parts = stream_parts(session, b"0001")
    if parts[-1:] == [b""]:
        return Outcome(PASS, f"sent 'ab' then an empty part; received {len(parts) - 1} part(s) then S000100000000")
    return Outcome(FAIL, f"sent 'ab' then the end p000100000000; expected the result stream to end with S000100000000; "
                         f"{what_came(session, waited=ctx.waited())}. Without it the requestor never learns the stream is over.")


@case("7.4", STREAMS, "A stray stream part is refused",
      "A p for a stream that was never started is a protocol error: the connection closes (the Go peer closes "
      "without f, the lab's peer writes f00000002); it is never answered as if a stream existed.", needs=[AGGRESSIVE])
async def stray_part(ctx: Context) -> Outcome:
    session = await ctx.start()
    wire = encode(StreamRequestPart(b"0009", b"ab"))
    await session.send(wire)
    closed = await session.wait_closed(ctx.soon(min(1.0, ctx.timeout / 2)))
    answered = session.answers_for(b"0009")
    if answered:
        return Outcome(FAIL, f"sent the stray part {shown(wire)}; it was answered {shown(encode(answered[0]))}, as if stream 0009 existed")
    if closed:
        error = session.protocol_error()
        how = f"wrote f{error.code:08x} and closed" if error else "closed without writing f, as the Go peer does"
        return Outcome(PASS, f"sent the stray part {shown(wire)}; the server {how}")
    if await ctx.probe_answered(session):
        return Outcome(NON_STRICT, f"sent the stray part {shown(wire)}; the server ignored it and kept serving. "
                                   "The Go peer closes the connection: a part for no stream means the two sides disagree on state.")
    return Outcome(FAIL, f"sent the stray part {shown(wire)}, then a request; the server neither closed nor answered: {what_came(session, waited=ctx.waited())}")


# -- 8 limits -----------------------------------------------------------------------------------

LARGE_PAYLOAD = (b"0123456789abcdef" * 65536)  # 1 MiB, ASCII: only its size is under test


@case("8.1", LIMITS, "A 1 MiB payload is echoed intact",
      "Payloads far larger than one read are reassembled exactly (the Go peer accepts up to 4 GiB).", needs=[ECHO])
async def large_payload(ctx: Context) -> Outcome:
    session = await ctx.start()
    await session.send_message(ctx.echo_request(b"0001", LARGE_PAYLOAD))
    await session.wait_for(lambda s: bool(s.answers_for(b"0001")), ctx.deadline)
    answers = session.answers_for(b"0001")
    if answers and isinstance(answers[0], SingleResult) and answers[0].payload == LARGE_PAYLOAD:
        return Outcome(PASS, "sent 1 MiB (size 00100000); the same 1 048 576 bytes came back")
    if answers and isinstance(answers[0], SingleResult):
        got = answers[0].payload
        first = next((i for i, (a, b) in enumerate(zip(got, LARGE_PAYLOAD)) if a != b), min(len(got), len(LARGE_PAYLOAD)))
        return Outcome(FAIL, f"sent 1 MiB; received {len(got)} bytes, differing from byte {first} of the payload")
    if answers or (session.closed and not session.violation):
        return Outcome(NON_STRICT, f"sent a 1 MiB payload; it was refused ({what_came(session)}). "
                                   "A limit is wise, but the Go peer accepts this, so its clients may send it.")
    return Outcome(FAIL, f"sent a 1 MiB payload; expected it echoed; {what_came(session, waited=ctx.waited())}")


@case("8.2", LIMITS, "A huge declared size is refused or waited for, never fatal",
      "A header declaring a 4 GiB payload (ffffffff) is refused against a limit before any allocation, or its payload "
      "waited for; the server stays up (the Go reader allocates the declared size first).", needs=[AGGRESSIVE])
async def huge_size(ctx: Context) -> Outcome:
    session = await ctx.start()
    wire = b"r0001" + b"%03x" % len(ctx.echo or "echo") + (ctx.echo or "echo").encode() + b"ffffffff"
    await session.send(wire)
    closed = await session.wait_closed(ctx.soon(min(1.0, ctx.timeout / 2)))
    if closed:
        error = session.protocol_error()
        how = f"wrote f{error.code:08x} and closed" if error else "closed the connection"
        return Outcome(PASS, f"sent {shown(wire)} (a 4 GiB payload announced); the server {how}")
    return Outcome(INFORMATIONAL, f"sent {shown(wire)}; the server keeps waiting for the 4 GiB payload. "
                                  "That is legal; make sure it does not allocate the declared size before reading it.")


FLOOD = 1000


@case("8.3", LIMITS, "A flood of requests is answered",
      f"{FLOOD} requests written back to back each get an answer (a result, or a RetryResult e when over a limit).",
      needs=[AGGRESSIVE])
async def flood(ctx: Context) -> Outcome:
    session = await ctx.start()
    ids = [b"%04d" % i for i in range(FLOOD)]
    batch = 100
    for start in range(0, FLOOD, batch):
        await session.send(b"".join(encode(ctx.echo_request(rid, b"x")) for rid in ids[start : start + batch]))
    wanted = set(ids)
    await session.wait_for(lambda s: wanted <= {getattr(m, "request_id", None) for m in s.answers()}, ctx.deadline)
    got = {getattr(m, "request_id", None) for m in session.answers()}
    retries = sum(isinstance(m, RetryResult) for m in session.answers())
    if wanted <= got:
        extra = f"; {retries} RetryResult(s): the server limits concurrent requests" if retries else ""
        return Outcome(PASS, f"{FLOOD} requests in {FLOOD // batch} writes: every one answered{extra}")
    return Outcome(FAIL, f"{FLOOD} requests in {FLOOD // batch} writes; {len(wanted - got)} got no answer within {ctx.waited()}; "
                         f"{'the server closed: ' + session.close_reason if session.closed else 'the connection is open'}. Every request gets exactly one outcome.")


@case("8.4", LIMITS, "A name of 4095 bytes is read",
      "Names are sized by 3 hex digits: up to fff = 4095 bytes is valid and read like any other.")
async def longest_name(ctx: Context) -> Outcome:
    session = await ctx.start()
    name = (UNKNOWN_NOTIFICATION + "-" + "x" * 4095)[:4095]
    await session.send(encode(Notification(name, b"hello")))
    await session.pause(WRITE_GAP)
    if await ctx.probe_answered(session):
        return Outcome(PASS, "a notification named with 4095 bytes (size fff) was read; the next request was answered")
    return Outcome(FAIL, "sent a notification whose name is 4095 bytes (size fff, the largest a name can be), then a request; "
                         f"expected the request answered; {what_came(session, waited=ctx.waited())}")


# -- 9 robustness --------------------------------------------------------------------------------


@case("9.1", ROBUSTNESS, "An idle connection is kept open",
      f"A quiet connection is not closed within {IDLE_WATCH:g} s (the Go default read timeout is 30 s, and a Go client "
      "heartbeats every 20 s); when one is closed for idleness, f00000003 comes first.")
async def idle(ctx: Context) -> Outcome:
    session = await ctx.start()
    started = time.monotonic()
    closed = await session.wait_closed(ctx.soon(IDLE_WATCH))
    if not closed:
        return Outcome(PASS, f"the connection stayed open through {IDLE_WATCH:g} s of silence (the Go server's read timeout is 30 s)")
    error = session.protocol_error()
    said = "after f00000003" if error is not None and error.code == 3 else "without f00000003"
    return Outcome(FAIL, f"the server closed an idle connection after {time.monotonic() - started:.2f} s {said}: "
                         "clients that heartbeat every 20 s, as Go's and gotalk.js do, would be dropped")


@case("9.2", ROBUSTNESS, "A client vanishing mid-message does not harm the server",
      "A client that disconnects in the middle of a message costs only its own connection: the next connection is served.")
async def vanishing_client(ctx: Context) -> Outcome:
    first = await ctx.start()
    await first.send(b"r0001004ec")
    await first.pause(WRITE_GAP)
    first.abort()
    await first.pause(0.1)
    second = await ctx.start()
    if await ctx.probe_answered(second):
        return Outcome(PASS, "wrote half a request and dropped the connection; a new connection was served")
    return Outcome(FAIL, f"wrote half a request ('r0001004ec') and dropped the connection; the next connection {what_came(second, waited=ctx.waited())}")



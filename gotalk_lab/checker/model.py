"""What a conformance case is, what it may conclude, and what it is given to run.

A ``Case`` isolates one requirement: its ``run(ctx)`` opens its own connection(s)
through the ``Context``, writes the plainest bytes that exercise the requirement
and returns an ``Outcome`` (a verdict and a detail that teaches: what was
expected, what came, why it matters). Nothing here opens a socket by itself;
``Context`` hands out ``Session``s and keeps their wire logs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, NamedTuple

from ..annotate import show_bytes
from ..wire import ErrorResult, Message, SingleRequest, encode
from .session import Session, Target

PASS = "pass"  #: the server does what the requirement says
FAIL = "fail"  #: it does not; a peer written to the protocol will break on it
NON_STRICT = "non-strict"  #: it works, but differs from what the Go reference does
INFORMATIONAL = "informational"  #: a fact worth knowing, neither right nor wrong
SKIP = "skip"  #: the case needs an option that was not given (or another transport)
VERDICTS = (PASS, FAIL, NON_STRICT, INFORMATIONAL, SKIP)

#: Needs a case may declare: the option that unlocks it.
ECHO = "echo"  #: --echo OP: an operation that answers with its payload
STREAM_ECHO = "stream_echo"  #: --stream-echo OP: one result part per request part
AGGRESSIVE = "aggressive"  #: --aggressive: may take a fragile server down
NEED_OPTIONS = {ECHO: "--echo OP", STREAM_ECHO: "--stream-echo OP", AGGRESSIVE: "--aggressive"}

#: An operation name no server is expected to have (for the unknown-operation cases).
UNKNOWN_OPERATION = "gotalk-lab-check-no-such-operation"
#: A notification name no server is expected to know.
UNKNOWN_NOTIFICATION = "gotalk-lab-check-unknown-notification"
#: Pause between writes meant as separate messages: long enough that a loopback
#: connection does not hand them to the server in one read.
WRITE_GAP = 0.02


class Outcome(NamedTuple):
    verdict: str
    detail: str


@dataclass(frozen=True)
class Case:
    id: str
    section: str
    title: str
    requirement: str
    run: Callable[["Context"], Awaitable[Outcome]] = field(repr=False)
    needs: frozenset[str] = frozenset()
    #: "ws": only meaningful on a WebSocket target; None: any transport.
    transport: str | None = None

    def missing(self, ctx: "Context") -> list[str]:
        """The options this case needs that the run was not given."""
        return [NEED_OPTIONS[need] for need in sorted(self.needs) if not ctx.has(need)]


class Context:
    """What a case gets: the target, the options, and connections that log every byte."""

    def __init__(self, target: Target, *, echo: str | None, stream_echo: str | None, aggressive: bool, timeout: float) -> None:
        self.target = target
        self.echo = echo
        self.stream_echo = stream_echo
        self.aggressive = aggressive
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.sessions: list[Session] = []

    def has(self, need: str) -> bool:
        return bool({ECHO: self.echo, STREAM_ECHO: self.stream_echo, AGGRESSIVE: self.aggressive}[need])

    def restart_clock(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def soon(self, seconds: float) -> float:
        """A deadline ``seconds`` from now, never past the case's own."""
        return min(self.deadline, time.monotonic() + seconds)

    # -- connections --------------------------------------------------------------

    async def connect(self) -> Session:
        """A new connection; nothing written yet."""
        session = await Session.open(self.target, max(self.left(), 0.1))
        self.sessions.append(session)
        return session

    async def start(self) -> Session:
        """A new connection with this side's version "01" written (its own write)."""
        session = await self.connect()
        await session.send_version()
        return session

    async def close(self) -> None:
        await asyncio.gather(*(session.close() for session in self.sessions), return_exceptions=True)

    # -- the plainest messages ----------------------------------------------------

    def echo_request(self, request_id: bytes = b"0001", payload: bytes = b"hello") -> SingleRequest:
        return SingleRequest(request_id, self.echo or UNKNOWN_OPERATION, payload)

    def probe_request(self, request_id: bytes = b"0002") -> SingleRequest:
        """A request any server answers: the echo operation when given, else an unknown one (ErrorResult)."""
        return SingleRequest(request_id, self.echo or UNKNOWN_OPERATION, b"probe")

    async def probe_answered(self, session: Session, request_id: bytes = b"0002") -> bool:
        """Send ``probe_request`` and wait for its answer: is the connection still being served?"""
        await session.send_message(self.probe_request(request_id))
        return await session.wait_for(lambda s: bool(s.answers_for(request_id)), self.deadline)

    # -- words for details -----------------------------------------------------------

    def waited(self) -> str:
        return f"{self.timeout:g} s"


def shown(data: bytes, limit: int = 72) -> str:
    """Bytes as a learner reads them, quoted; cut (and counted) past ``limit`` bytes."""
    if len(data) <= limit:
        return f"'{show_bytes(data)}'"
    return f"'{show_bytes(data[:limit])}'…(+{len(data) - limit} bytes)"


def shown_message(message: Message) -> str:
    return shown(encode(message))


def after_version(session: Session) -> bytes:
    data = bytes(session.received)
    return data[2:] if session.got_version else data


def what_came(session: Session, *, waited: str = "") -> str:
    """A sentence on what the server sent after its version, and how the connection ended."""
    data = after_version(session)
    parts = []
    if data:
        parts.append(f"received {shown(data)}")
    else:
        parts.append("received nothing" + (" after the version" if session.got_version else ""))
    if session.violation is not None:
        parts.append(f"which is not valid Gotalk: {session.violation.describe()}")
    if session.closed:
        parts.append(f"then {session.close_reason or 'the connection closed'}")
    elif waited:
        parts.append(f"and the connection stayed open for {waited}")
    return ", ".join(parts)


def error_text(message: Message) -> str:
    if isinstance(message, ErrorResult):
        return message.payload.decode("utf-8", "replace")
    return ""

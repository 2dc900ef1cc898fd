"""The malformed-message lab: broken messages, how a receiver reads them, and who answers what.

Each ``Case`` is one classic mistake, as bytes a sender writes after its version.
For each, three things are known:

- how a receiver's decoder reads the bytes (``reading``, byte by byte): an error
  at a located byte, or "waiting for N more bytes" when nothing is wrong *yet*;
- what this kit answers, found by sending the bytes to a live peer of its own
  (``await run_cases()``);
- what the Go reference peer answers, from the byte transcripts recorded from it
  (``GO_TRANSCRIPTS``; ``tests/data/conformance/`` holds the transcripts and a
  test holds this table to them). Where no transcript was recorded, it says so.

Notebook 05 shows them with ``gl.widgets.MalformedLab``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from . import demo
from .connection import Connection
from .decoder import decimal_size_hint
from .errors import ProtocolViolation, RemoteProtocolError
from .peer import Peer
from .transports.pipe import pipe_transports
from .wire import VERSION_BYTES

#: How long the live receiver is given to answer and close (it does both at once).
SETTLE_SECONDS = 0.5


@dataclass(frozen=True)
class GoAnswer:
    """What the Go reference peer wrote after its version, and whether it closed."""

    written: bytes
    closes: bool
    transcript: str  #: the file in tests/data/conformance/ this is read from


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    data: bytes  #: what the sender writes after its version (for "version": the version itself)
    wrong: str  #: what is wrong with it, in a sentence
    go: GoAnswer | None
    #: For a case without a Go transcript: why it is not needed, or what is known instead.
    go_note: str = ""

    @property
    def stream(self) -> bytes:
        """Everything the receiver reads: the version, then the data (or the bad version alone)."""
        return self.data if self.key == "version" else VERSION_BYTES + self.data

    @property
    def base(self) -> int:
        """Offset of ``data`` in ``stream``: offsets in errors count from the stream's first byte."""
        return 0 if self.key == "version" else len(VERSION_BYTES)


CASES: tuple[Case, ...] = (
    Case(
        "bad-hex", "A size that is not hexadecimal", b"r0001004echo0000zzzz",
        "the payload size has z where hex digits 0-9 a-f must be.",
        GoAnswer(b"", True, "11-bad-size-digits.json"),
    ),
    Case(
        "decimal-size", "A size written in decimal", b"r0001004echo00000010hello worl",
        "a 10-byte payload announced as 00000010, which is hexadecimal for 16.",
        None,
        "no transcript: nothing is wrong on the wire yet, so any Gotalk reader (the Go peer too) "
        "waits for the 6 bytes it was promised.",
    ),
    Case(
        "truncated", "A message cut short", b"r0001004echo000000",
        "the sender stopped in the middle of the payload size.",
        None,
        "no transcript: a reader cannot tell a cut message from a slow sender, so it waits.",
    ),
    Case(
        "unknown-type", "An unknown message type", b"x000100000000",
        "x is none of the ten type letters r s p R S E e n h f.",
        GoAnswer(b"f00000002", True, "10-protocol-error-unknown-type.json"),
    ),
    Case(
        "part-without-request", "A stream part for no stream", b"p000900000000",
        "a well-formed p, but no stream request 0009 was ever opened.",
        GoAnswer(b"", True, "13-stream-part-without-request.json"),
    ),
    Case(
        "version", "Another protocol version", b"02",
        "the sender speaks version 02; both peers here speak 01.",
        GoAnswer(b"", True, "12-version-mismatch.json"),
    ),
)


@dataclass(frozen=True)
class Reading:
    """A decoder's state after it has read the first ``received`` bytes of a case's stream."""

    received: int
    messages: int  #: whole messages read (the version counts)
    #: A ``ProtocolViolation`` for bytes that are no Gotalk; a ``RemoteProtocolError`` for a
    #: well-formed message the connection's state forbids.
    error: RemoteProtocolError | None
    held: int = 0
    needed: int = 0
    exact: bool = True

    def describe(self, base: int = 0) -> str:
        """The state in words; ``base`` is where the case's own bytes start in the stream."""
        if self.error is not None and not isinstance(self.error, ProtocolViolation):
            return f"{self.messages} whole message(s) read, then refused by the connection's state: {self.error}"
        if self.error is not None:
            offset = self.error.offset
            where = f"byte {offset} of the stream" + (f" (byte {offset - base} of the message, after the {base}-byte version)" if base and offset >= base else "")
            return f"error at {where}: {self.error.field}: expected {self.error.expected}, found {self.error.found}"
        if self.held:
            more = f"{self.needed} more" if self.exact else f"at least {self.needed} more"
            return f"waiting for {more} byte{'s' if self.needed != 1 else ''} (it holds {self.held} of an unfinished message)"
        return f"{self.messages} whole message(s) read, nothing unfinished"


def reading(case: Case, received: int | None = None) -> Reading:
    """How a receiver's connection (``gl.Connection``) stands after the first ``received`` bytes (all by default)."""
    stream = case.stream if received is None else case.stream[:received]
    connection = Connection()
    connection.start()
    connection.receive_data(stream)
    messages = 0
    try:
        while connection.next_event() is not None:
            messages += 1
    except RemoteProtocolError as error:
        return Reading(len(stream), messages, error)
    waiting = connection.waiting()
    return Reading(len(stream), messages, None, waiting.held, waiting.needed, waiting.exact)


def hint(case: Case) -> str | None:
    """The decimal-size mistake, named, when it is a likely cause for this case."""
    return None if case.key == "version" else decimal_size_hint(case.data)


@dataclass(frozen=True)
class KitAnswer:
    """What a live peer of this kit wrote back after its version, whether it closed, and why."""

    written: bytes
    closes: bool
    reason: str | None


class _Collector:
    def __init__(self) -> None:
        self.data = b""
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data

    def connection_lost(self, error: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


async def kit_answer(case: Case, *, settle: float = SETTLE_SECONDS) -> KitAnswer:
    """Send the case's bytes to a fresh peer of this kit (demo operations) and record its answer."""
    sender, receiving_end = pipe_transports()
    collector = _Collector()
    sender.attach(collector)
    receiver = Peer(demo.handlers(), name="receiver", trace=False)
    receiver.attach(receiving_end)
    sender.write(case.stream)
    try:
        await asyncio.wait_for(asyncio.shield(collector.lost), settle)
        closes = True
    except asyncio.TimeoutError:
        closes = False
    reason = receiver.close_reason
    await receiver.close()
    sender.close()
    written = collector.data[len(VERSION_BYTES):] if collector.data.startswith(VERSION_BYTES) else collector.data
    return KitAnswer(written, closes, reason)


async def run_cases(cases: tuple[Case, ...] = CASES) -> list[tuple[Case, KitAnswer]]:
    """Every case sent to a live receiver of this kit, side by side (all at once)."""
    answers = await asyncio.gather(*(kit_answer(case) for case in cases))
    return list(zip(cases, answers))


def answer_words(written: bytes, closes: bool) -> str:
    """What a receiver did, for a table: 'writes f00000002, then closes'."""
    wrote = f"writes {written.decode('ascii', 'backslashreplace')}" if written else "writes nothing"
    return f"{wrote}, then closes" if closes else f"{wrote} and keeps waiting"


def summary(results: list[tuple[Case, Any]]) -> list[dict[str, str]]:
    """One row per case: what is wrong, how the receiver reads it, what each peer answers."""
    rows = []
    for case, kit in results:
        go = answer_words(case.go.written, case.go.closes) if case.go else case.go_note
        rows.append({
            "case": case.title,
            "reading": reading(case).describe(case.base),
            "this kit": answer_words(kit.written, kit.closes),
            "Go reference": go,
        })
    return rows

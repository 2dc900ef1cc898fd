"""Replay a recorded conversation's client side against a live server, and diff the answers.

``replay(trace, "tcp://HOST:PORT")`` (or ``tls://``, ``unix:///PATH``) sends the recorded client bytes (OUT frames)
in order, and with ``timing=True`` at their recorded times, reads what the server
answers, and compares it with what was recorded: answers are matched by message
type and request ID (the n-th answer to an ID with the n-th), notifications by name.
It only reads and reports; it never changes what it sends to make a diff go away.
"""

from __future__ import annotations

import asyncio
import html
import ssl as ssl_module
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .connect import certificate_error, parse_address
from .decoder import Decoder
from .edition import require_network
from .errors import ProtocolViolation
from .trace import IN, OUT, Trace
from .wire import Heartbeat, Message, ProtocolVersion, encode

#: How long the server may stay quiet, after the last recorded frame was sent, before
#: the answers still missing are counted missing.
DEFAULT_QUIET = 1.0


def _key(message: Message) -> tuple[str, str]:
    type_letter = encode(message)[:1].decode("latin-1")
    request_id = getattr(message, "request_id", None)
    if request_id is not None:
        return type_letter, request_id.hex()
    return type_letter, getattr(message, "name", "")


def _payload(message: Message) -> bytes:
    return getattr(message, "payload", b"")


def _compared(messages: list[Message]) -> dict[tuple[str, str, int], Message]:
    """Messages by (type, request ID or name, n-th of that key); heartbeats and the version left out."""
    keyed: dict[tuple[str, str, int], Message] = {}
    counts: dict[tuple[str, str], int] = {}
    for message in messages:
        if isinstance(message, (Heartbeat, ProtocolVersion)):
            continue  # their load and clock differ on every run
        key = _key(message)
        n = counts[key] = counts.get(key, 0) + 1
        keyed[key + (n,)] = message
    return keyed


@dataclass
class Difference:
    """One answer compared: ``same``, ``different``, ``missing`` (recorded, not answered now) or ``extra``."""

    status: str
    type: str
    key: str  #: the request ID in hex, or a notification's name
    nth: int
    recorded: bytes | None
    replayed: bytes | None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status, "type": self.type, "key": self.key, "nth": self.nth,
            "recorded": None if self.recorded is None else self.recorded.hex(),
            "replayed": None if self.replayed is None else self.replayed.hex(),
        }

    def __str__(self) -> str:
        def show(data: bytes | None) -> str:
            return "-" if data is None else repr(data[:60])
        return f"{self.status:9} {self.type} {self.key} #{self.nth}: recorded {show(self.recorded)}, now {show(self.replayed)}"


@dataclass
class ReplayReport:
    """What the server answered this time, against what was recorded."""

    target: str
    sent: int  #: frames sent
    entries: list[Difference] = field(default_factory=list)
    error: str | None = None  #: the replay could not finish: why

    @property
    def differences(self) -> list[Difference]:
        return [entry for entry in self.entries if entry.status != "same"]

    @property
    def same(self) -> bool:
        return self.error is None and not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target, "sent": self.sent, "same": self.same, "error": self.error,
            "entries": [entry.to_json() for entry in self.entries],
        }

    def __str__(self) -> str:
        lines = [f"replayed {self.sent} frames against {self.target}: "
                 + ("the answers match the recording" if self.same else f"{len(self.differences)} differences")]
        if self.error:
            lines.append(f"error: {self.error}")
        lines += [f"  {entry}" for entry in self.differences]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{e.status}</td><td><code>{e.type}</code></td><td><code>{html.escape(e.key)}</code> #{e.nth}</td>"
            f"<td><code>{html.escape(repr(e.recorded))}</code></td><td><code>{html.escape(repr(e.replayed))}</code></td></tr>"
            for e in self.entries
        )
        head = html.escape(str(self).splitlines()[0])
        return (f"<div><b>{head}</b>{'<br>' + html.escape(self.error) if self.error else ''}<table>"
                f"<tr><th>status</th><th>type</th><th>ID / name</th><th>recorded</th><th>now</th></tr>{rows}</table></div>")


def diff(recorded: list[Message], replayed: list[Message]) -> list[Difference]:
    """Compare two lists of answers (what one side received in two runs)."""
    before, after = _compared(recorded), _compared(replayed)
    entries = []
    for key in list(before) + [k for k in after if k not in before]:
        old, new = before.get(key), after.get(key)
        if old is None:
            status = "extra"
        elif new is None:
            status = "missing"
        else:
            status = "same" if (type(old), _payload(old)) == (type(new), _payload(new)) else "different"
        entries.append(Difference(status, key[0], key[1], key[2],
                                  None if old is None else _payload(old), None if new is None else _payload(new)))
    return entries


def _load(trace: Trace | str | Path) -> Trace:
    if isinstance(trace, Trace):
        return trace
    path = Path(trace)
    with open(path, "rb") as source:
        start = source.read(4)
    if start in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x0a\x0d\x0d\x0a", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        traces = Trace.from_pcap(path)
        if not traces:
            raise ValueError(f"{path}: no Gotalk connection in this capture")
        return traces[0]
    return Trace.load(path)


async def replay(
    trace: Trace | str | Path, target: str, *, timing: bool = False, quiet: float = DEFAULT_QUIET, timeout: float = 30.0,
    ssl: ssl_module.SSLContext | None = None,
) -> ReplayReport:
    """Send ``trace``'s client side to ``target`` ("tcp://HOST:PORT"); report how the answers differ.

    A ``tls://`` target is verified with ``ssl`` (default: the system's trusted CAs).
    """
    require_network(f"gl.replay(..., {target!r})")
    recorded_trace = _load(trace)
    events = list(recorded_trace.events)
    outgoing = [event for event in events if event.direction == OUT and event.action != "dropped"]
    recorded = [event.message for event in events if event.direction == IN and event.action != "dropped"]
    cut = next((event for event in outgoing if event.cut is not None), None)
    if cut is not None:
        raise ValueError(
            f"frame #{cut.index} keeps only {len(cut.raw) - len(cut.header):,} of its {cut.cut:,} payload bytes "
            "(the trace's payload_limit): replaying it would send other bytes; record with a larger payload_limit"
        )
    where = parse_address(target)
    report = ReplayReport(target=target, sent=0)
    if where.scheme not in ("tcp", "tls", "unix"):
        raise ValueError(f"replay speaks TCP, TLS and UNIX sockets, not {where.scheme}")
    if where.scheme == "unix":
        reader, writer = await asyncio.open_unix_connection(where.path)
    else:
        context = (ssl or ssl_module.create_default_context()) if where.scheme == "tls" else None
        try:
            reader, writer = await asyncio.open_connection(where.host, where.port, ssl=context)
        except ssl_module.SSLCertVerificationError as error:
            raise certificate_error(where.url, error) from None
    decoder = Decoder(expect_version=True)
    replayed: list[Message] = []
    last_heard = time.monotonic()

    async def read() -> None:
        nonlocal last_heard
        while data := await reader.read(64 * 1024):
            last_heard = time.monotonic()
            replayed.extend(decoder.feed(data))

    reading = asyncio.ensure_future(read())
    try:
        if not outgoing or not isinstance(outgoing[0].message, ProtocolVersion):
            writer.write(b"01")  # a trace that starts after the handshake
        started = time.monotonic()
        for event in outgoing:
            if timing:
                await asyncio.sleep(max(0.0, event.time - (time.monotonic() - started) - outgoing[0].time))
            writer.write(event.raw)
            report.sent += 1
            await writer.drain()
        deadline = time.monotonic() + timeout
        expected = len(_compared(recorded))
        while not reading.done() and time.monotonic() < deadline:
            if len(_compared(replayed)) >= expected and time.monotonic() - last_heard > min(quiet, 0.2):
                break
            if time.monotonic() - last_heard > quiet:
                break
            await asyncio.sleep(0.02)
        if reading.done() and reading.exception() is not None:
            raise reading.exception()  # type: ignore[misc]
    except ProtocolViolation as violation:
        report.error = f"the server sent bytes that do not decode: {violation}"
    except (ConnectionError, OSError) as error:
        report.error = f"connection failed: {error}"
    finally:
        reading.cancel()
        writer.close()
        await asyncio.gather(reading, return_exceptions=True)
    report.entries = diff(recorded, replayed)
    return report

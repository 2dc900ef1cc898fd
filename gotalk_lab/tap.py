"""A recording TCP proxy between two other Gotalk programs.

Every byte is forwarded unchanged and at once, in both directions; a decoder on
each direction turns the same bytes into frames for a per-connection ``Trace``
and for listeners (the CLI prints them). Bytes that do not decode are still
forwarded: the tap reports the violation and stops decoding that direction,
it never "fixes" a conversation. It listens only on the address it is given.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Callable

from .decoder import DEFAULT_MAX_PAYLOAD_SIZE, Decoder
from .errors import ProtocolViolation
from .findings import Finding, Undecodable, findings
from .trace import IN, OUT, TAP_SIDES, Trace, TraceEvent
from .transports.base import format_address

log = logging.getLogger(__name__)

#: Read size per direction; also what one slow side can make the tap hold.
READ_SIZE = 64 * 1024

#: A frame listener: (connection number, event) for frames, (connection number, violation) for bad bytes.
FrameListener = Callable[[int, TraceEvent], None]
#: A byte listener: (connection, what, direction, bytes) with what "open" (both sockets are
#: up; ``client_peer`` and ``upstream_peer`` are set), "data" (bytes just read, before
#: they are forwarded), "end" (that direction's reader saw end of file) or "close".
ByteListener = Callable[["TapConnection", str, str, bytes], None]


class TapConnection:
    """One client connection and its upstream connection, recorded."""

    def __init__(self, number: int, trace: Trace, max_payload_size: int) -> None:
        self.number = number
        self.trace = trace
        self.client = ""
        self.client_peer: tuple | None = None  #: (host, port) of the connecting program
        self.upstream_peer: tuple | None = None  #: (host, port) of the upstream program
        self.decoders = {
            OUT: Decoder(expect_version=True, max_payload_size=max_payload_size),
            IN: Decoder(expect_version=True, max_payload_size=max_payload_size),
        }
        self.violations: dict[str, ProtocolViolation] = {}
        self.bytes = {OUT: 0, IN: 0}

    def observe(self, direction: str, data: bytes) -> list[TraceEvent]:
        """Decode ``data`` (as seen going in ``direction``) into trace events."""
        self.bytes[direction] += len(data)
        if direction in self.violations:
            return []
        try:
            frames = self.decoders[direction].feed_frames(data)
        except ProtocolViolation as violation:
            self.violations[direction] = violation
            frames = violation.messages
        return [event for frame in frames if (event := self.trace.record(direction, frame.header, frame.message))]

    def findings(self, **options) -> list[Finding]:
        """Expert Info on this connection so far (its bad bytes included), by the trace's clock."""
        undecodable = [Undecodable(direction, error) for direction, error in self.violations.items()]
        return findings(self.trace, undecodable=undecodable, now=self.trace.now(), **options)


class Tap:
    """``listen`` -> client connects -> tap connects to ``upstream`` -> both ways recorded.

    ``OUT`` in a tap's traces is what the connecting program sent, ``IN`` what
    the upstream program answered; the traces name those sides "client" and
    "upstream" (``Trace.sides``), and so do their timelines.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE, trace_cap: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.max_payload_size = max_payload_size
        self.trace_cap = trace_cap
        self.connections: list[TapConnection] = []
        self.address = ""
        self._numbers = itertools.count(1)
        self._frame_listeners: list[FrameListener] = []
        self._violation_listeners: list[Callable[[int, str, ProtocolViolation], None]] = []
        self._byte_listeners: list[ByteListener] = []
        self._close_listeners: list[Callable[[TapConnection], None]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    def on_frame(self, listener: FrameListener) -> None:
        self._frame_listeners.append(listener)

    def on_violation(self, listener: Callable[[int, str, ProtocolViolation], None]) -> None:
        self._violation_listeners.append(listener)

    def on_close(self, listener: Callable[["TapConnection"], None]) -> None:
        """Hear each connection once it has ended (its trace complete; ``findings`` tells what it found)."""
        self._close_listeners.append(listener)

    def on_bytes(self, listener: ByteListener) -> None:
        """Hear every byte relayed, as read (``tap --pcap`` writes them as packets)."""
        self._byte_listeners.append(listener)

    def _tell_bytes(self, connection: TapConnection, what: str, direction: str, data: bytes = b"") -> None:
        for listener in self._byte_listeners:
            try:
                listener(connection, what, direction, data)
            except Exception:  # a broken recorder must never break the relay
                log.exception("tap byte listener %r failed", listener)

    async def listen(self, host: str, port: int) -> str:
        self._server = await asyncio.start_server(self._serve_client, host, port)
        self.address = format_address(self._server.sockets[0].getsockname())
        return self.address

    async def _serve_client(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        connection = TapConnection(next(self._numbers), Trace(cap=self.trace_cap, sides=TAP_SIDES), self.max_payload_size)
        connection.client = format_address(client_writer.get_extra_info("peername"))
        connection.client_peer = client_writer.get_extra_info("peername")
        self.connections.append(connection)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError as error:
            log.error("tap: cannot reach upstream %s:%s: %s", *self.upstream, error)
            client_writer.close()
            self._tasks.discard(task)
            return
        connection.upstream_peer = upstream_writer.get_extra_info("peername")
        self._tell_bytes(connection, "open", OUT)
        try:
            await asyncio.gather(
                self._forward(connection, OUT, client_reader, upstream_writer),
                self._forward(connection, IN, upstream_reader, client_writer),
            )
        finally:
            for writer in (client_writer, upstream_writer):
                writer.close()
            connection.trace.close_open_exchanges()
            self._tell_bytes(connection, "close", OUT)
            for listener in self._close_listeners:
                try:
                    listener(connection)
                except Exception:  # a broken listener must never break the relay
                    log.exception("tap close listener %r failed", listener)
            self._tasks.discard(task)

    async def _forward(self, connection: TapConnection, direction: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(READ_SIZE):
                if self._byte_listeners:
                    self._tell_bytes(connection, "data", direction, data)
                writer.write(data)
                had_violation = direction in connection.violations
                for event in connection.observe(direction, data):
                    for listener in self._frame_listeners:
                        listener(connection.number, event)
                if not had_violation and direction in connection.violations:
                    for listener in self._violation_listeners:
                        listener(connection.number, direction, connection.violations[direction])
                await writer.drain()  # a slow receiver slows the sender: bounded memory
            self._tell_bytes(connection, "end", direction)
        except (ConnectionError, OSError):
            pass
        finally:
            # One side has gone: end the other too (Gotalk has no half-close).
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> "Tap":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

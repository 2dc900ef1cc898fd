"""A recording TCP proxy between two other Gotalk programs.

Either side may also be TLS or a UNIX socket: the tap terminates TLS (it serves
its own certificate to clients, verifies a tls:// upstream's), so what it
records and relays is the plaintext Gotalk between the two.

Every byte is forwarded unchanged and at once, in both directions; a decoder on
each direction turns the same bytes into frames for a per-connection ``Trace``
and for listeners (the CLI prints them). Bytes that do not decode are still
forwarded: the tap reports the violation and stops decoding that direction,
it never "fixes" a conversation. It listens only on the address it is given.

With ``intercept=True`` (or any rule) the tap relays whole frames instead: each
frame is checked against its rules (``intercept.py``) and may be held, edited,
dropped, delayed or duplicated, and frames may be injected. Each direction is a
FIFO: a held frame blocks the frames behind it; a delayed one lets them pass.
Garbage from either side is reported, and the other side is closed after what
was already decided has been sent.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import ssl as ssl_module
import stat
from typing import Callable

from .connect import Address, certificate_error, parse_address
from .decoder import DEFAULT_MAX_PAYLOAD_SIZE, Decoder, Frame
from .edition import require_network
from .errors import ProtocolViolation
from .findings import Finding, Undecodable, findings
from .intercept import HeldFrame, Rule
from .trace import DEFAULT_TRACE_BYTES, IN, OUT, TAP_SIDES, Trace, TraceEvent, frame_from_bytes
from .transports.base import format_address, listen_backlog
from .wire import Message, ProtocolVersion, SingleRequest, StreamRequest, StreamRequestPart, encode

log = logging.getLogger(__name__)

#: Read size per direction; also what one slow side can make the tap hold.
READ_SIZE = 64 * 1024

#: Frames an intercepting tap queues per direction before it stops reading that side: a
#: held frame (or a slow receiver) then slows the sender through TCP, as the bytes path does.
MAX_QUEUED_FRAMES = 1024

#: A frame listener: (connection number, event) for frames, (connection number, violation) for bad bytes.
FrameListener = Callable[[int, TraceEvent], None]
#: A byte listener: (connection, what, direction, bytes) with what "open" (both sockets are
#: up; ``client_peer`` and ``upstream_peer`` are set), "data" (bytes just read, before
#: they are forwarded), "end" (that direction's reader saw end of file) or "close".
ByteListener = Callable[["TapConnection", str, str, bytes], None]


#: Ended connections a tap keeps, traces and all, for a notebook to look at afterwards;
#: the command-line tap keeps none (its trace file has them).
DEFAULT_KEEP_FINISHED = 16

class TapConnection:
    """One client connection and its upstream connection, recorded."""

    def __init__(self, number: int, trace: Trace, max_payload_size: int) -> None:
        self.number = number
        self.trace = trace
        self.client = ""
        self.client_peer: tuple | None = None  #: (host, port) of the connecting program; None on a UNIX socket
        self.upstream_peer: tuple | None = None  #: (host, port) of the upstream program; None on a UNIX socket
        self.decoders = {
            OUT: Decoder(expect_version=True, max_payload_size=max_payload_size),
            IN: Decoder(expect_version=True, max_payload_size=max_payload_size),
        }
        self.violations: dict[str, ProtocolViolation] = {}
        self.bytes = {OUT: 0, IN: 0}
        # Intercepting: per direction, what to send, in order (None ends it).
        self.queues: dict[str, asyncio.Queue] = {OUT: asyncio.Queue(), IN: asyncio.Queue()}
        self.delays_pending = {OUT: 0, IN: 0}
        self.ending = {OUT: False, IN: False}
        # (requester direction, request ID) -> operation, so results match ``op=``.
        self.operations: dict[tuple[str, bytes], str] = {}

    def operation_of(self, direction: str, message: Message) -> str | None:
        request_id = getattr(message, "request_id", None)
        if request_id is None:
            return getattr(message, "name", None)
        if isinstance(message, (SingleRequest, StreamRequest)):
            self.operations[direction, request_id] = message.operation
            return message.operation
        requester = direction if isinstance(message, StreamRequestPart) else (IN if direction == OUT else OUT)
        return self.operations.get((requester, request_id))

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


#: The schemes a tap listens on and connects to: byte streams (not WebSocket).
TAP_SCHEMES = ("tcp", "tls", "unix")


def _stream_address(address: str, role: str) -> Address:
    where = parse_address(address)
    if where.scheme not in TAP_SCHEMES:
        raise ValueError(f"a tap's {role} is tcp://, tls:// or unix://, not {where.url}")
    return where


def _ip_peer(name: object) -> tuple | None:
    """A socket's (host, port), or None for a UNIX socket (its name is a path)."""
    return name if isinstance(name, tuple) else None


class Tap:
    """``listen`` -> client connects -> tap connects to ``upstream`` -> both ways recorded.

    ``upstream`` is a host and a port, or one address: ``tcp://``, ``tls://`` (the
    tap verifies its certificate with ``upstream_ssl``, default the system's
    trusted CAs) or ``unix:///PATH``. ``listen`` takes the same kinds; a
    ``tls://`` one needs ``ssl``, the tap's own server context.

    ``OUT`` in a tap's traces is what the connecting program sent, ``IN`` what
    the upstream program answered; the traces name those sides "client" and
    "upstream" (``Trace.sides``), and so do their timelines.
    """

    def __init__(
        self, upstream_host: str, upstream_port: int | None = None, *, max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
        trace_cap: int | None = None, intercept: bool = False, rules: list[Rule] | None = None,
        upstream_ssl: ssl_module.SSLContext | None = None, keep_finished: int | None = DEFAULT_KEEP_FINISHED,
        trace_bytes: int | None = DEFAULT_TRACE_BYTES,
    ) -> None:
        if upstream_port is None:
            where = _stream_address(upstream_host, "upstream")
        else:
            where = Address("tcp", upstream_host, upstream_port)
        if where.scheme == "tls":
            upstream_ssl = upstream_ssl if upstream_ssl is not None else ssl_module.create_default_context()
        elif upstream_ssl is not None:
            raise ValueError(f"upstream_ssl= is for a tls:// upstream, not {where.url}")
        self.upstream_address = where  #: where the tap connects, as an ``Address``
        self.upstream = (where.host, where.port)
        self.upstream_ssl = upstream_ssl
        self.url = ""  #: what the tap listens on, with its scheme (``tls://127.0.0.1:PORT``)
        self._socket_file: str | None = None
        self.max_payload_size = max_payload_size
        self.trace_cap = trace_cap
        #: Bytes each connection's in-memory trace keeps at most (``Trace.max_bytes``).
        self.trace_bytes = trace_bytes
        #: Connections open now, then the last ``keep_finished`` that ended (None: all).
        self.connections: list[TapConnection] = []
        #: How many ended connections this tap keeps in ``connections`` (with their traces);
        #: older ones are let go, as a trace file or ``on_close`` listener has seen them whole.
        self.keep_finished = keep_finished
        self.finished: collections.deque[TapConnection] = collections.deque()
        #: Ended connections let go so far (``keep_finished``).
        self.forgotten = 0
        self.address = ""
        self._numbers = itertools.count(1)
        self._frame_listeners: list[FrameListener] = []
        self._violation_listeners: list[Callable[[int, str, ProtocolViolation], None]] = []
        self._byte_listeners: list[ByteListener] = []
        self._close_listeners: list[Callable[[TapConnection], None]] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.rules: list[Rule] = list(rules or [])
        self.intercept = intercept or bool(self.rules)
        self.held: list[HeldFrame] = []  #: frames waiting for a decision, oldest first
        self._held_listeners: list[Callable[[], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    # -- interception: rules, held frames, injection ------------------------------

    def add_rule(self, rule: Rule) -> Rule:
        """Check every later frame against ``rule`` (first matching rule wins)."""
        if not self.intercept:
            raise RuntimeError("this tap relays bytes as they come; make it with intercept=True to use rules")
        self.rules.append(rule)
        return rule

    def hold(self, **criteria) -> Rule:
        """Hold matching frames in ``tap.held`` until forwarded, edited, dropped…"""
        return self.add_rule(Rule.make(**criteria, action="hold"))

    def drop(self, **criteria) -> Rule:
        return self.add_rule(Rule.make(**criteria, action="drop"))

    def delay(self, seconds: float, **criteria) -> Rule:
        return self.add_rule(Rule.make(**criteria, action="delay", delay=seconds))

    def rewrite(self, replacement: bytes, **criteria) -> Rule:
        """Send ``replacement`` (as is, even malformed) instead of each matching frame."""
        return self.add_rule(Rule.make(**criteria, action="rewrite", replacement=bytes(replacement)))

    def clear_rules(self) -> None:
        self.rules.clear()

    def on_held(self, listener: Callable[[], None]) -> None:
        """Hear when ``held`` changes (a frame held, or one decided)."""
        self._held_listeners.append(listener)

    def inject(self, sender: str, message: Message | bytes, *, connection: int | None = None) -> None:
        """Send ``message`` as if ``sender`` ("client" or "upstream") had sent it, after what is queued.

        ``connection``: its number (default: the newest). Bytes are sent as given.
        """
        direction = Rule.make(dir=sender).direction
        if not self.connections:
            raise RuntimeError("no connection through the tap yet")
        target = self.connections[-1] if connection is None else next(c for c in self.connections if c.number == connection)
        data = message if isinstance(message, bytes) else encode(message)
        self._call(lambda: self._enqueue(target, direction, data, "injected", None))

    def _call(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the tap's loop, from that loop or from another thread."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is None or running is self._loop:
            function()
        else:
            self._loop.call_soon_threadsafe(function)

    def _tell_held(self) -> None:
        for listener in self._held_listeners:
            try:
                listener()
            except Exception:  # a broken view must never break the relay
                log.exception("tap held listener %r failed", listener)

    def _enqueue(self, connection: TapConnection, direction: str, data: bytes, action: str, original: Frame | None) -> None:
        slot: asyncio.Future = asyncio.get_running_loop().create_future() if self._loop is None else self._loop.create_future()
        slot.set_result((action, [data], 0.0, original))
        connection.queues[direction].put_nowait(slot)

    def _route(self, connection: TapConnection, direction: str, frame: Frame) -> None:
        """Queue one frame read from ``direction``'s sender, decided now or held."""
        assert self._loop is not None
        header, message = frame.header, frame.message
        raw = header + getattr(message, "payload", b"")
        operation = connection.operation_of(direction, message)
        rule = next((r for r in self.rules if r.matches(direction, header, message, operation)), None)
        slot: asyncio.Future = self._loop.create_future()
        connection.queues[direction].put_nowait(slot)
        if rule is None:
            slot.set_result((None, [raw], 0.0, frame))
            return
        rule.matched += 1
        if rule.action == "drop":
            slot.set_result(("dropped", [], 0.0, frame))
        elif rule.action == "delay":
            slot.set_result(("delayed", [raw], rule.delay, frame))
        elif rule.action == "rewrite":
            slot.set_result(("edited", [rule.replacement], 0.0, frame))
        else:
            def decide(held: HeldFrame, action: str, chunks: list[bytes], delay: float) -> None:
                def settle() -> None:
                    if held in self.held:
                        self.held.remove(held)
                    if not slot.done():
                        slot.set_result((action, chunks, delay, frame))
                    self._tell_held()
                self._call(settle)

            self.held.append(HeldFrame(connection.number, direction, header, message, rule, decide))
            self._tell_held()

    def _record_sent(self, connection: TapConnection, direction: str, action: str | None, data: bytes, frame: Frame | None) -> TraceEvent | None:
        trace = connection.trace
        original = None if frame is None else frame.header + getattr(frame.message, "payload", b"")
        if action is None or action in ("forwarded", "delayed", "duplicated", "dropped"):
            assert frame is not None
            return trace.record(direction, frame.header, frame.message, action=action)
        try:
            header, message = frame_from_bytes(data)
        except Exception:  # a deliberately malformed edit: keep what it replaced, mark what was sent
            if frame is None:
                header, message = data, ProtocolVersion(0)
            else:
                header, message = frame.header, frame.message
            return trace.record(direction, header, message, action=action, original=original, sent=data)
        return trace.record(direction, header, message, action=action, original=original)

    def _tell_frame(self, connection: TapConnection, event: TraceEvent | None) -> None:
        if event is None:
            return
        for listener in self._frame_listeners:
            listener(connection.number, event)

    async def _read_frames(self, connection: TapConnection, direction: str, reader: asyncio.StreamReader) -> None:
        decoder = connection.decoders[direction]
        try:
            while data := await reader.read(READ_SIZE):
                connection.bytes[direction] += len(data)
                violation = None
                try:
                    frames = decoder.feed_frames(data)
                except ProtocolViolation as error:
                    violation = error
                    frames = error.messages
                for frame in frames:
                    self._route(connection, direction, frame)
                while connection.queues[direction].qsize() > MAX_QUEUED_FRAMES:
                    await asyncio.sleep(0.01)  # bounded memory while a frame is held
                if violation is not None:
                    connection.violations[direction] = violation
                    log.warning("tap: connection %s: %s sent bytes that do not decode: %s", connection.number, TAP_SIDES[0] if direction == OUT else TAP_SIDES[1], violation)
                    for listener in self._violation_listeners:
                        listener(connection.number, direction, violation)
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            connection.queues[direction].put_nowait(None)

    async def _send_frames(self, connection: TapConnection, direction: str, writer: asyncio.StreamWriter) -> None:
        queue = connection.queues[direction]
        loop = asyncio.get_running_loop()
        try:
            while True:
                slot = await queue.get()
                if slot is None:
                    if connection.delays_pending[direction]:
                        connection.ending[direction] = True  # the last delayed frame ends it
                        continue
                    break
                action, chunks, delay, frame = await slot
                if delay > 0:
                    connection.delays_pending[direction] += 1
                    loop.call_later(delay, self._delayed_due, connection, direction, chunks, frame)
                    continue
                if not chunks:
                    self._tell_frame(connection, self._record_sent(connection, direction, action, b"", frame))
                for data in chunks:
                    if self._byte_listeners:
                        self._tell_bytes(connection, "data", direction, data)
                    writer.write(data)
                    self._tell_frame(connection, self._record_sent(connection, direction, action, data, frame))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._tell_bytes(connection, "end", direction)
            writer.close()

    def _delayed_due(self, connection: TapConnection, direction: str, chunks: list[bytes], frame: Frame | None) -> None:
        slot: asyncio.Future = asyncio.get_running_loop().create_future()
        slot.set_result(("delayed", chunks, 0.0, frame))
        queue = connection.queues[direction]
        queue.put_nowait(slot)
        connection.delays_pending[direction] -= 1
        if connection.ending[direction] and not connection.delays_pending[direction]:
            queue.put_nowait(None)

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

    async def listen(self, host: str, port: int | None = None, *, ssl: ssl_module.SSLContext | None = None) -> str:
        """Listen on ``host``:``port``, or on one address (tcp://, tls:// with ``ssl``, unix://).

        Returns ``address``: what ``connect`` takes to reach the tap (a bare
        ``HOST:PORT`` for plain TCP, else the URL).
        """
        require_network("a tap (gl.tap, Tap.listen)")
        self._loop = asyncio.get_running_loop()
        where = Address("tcp", host, port) if port is not None else _stream_address(host, "listening address")
        if where.scheme == "tls" and ssl is None:
            raise ValueError(f"a tap listening on {where.url} needs ssl=, its server context (gl.tls_server_context)")
        if where.scheme != "tls":
            ssl = None
        if where.scheme == "unix":
            path = os.path.abspath(where.path)
            self._server = await asyncio.start_unix_server(self._serve_client, path, backlog=listen_backlog())
            self._socket_file = path
            self.url = self.address = f"unix://{path}"
            return self.address
        self._server = await asyncio.start_server(self._serve_client, where.host, where.port, ssl=ssl, backlog=listen_backlog())
        bound = format_address(self._server.sockets[0].getsockname())
        self.url = f"{where.scheme}://{bound}"
        self.address = bound if where.scheme == "tcp" else self.url
        return self.address

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        where = self.upstream_address
        if where.scheme == "unix":
            return await asyncio.open_unix_connection(where.path)
        return await asyncio.open_connection(where.host, where.port, ssl=self.upstream_ssl)

    async def _serve_client(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        connection = TapConnection(next(self._numbers), Trace(cap=self.trace_cap, sides=TAP_SIDES, max_bytes=self.trace_bytes), self.max_payload_size)
        connection.client = format_address(client_writer.get_extra_info("peername")) or "a UNIX socket client"
        connection.client_peer = _ip_peer(client_writer.get_extra_info("peername"))
        self.connections.append(connection)
        try:
            upstream_reader, upstream_writer = await self._open_upstream()
        except ssl_module.SSLCertVerificationError as error:
            log.error("tap: cannot reach upstream: %s", certificate_error(self.upstream_address.url, error))
            client_writer.close()
            self._tasks.discard(task)
            return
        except OSError as error:
            log.error("tap: cannot reach upstream %s: %s", self.upstream_address.url, error)
            client_writer.close()
            self._tasks.discard(task)
            return
        connection.upstream_peer = _ip_peer(upstream_writer.get_extra_info("peername"))
        self._tell_bytes(connection, "open", OUT)
        try:
            if self.intercept:
                await asyncio.gather(
                    self._read_frames(connection, OUT, client_reader),
                    self._read_frames(connection, IN, upstream_reader),
                    self._send_frames(connection, OUT, upstream_writer),
                    self._send_frames(connection, IN, client_writer),
                )
            else:
                await asyncio.gather(
                    self._forward(connection, OUT, client_reader, upstream_writer),
                    self._forward(connection, IN, upstream_reader, client_writer),
                )
        except asyncio.CancelledError:
            # ``close`` cancels the connections still open; this task is asyncio's
            # client_connected_cb, which on Python 3.11 reports a cancelled end as an error.
            if not self._closing:
                raise
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
            self._forget_finished(connection)
            self._tasks.discard(task)

    def _forget_finished(self, connection: TapConnection) -> None:
        """Keep the last ``keep_finished`` ended connections; let older ones (and their traces) go."""
        if self.keep_finished is None:
            return
        self.finished.append(connection)
        while len(self.finished) > self.keep_finished:
            old = self.finished.popleft()
            if old in self.connections:
                self.connections.remove(old)
            self.forgotten += 1

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
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self._socket_file is not None:
            # asyncio leaves a UNIX socket's file behind (before Python 3.13).
            try:
                if stat.S_ISSOCK(os.stat(self._socket_file).st_mode):
                    os.unlink(self._socket_file)
            except OSError:
                pass
            self._socket_file = None

    async def __aenter__(self) -> "Tap":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


async def tap(
    listen: str = "127.0.0.1:0", upstream: str = "", *, intercept: bool = True,
    ssl: ssl_module.SSLContext | None = None, upstream_ssl: ssl_module.SSLContext | None = None, **options,
) -> Tap:
    """An intercepting tap listening on ``listen`` ("HOST:PORT", port 0: any) for ``upstream``.

    Both may be addresses: ``tls://`` (``ssl``: the tap's server context for a TLS
    ``listen``; ``upstream_ssl``: what verifies a TLS upstream) or ``unix:///PATH``.
    Connect the client to ``tap.address``. ``intercept=False``: a transparent recorder.
    """
    the_tap = Tap(upstream, intercept=intercept, upstream_ssl=upstream_ssl, **options)
    await the_tap.listen(listen, ssl=ssl)
    return the_tap

"""One raw connection to the server under test, with its wire log.

A ``Session`` writes exactly the bytes a case asks for (one ``send`` = one TCP
write or one WebSocket message) and records every write and every read chunk,
in order, as the case's wire log. Received bytes are decoded with the codec's
``Decoder``; a session never answers anything by itself (no handshake, no
heartbeats): the case decides every byte. It must never hang: every wait takes
a deadline.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from ..connect import certificate_error
from ..decoder import Decoder
from ..errors import GotalkError, ProtocolViolation
from ..wire import MESSAGE_TYPES, Message, ProtocolError, ProtocolVersion, encode_header, payload_of

SENT = "sent"
RECEIVED = "received"

#: The checker reads whatever a server sends; a flood of bytes must not exhaust the
#: checker's memory, so a session stops reading past this many bytes (the largest
#: legitimate answer, case 8.1's, is 1 MiB) ...
MAX_RECEIVED_BYTES = 4 * 1024 * 1024
#: ... or this many bytes after the server's bytes stopped being Gotalk.
MAX_BYTES_AFTER_VIOLATION = 64 * 1024
#: Payloads the checker is willing to decode (the largest case payload is 1 MiB).
MAX_PAYLOAD = 8 * 1024 * 1024


class TargetError(GotalkError):
    """The target could not be reached, or its URL is not one the checker understands."""


@dataclass(frozen=True)
class Target:
    """Where the server under test listens: ``tcp://HOST:PORT``, ``tls://HOST:PORT``,
    ``ws://HOST:PORT/PATH``, ``wss://...`` or ``unix:///PATH`` (``path``: the socket's file)."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    #: What verifies a tls:// or wss:// server (the system's trusted CAs by default).
    ssl: ssl_module.SSLContext | None = field(default=None, compare=False)

    @property
    def websocket(self) -> bool:
        return self.scheme in ("ws", "wss")


def parse_target(url: str, ssl: ssl_module.SSLContext | None = None) -> Target:
    if url[:5].lower() == "unix:":
        path = url[5:]
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise TargetError(f"{url!r}: no path (write unix:///PATH/TO/SOCKET)")
        return Target(url, "unix", "", 0, path)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("tcp", "tls", "ws", "wss"):
        raise TargetError(f"{url!r}: the target must be tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH, wss://... or unix:///PATH")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise TargetError(f"{url!r}: no host and port (write tcp://HOST:PORT or ws://HOST:PORT/PATH)")
    if scheme in ("tls", "wss") and ssl is None:
        ssl = ssl_module.create_default_context()
    return Target(url, scheme, parts.hostname, port, parts.path or "/", ssl if scheme in ("tls", "wss") else None)


@dataclass
class WireChunk:
    """One write or one read, as it happened."""

    direction: str  #: SENT or RECEIVED
    data: bytes
    time: float  #: seconds since the session opened

    def to_json(self) -> dict:
        return {"direction": self.direction, "hex": self.data.hex(), "t": round(self.time, 6)}


class Session:
    """A connection opened for one case. Use ``await Session.open(target, timeout)``."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.log: list[WireChunk] = []
        self.received = bytearray()
        #: Decoded messages from the server, the version preamble included.
        self.messages: list[Message] = []
        #: Set when the server's bytes stop being valid Gotalk (located to the byte).
        self.violation: ProtocolViolation | None = None
        #: True when the server's first bytes were a message, not the version "01".
        self.version_missing = False
        self.closed = False
        self.close_reason = ""
        #: Set (to why) when the checker stopped reading a server that would not stop writing.
        self.stopped = ""
        #: Each WebSocket message received (empty on TCP): the framing cases read them.
        self.ws_messages: list[bytes] = []
        self._decoder: Decoder | None = None
        self._started = time.monotonic()
        self._changed = asyncio.Event()
        self._reader_task: asyncio.Task | None = None
        self._writer = None  # asyncio.StreamWriter (tcp)
        self._ws = None  # websockets ClientConnection

    # -- opening and closing ----------------------------------------------------------

    @classmethod
    async def open(cls, target: Target, timeout: float) -> "Session":
        session = cls(target)
        try:
            await asyncio.wait_for(session._connect(), timeout)
        except asyncio.TimeoutError:
            raise TargetError(f"cannot reach {target.url}: no connection within {timeout:g} s") from None
        except TargetError:
            raise
        except ssl_module.SSLCertVerificationError as error:
            raise TargetError(f"cannot reach {certificate_error(target.url, error)}") from None
        except Exception as error:  # OSError, and websockets' own InvalidStatus, InvalidHandshake...
            raise TargetError(f"cannot reach {target.url}: {_reason(error)}") from None
        session._reader_task = asyncio.ensure_future(session._read_loop())
        return session

    async def _connect(self) -> None:
        if self.target.websocket:
            from websockets.asyncio.client import connect as ws_connect

            scheme = "https" if self.target.scheme == "wss" else "http"
            # The Go server rejects an upgrade without an Origin (HTTP 403) and accepts any
            # present one; the lab's server accepts loopback origins: name the server's own.
            origin = f"{scheme}://{urlsplit(self.target.url).netloc}"
            self._ws = await ws_connect(
                self.target.url, origin=origin, compression=None, ping_interval=None, max_size=None, close_timeout=1,
                ssl=self.target.ssl,
            )
        elif self.target.scheme == "unix":
            reader, writer = await asyncio.open_unix_connection(self.target.path, limit=1 << 20)
            self._reader, self._writer = reader, writer
        else:
            reader, writer = await asyncio.open_connection(self.target.host, self.target.port, limit=1 << 20, ssl=self.target.ssl)
            self._reader, self._writer = reader, writer

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            try:
                await self._reader_task
            except BaseException:
                pass
        try:
            if self._ws is not None:
                await asyncio.wait_for(self._ws.close(), 1)
            elif self._writer is not None:
                self._writer.close()
                await asyncio.wait_for(self._writer.wait_closed(), 1)
        except BaseException:
            pass
        self.closed = True

    def abort(self) -> None:
        """Drop the connection at once, mid-message if need be (a client that vanishes)."""
        if self._writer is not None:
            self._writer.transport.abort()
        elif self._ws is not None:
            self._ws.transport.abort()

    # -- writing ---------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """One write (TCP) or one WebSocket message: exactly these bytes."""
        if self.closed or (self._writer is not None and self._writer.is_closing()):
            return  # nothing can be sent any more; the case reads why from close_reason
        self.log.append(WireChunk(SENT, bytes(data), self._now()))
        try:
            if self._ws is not None:
                await self._ws.send(bytes(data))
            else:
                self._writer.write(data)
                await self._writer.drain()
        except Exception as error:
            self._set_closed(f"writing failed: {_reason(error)}")

    async def send_message(self, message: Message) -> None:
        """A message in its plainest form: one TCP write; on WebSocket, header and payload
        as two messages (gotalk.js reads one message as a header, the next as its payload)."""
        header, payload = encode_header(message), payload_of(message)
        if self.target.websocket:
            await self.send(header)
            if payload:
                await self.send(payload)
        else:
            await self.send(header + payload)

    async def send_version(self, version: bytes = b"01") -> None:
        await self.send(version)

    # -- reading ---------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                if self._ws is not None:
                    data = await self._ws.recv()
                    if isinstance(data, str):
                        data = data.encode("utf-8")
                    self.ws_messages.append(data)
                else:
                    data = await self._reader.read(65536)
                    if not data:
                        self._set_closed("the server closed the connection")
                        return
                self._take(data)
                if len(self.received) > MAX_RECEIVED_BYTES or (
                    self.violation is not None and len(self.received) - self.violation.offset > MAX_BYTES_AFTER_VIOLATION
                ):
                    self.stopped = f"the checker stopped reading after {len(self.received)} bytes"
                    self._changed.set()
                    return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            code = getattr(getattr(error, "rcvd", None), "code", None)
            self._set_closed("the server closed the WebSocket" + (f" (code {code})" if code is not None else "")
                             if self._ws is not None else f"the connection failed: {_reason(error)}")

    def _take(self, data: bytes) -> None:
        self.log.append(WireChunk(RECEIVED, bytes(data), self._now()))
        self.received += data
        if self._decoder is None:
            if bytes(self.received[:1]) in MESSAGE_TYPES:
                # The first byte is a message type, not a version digit: no handshake.
                self.version_missing = True
                self._decoder = Decoder(expect_version=False, max_payload_size=MAX_PAYLOAD)
            else:
                self._decoder = Decoder(expect_version=True, max_payload_size=MAX_PAYLOAD)
            data = bytes(self.received)
        if self.violation is None:
            try:
                self.messages.extend(self._decoder.feed(data))
            except ProtocolViolation as violation:
                self.messages.extend(violation.messages)
                self.violation = violation
        self._changed.set()

    def _set_closed(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
        self._changed.set()

    async def wait_for(self, condition: Callable[["Session"], bool], deadline: float) -> bool:
        """Wait until ``condition(self)`` holds, the connection closes or ``deadline``
        (a ``time.monotonic()`` value) passes; returns the condition's last value."""
        while True:
            if condition(self):
                return True
            if self.closed or self.violation is not None or self.stopped:
                return condition(self)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return condition(self)

    async def wait_closed(self, deadline: float) -> bool:
        """Wait for the server to close; True when it did before ``deadline``."""
        while not self.closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return self.closed
        return True

    async def pause(self, seconds: float) -> None:
        """Let the server act for ``seconds`` (bounded by the caller's deadline)."""
        if seconds > 0:
            await asyncio.sleep(seconds)

    # -- what came -------------------------------------------------------------------

    def answers(self) -> list[Message]:
        """Every message received after the version preamble."""
        return [m for m in self.messages if not isinstance(m, ProtocolVersion)]

    def answers_for(self, request_id: bytes) -> list[Message]:
        return [m for m in self.answers() if getattr(m, "request_id", None) == request_id]

    def protocol_error(self) -> ProtocolError | None:
        return next((m for m in self.messages if isinstance(m, ProtocolError)), None)

    @property
    def got_version(self) -> bool:
        return bool(self.messages) and isinstance(self.messages[0], ProtocolVersion)

    def _now(self) -> float:
        return time.monotonic() - self._started


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return text.splitlines()[0]

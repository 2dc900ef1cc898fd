"""Gotalk over WebSocket, framed exactly as gotalk.js expects.

Every header and every non-empty payload is its own binary WebSocket message,
and so is the version "01": gotalk.js reads one message as a header and, if it
announces a payload, the next message as that payload. Frames are queued and
sent by one task so that no two frames interleave. The server side mounts the
endpoint at /gotalk/ and refuses upgrades without an allowed Origin header.
Received messages are handed on as bytes; text frames are read as UTF-8. A
message over the size limit is refused before it is read: the receiver is told
(``input_refused``) and what it writes then goes out ahead of the close frame.
Closing never waits more than ``CLOSE_TIMEOUT`` for a side that does not read.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
from collections import deque
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from .base import CLOSE_TIMEOUT, HIGH_WATER, Transport, format_address, listen_backlog

log = logging.getLogger(__name__)

DEFAULT_PATH = "/gotalk/"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: Bytes a WebSocket message may carry beyond the payload limit: the largest
#: Gotalk header (``r``/``s`` with a 4095-byte name: 1+4+3+4095+8), so that a
#: peer packing a header and its payload into one message is read like
#: gotalk.js's separate ones, and the peer's decoder refuses an oversized
#: payload from its header with f00000002.
HEADER_ALLOWANCE = 4111

#: Origins a browser may connect from by default: pages served from this
#: machine only, so that a web page from elsewhere open in the user's browser
#: cannot drive the local kit.
LOOPBACK_ORIGIN = re.compile(r"^https?://(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])(:\d+)?$", re.I)


class WebSocketTransport(Transport):
    joins_frames = False  # one WebSocket message per header and per payload

    def __init__(self, connection, description: str) -> None:
        super().__init__()
        self.connection = connection
        self.description = description
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._resume = asyncio.Event()
        self._resume.set()
        self._closing = False
        self._close_deadline: asyncio.TimerHandle | None = None
        self._write_now = False  # while the receiver answers a refused message: write ahead of the close frame
        self._sender = asyncio.ensure_future(self._send_loop())
        self._reader: asyncio.Future | None = None
        self._watch_for_oversized_messages()

    def attach(self, receiver) -> None:
        super().attach(receiver)
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read_loop())

    async def run(self) -> None:
        """Serve until the connection ends (the server handler awaits this)."""
        await self.wait_closed()

    def _watch_for_oversized_messages(self) -> None:
        """Let the receiver answer a message over the size limit before the 1009 close.

        The WebSocket library refuses such a message from its frame header (it is
        never read into memory) and fails the connection at once; wrapping its
        ``fail`` lets the receiver write its own error (a peer: f00000002) first.

        Why not the public API: websockets offers no hook between "this frame is
        too big" and its close frame (``max_size`` refusal is internal to the
        sans-IO ``Protocol``), and raising ``max_size`` to read the message
        first would let one header make us buffer the whole payload, which is
        what the limit exists to prevent. ``connection.protocol`` and its
        ``fail``/``send_binary`` are public names of the library; replacing
        ``fail`` on this one connection's protocol is the only patching done,
        and without a ``protocol`` attribute the watch is simply skipped.
        """
        protocol = getattr(self.connection, "protocol", None)
        if protocol is None:  # pragma: no cover - another WebSocket implementation
            return
        fail = protocol.fail

        def refuse_then_fail(code, reason: str = ""):
            if code == CloseCode.MESSAGE_TOO_BIG and not self._closing:
                refused = getattr(self.receiver, "input_refused", None)
                if refused is not None:
                    self._write_now = True
                    try:
                        refused(f"a WebSocket message over the size limit ({reason})")
                    except Exception:  # never break the library's own failing of the connection
                        log.exception("%s: answering a message over the size limit failed", self.description)
                    finally:
                        self._write_now = False
            return fail(code, reason)

        protocol.fail = refuse_then_fail

    # -- reading --------------------------------------------------------------

    async def _read_loop(self) -> None:
        error: BaseException | None = None
        try:
            async for message in self.connection:
                if not self._resume.is_set():
                    await self._resume.wait()
                data = message.encode("utf-8") if isinstance(message, str) else message
                if self.receiver is not None and not self._closing:
                    self.receiver.data_received(data)
        except ConnectionClosed as closed:
            if closed.rcvd is None and closed.sent is None:
                # No close frame either way (1006): the TCP connection just went.
                error = ConnectionResetError("the connection dropped abnormally, without a WebSocket close frame (1006)")
            elif closed.rcvd is None or closed.rcvd.code not in (1000, 1001):
                error = closed
        except Exception as unexpected:  # pragma: no cover - reported to the peer
            error = unexpected
        self._closing = True
        self._sender.cancel()
        self._set_closed(error)

    def pause_reading(self) -> None:
        self._resume.clear()

    def resume_reading(self) -> None:
        self._resume.set()

    # -- writing --------------------------------------------------------------

    def write(self, header: bytes, payload: bytes = b"") -> None:
        if self._write_now:
            protocol = self.connection.protocol
            protocol.send_binary(header)
            if payload:
                protocol.send_binary(payload)
            return
        if self._closing:
            return
        self._queue.append(header)
        self._queued += len(header)
        if payload:
            self._queue.append(payload)
            self._queued += len(payload)
        if self._queued > HIGH_WATER:
            self.mark_backlogged()
        self._wakeup.set()

    def write_buffer_size(self) -> int:
        return self._queued

    async def _send_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    message = self._queue.popleft()
                    await self.connection.send(message)
                    # Counted until sent: a message the library still holds (the
                    # other side is not reading) is still ours to worry about.
                    self._queued -= len(message)
                    if self._queued <= HIGH_WATER // 2:
                        self.mark_writable()
                if self._closing:
                    break
        except (ConnectionClosed, asyncio.CancelledError):
            pass
        finally:
            if self._closing:
                await self._close_connection()

    async def _close_connection(self) -> None:
        try:
            await self.connection.close(1000)
        except Exception:  # pragma: no cover - already gone
            pass
        self._set_closed(None)

    def close(self) -> None:
        """Send what is queued, then close with code 1000; drop the connection after ``CLOSE_TIMEOUT``."""
        if self._closing:
            return
        self._closing = True
        self._wakeup.set()
        if self._sender.done():
            asyncio.ensure_future(self._close_connection())
        if not self.is_closing:
            self._close_deadline = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._close_timed_out)

    def _close_timed_out(self) -> None:
        if not self.is_closing:
            log.debug("%s: not closed after %s s (the other side is not reading): dropping it", self.description, CLOSE_TIMEOUT)
            self.abort()

    def _set_closed(self, error: BaseException | None = None) -> None:
        if self._close_deadline is not None:
            self._close_deadline.cancel()
        super()._set_closed(error)

    def abort(self) -> None:
        self._queue.clear()
        self._closing = True
        self._sender.cancel()
        transport = getattr(self.connection, "transport", None)
        if transport is not None:
            transport.abort()


async def open_websocket(url: str, *, origin: str | None = None, max_message_size: int | None = None, ssl=None) -> WebSocketTransport:
    """Connect to a Gotalk WebSocket endpoint such as ws://127.0.0.1:8080/gotalk/."""
    parts = urlsplit(url)
    if origin is None:
        # The Go server refuses upgrades without an Origin; name the server's own.
        scheme = "https" if parts.scheme == "wss" else "http"
        origin = f"{scheme}://{parts.netloc}"
    connection = await ws_connect(
        url,
        origin=origin,
        compression=None,
        max_size=_message_limit(max_message_size),
        ping_interval=None,
        close_timeout=CLOSE_TIMEOUT,
        ssl=ssl,
    )
    return WebSocketTransport(connection, f"ws {url}")


def _message_limit(max_message_size: int | None) -> int | None:
    """The WebSocket message size limit for a payload limit: room for a header on top."""
    return None if max_message_size is None else max_message_size + HEADER_ALLOWANCE


def origin_allowed(origin: str | None, allow: Iterable[str] = ()) -> bool:
    """True for loopback origins and for any origin in ``allow`` ("*" allows all)."""
    if not origin:
        return False
    allow = list(allow)
    if "*" in allow or origin in allow:
        return True
    return bool(LOOPBACK_ORIGIN.match(origin))


def _static_response(path: str) -> Response | None:
    """Files under gotalk_lab/static served at /gotalk/static/NAME (a demo page, the JS client)."""
    prefix = "/gotalk/static/"
    if not path.startswith(prefix):
        return None
    name = path[len(prefix) :].split("?", 1)[0]
    file = (STATIC_DIR / name).resolve()
    if STATIC_DIR not in file.parents or not file.is_file():
        return None
    types = {".js": "text/javascript", ".html": "text/html", ".css": "text/css"}
    body = file.read_bytes()
    headers = Headers({"Content-Type": types.get(file.suffix, "application/octet-stream") + "; charset=utf-8", "Content-Length": str(len(body))})
    return Response(200, "OK", headers, body)


async def serve_websocket(
    on_connection: Callable[[WebSocketTransport], asyncio.Future],
    host: str,
    port: int,
    *,
    path: str = DEFAULT_PATH,
    allow_origins: Iterable[str] = (),
    max_message_size: int | None = None,
    ssl=None,
):
    """Listen for WebSocket upgrades at ``path``; one transport per connection."""
    allow = list(allow_origins)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        request_path = request.path.split("?", 1)[0]
        if request.headers.get("Upgrade", "").lower() != "websocket":
            static = _static_response(request_path)
            if static is not None:
                return static
            if request_path.endswith("/gotalk.js"):
                # Where the Go server serves gotalk.js; this kit ships a client of its own.
                return connection.respond(
                    http.HTTPStatus.NOT_FOUND,
                    "this server does not ship gotalk.js; its own browser client is at /gotalk/static/gotalk-client.js\n",
                )
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"Gotalk WebSocket endpoint is at {path}\n")
        if request_path != path:
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"no Gotalk endpoint here; it is at {path}\n")
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, allow):
            reason = "missing Origin header" if not origin else f"origin {origin} is not allowed (see --allow-origin)"
            log.warning("refused WebSocket upgrade: %s", reason)
            return connection.respond(http.HTTPStatus.FORBIDDEN, reason + "\n")
        return None

    async def handler(connection: ServerConnection) -> None:
        remote = connection.remote_address
        scheme = "wss" if ssl is not None else "ws"
        transport = WebSocketTransport(connection, f"{scheme} {path} from {format_address(remote)}" if remote else f"{scheme} {path}")
        on_connection(transport)
        await transport.run()

    return await ws_serve(
        handler,
        host,
        port,
        process_request=process_request,
        compression=None,
        max_size=_message_limit(max_message_size),
        ping_interval=None,
        close_timeout=CLOSE_TIMEOUT,
        ssl=ssl,
        backlog=listen_backlog(),
    )

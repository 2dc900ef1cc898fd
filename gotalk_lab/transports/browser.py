"""Gotalk over the browser's own WebSocket: the browser edition's one way out of the page.

Pyodide has no sockets, but the page has the browser's ``WebSocket`` (``js.WebSocket``).
This transport frames as ``WebSocketTransport`` and gotalk.js do (one binary message per
header and per payload) on top of it. The browser does the connecting, the TLS of wss://
and the upgrade, and sends the page's Origin itself, which the server must allow:
``gotalk-lab serve --ws`` allows pages from this machine (127.0.0.1, localhost) unless
told ``--allow-origin`` for others.

The browser's WebSocket cannot stop reading: while the receiver has paused, messages
wait here until it resumes. Its ``send`` never waits: ``drain`` waits while the browser
holds more than ``HIGH_WATER`` bytes unsent (``bufferedAmount``, looked at every 20 ms
while over). ``js`` and ``pyodide.ffi`` exist only in Pyodide, so they are imported on
first use.
"""

from __future__ import annotations

import asyncio
import importlib
from collections import deque
from typing import Any

from .base import CLOSE_TIMEOUT, HIGH_WATER, Transport

#: Seconds between two looks at the browser's unsent bytes while over the mark.
BUFFER_POLL = 0.02


class BrowserWebSocketTransport(Transport):
    joins_frames = False  # one WebSocket message per header and per payload

    def __init__(self, socket: Any, description: str, to_js: Any) -> None:
        super().__init__()
        self.socket = socket
        self.description = description
        self._to_js = to_js
        self._paused = False
        self._held: deque[bytes] = deque()
        self._closing = False
        self._poll: asyncio.TimerHandle | None = None
        self._close_deadline: asyncio.TimerHandle | None = None
        self.listeners: list[tuple[str, Any]] = []  # (event, proxy): removed and freed at close

    # -- the browser's events --------------------------------------------------

    def on_message(self, event: Any) -> None:
        data = event.data
        message = data.encode("utf-8") if isinstance(data, str) else data.to_bytes()
        if self._paused or self.receiver is None:  # (the server's "01" may come before attach)
            self._held.append(message)
        elif not self.is_closing:
            self.receiver.data_received(message)

    def on_close(self, event: Any) -> None:
        error = None
        if event.code not in (1000, 1001):
            reason = f": {event.reason}" if event.reason else ""
            error = ConnectionResetError(f"the WebSocket closed with code {event.code}{reason}")
        self._set_closed(error)

    # -- reading ----------------------------------------------------------------

    def attach(self, receiver: Any) -> None:
        super().attach(receiver)
        if not self._paused:
            self.resume_reading()

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        while self._held and not self._paused and self.receiver is not None:
            self.receiver.data_received(self._held.popleft())

    # -- writing ----------------------------------------------------------------

    def write(self, header: bytes, payload: bytes = b"") -> None:
        if self._closing or self.is_closing:
            return
        self.socket.send(self._to_js(header))
        if payload:
            self.socket.send(self._to_js(payload))
        if self.write_buffer_size() > HIGH_WATER and not self.write_backlogged:
            self.mark_backlogged()
            self._poll = asyncio.get_running_loop().call_later(BUFFER_POLL, self._look_at_buffer)

    def write_buffer_size(self) -> int:
        return int(self.socket.bufferedAmount)

    def _look_at_buffer(self) -> None:
        if self.is_closing or self.write_buffer_size() <= HIGH_WATER // 2:
            self.mark_writable()
        else:
            self._poll = asyncio.get_running_loop().call_later(BUFFER_POLL, self._look_at_buffer)

    # -- closing ----------------------------------------------------------------

    def close(self) -> None:
        """Close with code 1000 (the browser sends what it holds first); give up after ``CLOSE_TIMEOUT``."""
        if self._closing or self.is_closing:
            return
        self._closing = True
        self.socket.close(1000)
        self._close_deadline = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._set_closed)

    def abort(self) -> None:
        if not self.is_closing:
            self._closing = True
            self.socket.close()
            self._set_closed(None)

    def _set_closed(self, error: BaseException | None = None) -> None:
        for handle in (self._poll, self._close_deadline):
            if handle is not None:
                handle.cancel()
        first = not self.is_closing
        super()._set_closed(error)
        if first:
            for event, proxy in self.listeners:
                self.socket.removeEventListener(event, proxy)
                proxy.destroy()
            self.listeners.clear()


async def open_browser_websocket(url: str) -> BrowserWebSocketTransport:
    """Open ``url`` (ws:// or wss://) with the browser's WebSocket; raise ConnectionRefusedError if it fails."""
    js = importlib.import_module("js")
    ffi = importlib.import_module("pyodide.ffi")
    opened = asyncio.get_running_loop().create_future()
    socket = js.WebSocket.new(url)
    socket.binaryType = "arraybuffer"
    transport = BrowserWebSocketTransport(socket, f"browser websocket {url}", ffi.to_js)

    def on_open(event: Any) -> None:
        if not opened.done():
            opened.set_result(None)

    def on_close(event: Any) -> None:
        if not opened.done():
            # The browser tells a page nothing more of why (no address, no HTTP status).
            opened.set_exception(ConnectionRefusedError(
                f"the browser could not open a WebSocket to {url} (code {event.code}): "
                "is a Gotalk WebSocket server listening there, and does it allow this page's Origin?"
            ))
        transport.on_close(event)

    for event, handler in (("open", on_open), ("message", transport.on_message), ("close", on_close)):
        proxy = ffi.create_proxy(handler)
        socket.addEventListener(event, proxy)
        transport.listeners.append((event, proxy))
    await opened
    return transport

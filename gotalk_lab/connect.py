"""Making peers: an in-memory pair, a client from an address, a server on an address.

Addresses are ``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``ws://HOST:PORT/PATH``
(``wss://`` too); a bare ``HOST:PORT`` means TCP. This module turns an address
into a transport and a transport into a peer; it holds no protocol logic.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .decoder import DEFAULT_MAX_PAYLOAD_SIZE
from .handlers import Handlers
from .peer import Peer
from .transports.pipe import pipe_transports
from .transports.base import format_address
from .transports.tcp import open_tcp, serve_tcp
from .transports.websocket import DEFAULT_PATH, open_websocket, serve_websocket

DEFAULT_HOST = "127.0.0.1"
#: How long ``connect`` waits for the other side's version before giving up.
HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Address:
    scheme: str  #: tcp, tls, ws or wss
    host: str
    port: int
    path: str = ""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_address(address: str, *, default_scheme: str = "tcp") -> Address:
    """``tcp://127.0.0.1:1234``, ``ws://localhost:8080/gotalk/``, ``127.0.0.1:0``..."""
    text = address if "://" in address else f"{default_scheme}://{address}"
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("tcp", "tls", "ws", "wss"):
        raise ValueError(f"unsupported address scheme {scheme!r} in {address!r}: use tcp://, tls://, ws:// or wss://")
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"bad port in {address!r}: {error}") from None
    if port is None:
        raise ValueError(f"no port in {address!r}: write HOST:PORT (port 0 picks a free one when serving)")
    host = parts.hostname or DEFAULT_HOST
    path = parts.path or (DEFAULT_PATH if scheme in ("ws", "wss") else "")
    return Address(scheme, host, port, path)


async def pipe(
    handlers_a: Handlers | None = None,
    handlers_b: Handlers | None = None,
    *,
    options_a: dict | None = None,
    options_b: dict | None = None,
    **options: Any,
) -> tuple[Peer, Peer]:
    """Two peers connected in memory, handshake done: ``a, b = await gl.pipe()``.

    Keyword ``options`` go to both peers; ``options_a`` / ``options_b`` to one
    side only (e.g. a read timeout or a request limit on the responder alone).
    """
    transport_a, transport_b = pipe_transports()
    name_a, name_b = options.pop("name_a", "a"), options.pop("name_b", "b")
    a = Peer(handlers_a, name=name_a, **{**options, **(options_a or {})})
    b = Peer(handlers_b, name=name_b, **{**options, **(options_b or {})})
    a.attach(transport_a)
    b.attach(transport_b)
    await asyncio.gather(a.handshake, b.handshake)
    return a, b


async def connect(
    address: str,
    handlers: Handlers | None = None,
    *,
    ssl: ssl_module.SSLContext | None = None,
    origin: str | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    **options: Any,
) -> Peer:
    """Connect to a Gotalk server and finish the handshake.

    ``handlers`` are the operations this side answers (the server may call them).
    Other keyword options go to ``Peer``.
    """
    where = parse_address(address)
    options.setdefault("name", where.url)
    peer = Peer(handlers, **options)
    if where.scheme in ("ws", "wss"):
        if where.scheme == "wss" and ssl is None:
            ssl = ssl_module.create_default_context()
        transport = await open_websocket(where.url, origin=origin, max_message_size=peer.max_payload_size + 64, ssl=ssl)
    else:
        if where.scheme == "tls" and ssl is None:
            ssl = ssl_module.create_default_context()
        transport = await open_tcp(where.host, where.port, ssl=ssl)
    peer.attach(transport)
    try:
        await asyncio.wait_for(asyncio.shield(peer.handshake), handshake_timeout)
    except asyncio.TimeoutError:
        await peer.close()
        raise TimeoutError(f"{where.url} did not send its protocol version within {handshake_timeout:g} s") from None
    return peer


class Server:
    """Listening sockets that give every connection its own ``Peer``.

    ``addresses`` lists what was bound (with real ports when 0 was asked);
    ``peers`` the connections now open; ``on_connect(callback)`` is told of each
    new peer. Close with ``await server.close()`` or ``async with``.
    """

    def __init__(self, handlers: Handlers, options: dict) -> None:
        self.handlers = handlers
        self.options = options
        self.peers: set[Peer] = set()
        self.addresses: list[str] = []
        self.connections_accepted = 0
        self._listeners: list = []
        self._connect_callbacks: list = []

    def _accept(self, transport) -> Peer:
        self.connections_accepted += 1
        peer = Peer(self.handlers, name=transport.description, **self.options)
        self.peers.add(peer)
        peer.on_close(self.peers.discard)
        peer.attach(transport)
        for callback in self._connect_callbacks:
            callback(peer)
        return peer

    def on_connect(self, callback) -> None:
        self._connect_callbacks.append(callback)

    async def listen(self, address: str, *, ssl=None, allow_origins=()) -> str:
        """Bind one more address (tcp://, tls:// or ws://); return it with its real port."""
        where = parse_address(address)
        if where.scheme in ("ws", "wss"):
            listener = await serve_websocket(
                self._accept,
                where.host,
                where.port,
                path=where.path,
                allow_origins=allow_origins,
                max_message_size=self.options.get("max_payload_size", DEFAULT_MAX_PAYLOAD_SIZE) + 64,
                ssl=ssl,
            )
            sockets = listener.sockets
        else:
            listener = await serve_tcp(self._accept, where.host, where.port, ssl=ssl)
            sockets = listener.sockets
        self._listeners.append(listener)
        bound = format_address(sockets[0].getsockname())
        url = f"{where.scheme}://{bound}{where.path}"
        self.addresses.append(url)
        return url

    async def close(self) -> None:
        """Stop listening and close every connection (their pending calls fail)."""
        for listener in self._listeners:
            listener.close()
        await asyncio.gather(*(peer.close() for peer in list(self.peers)), return_exceptions=True)
        for listener in self._listeners:
            try:
                await asyncio.wait_for(listener.wait_closed(), 5)
            except asyncio.TimeoutError:  # pragma: no cover - a stuck client socket
                pass
        self._listeners.clear()

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<Server {' '.join(self.addresses) or 'not listening'}, {len(self.peers)} connections>"


async def serve(
    address: str | list[str],
    handlers: Handlers | None = None,
    *,
    ssl: ssl_module.SSLContext | None = None,
    allow_origins=(),
    **options: Any,
) -> Server:
    """Serve ``handlers`` on one or more addresses: ``await gl.serve("tcp://127.0.0.1:0", gl.demo.handlers())``."""
    server = Server(handlers if handlers is not None else Handlers(), options)
    for one in [address] if isinstance(address, str) else address:
        await server.listen(one, ssl=ssl, allow_origins=allow_origins)
    return server

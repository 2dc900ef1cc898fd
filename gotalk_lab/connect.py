"""Making peers: an in-memory pair, a client from an address, a server on an address.

Addresses are ``tcp://HOST:PORT``, ``tls://HOST:PORT``, ``ws://HOST:PORT/PATH``
(``wss://`` too) or ``unix:///PATH``; a bare ``HOST:PORT`` means TCP. ``ssl=`` is
for tls:// and wss:// only: a client verifies the server by the system's trusted
CAs unless given another context, a server needs one with its certificate. This
module turns an address into a transport and a transport into a peer; it holds
no protocol logic.
"""

from __future__ import annotations

import asyncio
import os
import ssl as ssl_module
import stat
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .decoder import DEFAULT_MAX_PAYLOAD_SIZE
from . import edition
from .edition import require_network
from .errors import CertificateError
from .handlers import Handlers
from .peer import Peer
from .transports.pipe import pipe_transports
from .transports.base import format_address
from .transports.browser import open_browser_websocket
from .transports.tcp import open_tcp, open_unix, serve_tcp, serve_unix
from .transports.websocket import DEFAULT_PATH, open_websocket, serve_websocket

DEFAULT_HOST = "127.0.0.1"
#: How long ``connect`` waits for the other side's version before giving up.
HANDSHAKE_TIMEOUT = 10.0
SCHEMES = ("tcp", "tls", "ws", "wss", "unix")
#: The schemes that run over TLS, and so take ``ssl=``.
TLS_SCHEMES = ("tls", "wss")


@dataclass(frozen=True)
class Address:
    scheme: str  #: tcp, tls, ws, wss or unix
    host: str  #: "" for unix
    port: int  #: 0 for unix
    path: str = ""  #: the WebSocket endpoint, or the UNIX socket's file

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def parse_address(address: str, *, default_scheme: str = "tcp") -> Address:
    """``tcp://127.0.0.1:1234``, ``ws://localhost:8080/gotalk/``, ``unix:///tmp/gotalk.sock``, ``127.0.0.1:0``..."""
    if address[:5].lower() == "unix:":
        # Everything after "unix://" (or "unix:") is the file: unix:///tmp/a.sock, unix:./a.sock.
        path = address[5:]
        path = path[2:] if path.startswith("//") else path
        if not path:
            raise ValueError(f"no path in {address!r}: write unix:///PATH/TO/SOCKET")
        return Address("unix", "", 0, path)
    text = address if "://" in address else f"{default_scheme}://{address}"
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unsupported address scheme {scheme!r} in {address!r}: use tcp://, tls://, ws://, wss:// or unix://")
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"bad port in {address!r}: {error}") from None
    if port is None:
        raise ValueError(f"no port in {address!r}: write HOST:PORT (port 0 picks a free one when serving)")
    host = parts.hostname or DEFAULT_HOST
    path = parts.path or (DEFAULT_PATH if scheme in ("ws", "wss") else "")
    return Address(scheme, host, port, path)


def tls_client_context(cafile: str | os.PathLike | None = None, *, insecure: bool = False) -> ssl_module.SSLContext:
    """A client context for ``connect(..., ssl=)``: it trusts the system's CAs, or only ``cafile``'s.

    ``cafile`` (a PEM file, like curl's ``--cacert``) is how to trust a test
    certificate; ``insecure=True`` (curl's ``--insecure``) checks no certificate
    and no host name: the bytes are still encrypted, but to anyone.
    """
    context = ssl_module.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl_module.CERT_NONE
    return context


def tls_server_context(certfile: str | os.PathLike, keyfile: str | os.PathLike | None = None) -> ssl_module.SSLContext:
    """A server context for ``serve(..., ssl=)``: the certificate chain and its private key (PEM files)."""
    context = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    return context


def certificate_error(url: str, error: ssl_module.SSLCertVerificationError) -> CertificateError:
    """One line for a refused certificate: what failed, and how to trust a test certificate."""
    reason = (error.verify_message or error.reason or str(error)).rstrip(".")
    return CertificateError(
        f"{url}: the server's TLS certificate is not trusted: {reason}; to trust a test certificate, "
        "give its CA (ssl=gl.tls_client_context(cafile='ca.pem'), or --cacert ca.pem on the command line), "
        "or skip the check (tls_client_context(insecure=True), --insecure)",
        reason,
    )


def _tls_for(where: Address, ssl: ssl_module.SSLContext | None, *, client: bool) -> ssl_module.SSLContext | None:
    """The context for ``where``: ``ssl``, or the system's default one for a TLS client.

    A server given several addresses uses ``ssl`` for its TLS ones only.
    """
    if where.scheme not in TLS_SCHEMES:
        if ssl is not None and client:
            raise ValueError(f"ssl= is for tls:// and wss:// addresses, not {where.url}")
        return None
    if ssl is not None:
        return ssl
    if client:
        return ssl_module.create_default_context()
    raise ValueError(f"serving {where.url} needs ssl=, a server context with its certificate: ssl=gl.tls_server_context('cert.pem', 'key.pem')")


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
    ``ssl``: for tls:// and wss://, the context that verifies the server (default:
    the system's trusted CAs; ``tls_client_context`` makes one for a test CA). A
    certificate that fails raises ``CertificateError``. Other keyword options go to ``Peer``.
    In the browser edition only ws:// and wss:// work, through the browser's own
    WebSocket (which sends the page's Origin and verifies wss:// itself).
    """
    where = parse_address(address)
    if where.scheme not in ("ws", "wss"):
        require_network(f"gl.connect({address!r})")
    context = None if edition.IN_BROWSER else _tls_for(where, ssl, client=True)
    options.setdefault("name", where.url)
    peer = Peer(handlers, **options)
    try:
        if edition.IN_BROWSER:
            transport = await open_browser_websocket(where.url)
        elif where.scheme in ("ws", "wss"):
            transport = await open_websocket(where.url, origin=origin, max_message_size=peer.max_payload_size + 64, ssl=context)
        elif where.scheme == "unix":
            transport = await open_unix(where.path)
        else:
            transport = await open_tcp(where.host, where.port, ssl=context)
    except ssl_module.SSLCertVerificationError as error:
        raise certificate_error(where.url, error) from None
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
        self._socket_files: list[str] = []
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
        """Bind one more address (tcp://, tls://, ws://, wss:// or unix://); return it with its real port.

        tls:// and wss:// need ``ssl``, a server context (``tls_server_context``).
        """
        require_network(f"gl.serve({address!r})")
        where = parse_address(address)
        ssl = _tls_for(where, ssl, client=False)
        if where.scheme == "unix":
            path = os.path.abspath(where.path)
            self._listeners.append(await serve_unix(self._accept, path))
            self._socket_files.append(path)
            url = f"unix://{path}"
            self.addresses.append(url)
            return url
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
        for path in self._socket_files:
            # asyncio leaves a UNIX socket's file behind (before Python 3.13).
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.unlink(path)
            except OSError:
                pass
        self._socket_files.clear()

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
    """Serve ``handlers`` on one or more addresses: ``await gl.serve("tcp://127.0.0.1:0", gl.demo.handlers())``.

    ``ssl`` (a server context, see ``tls_server_context``) serves the tls:// and
    wss:// addresses among them; tcp://, ws:// and unix:// ones stay plain.
    """
    server = Server(handlers if handlers is not None else Handlers(), options)
    for one in [address] if isinstance(address, str) else address:
        await server.listen(one, ssl=ssl, allow_origins=allow_origins)
    return server

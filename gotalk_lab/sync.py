"""Blocking helpers: use a peer from plain code in a notebook cell or a script.

``peer.sync.request(...)`` blocks until the answer. Inside a notebook (or any
code already running on the peer's event loop) it re-enters that loop with
nest-asyncio2; from other threads it hands the work to the loop's thread; with no
loop running it runs the loop until done. In the browser edition (Pyodide), where
nest-asyncio cannot patch the page's loop, ``pyodide.ffi.run_sync`` does the waiting.
``pipe``/``connect``/``serve`` here make peers for scripts: they live on a background
loop thread so that they keep answering between calls. No protocol logic lives here.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import threading
import warnings
from typing import Any, Awaitable, TypeVar

from .checker import check as async_check
from . import edition
from .peer import PEER_TIMEOUT, register_view

T = TypeVar("T")

_background: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()


def _allow_nesting(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop`` re-entrant with nest-asyncio2 (which patches its class: once is enough).

    nest-asyncio2, the maintained fork that ipykernel 7 itself depends on, is needed
    rather than the original nest-asyncio: ipykernel 7 runs every shell message in one
    shared ``contextvars.Context``, and nest-asyncio 1.6 tries to run the next queued
    message inside it while a cell is still in it. That fails with "cannot enter
    context" on stderr and the front end's message (kernel_info, a widget update) is
    never answered. The fork puts such callbacks back until the nested run is over.
    Imported here, on first need only: scripts never nest and Pyodide may not have it.
    """
    if hasattr(type(loop), "_nest_asyncio2") and hasattr(asyncio, "_nest_asyncio2"):
        return
    try:
        import nest_asyncio2
    except ImportError as error:
        raise RuntimeError(
            "a blocking call (peer.sync...) inside a running event loop, as in a notebook cell, "
            "needs the nest-asyncio2 package: pip install nest-asyncio2 (or use `await peer.request(...)`)"
        ) from error
    # Another library may have applied the original nest-asyncio first; nest-asyncio2
    # would then keep that loop patch (with the bug above). Both replace the same loop
    # methods, so clearing the old marker lets the fork patch over it. Its module-level
    # patch (pure-Python tasks) is the same in both, hence its warning is silenced.
    for cls in type(loop).__mro__:
        if "_nest_patched" in vars(cls) and "_nest_asyncio2" not in vars(cls):
            delattr(cls, "_nest_patched")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="asyncio is already patched by nest_asyncio")
        nest_asyncio2.apply(loop)


def run(awaitable: Awaitable[T], loop: asyncio.AbstractEventLoop | None = None, timeout: float | None = None) -> T:
    """Run ``awaitable`` on ``loop`` (default: the current or background loop) and return its result."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    loop = loop or running or background_loop()
    if timeout is not None:
        awaitable = asyncio.wait_for(awaitable, timeout)
    if loop is running:
        if edition.IN_BROWSER:
            return _run_in_browser(awaitable)
        # A notebook cell runs inside the kernel's loop: re-enter it.
        _allow_nesting(loop)
        return loop.run_until_complete(awaitable)
    if loop.is_running():
        return asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), loop).result()
    return loop.run_until_complete(awaitable)


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _run_in_browser(awaitable: Awaitable[T]) -> T:
    """The browser edition's blocking call: Pyodide runs the coroutine to its end on the page's loop.

    nest-asyncio cannot patch Pyodide's loop; instead ``pyodide.ffi.run_sync`` pauses
    this Python code until the coroutine is done, which needs the browser's
    JavaScript Promise Integration (``can_run_sync()``). Without it, say so.
    """
    ffi = importlib.import_module("pyodide.ffi")
    if not ffi.can_run_sync():
        raise RuntimeError(
            "a blocking call (peer.sync..., gl.check.sync, gl.tap.sync) cannot wait in this browser: "
            "it cannot pause Python here; write `await` instead, as in `await peer.request(...)`"
        )
    return ffi.run_sync(_as_coroutine(awaitable))


def background_loop() -> asyncio.AbstractEventLoop:
    """An event loop running in a daemon thread, shared by the blocking helpers."""
    global _background
    with _background_lock:
        if _background is None or _background.is_closed():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def main() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            threading.Thread(target=main, name="gotalk-lab-loop", daemon=True).start()
            ready.wait()
            _background = loop
            atexit.register(_stop_background, loop)
        return _background


def _stop_background(loop: asyncio.AbstractEventLoop) -> None:
    """At exit: close every connection cleanly so the other side sees an orderly close."""

    async def close_all() -> None:
        for closer in list(_open_objects):
            try:
                await asyncio.wait_for(closer.close(), 2)
            except Exception:
                pass

    if loop.is_running():
        try:
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(5)
        except Exception:
            pass
        loop.call_soon_threadsafe(loop.stop)


_open_objects: list = []


def _on_loop(loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    try:
        return loop or asyncio.get_running_loop()
    except RuntimeError:
        return background_loop()


class SyncPeer:
    """Blocking twins of a ``Peer``'s request methods (``peer.sync``)."""

    def __init__(self, peer) -> None:
        self.peer = peer

    def _run(self, awaitable, timeout: float | None = None):
        return run(awaitable, self.peer.loop, timeout)

    # ``timeout`` as the peer's own methods take it: the peer's request_timeout
    # unless given, None to wait as long as it takes.
    def request(self, operation: str, value: Any = None, *, timeout: float | None | object = PEER_TIMEOUT) -> Any:
        return self._run(self.peer.request(operation, value, timeout=timeout))

    def request_bytes(self, operation: str, payload: bytes | str = b"", *, timeout: float | None | object = PEER_TIMEOUT) -> bytes:
        return self._run(self.peer.request_bytes(operation, payload, timeout=timeout))

    def stream(self, operation: str, parts, *, timeout: float | None = None) -> list[bytes]:
        """Send every part of ``parts``, end the stream, return every result part."""

        async def exchange() -> list[bytes]:
            async with self.peer.stream_request(operation) as stream:
                for part in parts:
                    await stream.send(part)
                await stream.end()
                return await stream.collect()

        return self._run(exchange(), timeout)

    def notify(self, name: str, value: Any = None) -> None:
        self._run(self.peer.notify(name, value))

    def notify_bytes(self, name: str, payload: bytes | str = b"") -> None:
        self._run(self.peer.notify_bytes(name, payload))

    def send_raw(self, data: bytes) -> None:
        self._run(self.peer.send_raw(data))

    def close(self) -> None:
        self._run(self.peer.close())


def pipe(*args, loop: asyncio.AbstractEventLoop | None = None, **options):
    """Two connected in-memory peers, made without ``await``."""
    from .connect import pipe as async_pipe

    return run(async_pipe(*args, **options), _on_loop(loop))


def connect(address: str, *args, loop: asyncio.AbstractEventLoop | None = None, **options):
    """A connected peer, made without ``await``; closed at exit."""
    from .connect import connect as async_connect

    peer = run(async_connect(address, *args, **options), _on_loop(loop))
    _open_objects.append(peer)
    return peer


def serve(address, *args, loop: asyncio.AbstractEventLoop | None = None, **options):
    """A listening server, made without ``await``; it keeps serving in the background."""
    from .connect import serve as async_serve

    server = run(async_serve(address, *args, **options), _on_loop(loop))
    _open_objects.append(server)
    return server


# ``peer.sync`` is this class: the peer cannot import this module (it is built on the peer).
register_view("sync", SyncPeer)


def check(url: str, *, loop: asyncio.AbstractEventLoop | None = None, **options):
    """``gotalk_lab.check`` without ``await``: run the conformance checker, return its report."""
    return run(async_check(url, **options), _on_loop(loop))

"""A view of a ``Connection``'s state: where it is, what it may become, and its tables.

``connection_summary`` is the pure part (plain data, tested without a kernel);
``ConnectionView`` shows it as an HTML widget that redraws on ``update()``, or by
itself as frames pass when made with ``ConnectionView.of(peer)``. Its static HTML
fallback is the same table, for nbviewer and GitHub. It only reads the
connection; it never writes to it.
"""

from __future__ import annotations

import asyncio
from html import escape
from typing import Any, Callable

import ipywidgets

from ..annotate import show_bytes
from ..connection import REQUEST_TRANSITIONS, TRANSITIONS, Connection
from ..html import with_html_fallback


def _shown_id(request_id: bytes) -> str:
    return show_bytes(request_id)


def connection_summary(connection: Connection) -> dict[str, Any]:
    """The state of ``connection`` as plain values: its state, the next states allowed, its tables."""
    return {
        "state": connection.state.value,
        "may_become": sorted(state.value for state in TRANSITIONS[connection.state]),
        "close_reason": connection.close_reason,
        "requests": [
            {
                "id": _shown_id(request.request_id),
                "operation": request.operation,
                "kind": "stream" if request.stream else "single",
                "state": request.state.value,
                "may_become": sorted(state.value for state in REQUEST_TRANSITIONS[request.state]),
                "retries": request.attempts,
                "ended": request.ended if request.stream else None,
            }
            for request in connection.requests.values()
        ],
        "serving": [_shown_id(request_id) for request_id in connection.serving],
        "inbound_streams": [_shown_id(request_id) for request_id in connection.inbound_streams],
        "refused_streams": sorted(_shown_id(request_id) for request_id in connection.refused_streams),
        "next_id": connection.next_id,
    }


def connection_html(connection: Connection) -> str:
    """The summary as one self-contained HTML block (no script)."""
    summary = connection_summary(connection)
    head = (
        f"<b>Connection</b> <code>{escape(summary['state'])}</code>"
        f" → may become: {escape(', '.join(summary['may_become']) or 'nothing (final)')}"
    )
    if summary["close_reason"]:
        head += f"<br><i>{escape(summary['close_reason'])}</i>"
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(str(value))}</td>"
            for value in (
                row["id"],
                row["operation"],
                row["kind"],
                row["state"],
                ", ".join(row["may_become"]),
                row["retries"],
                "" if row["ended"] is None else ("ended" if row["ended"] else "open"),
            )
        )
        + "</tr>"
        for row in summary["requests"]
    )
    table = (
        "<table class='gl-connection'><tr><th>ID</th><th>operation</th><th>kind</th><th>state</th>"
        f"<th>may become</th><th>retries</th><th>request stream</th></tr>{rows}</table>"
        if rows
        else "<p>No request of ours in flight.</p>"
    )
    theirs = (
        f"<p>Theirs being served: {escape(', '.join(summary['serving']) or 'none')};"
        f" their streams: {escape(', '.join(summary['inbound_streams']) or 'none')};"
        f" refused streams: {escape(', '.join(summary['refused_streams']) or 'none')}.</p>"
    )
    return f"<div class='gl-connection-view'><p>{head}</p>{table}{theirs}</div>"


#: Seconds between a live view's redraws at most (``ConnectionView.of``).
REDRAW_INTERVAL = 0.1


class ConnectionView(ipywidgets.HTML):
    """The state of one ``Connection``; call ``update()`` after driving it by hand."""

    def __init__(self, connection: Connection, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.connection = connection
        self._unsubscribe: Callable[[], None] | None = None
        self._redraw: asyncio.TimerHandle | None = None
        self.update()

    @classmethod
    def of(cls, peer: Any) -> "ConnectionView":
        """A view of ``peer.connection`` that redraws as frames pass (the peer's trace).

        At most ``REDRAW_INTERVAL`` apart on an event loop, however fast frames
        come: the view watches the trace (``Trace.watch``), it does not hear each frame.
        """
        view = cls(peer.connection)
        trace = peer.trace
        if trace is None:
            return view

        def redraw() -> None:
            view._redraw = None
            trace.rearm(wake)  # before reading: a frame from now on wakes it again
            view.update()

        def wake() -> bool:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # frames added by hand, no loop: redraw now, and at every frame
                view.update()
                return True
            if view._redraw is None:
                view._redraw = loop.call_later(REDRAW_INTERVAL, redraw)
            return False

        view._unsubscribe = trace.watch(wake)
        return view

    def update(self) -> "ConnectionView":
        self.value = connection_html(self.connection)
        return self

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._redraw is not None:
            self._redraw.cancel()
            self._redraw = None
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), connection_html(self.connection))

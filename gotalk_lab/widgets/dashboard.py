"""``lab(peer_or_trace)``: the conversation at a glance and any frame in detail.

A ``Dashboard`` is a VBox: the live ``Timeline`` on top, optionally a ``Composer``
writing to the peer, and a ``FrameView`` with its ``FieldTable`` side by side below
(the table wraps under the view when the output is too narrow for both); clicking an
arrow in the timeline shows that frame's bytes. What the Composer sends shows on the
timeline, broken bytes too (see ``unframed``). It only wires existing widgets
together; it never touches a connection itself.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..html import trace_html
from ..trace import Trace
from .composer import Composer
from .frames import FieldTable, FrameView
from .timeline import Timeline, with_html_fallback

#: The width a FieldTable's five columns need at their narrowest (fieldtable.css: the
#: bytes column 24ch, value at least 16ch, meaning at least 22em, with padding).
TABLE_MIN_WIDTH = "840px"


class Dashboard(widgets.VBox):
    """The timeline of ``trace`` over a frame view and field table that follow its clicks.

    ``composer``: a ``Composer`` shown between the timeline and the frame view (``lab``
    makes one for its peer with ``composer=True``).
    """

    def __init__(
        self,
        trace: Trace,
        *,
        title: str | None = None,
        lanes: tuple[str, str] | None = None,
        composer: Composer | None = None,
        **options: Any,
    ) -> None:
        self.trace = trace
        self.composer = composer
        self.frame_view = FrameView()
        self.field_table = FieldTable(self.frame_view)
        self.timeline = Timeline(trace, title=title, lanes=lanes, frame_view=self.frame_view, **options)
        # The view is as wide as its dump (min-content: the legend and payload wrap under
        # it); the table takes the rest of the line when that leaves it the width its
        # columns need, and wraps below the view otherwise. Squeezed side by side, both
        # would scroll sideways and hide the ASCII column and the meanings.
        self.frame_view.layout = widgets.Layout(flex="0 1 auto", width="min-content", max_width="100%", margin="0 12px 0 0")
        self.field_table.layout = widgets.Layout(flex=f"1 1 {TABLE_MIN_WIDTH}", min_width="0")
        below = widgets.HBox(
            [self.frame_view, self.field_table],
            layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start", width="100%"),
        )
        children = [self.timeline, below] if composer is None else [self.timeline, composer, below]
        super().__init__(children, layout=widgets.Layout(width="100%"))

    def close(self) -> None:
        self.timeline.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any):
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), trace_html(self.trace))


def lab(peer_or_trace: Any, **options: Any) -> Dashboard:
    """A dashboard for a peer (``lab(a)``), a tap's or a loaded ``Trace``; returns the widget.

    ``options`` go to the ``Timeline`` (``title``, ``batch_interval``, ``lanes``), except
    ``composer=True``, which adds a ``Composer`` that sends to the peer: its frames, and
    bytes that are no frame, show on this dashboard's timeline.
    """
    want_composer = options.pop("composer", False)
    if isinstance(peer_or_trace, Trace):
        if want_composer:
            raise TypeError("lab(trace, composer=True): a Composer needs a peer to send with; pass the peer")
        return Dashboard(peer_or_trace, **options)
    trace = getattr(peer_or_trace, "trace", None)
    if not isinstance(trace, Trace):
        raise TypeError(f"lab() shows a peer or a Trace, not {type(peer_or_trace).__name__} (a peer made with trace=False has none)")
    name = getattr(peer_or_trace, "name", None)
    if name:
        options.setdefault("title", f"peer {name}")
        this, other = trace.sides
        options.setdefault("lanes", (f"{this} ({name})", other))
    if want_composer:
        options["composer"] = Composer(peer=peer_or_trace)
    return Dashboard(trace, **options)

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
#: bytes column 24ch, value at least 12ch, meaning at least 15em, with padding).
TABLE_MIN_WIDTH = "720px"


def view_and_table(frame_view: FrameView, field_table: FieldTable) -> widgets.HBox:
    """A frame view and its field table on one line, the table wrapping below when it does not fit.

    The view is as wide as its dump (min-content: the legend and payload wrap under it);
    the table takes the rest of the line when that leaves it the width its columns need,
    and wraps below the view otherwise. Squeezed side by side, both would scroll sideways
    and hide the ASCII column and the meanings.
    """
    frame_view.layout = widgets.Layout(flex="0 1 auto", width="min-content", max_width="100%", margin="0 12px 0 0")
    field_table.layout = widgets.Layout(flex=f"1 1 {TABLE_MIN_WIDTH}", min_width="0")
    return widgets.HBox([frame_view, field_table], layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"))


class Dashboard(widgets.VBox):
    """The timeline of ``trace`` over a frame view and field table that follow its clicks.

    ``composer``: a ``Composer`` shown between the timeline and the frame view (``lab``
    makes one for its peer with ``composer=True``). ``projector=True`` (or setting
    ``dashboard.projector``) is for a room: 18 px text and up, full contrast, and the
    frame view beside the timeline, 8 bytes a row, so that at 1280×720 the clicked
    frame's bytes show without scrolling; the field table goes below.
    """

    def __init__(
        self,
        trace: Trace,
        *,
        title: str | None = None,
        lanes: tuple[str, str] | None = None,
        composer: Composer | None = None,
        projector: bool = False,
        **options: Any,
    ) -> None:
        self.trace = trace
        self.composer = composer
        waiting = "click an arrow in the timeline: that frame's bytes show here"
        self.frame_view = FrameView(title="")
        self.frame_view.empty_text = waiting
        self.field_table = FieldTable(self.frame_view)
        self.field_table.empty_text = "click an arrow in the timeline: that frame's fields show here"
        self.timeline = Timeline(trace, title=title, lanes=lanes, frame_view=self.frame_view, **options)
        self._below = view_and_table(self.frame_view, self.field_table)
        self._frame_view_layout = self.frame_view.layout
        self._beside = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"))
        super().__init__(layout=widgets.Layout(width="100%"))
        self._projector = False
        self.projector = projector

    @property
    def projector(self) -> bool:
        """Projector mode, for a room (see the class); set it to switch."""
        return self._projector

    @projector.setter
    def projector(self, on: bool) -> None:
        self._projector = on = bool(on)
        for view in (self.timeline, self.frame_view, self.field_table):
            view.projector = on
        middle = [] if self.composer is None else [self.composer]
        if on:
            self.add_class("gl-projecting")
            # Side by side where both fit (a 1280 px room screen), the bytes below where not.
            self.timeline.layout = widgets.Layout(flex="1 1 560px", min_width="0", margin="0 12px 0 0")
            self.frame_view.layout = widgets.Layout(flex="0 0 auto", width="min-content", max_width="100%")
            self._beside.children = [self.timeline, self.frame_view]
            self.children = [self._beside, *middle, self.field_table]
        else:
            self.remove_class("gl-projecting")
            self.timeline.layout = widgets.Layout()
            self.frame_view.layout = self._frame_view_layout
            self._below.children = [self.frame_view, self.field_table]
            self.children = [self.timeline, *middle, self._below]

    def close(self) -> None:
        self.timeline.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any):
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), trace_html(self.trace))


def lab(peer_or_trace: Any, **options: Any) -> Dashboard:
    """A dashboard for a peer (``lab(a)``), a tap's or a loaded ``Trace``; returns the widget.

    ``options`` go to the ``Timeline`` (``title``, ``batch_interval``, ``lanes``) and
    ``projector=True`` to the ``Dashboard`` (a room's big text), except
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

"""Step through a recorded conversation, frame by frame, as a tutorial would.

``Player`` is an ipywidgets composition: buttons, a slider and a ``Play`` with a
speed choice drive one step number; the step moves a ``Timeline`` cursor (the
frames up to it, the current one marked) and shows the current frame in a
``FrameView`` and ``FieldTable``. It plays a snapshot, never a live trace, and
never touches a connection.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import traitlets

from ..html import trace_html
from ..palette import type_style
from ..trace import OUT, Trace
from .frames import FieldTable, FrameView, badge_letters
from .timeline import Timeline, frame_label, type_of, with_html_fallback

#: Playback speeds: label -> milliseconds between steps.
SPEEDS = {
    "1 frame/s": 1000,
    "2 frames/s": 500,
    "4 frames/s": 250,
    "10 frames/s": 100,
    "25 frames/s": 40,
}
DEFAULT_SPEED = "2 frames/s"


def snapshot(trace: Trace) -> Trace:
    """A copy of ``trace`` as it is now, which later frames of the original do not change."""
    copy = Trace(cap=None, sides=trace.sides)
    copy.started_wall = trace.started_wall
    for event in list(trace.events):
        copy.record(event.direction, event.header, event.message, at=event.time)
    copy.dropped = trace.dropped
    return copy


def _trace_of(source: Any) -> Trace:
    if isinstance(source, (str, Path)):
        return Trace.load(source, cap=None)
    if isinstance(source, Trace):
        return snapshot(source)
    trace = getattr(source, "trace", None)  # a Peer, or anything else that records one
    if isinstance(trace, Trace):
        return snapshot(trace)
    raise TypeError(f"Player plays a Trace, a saved trace's path or a peer, not {type(source).__name__}")


def position_html(event, events: list, sides: tuple[str, str] = ("this side", "other side")) -> str:
    """The line above the timeline: which frame of which, when, which way, what.

    Every count is an event index, as the timeline's "#" column, the frame view's
    title and the trace number frames (from 0, and past dropped frames): "#3 of
    #0–#11", never a 1-based position next to a 0-based index.
    """
    first, last = events[0].index, events[-1].index
    writer, reader = sides if event.direction == OUT else sides[::-1]
    type_char = type_of(event.message)
    style = type_style(type_char)
    badge = (
        f'<b style="background:{style.colour};color:{style.on};border-radius:8px;padding:0 5px">'
        f"{escape(style.glyph)} {escape(badge_letters(type_char))}</b> "
        if style
        else ""
    )
    return (
        f"<b>frame #{event.index}</b> of #{first}–#{last} ({len(events)} frames) · at {event.time * 1000:.3f} ms · "
        f"{escape(writer)} → {escape(reader)} · {badge}<code>{escape(frame_label(event))}</code>"
    )


class Player(widgets.VBox):
    """``Player(trace_or_path)``: step through a recorded trace.

    Takes a ``Trace`` (copied as it is now), a path written by ``Trace.save``, or
    a peer (its trace, copied). ``player.step`` (0-based position in the trace)
    and ``player.go(i)`` drive it from code; ``first()``, ``previous()``,
    ``next()`` and ``last()`` do what the buttons do. Clicking a frame in the
    timeline jumps there.
    """

    def __init__(self, trace_or_path: Any, *, title: str | None = None, speed: str = DEFAULT_SPEED) -> None:
        self.trace = _trace_of(trace_or_path)
        self.events = list(self.trace.events)
        last = max(len(self.events) - 1, 0)
        self.frame_view = FrameView()
        self.field_table = FieldTable(self.frame_view)
        # No detail panel of its own: the frame view below already follows the step.
        self.timeline = Timeline(self.trace, title=title or "Player", detail=False)
        self.slider = widgets.IntSlider(
            value=0, min=0, max=last, description="frame", readout=False, continuous_update=True,
            layout=widgets.Layout(flex="1 1 auto"),
        )
        self.play = widgets.Play(value=0, min=0, max=last, step=1, interval=SPEEDS[speed], description="play")
        self.speed = widgets.Dropdown(options=SPEEDS, value=SPEEDS[speed], layout=widgets.Layout(width="120px"))
        # In the browser: play ticks move the slider without a kernel round trip each.
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        traitlets.dlink((self.speed, "value"), (self.play, "interval"))
        # Font Awesome icons, which JupyterLab ships (unlike ⏮ and ⏭, missing from many fonts).
        self.buttons = {
            name: widgets.Button(icon=icon, tooltip=tip, layout=widgets.Layout(width="40px"))
            for name, icon, tip in (
                ("first", "fast-backward", "first frame"),
                ("previous", "step-backward", "previous frame"),
                ("next", "step-forward", "next frame"),
                ("last", "fast-forward", "last frame"),
            )
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _button, name=name: getattr(self, name)())
        self.position = widgets.HTML(layout=widgets.Layout(width="100%"))
        controls = widgets.HBox(
            [self.buttons["first"], self.buttons["previous"], self.play, self.buttons["next"],
             self.buttons["last"], self.slider, self.speed],
            layout=widgets.Layout(align_items="center", width="100%"),
        )
        frames = widgets.HBox(
            [self.frame_view, self.field_table],
            layout=widgets.Layout(align_items="flex-start", width="100%"),
        )
        self.frame_view.layout = widgets.Layout(flex="1 1 45%", min_width="0")
        self.field_table.layout = widgets.Layout(flex="1 1 55%", min_width="0")
        super().__init__([controls, self.position, self.timeline, frames], layout=widgets.Layout(width="100%"))
        self.slider.observe(self._on_slider, "value")
        self.timeline.observe(self._on_timeline_click, "selected")
        for button in self.buttons.values():
            button.disabled = not self.events
        self._show(0)

    # -- driving it ---------------------------------------------------------------------

    @property
    def step(self) -> int:
        """The position of the current frame in the trace (0 = first)."""
        return self.slider.value

    @step.setter
    def step(self, position: int) -> None:
        self.go(position)

    def go(self, position: int) -> "Player":
        """Move to frame ``position`` (clamped to the trace); negative counts from the end."""
        if position < 0:
            position += len(self.events)
        self.slider.value = min(max(position, 0), self.slider.max)  # observed: _show
        return self

    def first(self) -> "Player":
        return self.go(0)

    def previous(self) -> "Player":
        return self.go(max(self.step - 1, 0))

    def next(self) -> "Player":
        return self.go(self.step + 1)

    def last(self) -> "Player":
        return self.go(len(self.events) - 1)

    @property
    def current(self):
        """The TraceEvent at the current step (None for an empty trace)."""
        return self.events[self.step] if self.events else None

    # -- following the step -------------------------------------------------------------------

    def _on_slider(self, change: dict) -> None:
        self._show(change["new"])

    def _on_timeline_click(self, change: dict) -> None:
        if change["new"] < 0 or not self.events:
            return
        position = change["new"] - self.events[0].index  # the snapshot's indices are consecutive
        if 0 <= position < len(self.events) and position != self.step:
            self.go(position)

    def _show(self, position: int) -> None:
        if not self.events:
            self.position.value = "<i>this trace has no frames</i>"
            self.timeline.cursor = -1
            return
        event = self.events[position]
        self.timeline.cursor = event.index
        self.frame_view.show(event)
        self.position.value = position_html(event, self.events, self.trace.sides)
        self.buttons["first"].disabled = self.buttons["previous"].disabled = position == 0
        self.buttons["last"].disabled = self.buttons["next"].disabled = position == len(self.events) - 1

    def _repr_mimebundle_(self, **kwargs: Any):
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), trace_html(self.trace))

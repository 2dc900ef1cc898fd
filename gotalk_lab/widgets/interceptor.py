"""The Interceptor: a tap's held frames, with Forward / Edit / Drop / Delay / Inject.

A composition of ipywidgets around a ``Tap`` the caller made: the held queue, a
``FrameView`` and ``FieldTable`` of the chosen frame, an editor for its payload,
and the newest connection's live ``Timeline`` (changed frames carry a badge).
It opens no connection; the buttons only call the tap's public methods.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets

from ..trace import OUT
from .frames import FieldTable, FrameView
from .timeline import Timeline, frame_label, type_of


def held_label(held: Any) -> str:
    """One line of the held queue: connection, arrow, type letter and label."""
    arrow = "client -> upstream" if held.direction == OUT else "client <- upstream"
    return f"[{held.connection}] {arrow} {type_of(held.message)} {frame_label(_AsEvent(held))}"


class _AsEvent:
    """What ``frame_label`` reads of an event, for a frame not in any trace yet."""

    def __init__(self, held: Any) -> None:
        self.message = held.message
        self.action = None
        self.original = None


class Interceptor(ipywidgets.VBox):
    """``Interceptor(tap)``: decide about held frames; watch what both sides did."""

    def __init__(self, tap: Any, **kwargs: Any) -> None:
        self.tap = tap
        self.queue = ipywidgets.Select(options=[], rows=6, description="held", layout=ipywidgets.Layout(width="calc(100% - 4px)"))
        self.payload = ipywidgets.Text(description="payload", placeholder="new payload (text)")
        self.raw = ipywidgets.Text(description="raw hex", placeholder="bytes sent as given")
        self.delay_ms = ipywidgets.BoundedIntText(value=300, min=0, max=600_000, description="delay ms")
        self.inject_side = ipywidgets.Dropdown(options=["client", "upstream"], description="as if from")
        self.inject_hex = ipywidgets.Text(description="inject hex", placeholder="a whole frame, in hex")
        self.status = ipywidgets.HTML("")
        self.buttons = {name: ipywidgets.Button(description=name) for name in ("Forward", "Edit", "Edit raw", "Drop", "Delay", "Duplicate", "Inject")}
        for name, button in self.buttons.items():
            button.on_click(lambda _button, name=name: self.press(name))
        self.frame_view = FrameView()
        self.field_table = FieldTable(self.frame_view)
        self.timeline_box = ipywidgets.VBox([])
        self._timeline_for: int | None = None
        self.queue.observe(self._on_choose, names="value")
        super().__init__(
            [
                self.queue,
                ipywidgets.HBox([self.buttons[n] for n in ("Forward", "Drop", "Duplicate")] + [self.delay_ms, self.buttons["Delay"]]),
                ipywidgets.HBox([self.payload, self.buttons["Edit"], self.raw, self.buttons["Edit raw"]]),
                ipywidgets.HBox([self.inject_side, self.inject_hex, self.buttons["Inject"]]),
                self.status,
                self.frame_view,
                self.field_table,
                self.timeline_box,
            ],
            **kwargs,
        )
        tap.on_held(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Show the tap's held queue as it is now (and the newest connection's timeline)."""
        held = list(self.tap.held)
        self.queue.options = [(held_label(frame), index) for index, frame in enumerate(held)]
        self.queue.value = 0 if held else None
        self._on_choose()
        if self.tap.connections and self._timeline_for != self.tap.connections[-1].number:
            connection = self.tap.connections[-1]
            self._timeline_for = connection.number
            self.timeline_box.children = [Timeline(connection.trace, title=f"connection {connection.number} through the tap")]

    @property
    def chosen(self) -> Any:
        index = self.queue.value
        held = self.tap.held
        return held[index] if index is not None and index < len(held) else None

    def _on_choose(self, _change: Any = None) -> None:
        frame = self.chosen
        self.frame_view.show(frame.raw if frame is not None else None, expect_version=False)

    def press(self, name: str) -> None:
        """What a button does; callable from tests and scripts as from a click."""
        frame = self.chosen
        try:
            if name == "Inject":
                self.tap.inject(self.inject_side.value, bytes.fromhex(self.inject_hex.value))
                self.status.value = f"injected as if from the {self.inject_side.value}"
                return
            if frame is None:
                self.status.value = "nothing is held"
                return
            if name == "Forward":
                frame.forward()
            elif name == "Drop":
                frame.drop()
            elif name == "Duplicate":
                frame.duplicate()
            elif name == "Delay":
                frame.delay(self.delay_ms.value / 1000)
            elif name == "Edit":
                frame.edit(payload=self.payload.value)
            elif name == "Edit raw":
                frame.edit_raw(bytes.fromhex(self.raw.value))
            self.status.value = f"{name.lower()}: done"
        except Exception as error:  # an edit that cannot be encoded, bad hex: say why, keep the frame
            self.status.value = f"<b>{name}</b> refused: {html.escape(str(error))}"
        self.refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            rows = "".join(f"<li><code>{html.escape(held_label(f))}</code></li>" for f in self.tap.held) or "<li>nothing held</li>"
            bundle["text/html"] = f"<div><b>Interceptor</b><ul>{rows}</ul></div>"
        return bundle

"""The malformed-message lab as a widget: pick a broken message, see cause and effect.

``MalformedLab(await malformed.run_cases())`` shows, for the chosen case: what is
wrong, the sent bytes in a ``FrameView`` and ``FieldTable`` (the bad field marked),
a slider that feeds the receiver the bytes one at a time with its state after each
("waiting for 6 more bytes", or the located error), and what this kit and the Go
reference peer answer. It shows what it is given; ``gotalk_lab.malformed`` runs
the cases.
"""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as widgets

from ..malformed import Case, answer_words, hint, reading
from ..palette import TEXT
from .dashboard import view_and_table
from .frames import FieldTable, FrameView


class MalformedLab(widgets.VBox):
    """``MalformedLab(results)``: ``results`` as ``await gotalk_lab.malformed.run_cases()`` gives them."""

    def __init__(self, results: list[tuple[Case, Any]]) -> None:
        if not results:
            raise ValueError("MalformedLab needs at least one case: pass await gotalk_lab.malformed.run_cases()")
        self.results = list(results)
        self.picker = widgets.Dropdown(
            options=[(case.title, i) for i, (case, _answer) in enumerate(self.results)],
            value=0, description="case", layout=widgets.Layout(width="auto"),
        )
        self.what = widgets.HTML()
        self.frame_view = FrameView()
        self.field_table = FieldTable(self.frame_view)
        self.received = widgets.IntSlider(
            value=0, min=0, max=1, description="bytes read", continuous_update=True,
            layout=widgets.Layout(width="calc(100% - 4px)"), style={"description_width": "initial"},
        )
        self.state = widgets.HTML()
        self.answers = widgets.HTML()
        self.picker.observe(lambda change: self.pick(change["new"]), "value")
        self.received.observe(lambda change: self._read(change["new"]), "value")
        super().__init__([
            self.picker, self.what,
            view_and_table(self.frame_view, self.field_table),
            widgets.HTML("<b>The receiver, byte by byte</b> (move the slider: it reads the stream up to there)"),
            self.received, self.state, self.answers,
        ], layout=widgets.Layout(width="100%"))
        self.add_class("gl-malformed-lab")
        self.pick(0)

    @property
    def case(self) -> Case:
        return self.results[self.picker.value][0]

    def pick(self, index: int) -> "MalformedLab":
        """Show case ``index`` (what the dropdown does)."""
        if self.picker.value != index:
            self.picker.value = index  # observed: comes back here
            return self
        case, kit = self.results[index]
        likely = hint(case)
        self.what.value = (
            f"<p><b>What is wrong:</b> {escape(case.wrong)}"
            + (f"<br><b>The classic mistake:</b> {escape(likely)}.</p>" if likely else "</p>")
        )
        is_version = case.key == "version"
        self.frame_view.show(case.data, expect_version=is_version, title=f"sent {'as the version' if is_version else 'after the version 01'}")
        with self.received.hold_trait_notifications():
            self.received.max = len(case.stream)
            self.received.value = len(case.stream)
        self._read(len(case.stream))
        go = (
            f"{escape(answer_words(case.go.written, case.go.closes))} <small>(transcript {escape(case.go.transcript)})</small>"
            if case.go else escape(case.go_note)
        )
        self.answers.value = (
            '<table style="border-collapse:collapse;margin-top:4px">'
            '<tr><th style="text-align:left;padding:2px 12px 2px 0">receiver</th><th style="text-align:left">answers</th></tr>'
            f'<tr><td style="padding:2px 12px 2px 0">this kit (a live peer, just now)</td><td>{escape(answer_words(kit.written, kit.closes))}</td></tr>'
            f'<tr><td style="padding:2px 12px 2px 0">the Go reference peer</td><td>{go}</td></tr>'
            "</table>"
        )
        return self

    def _read(self, received: int) -> None:
        case = self.case
        state = reading(case, received)
        offsets = (
            "Offsets count from the first byte of the stream the receiver reads; the version "
            f"<code>01</code> is bytes 0 and 1, so the message starts at byte {case.base}."
            if case.base else "Offsets count from the first byte of the stream: the version is bytes 0 and 1."
        )
        colour = TEXT["bad"] if state.error is not None else (TEXT["warn"] if state.held else TEXT["ink"])
        self.state.value = (
            f'<div style="color:{colour};font-weight:600">after {received} of {len(case.stream)} bytes: '
            f"{escape(state.describe(case.base))}</div><div><small>{offsets}</small></div>"
        )

"""The conformance report as a widget: a case x verdict list; click a case to see its wire log.

Composition of existing widgets, no front-end file of its own: an ipywidgets
``Select`` of the cases, the selected case's requirement, verdict and raw wire log as
HTML, and below them a ``Dashboard`` (timeline, frame view, field table) of the
case's frames (``checker.frames.case_trace``). It never opens a connection; the
report is data. Static fallback: the report's HTML table with its wire logs.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ..checker.frames import case_trace
from ..checker.report import REPORT_CSS, Report, verdict_badge, wire_log_html
from .dashboard import Dashboard
from .timeline import with_html_fallback

#: Width of the verdict column in the case list (the longest verdict, "informational").
VERDICT_WIDTH = 13


def case_label(result) -> str:
    """One line of the case list: ID, verdict, title."""
    return f"{result.case.id:<5}{result.verdict:<{VERDICT_WIDTH}} {result.case.title}"


class CheckReport(widgets.VBox):
    """``CheckReport(report)``: pick a case on the left, read why; its frames on a timeline below."""

    def __init__(self, report: Report, *, selected: str | None = None) -> None:
        self.report = report
        counts = ", ".join(f"{n} {verdict}" for verdict, n in report.counts.items())
        self.header = widgets.HTML(f"<style>{REPORT_CSS} .gl-check-cases select {{ font-family: monospace; }}</style><b>gotalk-lab check</b> <code>{html.escape(report.target)}</code>: {counts}")
        options = [(case_label(result), result.case.id) for result in report.results]
        first = selected or next((r.case.id for r in report.results if r.verdict == "fail"), options[0][1] if options else None)
        # As wide as the longest line (monospace), so that no case needs sideways scrolling.
        longest = max((len(label) for label, _ in options), default=30)
        self.cases = widgets.Select(options=options, value=first, rows=min(len(options), 14),
                                    layout=widgets.Layout(width=f"{longest + 4}ch", max_width="100%"))
        self.cases.add_class("gl-check-cases")
        self.detail = widgets.HTML(layout=widgets.Layout(flex="1 1 30em", max_height="22em", overflow="auto"))
        self.frames_box = widgets.VBox()
        self.dashboard: Dashboard | None = None
        self.cases.observe(self._on_select, "value")
        super().__init__([self.header, widgets.HBox([self.cases, self.detail], layout=widgets.Layout(flex_flow="row wrap")), self.frames_box], layout=widgets.Layout(width="100%"))
        if first is not None:
            self.select(first)

    def _on_select(self, change: dict) -> None:
        if change["new"] is not None:
            self.select(change["new"])

    def select(self, case_id: str) -> None:
        """Show one case: its verdict and detail, its raw log, its frames on the timeline."""
        result = self.report[case_id]
        if self.cases.value != case_id:
            self.cases.value = case_id  # comes back here through the observer
            return
        self.detail.value = (
            f"<h4>{result.case.id} {html.escape(result.case.title)} {verdict_badge(result.verdict)}</h4>"
            f"<p><i>Requirement:</i> {html.escape(result.case.requirement)}</p><p>{html.escape(result.detail)}</p>"
            + wire_log_html(result)
        )
        if self.dashboard is not None:
            self.dashboard.close()
        self.dashboard = Dashboard(case_trace(result), title=f"{result.case.id} {result.case.title}", lanes=("checker", "server under test"))
        self.frames_box.children = [self.dashboard]

    @property
    def selected(self) -> str | None:
        return self.cases.value

    def close(self) -> None:
        if self.dashboard is not None:
            self.dashboard.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any):
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), self.report.notebook_html())

"""A table of Expert Info findings: severity, rule, frames, sentence; live beside a Timeline."""

from __future__ import annotations

import html
from typing import Any, Iterable

import ipywidgets

from ..findings import SYMBOLS, Finding, findings
from ..palette import FINDING_COLOURS
from ..trace import Trace
from .timeline import Timeline

_COLOURS = FINDING_COLOURS  # as the Timeline's badges


def findings_html(found: Iterable[Finding]) -> str:
    """The findings as an HTML table (what the widget shows, and its static fallback)."""
    rows = []
    for finding in found:
        colour = _COLOURS.get(finding.severity, "inherit")
        frames = ", ".join(f"#{index}" for index in finding.frames) or "–"
        rows.append(
            f'<tr class="gl-finding gl-finding-{html.escape(finding.severity)}">'
            f'<td style="color:{colour};white-space:nowrap">{SYMBOLS.get(finding.severity, "")} {html.escape(finding.severity)}</td>'
            f"<td><code>{html.escape(finding.rule)}</code></td><td>{html.escape(frames)}</td><td>{html.escape(finding.sentence)}</td></tr>"
        )
    if not rows:
        return '<div class="gl-findings"><i>No findings.</i></div>'
    head = "<tr><th>severity</th><th>rule</th><th>frames</th><th>finding</th></tr>"
    return f'<table class="gl-findings" style="text-align:left">{head}{"".join(rows)}</table>'


class FindingsTable(ipywidgets.HTML):
    """``FindingsTable(timeline)`` (live: follows the timeline's findings), or of a trace, or of a list of findings.

    ``rows`` is what the table lists: (severity, rule, frames, sentence) tuples.
    ``select(n)`` selects the first frame of row ``n`` on the timeline it follows.
    """

    def __init__(self, source: Timeline | Trace | Iterable[Finding], **options: Any) -> None:
        super().__init__()
        self.timeline: Timeline | None = source if isinstance(source, Timeline) else None
        self._unsubscribe = None
        if self.timeline is not None:
            self._unsubscribe = self.timeline.on_findings(self._show)
            self._show(self.timeline.findings)
        elif isinstance(source, Trace):
            self._show(findings(source, **options))
        else:
            self._show(list(source))

    def _show(self, found: list[Finding]) -> None:
        self.findings = list(found)
        self.value = findings_html(self.findings)

    @property
    def rows(self) -> list[tuple[str, str, tuple[int, ...], str]]:
        return [(f.severity, f.rule, f.frames, f.sentence) for f in self.findings]

    def select(self, row: int) -> None:
        """Select the first frame of finding ``row`` on the timeline (when following one)."""
        frames = self.findings[row].frames
        if self.timeline is not None and frames:
            self.timeline.selected = frames[0]

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        super().close()

    def _repr_html_(self) -> str:
        return findings_html(self.findings)

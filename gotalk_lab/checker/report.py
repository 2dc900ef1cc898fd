"""A conformance run's results and the forms they are read in.

``Report`` holds one ``CaseResult`` per case (verdict, detail, wire log) and renders
it for a terminal (grouped by section, h2spec style), as JSON, as JUnit XML for CI,
and as a self-contained HTML page (also its notebook display). Rendering only: no
case logic, no sockets.
"""

from __future__ import annotations

import html
import json
import textwrap
from dataclasses import dataclass, field
from xml.etree import ElementTree

from ..annotate import annotate_stream, show_bytes
from .model import FAIL, INFORMATIONAL, NON_STRICT, PASS, SKIP, VERDICTS, Case
from .session import RECEIVED, SENT, WireChunk

#: Bytes of one wire-log chunk shown in the HTML page before it is cut (the JSON has all).
HTML_CHUNK_BYTES = 2048
#: Bytes of a connection's stream annotated message by message in the HTML page.
HTML_ANNOTATED_BYTES = 64 * 1024
#: Exit statuses of ``gotalk-lab check``.
EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 2

_MARKS = {PASS: "pass", FAIL: "FAIL", NON_STRICT: "non-strict", INFORMATIONAL: "info", SKIP: "skip"}
_COLOURS = {PASS: "#1a7f37", FAIL: "#cf222e", NON_STRICT: "#9a6700", INFORMATIONAL: "#0969da", SKIP: "#6e7781"}


@dataclass
class CaseResult:
    case: Case
    verdict: str
    detail: str
    #: The wire log: (connection number from 1, chunk), in the order it happened.
    frames: list[tuple[int, WireChunk]] = field(default_factory=list)
    duration: float = 0.0

    @property
    def id(self) -> str:
        return self.case.id

    def to_json(self) -> dict:
        return {
            "id": self.case.id,
            "section": self.case.section,
            "title": self.case.title,
            "requirement": self.case.requirement,
            "verdict": self.verdict,
            "detail": self.detail,
            "frames": [{"connection": number, **chunk.to_json()} for number, chunk in self.frames],
            "duration_seconds": round(self.duration, 4),
        }

    def streams(self) -> dict[tuple[int, str], bytes]:
        """Every byte sent and received, per (connection, direction)."""
        out: dict[tuple[int, str], bytearray] = {}
        for number, chunk in self.frames:
            out.setdefault((number, chunk.direction), bytearray()).extend(chunk.data)
        return {key: bytes(value) for key, value in out.items()}

    def __repr__(self) -> str:
        return f"<CaseResult {self.case.id} {self.verdict}: {self.case.title}>"


@dataclass
class Report:
    target: str
    results: list[CaseResult]
    options: dict = field(default_factory=dict)
    duration: float = 0.0

    def __getitem__(self, case_id: str) -> CaseResult:
        for result in self.results:
            if result.case.id == case_id:
                return result
        raise KeyError(case_id)

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def counts(self) -> dict[str, int]:
        counts = {verdict: 0 for verdict in VERDICTS}
        for result in self.results:
            counts[result.verdict] += 1
        return counts

    def with_verdict(self, *verdicts: str) -> list[str]:
        return [result.case.id for result in self.results if result.verdict in verdicts]

    def exit_status(self, strict: bool = False) -> int:
        bad = (FAIL, NON_STRICT) if strict else (FAIL,)
        return EXIT_FAILED if self.with_verdict(*bad) else EXIT_OK

    # -- JSON -------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "cases": [result.to_json() for result in self.results],
            "counts": self.counts,
            "options": self.options,
            "duration_seconds": round(self.duration, 3),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    # -- terminal -----------------------------------------------------------------------

    def text(self, width: int = 100) -> str:
        lines = [f"gotalk-lab check {self.target}", ""]
        section = None
        for result in self.results:
            if result.case.section != section:
                section = result.case.section
                number = result.case.id.split(".")[0]
                lines.append(f"{number}. {section}")
            lines.append(f"  [{_MARKS[result.verdict]:<10}] {result.case.id:<4} {result.case.title}")
            if result.verdict in (FAIL, NON_STRICT, INFORMATIONAL):
                lines.extend(textwrap.wrap(result.detail, width, initial_indent=" " * 20, subsequent_indent=" " * 20))
        lines.append("")
        counts = self.counts
        summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS)
        lines.append(f"{len(self.results)} cases: {summary} ({self.duration:.1f} s)")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        counts = self.counts
        return f"<Report {self.target}: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ">"

    # -- JUnit ------------------------------------------------------------------------------

    def junit(self) -> str:
        suites = ElementTree.Element("testsuites", name=f"gotalk-lab check {self.target}")
        by_section: dict[str, list[CaseResult]] = {}
        for result in self.results:
            by_section.setdefault(result.case.section, []).append(result)
        for section, results in by_section.items():
            suite = ElementTree.SubElement(
                suites, "testsuite", name=section, tests=str(len(results)),
                failures=str(sum(r.verdict == FAIL for r in results)), errors="0",
                skipped=str(sum(r.verdict == SKIP for r in results)),
                time=f"{sum(r.duration for r in results):.3f}",
            )
            for result in results:
                case = ElementTree.SubElement(
                    suite, "testcase", classname=f"gotalk.check.{section}", name=f"{result.case.id} {result.case.title}",
                    time=f"{result.duration:.3f}",
                )
                if result.verdict == FAIL:
                    ElementTree.SubElement(case, "failure", message=result.detail, type="fail").text = _log_text(result)
                elif result.verdict == SKIP:
                    ElementTree.SubElement(case, "skipped", message=result.detail)
                else:
                    ElementTree.SubElement(case, "system-out").text = f"{result.verdict}: {result.detail}"
        return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"

    # -- HTML ------------------------------------------------------------------------------------

    def table_html(self, *, links: bool = True) -> str:
        rows = []
        for result in self.results:
            title = html.escape(result.case.title)
            if links:
                title = f'<a href="#case-{result.case.id}">{title}</a>'
            rows.append(
                f"<tr><td>{result.case.id}</td><td>{html.escape(result.case.section)}</td><td>{title}</td>"
                f"<td>{verdict_badge(result.verdict)}</td><td class='gl-detail'>{html.escape(result.detail)}</td></tr>"
            )
        counts = ", ".join(f"{n} {v}" for v, n in self.counts.items())
        return (
            f"<div class='gl-check'><p><b>gotalk-lab check</b> <code>{html.escape(self.target)}</code>: {counts}</p>"
            "<table class='gl-check-table'><thead><tr><th>case</th><th>section</th><th>title</th><th>verdict</th>"
            "<th>detail</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
        )

    def case_html(self, result: CaseResult) -> str:
        return (
            f"<section id='case-{result.case.id}'><h3>{result.case.id} {html.escape(result.case.title)} {verdict_badge(result.verdict)}</h3>"
            f"<p><i>Requirement:</i> {html.escape(result.case.requirement)}</p><p>{html.escape(result.detail)}</p>"
            + wire_log_html(result) + "</section>"
        )

    def html(self) -> str:
        body = self.table_html() + "<h2>Wire logs</h2>" + "".join(self.case_html(r) for r in self.results)
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>gotalk-lab check {html.escape(self.target)}</title><style>{REPORT_CSS}</style></head>"
            f"<body><h1>Gotalk conformance: {html.escape(self.target)}</h1>{body}</body></html>\n"
        )

    def _repr_html_(self) -> str:
        return self.notebook_html()

    def notebook_html(self) -> str:
        """In a notebook: the table, and each case's wire log folded under it, linked by anchors."""
        logs = "".join(f"<details>{_summary(r)}{self.case_html(r)}</details>" for r in self.results)
        return f"<style>{REPORT_CSS}</style>" + self.table_html() + "<h4>Wire logs</h4>" + logs

def _summary(result: CaseResult) -> str:
    return f"<summary>{result.case.id} {html.escape(result.case.title)} {verdict_badge(result.verdict)}</summary>"


def verdict_badge(verdict: str) -> str:
    return f"<span class='gl-verdict' style='background:{_COLOURS[verdict]}'>{verdict}</span>"


def _log_text(result: CaseResult) -> str:
    return "\n".join(f"#{n} {chunk.direction:<8} {show_bytes(chunk.data[:512])}" for n, chunk in result.frames)


def wire_log_html(result: CaseResult) -> str:
    """Every write and read of the case, then each connection's bytes annotated message by message."""
    if not result.frames:
        return "<p class='gl-none'>No bytes were exchanged (the case did not run or could not connect).</p>"
    rows = []
    for number, chunk in result.frames:
        data = chunk.data[:HTML_CHUNK_BYTES]
        cut = f" …(+{len(chunk.data) - len(data)} bytes)" if len(chunk.data) > len(data) else ""
        arrow = "→" if chunk.direction == SENT else "←"
        rows.append(
            f"<tr class='gl-{chunk.direction}'><td>{chunk.time * 1000:.1f} ms</td><td>#{number}</td><td>{arrow} {chunk.direction}</td>"
            f"<td>{len(chunk.data)}</td><td><code>{html.escape(show_bytes(data))}{cut}</code></td></tr>"
        )
    log = ("<table class='gl-log'><thead><tr><th>time</th><th>conn</th><th>direction</th><th>bytes</th><th>data</th></tr></thead>"
           "<tbody>" + "".join(rows) + "</tbody></table>")
    return log + "".join(_annotated_html(key, data) for key, data in sorted(result.streams().items()))


def _annotated_html(key: tuple[int, str], data: bytes) -> str:
    number, direction = key
    who = "the checker wrote" if direction == SENT else "the server wrote"
    annotation = annotate_stream(data[:HTML_ANNOTATED_BYTES], expect_version=data[:2].isdigit(),
                                 max_payload_size=max(len(data), 1))
    items = [f"<li><code>[{m.offset}:{m.end}]</code> {html.escape(m.kind)}: {html.escape(m.summary[:300])}</li>" for m in annotation.messages]
    cut = len(data) > HTML_ANNOTATED_BYTES
    if annotation.error is not None and not (cut and annotation.error.offset >= annotation.trailing_offset):
        items.append(f"<li class='gl-bad'>not a whole message: {html.escape(annotation.error.describe())}</li>")
    if cut:
        items.append(f"<li>… only the first {HTML_ANNOTATED_BYTES} of {len(data)} bytes are annotated here (the JSON report has them all)</li>")
    return f"<p>Connection #{number}, what {who}, message by message:</p><ul class='gl-frames'>" + "".join(items) + "</ul>"


REPORT_CSS = """
.gl-check-table, .gl-log { border-collapse: collapse; font-size: 13px; }
.gl-check-table td, .gl-check-table th, .gl-log td, .gl-log th { border: 1px solid #d0d7de; padding: 2px 6px; text-align: left; vertical-align: top; }
.gl-verdict { color: white; border-radius: 4px; padding: 0 6px; font-size: 12px; white-space: nowrap; }
.gl-detail { max-width: 60em; }
.gl-log code { white-space: pre-wrap; word-break: break-all; }
.gl-sent td { background: #f6f8fa; }
.gl-received td { background: #fff8e6; }
.gl-bad { color: #cf222e; }
section { margin-bottom: 1.5em; }
"""

__all__ = ["Report", "CaseResult", "EXIT_OK", "EXIT_FAILED", "EXIT_UNREACHABLE", "RECEIVED", "SENT"]

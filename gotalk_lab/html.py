"""Static HTML views of Gotalk bytes: what a notebook shows for a message, a stream or a trace.

Every function returns one self-contained HTML string (an inline ``<style>`` whose
classes all start with ``gl-``, no script), so it renders the same in JupyterLab,
nbviewer and GitHub, and is what the widgets fall back to where no kernel runs.
Everything taken from the bytes is escaped. Built on ``annotate``; no Jupyter imports:
``register_formatters`` teaches a running IPython to use these views, so the codec
and the trace never need to know about HTML.
"""

from __future__ import annotations

import json
import sys
from html import escape
from typing import Any, Iterable

from .annotate import AnnotatedMessage, Annotation, Field, annotate, annotate_frame, annotate_stream, show_bytes
from .decoder import LAYOUTS
from .palette import FIELD_COLOURS, FIELD_INK, TEXT, UNKNOWN_FIELD_COLOUR
from .wire import VERSION_BYTES, Message

# FIELD_COLOURS is imported from the palette for the callers that read it here.

#: Bytes per line of hex inside one field; a line is 16 bytes as in any hex dump.
BYTES_PER_LINE = 16
#: Payload bytes shown before the middle of a long payload is left out (the page
#: must stay light even for a multi-megabyte payload).
PAYLOAD_HEAD = 256
PAYLOAD_TAIL = 64
#: Pretty-printed JSON longer than this is cut, for the same reason.
JSON_CHARS = 4000
#: Frames a trace table shows (the most recent ones).
TRACE_ROWS = 200

# Notebook front ends style every table (right-aligned, striped rows); the field tables
# here read left to right, so the rules below undo that for tables inside a view. The
# colours are gotalk_lab.palette's: the fields' tints are set inline, the texts here.
_STYLE = """
.gl-view{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;line-height:1.35;color:inherit}
.gl-message{margin:0 0 10px 0;padding:6px 8px;border:1px solid #8884;border-radius:4px}
.gl-head{margin-bottom:4px}
.gl-kind{font-weight:bold}
.gl-range{color:{muted};margin:0 6px}
.gl-summary{white-space:pre-wrap}
.gl-bytes{display:flex;flex-wrap:wrap;gap:2px;align-items:flex-start}
.gl-field{display:inline-flex;flex-direction:column;color:{field_ink};border-radius:3px;padding:1px 3px}
.gl-line{display:flex;flex-direction:column}
.gl-hex,.gl-asc{white-space:pre}
.gl-empty{font-style:italic}
.gl-hidden{font-style:italic;white-space:pre}
.gl-view table{font:inherit;border-collapse:collapse;margin-top:6px}
.gl-view table tr:nth-child(n){background:transparent}
.gl-view table td,.gl-view table th{padding:1px 6px;vertical-align:top;text-align:left;border:none}
.gl-view .gl-legend td:nth-child(-n+4){white-space:nowrap}
.gl-swatch{display:inline-block;width:10px;height:10px;border-radius:2px;border:1px solid #8886}
.gl-json{margin:6px 0 0 0;padding:4px 6px;background:#8881;border-radius:3px;white-space:pre-wrap}
.gl-unread{background:#eee;color:{field_ink}}
.gl-error-byte{outline:2px solid {bad};background:#ffcdd2;color:{bad};font-weight:bold}
.gl-eoi{color:{bad};font-weight:bold;align-self:center}
.gl-error{color:{bad};margin-top:4px;white-space:pre-wrap}
.gl-note{color:{muted};font-style:italic}
""".replace("{muted}", TEXT["muted"]).replace("{bad}", TEXT["bad"]).replace("{field_ink}", FIELD_INK)


def _style() -> str:
    return f"<style>{_STYLE}</style>"


def _colour(name: str) -> str:
    return FIELD_COLOURS.get(name, UNKNOWN_FIELD_COLOUR)


def _ascii_cell(byte: int) -> str:
    return chr(byte) if 0x20 <= byte < 0x7F else "."


def _line_html(chunk: bytes, error_at: int | None = None) -> str:
    """One line of up to 16 bytes: hex on top, ASCII below, byte under byte."""
    hex_cells = []
    asc_cells = []
    for index, byte in enumerate(chunk):
        hex_cell = escape(f"{byte:02x}")
        asc_cell = escape(f"{_ascii_cell(byte):^2}")
        if index == error_at:
            hex_cell = f'<span class="gl-error-byte">{hex_cell}</span>'
            asc_cell = f'<span class="gl-error-byte">{asc_cell}</span>'
        hex_cells.append(hex_cell)
        asc_cells.append(asc_cell)
    return (
        '<span class="gl-line">'
        f'<span class="gl-hex">{" ".join(hex_cells)}</span>'
        f'<span class="gl-asc">{" ".join(asc_cells)}</span>'
        "</span>"
    )


def _lines_html(raw: bytes) -> str:
    return "".join(_line_html(raw[i : i + BYTES_PER_LINE]) for i in range(0, len(raw), BYTES_PER_LINE))


def _field_value_text(field: Field) -> str:
    if isinstance(field.value, bytes):
        return f"'{show_bytes(field.value[:PAYLOAD_HEAD])}'" + ("…" if len(field.value) > PAYLOAD_HEAD else "")
    return repr(field.value) if isinstance(field.value, str) else str(field.value)


def _field_title(field: Field) -> str:
    return f"{field.name} [{field.start}:{field.end}] = {_field_value_text(field)}\n{field.meaning}"


def _field_span(field: Field) -> str:
    """One span per field, holding all of its bytes (the middle of a long payload left out)."""
    raw = field.raw
    if not raw:
        body = '<span class="gl-empty">(empty)</span>'
    elif len(raw) > PAYLOAD_HEAD + PAYLOAD_TAIL:
        hidden = len(raw) - PAYLOAD_HEAD - PAYLOAD_TAIL
        body = (
            _lines_html(raw[:PAYLOAD_HEAD])
            + f'<span class="gl-hidden">… {hidden} bytes not shown …</span>'
            + _lines_html(raw[-PAYLOAD_TAIL:])
        )
    else:
        body = _lines_html(raw)
    return (
        f'<span class="gl-field" data-field="{escape(field.name)}" style="background:{_colour(field.name)}"'
        f' title="{escape(_field_title(field))}">{body}</span>'
    )


def _legend_html(fields: Iterable[Field]) -> str:
    rows = []
    for field in fields:
        rows.append(
            "<tr>"
            f'<td><span class="gl-swatch" style="background:{_colour(field.name)}"></span></td>'
            f"<td>[{field.start}:{field.end}]</td>"
            f"<td>{escape(field.name)}</td>"
            f"<td>{escape(_field_value_text(field)[:80])}</td>"
            f"<td>{escape(field.meaning)}</td>"
            "</tr>"
        )
    return f'<table class="gl-legend">{"".join(rows)}</table>'


def _json_html(field: Field) -> str:
    """The payload pretty-printed, when it is JSON."""
    if field.hint != "json":
        return ""
    pretty = json.dumps(json.loads(field.raw.decode("utf-8")), indent=2, ensure_ascii=False)
    if len(pretty) > JSON_CHARS:
        pretty = pretty[:JSON_CHARS] + f"\n… ({len(pretty) - JSON_CHARS} more characters)"
    return f'<pre class="gl-json">{escape(pretty)}</pre>'


def _message_block(annotated: AnnotatedMessage) -> str:
    payload = next((f for f in annotated.fields if f.name == "payload"), None)
    return (
        '<div class="gl-message">'
        '<div class="gl-head">'
        f'<span class="gl-kind">{escape(annotated.kind)}</span>'
        f'<span class="gl-range">[{annotated.offset}:{annotated.end}] {annotated.length} bytes</span>'
        f'<span class="gl-summary">{escape(annotated.summary)}</span>'
        "</div>"
        f'<div class="gl-bytes">{"".join(_field_span(f) for f in annotated.fields)}</div>'
        f"{_legend_html(annotated.fields)}"
        f"{_json_html(payload) if payload is not None else ''}"
        "</div>"
    )


def _error_block(annotation: Annotation) -> str:
    """The bytes after the last whole message, with the bad byte (or end of input) marked."""
    error = annotation.error
    described = escape(error.describe())
    spans = [_field_span(f) for f in annotation.unfinished]
    valid_end = annotation.unfinished[-1].end if annotation.unfinished else annotation.trailing_offset
    unread = annotation.trailing[valid_end - annotation.trailing_offset :]
    if unread:
        shown = unread[:BYTES_PER_LINE * 4]
        error_at = error.offset - valid_end
        lines = "".join(
            _line_html(shown[i : i + BYTES_PER_LINE], error_at - i if 0 <= error_at - i < BYTES_PER_LINE else None)
            for i in range(0, len(shown), BYTES_PER_LINE)
        )
        more = ""
        if len(unread) > len(shown):
            more = f'<span class="gl-hidden">… {len(unread) - len(shown)} more bytes</span>'
        spans.append(f'<span class="gl-field gl-unread" data-field="unread" title="{described}">{lines}{more}</span>')
    if error.offset >= annotation.size:
        spans.append(f'<span class="gl-eoi" title="{described}">⟂ end of input</span>')
    return (
        '<div class="gl-message gl-invalid">'
        '<div class="gl-head">'
        '<span class="gl-kind">not a whole message</span>'
        f'<span class="gl-range">[{annotation.trailing_offset}:{annotation.size}]</span>'
        "</div>"
        f'<div class="gl-bytes">{"".join(spans)}</div>'
        f'<div class="gl-error">✖ {described}</div>'
        f"{_legend_html(annotation.unfinished) if annotation.unfinished else ''}"
        "</div>"
    )


def message_html(message: Message | AnnotatedMessage | bytes) -> str:
    """One message (a value, its bytes, or already annotated) as coloured fields."""
    annotated = message if isinstance(message, AnnotatedMessage) else annotate(message)
    return f'<div class="gl-view">{_style()}{_message_block(annotated)}</div>'


def stream_html(data: bytes | bytearray | memoryview | Annotation, *, expect_version: bool = True) -> str:
    """A whole byte stream (or an ``Annotation`` of one): every message, then the error if any."""
    annotation = data if isinstance(data, Annotation) else annotate_stream(data, expect_version=expect_version)
    blocks = [_message_block(m) for m in annotation.messages]
    if annotation.error is not None:
        blocks.append(_error_block(annotation))
    elif not blocks:
        blocks.append('<div class="gl-note">no bytes</div>')
    return f'<div class="gl-view">{_style()}{"".join(blocks)}</div>'


def trace_html(trace) -> str:
    """A trace as a table of its latest frames, each one unfolding to its bytes."""
    events = list(trace.events)[-TRACE_ROWS:]
    rows = []
    for event in events:
        annotated = annotate_frame(event.header, event.message)
        arrow = "→ out" if event.direction == "out" else "← in"
        rows.append(
            "<tr>"
            f"<td>#{event.index}</td>"
            f"<td>{event.time * 1000:.3f} ms</td>"
            f"<td>{escape(arrow)}</td>"
            f"<td>{escape(annotated.kind)}</td>"
            f"<td><details><summary>{escape(annotated.summary)}</summary>{_message_block(annotated)}</details></td>"
            "</tr>"
        )
    hidden = len(trace.events) - len(events) + getattr(trace, "dropped", 0)
    note = f'<div class="gl-note">{hidden} earlier frames not shown</div>' if hidden else ""
    if not rows:
        note = '<div class="gl-note">no frames yet</div>'
    return (
        f'<div class="gl-view">{_style()}{note}'
        f'<table class="gl-trace"><tr><th>frame</th><th>time</th><th>dir</th><th>type</th><th>message</th></tr>'
        f'{"".join(rows)}</table></div>'
    )


# -- the field map: every message type's layout in one picture ----------------------------

#: One example of each message type, in the order a reader meets them, with what it is for.
FIELD_MAP_EXAMPLES: tuple[tuple[bytes, str, str], ...] = (
    (b"01", "version", "written first by each side"),
    (b"r0001004echo00000005hello", "single request", ""),
    (b"s000200cupper-stream00000003abc", "stream request", "its first part"),
    (b"p000200000003def", "stream request part", "empty: the end"),
    (b"R000100000005hello", "single result", ""),
    (b"S000200000003ABC", "stream result part", "empty: the end"),
    (b"E000300000004boom", "error result", ""),
    (b"e0004000001f400000004busy", "retry result", "wait, then send again"),
    (b"n007weather00000002{}", "notification", "nobody answers"),
    (b"h00015f5e1000", "heartbeat", "load and Unix time"),
    (b"f00000002", "protocol error", "then the sender closes"),
)
#: Field name -> the word under its box; how it is written comes from ``decoder.LAYOUTS``.
_FIELD_LABELS = {"request_id": "request ID", "name_size": "name size", "payload_size": "payload size", "wait": "wait ms", "time": "Unix time"}
#: How each kind of field in ``LAYOUTS`` is written, given its width.
_HOW_WRITTEN = {"type": "{}", "id": "{} raw", "hex": "{} hex"}


def _field_words(field: Field, type_byte: bytes) -> tuple[str, str]:
    """The two lines under a field's box: its name, and its width and how it is written."""
    label = _FIELD_LABELS.get(field.name, field.name)
    if field.name == "version":
        return label, f"{len(VERSION_BYTES)} hex"
    if field.name == "payload":
        return label, "payload-size bytes"
    _name, size, kind = next(spec for spec in LAYOUTS[type_byte] if spec[0] == field.name)
    return label, "name-size bytes" if kind == "name" else _HOW_WRITTEN[kind].format(size)
_MAP_CHAR = 9.0  # px per character of the example bytes
_MAP_LABEL_CHAR = 6.4  # px per character of the small words under a box
_MAP_ROW = 54
_MAP_LEFT = 200


class FieldMap:
    """Every message type's layout, drawn from the decoder's own field table (``gl.field_map()``).

    One row per type: its example's bytes, one coloured box per field (the colours
    every view uses), and under each box the field's name and how it is written:
    a width in bytes and "hex" (ASCII hexadecimal digits) or "raw" (bytes as they
    are), or, for a name or payload, the size field that gives its length. Shows as
    SVG in a notebook; ``svg()`` is the same drawing for a page (docs/field-map.svg).
    """

    def rows(self) -> list[tuple[bytes, str, str, list[Field]]]:
        return [(raw, kind, note, list(annotate(raw).fields)) for raw, kind, note in FIELD_MAP_EXAMPLES]

    def __repr__(self) -> str:
        lines = []
        for raw, kind, note, fields in self.rows():
            boxes = " ".join(f.raw.decode("ascii") for f in fields)
            names = ", ".join(": ".join(_field_words(f, raw[:1])) for f in fields)
            lines.append(f"{boxes:34} {kind}{f' ({note})' if note else ''}: {names}")
        return "\n".join(lines)

    def svg(self) -> str:
        rows = self.rows()
        width, height = 900, 70 + _MAP_ROW * len(rows)
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" style="max-width:{width}px" viewBox="0 0 {width} {height}" '
            'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" role="img" aria-label="Gotalk field map">',
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
            '<text x="12" y="22" font-size="15" font-weight="bold" fill="#1f1f1f">Gotalk messages, field by field</text>',
            '<text x="12" y="40" font-size="11" fill="#3d3d3d">under each field: its width in bytes and hex (hexadecimal digits) '
            'or raw (the bytes as they are);</text>',
            '<text x="12" y="54" font-size="11" fill="#3d3d3d">a name or a payload is as many bytes as its size field says</text>',
        ]
        for row, (raw, kind, note, fields) in enumerate(rows):
            top = 66 + row * _MAP_ROW
            out.append(f'<text x="12" y="{top + 14}" font-size="12" font-weight="bold" fill="#1f1f1f">{escape(kind)}</text>')
            out.append(f'<text x="12" y="{top + 29}" font-size="11" fill="#3d3d3d">{escape(note)}</text>')
            x = float(_MAP_LEFT)
            for field in fields:
                text = field.raw.decode("ascii")
                label, how = _field_words(field, raw[:1])
                box = max(len(text) * _MAP_CHAR, max(len(label), len(how)) * _MAP_LABEL_CHAR) + 8
                out.append(
                    f'<rect x="{x:.1f}" y="{top + 2}" width="{box:.1f}" height="22" rx="3" fill="{_colour(field.name)}" stroke="#5f5f5f" stroke-width="0.6"/>'
                    f'<text x="{x + box / 2:.1f}" y="{top + 18}" font-size="15" text-anchor="middle" fill="#1f1f1f">{escape(text)}</text>'
                    f'<text x="{x + box / 2:.1f}" y="{top + 36}" font-size="10" text-anchor="middle" fill="#1f1f1f">{escape(label)}</text>'
                    f'<text x="{x + box / 2:.1f}" y="{top + 48}" font-size="10" text-anchor="middle" fill="#3d3d3d">{escape(how)}</text>'
                )
                x += box + 3
        out.append("</svg>")
        return "\n".join(out) + "\n"

    def _repr_svg_(self) -> str:
        return self.svg()


def field_map() -> FieldMap:
    """Every message type's layout in one picture (``FieldMap``)."""
    return FieldMap()


def register_formatters(shell: Any = None) -> bool:
    """Make IPython show messages and traces with these views (``text/html``).

    ``shell`` defaults to the running IPython, if any: IPython is asked only
    when it is already loaded, so a script or the command line pays nothing.
    The trace is registered by name, so this module needs no import of it.
    True when a shell was found.
    """
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
        if shell is None:
            return False
    formatter = shell.display_formatter.formatters["text/html"]
    formatter.for_type(Message, message_html)
    formatter.for_type_by_name("gotalk_lab.trace", "Trace", trace_html)
    return True


def with_html_fallback(bundle: Any, html: str) -> Any:
    """Add "text/html" to the mime bundle a widget's own ``_repr_mimebundle_`` returned.

    anywidget returns (data, metadata), plain ipywidgets a dict (or None); the
    widget view is kept, and nbviewer or GitHub, which cannot run it, show the HTML.
    """
    if isinstance(bundle, tuple):
        data, metadata = bundle
        return {**data, "text/html": html}, metadata
    return {**(bundle or {}), "text/html": html}

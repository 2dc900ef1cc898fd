"""FrameView and FieldTable: Gotalk bytes in the browser, every field in its own colour.

This module owns the kernel side of the two byte-level widgets: it turns bytes, a message,
a trace event or an annotation into the synced traitlets (``data``, ``annotation``,
``selected``, ``title``) that ``static/frames.js`` and ``static/fieldtable.js`` draw. Every
protocol fact comes from ``annotate``; nothing here reads a socket, and the browser code
never decodes bytes itself: the ``annotation`` dict below is the whole explanation it gets.

The ``annotation`` traitlet (JSON), as built by ``annotation_json``::

    {"base": int,            # absolute offset of data[0] (offsets below are absolute)
     "size": int,            # bytes explained in all (may exceed len(data): see truncated)
     "shown": int,           # len(data), at most FrameView.max_shown_bytes
     "expect_version": bool, # the bytes were read as a conversation (version first)
     "field_count": int,     # fields in all; "selected" indexes them in this order
     "messages": [{"index", "kind", "type", "badge", "badge_class", "start", "end", "summary",
                   "fields": [FIELD, ...],
                   "payload": null | {"format": "json"|"text"|"hex"|"empty",
                                      "hint", "size", "text", "cut"}}],
     "unfinished": null | {"start", "end", "fields": [FIELD, ...]},  # the message cut by the error
     "error": null | {"offset", "field", "expected", "found", "message", "code", "at_end"},
     "truncated": null | {"shown", "total", "hidden_messages"}}

    FIELD = {"index", "message" (index, null when unfinished), "name", "start", "end",
             "raw" (hex of the first bytes), "raw_size", "value" (text), "meaning",
             "hint", "colour", "cut_short"}

    "badge" is what the message's type badge says (glyph and type, as on the Timeline) and
    "badge_class" the palette's class that colours it; "colour" is the field's palette tint.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any, Union

import anywidget
import ipywidgets
import traitlets

from ..annotate import AnnotatedMessage, Annotation, Field, annotate, annotate_frame, annotate_stream, show_bytes
from ..decoder import LAYOUTS
from ..html import message_html, stream_html, with_html_fallback
from ..palette import FIELD_COLOURS, FIELD_INK, TEXT, UNKNOWN_FIELD_COLOUR, css_class, stylesheet, type_style
from ..trace import OUT, TraceEvent
from ..wire import Message

__all__ = ["FieldTable", "FrameView", "annotation_json", "link", "widget_css", "MAX_SHOWN_BYTES"]

_STATIC = Path(__file__).parent / "static"


def widget_css(name: str) -> str:
    """A widget's stylesheet: the palette's custom properties, then ``static/<name>``."""
    return stylesheet() + (_STATIC / name).read_text(encoding="utf-8")


#: Bytes a FrameView lays out in the browser: 256 rows of 16, a DOM the browser builds
#: in a few milliseconds. Past it the rest is summarised (count of bytes and messages).
MAX_SHOWN_BYTES = 4096
#: Characters of a payload preview (pretty JSON or text) sent to the browser.
PAYLOAD_PREVIEW_CHARS = 4000
#: Bytes of a binary payload shown as a hex preview.
PAYLOAD_PREVIEW_BYTES = 1024
#: Bytes of a field's raw hex carried per field (the table's "bytes" column).
FIELD_RAW_BYTES = 24
#: Characters of a field's value text.
VALUE_CHARS = 120
#: A field name the palette has no colour for gets this grey (in html.py too).
UNKNOWN_COLOUR = UNKNOWN_FIELD_COLOUR

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")

#: What ``FrameView.show`` accepts.
Showable = Union[bytes, bytearray, memoryview, Message, TraceEvent, AnnotatedMessage, Annotation, None]


# -- from a value to an explanation --------------------------------------------


def starts_with_version(data: bytes) -> bool:
    """Whether bytes read best as a conversation (version preamble first).

    A hex digit that is not a message type byte can only start the preamble ("01"), so
    "01r0001..." is a conversation and "r0001..." or "f00000002" a lone message.
    """
    return bool(data) and data[0] in _HEX_DIGITS and data[:1] not in LAYOUTS


def badge_letters(type_char: str) -> str:
    """What a type badge says after its glyph: "01" for the version, "raw" for unframed bytes."""
    return "01" if type_char == "v" else "raw" if type_char == "?" else type_char


def _one_message(annotated: AnnotatedMessage) -> Annotation:
    return Annotation([annotated], None, b"", annotated.end)


def _explain(value: Showable, expect_version: bool | None):
    """(data, base, annotation, the single message or None, default title, expect_version)."""
    if value is None:
        return b"", 0, Annotation([]), None, "no bytes", False
    if isinstance(value, TraceEvent):
        annotated = annotate_frame(value.header, value.message)
        arrow = "→ out" if value.direction == OUT else "← in"
        title = f"#{value.index} {arrow} at {value.time * 1000:.3f} ms: {annotated.kind}"
        if value.cut is not None:  # the trace kept only the start of a long payload
            title += f" (payload {value.cut:,} bytes, first {len(value.message.payload):,} kept)"  # type: ignore[attr-defined]
        return annotated.raw, 0, _one_message(annotated), annotated, title, False
    if isinstance(value, Message):
        annotated = annotate(value)
        return annotated.raw, 0, _one_message(annotated), annotated, annotated.kind, False
    if isinstance(value, AnnotatedMessage):
        return value.raw, value.offset, _one_message(value), value, value.kind, False
    if isinstance(value, Annotation):
        data = b"".join(m.raw for m in value.messages) + value.trailing
        base = value.messages[0].offset if value.messages else value.trailing_offset
        reads_version = bool(value.messages) and value.messages[0].type == "v"
        return data, base, value, None, f"{len(data)} bytes", reads_version
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if expect_version is None:
            expect_version = starts_with_version(data)
        # The default payload limit, not len(data): a size field announcing more than is
        # there must read as "input ends early", not as "over the limit".
        annotation = annotate_stream(data, expect_version=expect_version)
        return data, 0, annotation, None, f"{len(data)} bytes", expect_version
    raise TypeError(
        f"FrameView shows bytes, a Message, a TraceEvent, an AnnotatedMessage or an Annotation, "
        f"not {type(value).__name__}"
    )


def _cut(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit] + "…", True)


def _value_text(field: Field) -> str:
    """The field's value as one short line (the table's "value" column)."""
    if field.cut_short or field.name == "request_id":
        return show_bytes(field.raw)
    if field.name == "payload":
        if field.hint == "empty":
            return "(empty)"
        if field.hint in ("json", "text"):
            return _cut(field.raw[: VALUE_CHARS * 4].decode("utf-8", "replace"), VALUE_CHARS)[0]
        return _cut(show_bytes(field.raw[:VALUE_CHARS]), VALUE_CHARS)[0]
    if isinstance(field.value, int):
        return str(field.value)
    return _cut(str(field.value), VALUE_CHARS)[0]


def _hex_dump(raw: bytes) -> str:
    return "\n".join(raw[i : i + 16].hex(" ") for i in range(0, len(raw), 16))


def _payload_json(field: Field | None) -> dict | None:
    """The payload shown whole: pretty JSON, text or hex (cut past the preview limits)."""
    if field is None or field.cut_short:
        return None
    raw = field.raw
    entry = {"hint": field.hint, "size": len(raw)}
    if field.hint == "empty":
        return {**entry, "format": "empty", "text": "", "cut": False}
    if field.hint == "json":
        pretty = json.dumps(json.loads(raw.decode("utf-8")), indent=2, ensure_ascii=False)
        text, cut = _cut(pretty, PAYLOAD_PREVIEW_CHARS)
        return {**entry, "format": "json", "text": text, "cut": cut}
    if field.hint == "text":
        text, cut = _cut(raw.decode("utf-8"), PAYLOAD_PREVIEW_CHARS)
        return {**entry, "format": "text", "text": text, "cut": cut}
    return {**entry, "format": "hex", "text": _hex_dump(raw[:PAYLOAD_PREVIEW_BYTES]), "cut": len(raw) > PAYLOAD_PREVIEW_BYTES}


def _field_json(field: Field, index: int, message: int | None) -> dict:
    return {
        "index": index,
        "message": message,
        "name": field.name,
        "start": field.start,
        "end": field.end,
        "raw": field.raw[:FIELD_RAW_BYTES].hex(),
        "raw_size": len(field.raw),
        "value": _value_text(field),
        "meaning": field.meaning,
        "hint": field.hint,
        "colour": FIELD_COLOURS.get(field.name, UNKNOWN_COLOUR),
        "cut_short": field.cut_short,
    }


def annotation_json(
    annotation: Annotation,
    *,
    base: int = 0,
    shown: int | None = None,
    expect_version: bool = False,
) -> dict:
    """The ``annotation`` traitlet for ``annotation`` (see the module docstring).

    ``shown`` is how many bytes from ``base`` the browser gets; messages and fields that
    start past them are left out and counted in "truncated".
    """
    size = annotation.size - base
    shown = size if shown is None else min(shown, size)
    cut_at = base + shown
    messages = []
    index = 0
    for annotated in annotation.messages:
        if annotated.offset >= cut_at and annotated.length:
            break
        fields = []
        for field in annotated.fields:
            if field.start >= cut_at and field.size:
                break
            fields.append(_field_json(field, index, len(messages)))
            index += 1
        payload = next((f for f in annotated.fields if f.name == "payload"), None)
        style = type_style(annotated.type)
        messages.append(
            {
                "index": len(messages),
                "kind": annotated.kind,
                "type": annotated.type,
                "badge": f"{style.glyph} {badge_letters(annotated.type)}" if style else annotated.type,
                "badge_class": css_class(annotated.type) if style else "",
                "start": annotated.offset,
                "end": annotated.end,
                "summary": annotated.summary,
                "fields": fields,
                "payload": _payload_json(payload),
            }
        )
    hidden_messages = len(annotation.messages) - len(messages)
    unfinished = None
    if annotation.error is not None and annotation.trailing_offset < cut_at:
        fields = []
        for field in annotation.unfinished:
            if field.start >= cut_at:
                break
            fields.append(_field_json(field, index, None))
            index += 1
        unfinished = {"start": annotation.trailing_offset, "end": annotation.size, "fields": fields}
    error = None
    if annotation.error is not None:
        violation = annotation.error
        error = {
            "offset": violation.offset,
            "field": violation.field,
            "expected": violation.expected,
            "found": violation.found,
            "message": violation.describe(),
            "code": violation.code,
            "at_end": violation.offset >= annotation.size,
        }
    truncated = None
    if shown < size:
        truncated = {"shown": shown, "total": size, "hidden_messages": hidden_messages}
    return {
        "base": base,
        "size": size,
        "shown": shown,
        "expect_version": expect_version,
        "field_count": index,
        "messages": messages,
        "unfinished": unfinished,
        "error": error,
        "truncated": truncated,
    }


def fields_of(annotation: dict) -> list[dict]:
    """Every field of an ``annotation`` dict in "selected" order: messages', then unfinished ones."""
    fields = [field for message in annotation.get("messages", ()) for field in message["fields"]]
    unfinished = annotation.get("unfinished")
    return fields + (unfinished["fields"] if unfinished else [])


# -- the widgets --------------------------------------------------------------


class FrameView(anywidget.AnyWidget):
    """One message or a whole byte stream as a hex and ASCII dump, each field in its colour.

    ``FrameView(value=None, *, expect_version=None, title=None)``; ``show(value)`` replaces
    what is shown and returns the view. ``value`` may be bytes (one message or a
    conversation), a ``Message``, a ``TraceEvent``, an ``AnnotatedMessage``, an
    ``Annotation`` or None. ``expect_version``: read bytes as a conversation (version
    first); None guesses from the first byte (see ``starts_with_version``).

    Synced traitlets, the whole contract with ``static/frames.js``: ``data`` (the exact
    bytes, at most ``max_shown_bytes``), ``annotation`` (see ``annotation_json``),
    ``selected`` (index of the selected field, -1 for none; reset by ``show``) and ``title``.
    Hovering a field in the browser shows its meaning; clicking selects it.
    """

    _esm = _STATIC / "frames.js"
    _css = widget_css("frames.css")

    data = traitlets.Bytes(b"").tag(sync=True)
    annotation = traitlets.Dict().tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    #: Projector mode: 18 px text and up, full contrast (a FrameView also shows 8 bytes a row).
    projector = traitlets.Bool(False).tag(sync=True)
    #: What the view says while it shows nothing (a dashboard: where the bytes will come from).
    empty_text = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        value: Showable = None,
        *,
        expect_version: bool | None = None,
        title: str | None = None,
        max_shown_bytes: int = MAX_SHOWN_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.expect_version = expect_version
        self.max_shown_bytes = max_shown_bytes
        self._value: Showable = None
        self._explained = Annotation([])
        self._single: AnnotatedMessage | None = None
        self.show(value, title=title)

    @property
    def value(self) -> Showable:
        """What is shown, as it was given to ``show``; assigning it calls ``show``."""
        return self._value

    @value.setter
    def value(self, value: Showable) -> None:
        self.show(value)

    @property
    def explained(self) -> Annotation:
        """The ``annotate.Annotation`` behind the view (every message, error, unfinished fields)."""
        return self._explained

    @property
    def fields(self) -> list[dict]:
        """Every field dict of ``annotation`` in the order ``selected`` counts them."""
        return fields_of(self.annotation)

    @property
    def selected_field(self) -> dict | None:
        fields = self.fields
        return fields[self.selected] if 0 <= self.selected < len(fields) else None

    def show(self, value: Showable, *, expect_version: bool | None = None, title: str | None = None) -> "FrameView":
        """Show ``value`` instead (``expect_version`` None: the view's own setting)."""
        if expect_version is None:
            expect_version = self.expect_version
        data, base, explained, single, default_title, read_version = _explain(value, expect_version)
        shown = data[: self.max_shown_bytes]
        annotation = annotation_json(explained, base=base, shown=len(shown), expect_version=read_version)
        self._value, self._explained, self._single = value, explained, single
        # One sync message: the browser rebuilds once, with bytes and annotation that agree.
        with self.hold_sync():
            self.selected = -1
            self.data = shown
            self.annotation = annotation
            self.title = default_title if title is None else title
        return self

    def static_html(self) -> str:
        """What nbviewer and GitHub show instead of the live view (``gotalk_lab.html``)."""
        if self._single is not None:
            return message_html(self._single)
        return stream_html(self._explained)

    def _repr_mimebundle_(self, **kwargs: Any):
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), self.static_html())


class FieldTable(anywidget.AnyWidget):
    """The fields of an annotation as a table: offset, bytes, field, value, meaning.

    ``FieldTable(frame_view)`` follows a FrameView: its ``annotation`` is copied on every
    ``show`` and ``selected`` is shared both ways, in the browser (``ipywidgets.jslink``,
    no kernel round trip) and in the kernel (see ``link``). ``FieldTable(value=...)`` stands
    alone, explaining ``value`` as ``FrameView.show`` would.

    Synced traitlets (contract with ``static/fieldtable.js``): ``annotation`` (the same dict
    as FrameView's), ``selected`` (field index, -1 for none) and ``title``. Clicking a row
    selects it.
    """

    _esm = _STATIC / "fieldtable.js"
    _css = widget_css("fieldtable.css")

    annotation = traitlets.Dict().tag(sync=True)
    selected = traitlets.Int(-1).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    #: Projector mode: 18 px text and up, full contrast (a FrameView also shows 8 bytes a row).
    projector = traitlets.Bool(False).tag(sync=True)
    #: What the view says while it shows nothing (a dashboard: where the bytes will come from).
    empty_text = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        frame_view: FrameView | None = None,
        *,
        value: Showable = None,
        expect_version: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.frame_view = frame_view
        self.links: FrameTableLink | None = None
        if frame_view is not None:
            self.links = link(frame_view, self)
        elif value is not None:
            data, base, explained, _, title, read_version = _explain(value, expect_version)
            self.annotation = annotation_json(explained, base=base, shown=len(data), expect_version=read_version)
            self.title = title

    @property
    def fields(self) -> list[dict]:
        return fields_of(self.annotation)

    def static_html(self) -> str:
        return table_html(self.annotation)

    def _repr_mimebundle_(self, **kwargs: Any):
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), self.static_html())


class FrameTableLink:
    """The links ``link`` made; ``unlink()`` undoes them all."""

    def __init__(self, frame_view: FrameView, table: FieldTable) -> None:
        self.frame_view, self.table = frame_view, table
        #: Kernel side: the table explains whatever the view shows.
        self.annotation = traitlets.dlink((frame_view, "annotation"), (table, "annotation"))
        self.title = traitlets.dlink((frame_view, "title"), (table, "title"))
        #: Kernel side, so that setting ``selected`` in Python moves both even with no browser.
        self.selected_kernel = traitlets.link((frame_view, "selected"), (table, "selected"))
        #: Browser side: a hover or click in one shows in the other without the kernel.
        self.selected_browser = ipywidgets.jslink((frame_view, "selected"), (table, "selected"))

    def unlink(self) -> None:
        self.annotation.unlink()
        self.title.unlink()
        self.selected_kernel.unlink()
        self.selected_browser.unlink()


def link(frame_view: FrameView, table: FieldTable) -> FrameTableLink:
    """Make ``table`` follow ``frame_view``: same annotation, one selection for both."""
    return FrameTableLink(frame_view, table)


def table_html(annotation: dict) -> str:
    """The field table as static HTML (inline styles: no script, no external CSS)."""
    cell = "padding:1px 8px;text-align:left;vertical-align:top;border:none"
    rows = []
    for field in fields_of(annotation):
        raw = " ".join(field["raw"][i : i + 2] for i in range(0, len(field["raw"]), 2))
        if field["raw_size"] > FIELD_RAW_BYTES:
            raw += " …"
        rows.append(
            "<tr>"
            f'<td style="{cell}">{field["start"]}–{field["end"]}</td>'
            f'<td style="{cell};white-space:nowrap">{escape(raw)}</td>'
            f'<td style="{cell}"><span style="background:{field["colour"]};color:{FIELD_INK};padding:0 4px;'
            f'border-radius:3px">{escape(field["name"])}</span></td>'
            f'<td style="{cell}">{escape(field["value"])}</td>'
            f'<td style="{cell}">{escape(field["meaning"])}</td>'
            "</tr>"
        )
    error = annotation.get("error")
    if error:
        rows.append(f'<tr><td colspan="5" style="{cell};color:{TEXT["bad"]}">✖ {escape(error["message"])}</td></tr>')
    if not rows:
        rows.append(f'<tr><td style="{cell};font-style:italic">no fields</td></tr>')
    head = "".join(f'<th style="{cell}">{name}</th>' for name in ("offset", "bytes", "field", "value", "meaning"))
    return (
        '<table style="font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;border-collapse:collapse">'
        f"<tr>{head}</tr>{''.join(rows)}</table>"
    )

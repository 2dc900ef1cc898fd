"""The kit's one palette: a colour per message type, per field and per outcome, and the text on them.

Every view takes its colours from here. Python views (``html``, the widgets' static
fallbacks, the Composer's status line) import the values; the browser views get them as
CSS custom properties from ``stylesheet()``, which each widget puts before its own CSS
(``widgets/static/*.css`` name only ``var(--gl-...)``, never a colour of a message type).

How the colours were chosen
---------------------------
Message types start from the Okabe–Ito set (Okabe and Ito 2002, "Color Universal
Design"), which stays apart under the common colour-vision deficiencies: request is its
blue, result its bluish green, error its vermillion and notification its reddish
purple. The other eight were found by a search over the sRGB cube around those four,
each kept to the hue family of its role — what the requester writes is blue or violet
(r, s, p), answers are green (R, S), failures red (E, f, with retry a rust brown),
one-way messages magenta (n, h), the version grey and bytes that are no frame olive —
and lightness tells the members of a family apart. Every type colour has at least 3:1
contrast on white (it draws arrows and bars, WCAG 1.4.11), and each comes with the text
drawn on it (``on``, 4.5:1 or more) and a darker ``ink`` for text in that colour on the
light row backgrounds (4.5:1 or more on white, hover, selection and the player's cursor).

Field tints are light, for dark text (7.5:1 or more), and far enough from white to show
where a field's bytes run (the old heartbeat "time" tint was 6.7 ΔE00 from white); fields
that share a message, or meet at a message boundary, stay apart.

tests/test_palette.py computes all of this from the CSS files and these values: WCAG
contrast for every text on its background, CIEDE2000 differences between the type
colours (and between neighbouring fields) for normal vision and under simulated
deuteranopia and protanopia (Machado et al. 2009).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FIELD_COLOURS",
    "FIELD_INK",
    "FINDING_COLOURS",
    "HIGHLIGHTS",
    "MESSAGE_TYPES",
    "OUTCOME_TYPES",
    "TEXT",
    "UNKNOWN_FIELD_COLOUR",
    "TypeStyle",
    "css_class",
    "stylesheet",
    "type_style",
]


@dataclass(frozen=True)
class TypeStyle:
    """How one message type looks in every view."""

    #: The CSS name: custom properties ``--gl-<key>``, ``--gl-<key>-on``, ``--gl-<key>-ink``.
    key: str
    #: What the legends call it.
    name: str
    #: The glyph on its badge, before the type letter.
    glyph: str
    #: Arrows, bars, badges: 3:1 or more on white.
    colour: str
    #: Text drawn on ``colour`` (a badge's letter).
    on: str
    #: Text in this type's colour on a light background.
    ink: str


_WHITE = "#ffffff"
_BLACK = "#111111"

#: By type character as the wire writes it; "v" is the version preamble and "?" bytes
#: that are no frame (the Composer's broken messages).
MESSAGE_TYPES: dict[str, TypeStyle] = {
    "v": TypeStyle("version", "version", "◆", "#716583", _WHITE, "#6a5e7b"),
    "r": TypeStyle("request", "request", "?", "#0072b2", _WHITE, "#0067a1"),
    "s": TypeStyle("stream-request", "stream request", "≡", "#5419e1", _WHITE, "#5419e1"),
    "p": TypeStyle("request-part", "request part", "…", "#9081ef", _BLACK, "#6358a7"),
    "R": TypeStyle("result", "result", "✓", "#009e73", _BLACK, "#007151"),
    "S": TypeStyle("result-part", "result part", "≋", "#145459", _WHITE, "#145459"),
    "E": TypeStyle("error", "error", "✗", "#d55e00", _BLACK, "#a44700"),
    "e": TypeStyle("retry", "retry", "↻", "#842c08", _WHITE, "#842c08"),
    "n": TypeStyle("notification", "notification", "✉", "#cc79a7", _BLACK, "#8a5070"),
    "h": TypeStyle("heartbeat", "heartbeat", "♥", "#8c054f", _WHITE, "#8c054f"),
    "f": TypeStyle("protocol-error", "protocol error", "⚠", "#e11e50", _WHITE, "#c11843"),
    "?": TypeStyle("raw", "no frame (raw bytes)", "▒", "#6c683d", _WHITE, "#68643b"),
}

#: An exchange's outcome takes the colour of the type that settles it; "closed" and
#: "dropped" (never answered) are neutral.
OUTCOME_TYPES: dict[str, str | None] = {
    "pending": "r",
    "stream": "S",
    "retrying": "e",
    "result": "R",
    "error": "E",
    "closed": None,
    "dropped": None,
}

#: Text colours for light backgrounds: ``ink`` for reading, ``muted`` for what
#: supports it (offsets, times, meanings), ``bad`` for errors, ``warn`` for warnings,
#: ``ok`` for success, ``neutral`` for what ended without an answer.
TEXT: dict[str, str] = {
    "ink": "#1f1f1f",
    "muted": "#5f5f5f",
    "bad": "#b22222",
    "warn": "#a14a07",
    "ok": MESSAGE_TYPES["R"].ink,
    "neutral": "#636363",
}

#: Backgrounds that mark a row: the one clicked, and the one a Player stands on.
HIGHLIGHTS: dict[str, str] = {
    "selected": "#dbeafe",
    "current": "#fef08a",
}

#: Expert Info severities (gotalk_lab.findings), as text.
FINDING_COLOURS: dict[str, str] = {
    "error": "#c11f2a",
    "warning": "#875a00",
    "note": "#075fc7",
}

#: Background tint per field name, the same in every view; ``FIELD_INK`` is written on them.
FIELD_COLOURS: dict[str, str] = {
    "version": "#d4adfc",
    "type": "#d5ab5f",
    "request_id": "#d1c9c8",
    "name_size": "#68c599",
    "operation": "#9be6f8",
    "name": "#9be6f8",  # a notification's name is the same kind of field as an operation
    "payload_size": "#a1adff",
    "payload": "#eeffac",
    "wait": "#ec94c6",
    "load": "#bde2cd",
    "time": "#edc5e3",
    "code": "#f1cddf",
}
UNKNOWN_FIELD_COLOUR = "#dddddd"
FIELD_INK = TEXT["ink"]

#: The widget roots that carry the custom properties.
_ROOTS = (".gl-fv", ".gl-ft", ".gl-tl")


def type_style(type_char: str) -> TypeStyle | None:
    return MESSAGE_TYPES.get(type_char)


def css_class(type_char: str) -> str:
    """The class that sets ``--c`` (and ``--c-on``, ``--c-ink``) for a type.

    "e" and "E" must differ without relying on case ("t-ee"), "?" is no class name ("t-raw").
    """
    return "t-ee" if type_char == "e" else "t-raw" if type_char == "?" else f"t-{type_char}"


def _field_property(name: str) -> str:
    return "--gl-field-" + name.replace("_", "-")


def stylesheet() -> str:
    """The palette as CSS: custom properties on the widget roots, and one class per type."""
    lines = [f"/* generated by gotalk_lab.palette: change the colours there */\n{', '.join(_ROOTS)} {{"]
    for style in MESSAGE_TYPES.values():
        lines.append(f"  --gl-{style.key}: {style.colour}; --gl-{style.key}-on: {style.on}; --gl-{style.key}-ink: {style.ink};")
    for outcome, type_char in OUTCOME_TYPES.items():
        if type_char is None:
            lines.append(f"  --gl-outcome-{outcome}: {TEXT['neutral']}; --gl-outcome-{outcome}-ink: {TEXT['neutral']};")
        else:
            key = MESSAGE_TYPES[type_char].key
            lines.append(f"  --gl-outcome-{outcome}: var(--gl-{key}); --gl-outcome-{outcome}-ink: var(--gl-{key}-ink);")
    lines += [f"  --gl-text-{name}: {colour};" for name, colour in TEXT.items()]
    lines += [f"  --gl-highlight-{name}: {colour};" for name, colour in HIGHLIGHTS.items()]
    lines += [f"  --gl-finding-{name}: {colour};" for name, colour in FINDING_COLOURS.items()]
    lines += [f"  {_field_property(name)}: {colour};" for name, colour in FIELD_COLOURS.items()]
    lines.append(f"  --gl-field-unknown: {UNKNOWN_FIELD_COLOUR};\n  --gl-field-ink: {FIELD_INK};\n}}")
    # The muted grey is for light backgrounds; a dark JupyterLab theme gets its own.
    lines.append(f'body[data-jp-theme-light="false"] :is({", ".join(_ROOTS)}) {{ --gl-text-muted: var(--jp-ui-font-color2); }}')
    for type_char, style in MESSAGE_TYPES.items():
        lines.append(
            f".{css_class(type_char)} {{ --c: var(--gl-{style.key}); --c-on: var(--gl-{style.key}-on); "
            f"--c-ink: var(--gl-{style.key}-ink); }}"
        )
    return "\n".join(lines) + "\n"

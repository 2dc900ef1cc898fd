"""One palette for every view, checked from the CSS the browser gets and the values Python writes.

Each widget's stylesheet is what it sends (``_css``: the palette's custom properties,
then its file in static/), read here with a small CSS reader: every colour below is
looked up by selector and property and its ``var()``s resolved as the browser would.
JupyterLab's own variables are resolved twice: as the light theme defines them (the
installed theme's CSS) and as our fallbacks say (a page without JupyterLab's theme).

* Text: WCAG contrast 4.5:1 or more for every text colour on each background it is drawn on.
* Marks: every message type's colour (arrows, bars, badges) 3:1 or more on white (WCAG 1.4.11).
* Telling types apart: CIEDE2000 between every pair of type colours at least
  ``DELTA_E_NORMAL`` for normal vision and ``DELTA_E_DICHROMAT`` under simulated
  deuteranopia and protanopia (Machado et al. 2009, full severity). The same for the
  field tints that can stand side by side (fields of one message, and the fields that
  meet where one message ends and the next begins); each tint ``DELTA_E_FROM_WHITE``
  from the white it is drawn on, so that a field's extent shows.

Why these thresholds. A ΔE00 of about 1 is just noticeable between two large patches side
by side; these colours are small marks seen apart (a 2 px arrow, a 16 px badge, a 3-character
hex cell), which need many times that to be told apart at a glance. The old stream request
and request part were 10.8 apart and the walkthrough of issue 19 called them near-identical,
so normal vision gets about twice that: 20. A dichromat sees roughly a plane (lightness and
blue–yellow): in it, twelve colours that also keep 3:1 on white cannot all be 20 apart (a
search over the sRGB cube found no such set above 15), so the bar there is 9, with the
badge's glyph and letter carrying the rest. The old palette had 2.2 there (request and
notification, deuteranopia). A tint must be 12 from white: the old heartbeat "time" was 6.7.

``check_*`` take the stylesheets and field colours as arguments, so that the same checks can
be run on other colours: ``test_the_checks_fail_on_the_colours_before_the_palette`` runs
them on the colours the kit had before this palette, and they fail there.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from colour_maths import ciede2000, contrast, delta_e, lab, over, simulate

import gotalk_lab
from gotalk_lab import palette
from gotalk_lab.decoder import LAYOUTS
from gotalk_lab.html import message_html, stream_html
from gotalk_lab.widgets.composer import Composer
from gotalk_lab.widgets.frames import FieldTable, FrameView
from gotalk_lab.widgets.timeline import Timeline

TEXT_CONTRAST = 4.5
MARK_CONTRAST = 3.0
DELTA_E_NORMAL = 20.0
DELTA_E_DICHROMAT = 9.0
DELTA_E_FROM_WHITE = 12.0
DICHROMACIES = ("deuteranopia", "protanopia")

#: Type characters as the Timeline's classes name them (t-ee for "e", t-raw for unframed bytes).
TYPE_CLASSES = {"v": "t-v", "r": "t-r", "s": "t-s", "p": "t-p", "R": "t-R", "S": "t-S", "E": "t-E",
                "e": "t-ee", "n": "t-n", "h": "t-h", "f": "t-f", "?": "t-raw"}  # fmt: skip
OUTCOMES = ("result", "error", "retrying", "stream", "pending", "closed", "dropped")
SEVERITIES = ("error", "warning", "note")


# -- reading CSS ---------------------------------------------------------------------


def rules(css: str) -> dict[str, dict[str, str]]:
    """Selector -> declarations, for every plain rule (a selector list is split; later rules win)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    found: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = {}
        for declaration in body.split(";"):
            if ":" in declaration:
                name, value = declaration.split(":", 1)
                declarations[name.strip()] = value.strip()
        for selector in split_selectors(selectors):
            found.setdefault(selector, {}).update(declarations)
    return found


def split_selectors(text: str) -> list[str]:
    """"a, b:is(c, d)" -> ["a", "b:is(c, d)"]: commas inside parentheses do not split."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [" ".join(part.split()) for part in parts if part.strip()]


NAMED = {"white": "#ffffff", "black": "#000000", "transparent": "#00000000"}


def as_hex(value: str) -> str:
    """A resolved CSS colour as "#rrggbb" or "#rrggbbaa" (hex, rgb(), rgba() or a name)."""
    value = value.strip().lower()
    if value in NAMED:
        return NAMED[value]
    if value.startswith("#"):
        digits = value[1:]
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        return "#" + digits
    match = re.fullmatch(r"rgba?\(([^)]*)\)", value)
    if match:
        parts = [p.strip() for p in re.split(r"[,\s/]+", match.group(1)) if p.strip()]
        red, green, blue = (round(float(p)) for p in parts[:3])
        alpha = float(parts[3]) if len(parts) > 3 else 1.0
        return f"#{red:02x}{green:02x}{blue:02x}" + ("" if alpha == 1 else f"{round(alpha * 255):02x}")
    raise ValueError(f"not a colour this test reads: {value!r}")


def light_theme_variables() -> dict[str, str]:
    """JupyterLab's light theme's --jp-* variables, from the installed theme's CSS."""
    import jupyterlab

    path = Path(jupyterlab.__file__).parent / "themes/@jupyterlab/theme-light-extension/index.css"
    assert path.is_file(), f"JupyterLab's light theme is not at {path}"
    variables: dict[str, str] = {}
    for declarations in rules(path.read_text()).values():
        variables.update({name: value for name, value in declarations.items() if name.startswith("--jp-")})
    assert "--jp-layout-color0" in variables and "--jp-ui-font-color2" in variables, "the theme's variables were not read"
    return variables


THEMES = {"fallbacks": {}, "JupyterLab light": light_theme_variables()}


class Sheet:
    """One widget's stylesheet: look a property up by selector, its var()s resolved."""

    def __init__(self, css: str, roots: tuple[str, ...], theme: dict[str, str]) -> None:
        self.rules = rules(css)
        self.theme = theme
        #: Custom properties set on the widget's root (and the palette's), inherited everywhere.
        self.inherited: dict[str, str] = {}
        for root in roots:
            for selector, declarations in self.rules.items():
                if selector == root:
                    self.inherited.update({k: v for k, v in declarations.items() if k.startswith("--")})

    def get(self, selector: str, prop: str, *, within: tuple[str, ...] = ()) -> str:
        """``prop`` of the rule ``selector``, resolved; custom properties come from the rules
        ``within`` (innermost first: a type's class, say), then from the root."""
        declarations = self.rules.get(selector)
        assert declarations is not None, f"no rule {selector!r}"
        assert prop in declarations, f"{selector!r} sets no {prop}"
        scopes = [declarations] + [self.rules[s] for s in within]
        return self.resolve(declarations[prop], scopes)

    def resolve(self, value: str, scopes: list[dict[str, str]], depth: int = 0) -> str:
        assert depth < 20, f"var() loop in {value}"

        def lookup(match: re.Match) -> str:
            name, fallback = match.group(1), match.group(2)
            for scope in scopes:
                if name in scope:
                    return self.resolve(scope[name], scopes, depth + 1)
            if name in self.inherited:
                return self.resolve(self.inherited[name], scopes, depth + 1)
            if name in self.theme:
                return self.resolve(self.theme[name], scopes, depth + 1)
            assert fallback is not None, f"{name} is not defined and has no fallback"
            return self.resolve(fallback, scopes, depth + 1)

        pattern = r"var\(\s*(--[\w-]+)\s*(?:,\s*((?:[^()]|\([^()]*\))*))?\)"
        while "var(" in value:
            value = re.sub(pattern, lookup, value, count=1)
        return value.strip()

    def colour(self, selector: str, prop: str, *, within: tuple[str, ...] = (), on: str | None = None) -> str:
        """A colour ("#rrggbbaa" when translucent, unless laid ``on`` a background); a gradient's first colour."""
        value = self.get(selector, prop, within=within)
        if "gradient(" in value:
            value = re.search(r"gradient\([^,]*,\s*(#[0-9a-f]+|rgba?\([^)]*\)|var\([^)]*\))", value).group(1)
        colour = as_hex(value)
        return over(colour, on) if len(colour) == 9 and on is not None else colour


def sent_css() -> dict[str, str]:
    """What each widget sends the browser as its CSS."""
    return {
        "frames": FrameView._css,
        "fieldtable": FieldTable._css,
        "timeline": Timeline._css,
    }


ROOTS = {"frames": (".gl-fv",), "fieldtable": (".gl-ft",), "timeline": (".gl-tl",)}


# -- the checks --------------------------------------------------------------------------


def text_pairs(css: dict[str, str], fields: dict[str, str], theme: dict[str, str]) -> list[tuple[str, str, str]]:
    """(what, text colour, background) for every text the three widgets draw on a background we set."""
    pairs: list[tuple[str, str, str]] = []
    add = lambda what, fg, bg: pairs.append((what, fg, bg))  # noqa: E731

    tl = Sheet(css["timeline"], ROOTS["timeline"], theme)
    white = tl.colour(".gl-tl", "--gl-tl-bg")
    row_backgrounds = {
        "row": white,
        "hovered row": tl.colour(".gl-tl-row:hover", "background"),
        "selected row": tl.colour(".gl-tl-row.gl-tl-sel", "background"),
        "player's row": tl.colour(".gl-tl-row.gl-tl-cur", "background"),
    }
    label_backgrounds = {
        "label": tl.colour(".gl-tl-label", "background"),
        "hovered label": tl.colour(".gl-tl-row:hover .gl-tl-label", "background"),
        "selected label": tl.colour(".gl-tl-sel .gl-tl-label", "background"),
        "player's label": tl.colour(".gl-tl-cur .gl-tl-label", "background"),
    }
    ink = tl.colour(".gl-tl", "color")
    muted = tl.colour(".gl-tl-idx", "color")
    header = tl.colour(".gl-tl-header", "background")
    for name, background in label_backgrounds.items():
        add(f"timeline: label text on the {name}", ink, background)
    for name, background in row_backgrounds.items():
        add(f"timeline: index and time on the {name}", ink if name in ("selected row", "player's row") else muted, background)
        add(f"timeline: quiet note on the {name}", tl.colour(".gl-tl-quiet", "color"), background)
        for outcome in OUTCOMES:
            add(f"timeline: outcome {outcome!r} on the {name}", tl.colour(f".o-{outcome}", "color"), background)
        for severity in SEVERITIES:
            add(f"timeline: {severity} finding on the {name}", tl.colour(f".gl-tl-finding-{severity}", "color"), background)
    add("timeline: index on the protocol error's stripes", muted, tl.colour(".gl-tl-row.t-f", "background"))
    add("timeline: index on the raw bytes' stripes", muted, tl.colour(".gl-tl-row.t-raw:not(.gl-tl-sel)", "background"))
    add("timeline: stats on the header", tl.colour(".gl-tl-stats", "color"), header)
    add("timeline: warning on the header", tl.colour(".gl-tl-warn", "color"), header)
    add("timeline: 'types' on the header", tl.colour(".gl-tl-what", "color"), header)
    add("timeline: detail note", tl.colour(".gl-tl-detail-head", "color"), white)
    for type_char, cls in TYPE_CLASSES.items():
        within = (f".{cls}",)
        add(f"timeline: badge {type_char!r}", tl.colour(".gl-tl-badge", "color", within=within), tl.colour(".gl-tl-badge", "background", within=within))
    for type_char, selector in (("E", ".gl-tl-row.t-E .gl-tl-label"), ("f", ".gl-tl-row.t-f .gl-tl-label"), ("?", ".gl-tl-row.t-raw .gl-tl-label")):
        for name, background in label_backgrounds.items():
            add(f"timeline: {type_char!r} label on the {name}", tl.colour(selector, "color", within=(f".{TYPE_CLASSES[type_char]}",)), background)

    fv = Sheet(css["frames"], ROOTS["frames"], theme)
    dump = fv.colour(".gl-fv-dump", "background")
    field_ink = fv.colour(".gl-fv-dump .gl-b", "color")
    for name, tint in fields.items():
        add(f"frame view: byte text on the {name} field", field_ink, tint)
    add("frame view: offsets", fv.colour(".gl-fv-off", "color"), dump)
    add("frame view: unread bytes", fv.colour(".gl-fv-dump .gl-unread", "color"), fv.colour(".gl-fv-dump .gl-unread", "background"))
    add("frame view: bytes after the error", fv.colour(".gl-fv-dump .gl-after", "color"), fv.colour(".gl-fv-dump .gl-after", "background"))
    add("frame view: the bad byte", fv.colour(".gl-fv-dump .gl-err", "color"), fv.colour(".gl-fv-dump .gl-err", "background"))
    add("frame view: end of input mark", fv.colour(".gl-fv-eoi", "color"), dump)
    add("frame view: error line", fv.colour(".gl-fv-errrow", "color"), dump)
    page = white  # the notebook's output area: JupyterLab's --jp-layout-color1 (white), as the timeline's
    add("frame view: text", fv.colour(".gl-fv", "color"), page)
    add("frame view: stats", fv.colour(".gl-fv-stats", "color"), page)
    add("frame view: invalid", fv.colour(".gl-fv-bad", "color"), page)
    info = fv.colour(".gl-fv-info", "background")
    add("frame view: meaning in the info line", fv.colour(".gl-fv-meaning", "color"), info)
    add("frame view: hint in the info line", fv.colour(".gl-fv-hint", "color"), info)
    add("frame view: byte range in the info line", fv.colour(".gl-fv-range", "color"), info)
    add("frame view: legend chip", fv.colour(".gl-fv", "color"), fv.colour(".gl-fv-chip", "background"))
    add("frame view: payload head", fv.colour(".gl-fv-payload-head", "color"), page)
    add("frame view: payload", fv.colour(".gl-fv-pre", "color"), fv.colour(".gl-fv-pre", "background", on=page))
    add("frame view: note", fv.colour(".gl-fv-note", "color"), page)
    if ".gl-fv .gl-badge" in fv.rules:  # (the views had no type badge before the palette)
        for type_char, cls in TYPE_CLASSES.items():
            within = (f".{cls}",)
            add(f"frame view: badge {type_char!r}", fv.colour(".gl-fv .gl-badge", "color", within=within), fv.colour(".gl-fv .gl-badge", "background", within=within))

    ft = Sheet(css["fieldtable"], ROOTS["fieldtable"], theme)
    tag_ink = ft.colour(".gl-ft-tag", "color")
    for name, tint in fields.items():
        add(f"field table: name on the {name} field", tag_ink, tint)
    ft_ink, ft_dim = ft.colour(".gl-ft", "color"), ft.colour(".gl-ft-dim", "color")
    backgrounds = {
        "table": page,
        "group row": ft.colour(".gl-ft .gl-ft-table .gl-ft-group td", "background"),
        "hovered row": ft.colour(".gl-ft .gl-ft-table .gl-ft-row:hover", "background"),
        "selected row": ft.colour(".gl-ft .gl-ft-table .gl-ft-row.gl-ft-selected", "background"),
    }
    for name, background in backgrounds.items():
        add(f"field table: text on the {name}", ft_ink, background)
        add(f"field table: dim text on the {name}", ft_dim, background)
        add(f"field table: meaning on the {name}", ft.colour(".gl-ft-meaning", "color"), background)
    add("field table: column heads", ft.colour(".gl-ft-table thead th", "color"), ft.colour(".gl-ft-table thead th", "background"))
    add("field table: error row", ft.colour(".gl-ft-error td", "color"), ft.colour(".gl-ft .gl-ft-table .gl-ft-error td", "background"))
    add("field table: bad field", ft.colour(".gl-ft .gl-ft-table .gl-ft-bad td", "color"), page)
    if ".gl-ft .gl-badge" in ft.rules:
        for type_char, cls in TYPE_CLASSES.items():
            within = (f".{cls}",)
            add(f"field table: badge {type_char!r}", ft.colour(".gl-ft .gl-badge", "color", within=within), ft.colour(".gl-ft .gl-badge", "background", within=within))
    return pairs


def check_text(css: dict[str, str], fields: dict[str, str]) -> list[str]:
    """Every text below 4.5:1 on its background, in words."""
    failures = []
    for theme_name, theme in THEMES.items():
        for what, fg, bg in text_pairs(css, fields, theme):
            assert len(bg) == 7, f"{what}: the background {bg} is translucent"
            fg = over(fg, bg) if len(fg) == 9 else fg  # JupyterLab's text colours are translucent black
            ratio = contrast(fg, bg)
            if ratio < TEXT_CONTRAST:
                failures.append(f"{what} ({theme_name}): {fg} on {bg} is {ratio:.2f}:1")
    return sorted(set(failures))


def type_colours(css: dict[str, str]) -> dict[str, str]:
    """Each message type's colour (--c of its class), as the timeline's stylesheet gives it."""
    sheet = Sheet(css["timeline"], ROOTS["timeline"], {})
    return {t: sheet.colour(f".{cls}", "--c") for t, cls in TYPE_CLASSES.items()}


def check_marks(css: dict[str, str]) -> list[str]:
    """Type colours and exchange bars under 3:1 on the timeline's white."""
    sheet = Sheet(css["timeline"], ROOTS["timeline"], {})
    white = sheet.colour(".gl-tl", "--gl-tl-bg")
    marks = {f"type {t!r}": c for t, c in type_colours(css).items()}
    for outcome in ("result", "error", "retrying", "stream"):
        marks[f"bar {outcome!r}"] = sheet.colour(f":is(.gl-tl-bar, .gl-tl-swatch).o-{outcome}", "background")
    marks["bar 'pending'"] = sheet.colour(".gl-tl-bar", "background")
    marks["bar 'closed'"] = sheet.colour(":is(.gl-tl-bar, .gl-tl-swatch):is(.o-closed, .o-dropped)", "background")
    return [f"{what} {c} is {contrast(c, white):.2f}:1 on {white}" for what, c in marks.items() if contrast(c, white) < MARK_CONTRAST]


def differences(colours: dict[str, str], pairs) -> dict[tuple[str, str], dict[str | None, float]]:
    """ΔE00 of each pair, for normal vision (None) and each dichromacy."""
    labs = {k: {v: lab(simulate(c, v)) for v in (None, *DICHROMACIES)} for k, c in colours.items()}
    return {(a, b): {v: ciede2000(labs[a][v], labs[b][v]) for v in (None, *DICHROMACIES)} for a, b in pairs}


def check_apart(colours: dict[str, str], pairs, what: str) -> list[str]:
    failures = []
    for (a, b), by_vision in differences(colours, pairs).items():
        for vision, value in by_vision.items():
            bar = DELTA_E_NORMAL if vision is None else DELTA_E_DICHROMAT
            if value < bar:
                failures.append(f"{what} {a!r}/{b!r} ({vision or 'normal vision'}): ΔE00 {value:.1f} < {bar}")
    return failures


def field_neighbours() -> list[tuple[str, str]]:
    """Field names that can stand side by side: in one message, or either side of a message boundary."""
    pairs = set()
    for layout in LAYOUTS.values():
        names = [name for name, _, _ in layout]
        if names[-1] == "payload_size":
            names.append("payload")
        pairs |= {tuple(sorted(p)) for p in itertools.combinations(names, 2)}
        pairs.add(tuple(sorted((names[-1], "type"))))  # this message's last field, the next one's type
    pairs.add(("type", "version"))  # the version preamble, then the first message
    return sorted(pairs)


def check_fields(fields: dict[str, str]) -> list[str]:
    failures = check_apart(fields, field_neighbours(), "fields")
    for name, tint in fields.items():
        if delta_e(tint, "#ffffff") < DELTA_E_FROM_WHITE:
            failures.append(f"field {name!r} {tint} is ΔE00 {delta_e(tint, '#ffffff'):.1f} from white")
    return failures


# -- the tests --------------------------------------------------------------------------


def test_the_colour_maths_agrees_with_published_values():
    # Sharma, Wu and Dalal (2005), table 1: pairs 1, 7, 17 and 25.
    for lab1, lab2, expected in [
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
        ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
        ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ]:
        assert ciede2000(lab1, lab2) == pytest.approx(expected, abs=1e-4)
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the lightest grey that passes on white
    assert lab("#ffffff") == pytest.approx((100, 0, 0), abs=0.02)
    # A dichromat confuses red and green: their difference collapses under the simulation.
    assert delta_e(simulate("#ff0000", "deuteranopia"), simulate("#00ff00", "deuteranopia")) < delta_e("#ff0000", "#00ff00") / 2
    assert simulate("#808080", "protanopia") == "#808080"  # greys stay grey


def test_every_widget_stylesheet_starts_with_the_palette():
    for name, css in sent_css().items():
        assert css.startswith(palette.stylesheet()), name
        # The files name the palette's colours, never their own for a message type.
        body = css[len(palette.stylesheet()) :]
        for style in palette.MESSAGE_TYPES.values():
            assert style.colour not in body, (name, style.key)


def test_the_views_read_the_type_colours_from_the_palette():
    assert type_colours(sent_css()) == {t: s.colour for t, s in palette.MESSAGE_TYPES.items()}
    assert set(palette.MESSAGE_TYPES) == set(TYPE_CLASSES)
    assert {t: palette.css_class(t) for t in TYPE_CLASSES} == TYPE_CLASSES


def test_every_text_has_4_5_to_1_on_its_background():
    pairs = text_pairs(sent_css(), palette.FIELD_COLOURS, THEMES["fallbacks"])
    assert len(pairs) > 150  # the check looked at them all
    assert check_text(sent_css(), palette.FIELD_COLOURS) == []


def test_type_colours_and_bars_stand_out_on_white():
    assert check_marks(sent_css()) == []


def test_message_type_colours_stay_apart_for_normal_and_dichromat_vision():
    colours = type_colours(sent_css())
    assert check_apart(colours, itertools.combinations(colours, 2), "types") == []


def test_neighbouring_field_tints_stay_apart_and_show_on_white():
    assert ("operation", "payload_size") in field_neighbours() and ("payload", "type") in field_neighbours()
    assert check_fields(palette.FIELD_COLOURS) == []


def test_the_palette_text_colours_pass_where_python_writes_them():
    white = "#ffffff"
    for style in palette.MESSAGE_TYPES.values():  # the Player's badge is written inline
        assert contrast(style.on, style.colour) >= TEXT_CONTRAST, style.key
        for background in (white, *palette.HIGHLIGHTS.values()):
            assert contrast(style.ink, background) >= TEXT_CONTRAST, (style.key, background)
    for name, colour in {**palette.TEXT, **palette.FINDING_COLOURS}.items():
        for background in (white, *palette.HIGHLIGHTS.values()):
            assert contrast(colour, background) >= TEXT_CONTRAST, (name, background)
    # The Composer's status line and form error, as it writes them.
    composer = Composer()
    assert palette.TEXT["muted"] in composer.status_line.value
    composer.set(request_id="too long")
    assert palette.TEXT["bad"] in composer.form_error.value


def test_the_static_html_views_use_the_palette():
    page = message_html(b"r0001004echo00000005hello") + stream_html(b"01r0001004ec")
    style = "".join(re.findall(r"<style>(.*?)</style>", page, flags=re.S))
    sheet = Sheet(style, (), {})
    white = "#ffffff"
    for name, tint in palette.FIELD_COLOURS.items():
        assert contrast(sheet.colour(".gl-field", "color"), tint) >= TEXT_CONTRAST, name
        assert f"background:{tint}" in page or name not in ("type", "request_id", "operation", "payload", "version")
    for selector in (".gl-error", ".gl-eoi", ".gl-range", ".gl-note"):
        assert contrast(sheet.colour(selector, "color"), white) >= TEXT_CONTRAST, selector
    for selector in (".gl-error-byte", ".gl-unread"):
        assert contrast(sheet.colour(selector, "color"), sheet.colour(selector, "background")) >= TEXT_CONTRAST, selector
    assert "opacity" not in style  # faded text is what made the old views' ranges and notes too faint


def test_the_timeline_legend_names_and_glyphs_are_the_palettes():
    """timeline.js draws the chips (the legend) from its TYPES table: the palette's names and glyphs."""
    source = (Path(gotalk_lab.__file__).parent / "widgets/static/timeline.js").read_text()
    table = source[source.index("const TYPES = {") : source.index("};", source.index("const TYPES = {"))]
    entries = dict(re.findall(r'^\s*(\w|\[UNFRAMED\]): \{ glyph: "([^"]+)", name: "[^"]+" \}', table, flags=re.M))
    names = dict(re.findall(r'^\s*(\w|\[UNFRAMED\]): \{ glyph: "[^"]+", name: "([^"]+)" \}', table, flags=re.M))
    entries["?"], names["?"] = entries.pop("[UNFRAMED]"), names.pop("[UNFRAMED]")
    assert entries == {t: s.glyph for t, s in palette.MESSAGE_TYPES.items()}
    assert names == {t: s.name for t, s in palette.MESSAGE_TYPES.items()}


# -- the checks can fail: the colours before the palette --------------------------------

#: What the views had before this palette (timeline.css, frames.css, fieldtable.css and
#: html.FIELD_COLOURS), reduced to the rules the checks read.
BEFORE_TIMELINE = """
.gl-tl { --gl-tl-bg: var(--jp-layout-color1, #fff); --gl-tl-fg: var(--jp-ui-font-color1, #1f2328);
  --gl-tl-muted: var(--jp-ui-font-color2, #6b7280); color: var(--gl-tl-fg); }
.gl-tl-header { background: var(--jp-layout-color2, #f6f8fa); }
.gl-tl-stats { color: var(--gl-tl-muted); }
.gl-tl-warn { color: #b45309; }
.gl-tl-what { color: var(--gl-tl-muted); }
.gl-tl-row { --c: #6b7280; }
.gl-tl-row:hover { background: var(--jp-layout-color2, #f3f4f6); }
.gl-tl-row.gl-tl-sel { background: #dbeafe; color: #1f2328; }
.gl-tl-row.gl-tl-cur { background: #fef08a; color: #1f2328; }
.gl-tl-idx, .gl-tl-time { color: var(--gl-tl-muted); }
.gl-tl-label { background: var(--gl-tl-bg); }
.gl-tl-row:hover .gl-tl-label { background: var(--jp-layout-color2, #f3f4f6); }
.gl-tl-sel .gl-tl-label { background: #dbeafe; }
.gl-tl-cur .gl-tl-label { background: #fef08a; }
.gl-tl-badge { background: var(--c); color: #fff; }
.gl-tl-quiet { color: var(--gl-tl-muted); }
.t-v { --c: #64748b; } .t-r { --c: #2563eb; } .t-s { --c: #0891b2; } .t-p { --c: #0e7490; }
.t-R { --c: #16a34a; } .t-S { --c: #0d9488; } .t-E { --c: #dc2626; } .t-ee { --c: #ea580c; }
.t-n { --c: #9333ea; } .t-h { --c: #db2777; } .t-f { --c: #7f1d1d; } .t-raw { --c: #a16207; }
.gl-tl-row.t-E .gl-tl-label, .gl-tl-row.t-f .gl-tl-label { color: #b91c1c; }
.gl-tl-row.t-f { background: repeating-linear-gradient(135deg, #fee2e2 0 6px, transparent 6px 12px); }
.gl-tl-row.t-raw .gl-tl-label { color: #854d0e; }
.gl-tl-row.t-raw:not(.gl-tl-sel) { background: repeating-linear-gradient(135deg, #fef3c7 0 6px, transparent 6px 12px); }
.gl-tl-detail-head { color: var(--gl-tl-muted); }
.gl-tl-bar { background: #2563eb; }
:is(.gl-tl-bar, .gl-tl-swatch).o-result { background: #16a34a; }
:is(.gl-tl-bar, .gl-tl-swatch).o-error { background: #dc2626; }
:is(.gl-tl-bar, .gl-tl-swatch).o-retrying { background: #ea580c; }
:is(.gl-tl-bar, .gl-tl-swatch).o-stream { background: #0d9488; }
:is(.gl-tl-bar, .gl-tl-swatch):is(.o-closed, .o-dropped) { background: #9ca3af; }
.o-result { color: #15803d; } .o-error { color: #b91c1c; } .o-retrying { color: #c2410c; }
.o-stream, .o-pending { color: #1d4ed8; } .o-closed, .o-dropped { color: #6b7280; }
.gl-tl-finding-error { color: #cf222e; } .gl-tl-finding-warning { color: #9a6700; } .gl-tl-finding-note { color: #0969da; }
"""
BEFORE_FRAMES = """
.gl-fv { --gl-fv-ink: var(--jp-content-font-color1, #1f1f1f); --gl-fv-dim: var(--jp-content-font-color2, #616161);
  --gl-fv-faint: var(--jp-content-font-color3, #9e9e9e); --gl-fv-line: var(--jp-border-color2, #e0e0e0);
  --gl-fv-bad: var(--jp-error-color1, #d32f2f); color: var(--gl-fv-ink); }
.gl-fv-stats { color: var(--gl-fv-dim); } .gl-fv-bad { color: var(--gl-fv-bad); }
.gl-fv-dump { background: var(--jp-layout-color0, #ffffff); }
.gl-fv-off { color: var(--gl-fv-faint); }
.gl-fv-dump .gl-b, .gl-fv-eoi { color: #222; }
.gl-fv-dump .gl-unread { background: #ececec; color: #555; }
.gl-fv-dump .gl-after { background: #ececec; color: #a8a8a8; }
.gl-fv-dump .gl-err { background: #ffcdd2; color: #b71c1c; }
.gl-fv-eoi { color: var(--gl-fv-bad); } .gl-fv-errrow { color: var(--gl-fv-bad); }
.gl-fv-info { background: var(--jp-layout-color1, #fafafa); }
.gl-fv-meaning { color: var(--gl-fv-dim); } .gl-fv-hint { color: var(--gl-fv-dim); } .gl-fv-range { color: var(--gl-fv-dim); }
.gl-fv-chip { background: var(--jp-layout-color0, #ffffff); }
.gl-fv-payload-head { color: var(--gl-fv-dim); }
.gl-fv-pre { background: #fdffb64d; color: var(--gl-fv-ink); }
.gl-fv-note { color: var(--gl-fv-dim); }
"""
BEFORE_FIELDTABLE = """
.gl-ft { --gl-ft-ink: var(--jp-content-font-color1, #1f1f1f); --gl-ft-dim: var(--jp-content-font-color2, #616161);
  --gl-ft-bad: var(--jp-error-color1, #d32f2f); color: var(--gl-ft-ink); }
.gl-ft-table thead th { background: var(--jp-layout-color2, #eeeeee); color: var(--gl-ft-dim); }
.gl-ft .gl-ft-table .gl-ft-row:hover { background: var(--jp-layout-color2, #f0f0f0); }
.gl-ft .gl-ft-table .gl-ft-row.gl-ft-selected { background: var(--jp-brand-color3, #bbdefb); }
.gl-ft-meaning { color: var(--gl-ft-dim); }
.gl-ft-tag { color: #222; }
.gl-ft-dim { color: var(--gl-ft-dim); }
.gl-ft .gl-ft-table .gl-ft-group td { background: var(--jp-layout-color1, #fafafa); }
.gl-ft .gl-ft-table .gl-ft-bad td, .gl-ft-error td { color: var(--gl-ft-bad); }
.gl-ft .gl-ft-table .gl-ft-error td { background: #ffebee; }
"""
BEFORE_FIELDS = {
    "version": "#d7d2ff", "type": "#ffd6a5", "request_id": "#caffbf", "name_size": "#9bf6ff",
    "operation": "#a0c4ff", "name": "#a0c4ff", "payload_size": "#bdb2ff", "payload": "#fdffb6",
    "wait": "#ffc6ff", "load": "#ffadad", "time": "#e2ece9", "code": "#ff9fb2",
}  # fmt: skip


def test_the_checks_fail_on_the_colours_before_the_palette():
    before = {"timeline": BEFORE_TIMELINE, "frames": BEFORE_FRAMES, "fieldtable": BEFORE_FIELDTABLE}
    colours = type_colours(before)
    apart = check_apart(colours, itertools.combinations(colours, 2), "types")
    # The complaint: stream request and request part too close even for normal vision.
    assert "types 's'/'p' (normal vision): ΔE00 10.8 < 20.0" in apart
    assert any(line.startswith("types 'r'/'n' (deuteranopia)") for line in apart)
    text = check_text(before, BEFORE_FIELDS)
    assert any(line.startswith("timeline: badge 'R'") for line in text)  # white on green: 3.30:1
    assert any(line.startswith("frame view: offsets") for line in text)  # #9e9e9e on white
    fields = check_fields(BEFORE_FIELDS)
    assert "field 'time' #e2ece9 is ΔE00 6.7 from white" in fields
    assert any(line.startswith("fields 'operation'/'payload_size' (deuteranopia)") for line in fields)
    assert any(line.startswith("type 's'") for line in check_marks(before)) is False  # (the old teals were dark enough)
    assert any(line.startswith("bar 'closed'") for line in check_marks(before))

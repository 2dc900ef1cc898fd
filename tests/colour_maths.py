"""The colour maths the palette tests use, small enough to read in one sitting.

* WCAG 2.x relative luminance and contrast ratio (https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio);
* sRGB -> CIE XYZ (D65) -> CIELAB, and the CIEDE2000 colour difference (Sharma, Wu and
  Dalal 2005, whose worked pairs tests/test_palette.py checks it against);
* colour-vision deficiency simulated with the Machado, Oliveira and Fernandes (2009)
  matrices at full severity, applied to linear RGB as the paper does.

Colours are "#rrggbb" strings (or "#rgb"); a colour with an alpha channel ("#rrggbbaa")
is first laid over the background it is drawn on (``over``).
"""

from __future__ import annotations

import math

Rgb = tuple[float, float, float]  # each channel 0..1, gamma-encoded sRGB


def parse_hex(colour: str) -> tuple[Rgb, float]:
    """("#rgb" | "#rrggbb" | "#rrggbbaa") -> ((r, g, b), alpha)."""
    digits = colour.strip().removeprefix("#")
    if len(digits) in (3, 4):
        digits = "".join(c * 2 for c in digits)
    if len(digits) not in (6, 8):
        raise ValueError(f"not a hex colour: {colour!r}")
    channels = [int(digits[i : i + 2], 16) / 255 for i in range(0, len(digits), 2)]
    alpha = channels[3] if len(channels) == 4 else 1.0
    return (channels[0], channels[1], channels[2]), alpha


def rgb(colour: str) -> Rgb:
    value, alpha = parse_hex(colour)
    if alpha != 1.0:
        raise ValueError(f"{colour} is translucent: lay it over its background first (over())")
    return value


def over(colour: str, background: str) -> str:
    """A translucent ``colour`` as it looks laid over an opaque ``background``."""
    (r, g, b), alpha = parse_hex(colour)
    base = rgb(background)
    mixed = [alpha * c + (1 - alpha) * d for c, d in zip((r, g, b), base)]
    return "#" + "".join(f"{round(c * 255):02x}" for c in mixed)


def to_linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def from_linear(channel: float) -> float:
    channel = min(max(channel, 0.0), 1.0)
    return channel * 12.92 if channel <= 0.0031308 else 1.055 * channel ** (1 / 2.4) - 0.055


def luminance(colour: str) -> float:
    """WCAG relative luminance. (WCAG's own text says 0.03928 for the knee; the sRGB
    standard's 0.04045 differs from it only for channels 11/255 and 10/255, by < 1e-4.)"""
    r, g, b = (to_linear(c) for c in rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio, 1 to 21."""
    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


# -- CIELAB and CIEDE2000 ------------------------------------------------------------

_WHITE = (0.95047, 1.0, 1.08883)  # D65


def lab(colour: str) -> tuple[float, float, float]:
    r, g, b = (to_linear(c) for c in rgb(colour))
    x = 0.4124 * r + 0.3576 * g + 0.1805 * b
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = 0.0193 * r + 0.1192 * g + 0.9505 * b

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    fx, fy, fz = (f(v / w) for v, w in zip((x, y, z), _WHITE))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def ciede2000(lab1: tuple[float, float, float], lab2: tuple[float, float, float]) -> float:
    """ΔE00 between two CIELAB colours (kL = kC = kH = 1), after Sharma et al. 2005."""
    l1, a1, b1 = lab1
    l2, a2, b2 = lab2
    c_mean = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_mean**7 / (c_mean**7 + 25**7)))
    a1p, a2p = a1 * (1 + g), a2 * (1 + g)
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0

    dl = l2 - l1
    dc = c2p - c1p
    if c1p * c2p == 0:
        dh = 0.0
    elif abs(h2p - h1p) <= 180:
        dh = h2p - h1p
    else:
        dh = h2p - h1p - 360 if h2p > h1p else h2p - h1p + 360
    dH = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))

    l_mean = (l1 + l2) / 2
    cp_mean = (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_mean = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_mean = (h1p + h2p) / 2
    else:
        h_mean = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (
        1
        - 0.17 * math.cos(math.radians(h_mean - 30))
        + 0.24 * math.cos(math.radians(2 * h_mean))
        + 0.32 * math.cos(math.radians(3 * h_mean + 6))
        - 0.20 * math.cos(math.radians(4 * h_mean - 63))
    )
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / math.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = (
        -2
        * math.sqrt(cp_mean**7 / (cp_mean**7 + 25**7))
        * math.sin(math.radians(60 * math.exp(-(((h_mean - 275) / 25) ** 2))))
    )
    return math.sqrt(
        (dl / s_l) ** 2 + (dc / s_c) ** 2 + (dH / s_h) ** 2 + r_t * (dc / s_c) * (dH / s_h)
    )


def delta_e(colour1: str, colour2: str) -> float:
    return ciede2000(lab(colour1), lab(colour2))


# -- colour-vision deficiencies ----------------------------------------------------------

#: Machado et al. 2009, severity 1.0 (dichromacy), for linear RGB.
MACHADO = {
    "protanopia": (
        (0.152286, 1.052583, -0.204868),
        (0.114503, 0.786281, 0.099216),
        (-0.003882, -0.048116, 1.051998),
    ),
    "deuteranopia": (
        (0.367322, 0.860646, -0.227968),
        (0.280085, 0.672501, 0.047413),
        (-0.011820, 0.042940, 0.968881),
    ),
    "tritanopia": (
        (1.255528, -0.076749, -0.178779),
        (-0.078411, 0.930809, 0.147602),
        (0.004733, 0.691367, 0.303900),
    ),
}


def simulate(colour: str, deficiency: str | None) -> str:
    """``colour`` as a viewer with ``deficiency`` (a MACHADO key) sees it; None: as it is."""
    if deficiency is None:
        return colour
    linear = [to_linear(c) for c in rgb(colour)]
    seen = [sum(m * c for m, c in zip(row, linear)) for row in MACHADO[deficiency]]
    return "#" + "".join(f"{round(from_linear(c) * 255):02x}" for c in seen)

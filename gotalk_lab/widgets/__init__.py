"""Widgets that show the codec and the trace: bytes, fields, timelines, a composer, a player.

Each widget is a thin anywidget model whose front-end lives in ``static/``; each
has a static HTML fallback for places with no kernel. Widgets observe traces and
bytes; they never open connections. ``show`` and ``lab`` are the one-line entry points.
"""

from __future__ import annotations

import ipywidgets

from ..peer import register_view
from .check_report import CheckReport
from .composer import Composer
from .connection_view import ConnectionView
from .dashboard import Dashboard, lab
from .findings_table import FindingsTable
from .frames import FieldTable, FrameView, link
from .interceptor import Interceptor
from .player import Player, Question
from .malformed_lab import MalformedLab
from .timeline import Timeline

# ``peer.timeline()`` is a Timeline of the peer's trace: registered, since the peer never imports widgets.
register_view("timeline", Timeline)


def show(value, *, expect_version: bool | None = None, title: str | None = None) -> ipywidgets.VBox:
    """A FrameView of ``value`` (bytes, a message, a trace event) with its linked FieldTable below."""
    frame_view = FrameView(value, expect_version=expect_version, title=title)
    table = FieldTable(frame_view)
    return ipywidgets.VBox([frame_view, table])


__all__ = ["CheckReport", "FrameView", "FieldTable", "link", "Composer", "Timeline", "Player", "Question", "MalformedLab", "Dashboard", "ConnectionView", "FindingsTable", "Interceptor", "lab", "show"]

"""``lab(peer_or_trace)`` and ``peer.timeline()``: the timeline wired to a frame view and
field table, so that clicking a frame shows its bytes (kernel side)."""

from __future__ import annotations

import ipywidgets
import pytest

import gotalk_lab as gl
from gotalk_lab.widgets.dashboard import Dashboard, lab
from gotalk_lab.widgets.frames import FieldTable, FrameView
from gotalk_lab.widgets.timeline import Timeline


async def test_lab_of_a_peer_shows_the_clicked_frame_below_the_timeline():
    a, b = await gl.pipe(None, gl.demo.handlers())
    dashboard = lab(a)
    assert isinstance(dashboard, ipywidgets.VBox)
    timeline, below = dashboard.children
    assert isinstance(timeline, Timeline) and timeline.trace is a.trace
    frame_view, field_table = below.children
    assert isinstance(frame_view, FrameView) and isinstance(field_table, FieldTable)
    assert timeline.lanes == ["this side (a)", "other side"] and timeline.title == "peer a"

    await a.request_bytes("echo", b"hello")
    request = a.trace.events[-2]
    timeline.selected = request.index  # what a click on the arrow sets
    assert dashboard.frame_view.value is request
    assert dashboard.field_table.annotation["messages"][0]["summary"].startswith("r 0000 echo")
    await a.close()


def test_lab_of_a_loaded_trace_and_refusals():
    trace = gl.Trace()
    dashboard = lab(trace, title="recorded")
    assert isinstance(dashboard, Dashboard) and dashboard.timeline.title == "recorded"
    with pytest.raises(TypeError, match="peer or a Trace"):
        lab(object())


async def test_peer_timeline_is_a_live_timeline_of_its_trace():
    a, b = await gl.pipe(None, gl.demo.handlers())
    timeline = a.timeline(title="mine", batch_interval=0.5)
    assert isinstance(timeline, Timeline)
    assert (timeline.trace, timeline.title, timeline.batch_interval) == (a.trace, "mine", 0.5)
    await a.close()


def test_the_dashboard_has_a_static_html_fallback():
    data = lab(gl.Trace())._repr_mimebundle_()  # an ipywidgets VBox: a dict, no metadata
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "no frames yet" in data["text/html"]


async def test_a_composer_inside_lab_sends_and_its_broken_bytes_show_on_that_timeline():
    from gotalk_lab.widgets.composer import Composer

    a, b = await gl.pipe(None, gl.demo.handlers())
    dashboard = lab(a, composer=True)
    assert isinstance(dashboard.composer, Composer) and dashboard.composer.peer is a
    assert dashboard.children[1] is dashboard.composer
    assert dashboard.timeline.detail is False  # the dashboard's own frame view shows clicks
    dashboard.composer.set(malformation="unknown-type")
    await dashboard.composer.send_to_peer()
    await a.wait_closed()
    dashboard.timeline.selected = -2  # the unframed row
    assert dashboard.frame_view.data == b"x0001004echo00000005hello"
    assert dashboard.composer.send_button.disabled
    with pytest.raises(TypeError, match="needs a peer"):
        lab(gl.Trace(), composer=True)


def test_lab_of_a_tap_trace_names_client_and_upstream():
    dashboard = lab(gl.Trace(sides=("client", "upstream")))
    assert dashboard.timeline.lanes == ["client", "upstream"]

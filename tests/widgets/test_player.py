"""Stepping through recorded traces with the Player: the step moves the timeline cursor and
the frame view, from a Trace, a saved file or a live peer's snapshot (kernel side)."""

from __future__ import annotations

import gotalk_lab as gl
from gotalk_lab.widgets.player import SPEEDS, Player, position_html
from gotalk_lab.widgets.timeline import Timeline


async def recorded_peer() -> gl.Peer:
    a, b = await gl.pipe(None, gl.demo.handlers())
    await a.request_bytes("echo", b"hello")
    await a.request("greet", {"name": "Ada"})
    return a


async def test_stepping_moves_the_cursor_and_the_frame_view():
    a = await recorded_peer()
    player = Player(a.trace)
    events = player.events
    assert len(events) == 6 and player.step == 0
    assert player.timeline.cursor == events[0].index and player.frame_view.value is events[0]

    player.go(3)
    assert player.step == 3 and player.timeline.cursor == events[3].index
    assert player.frame_view.value is events[3]
    assert player.field_table.annotation == player.frame_view.annotation  # the table follows
    assert "<b>frame #3</b> of #0–#5 (6 frames)" in player.position.value

    player.next()
    assert (player.step, player.current) == (4, events[4])
    player.last()
    assert player.step == 5 and player.buttons["next"].disabled
    player.next()
    assert player.step == 5  # clamped
    player.first()
    player.previous()
    assert player.step == 0 and player.buttons["previous"].disabled
    player.step = -1
    assert player.step == 5 and player.timeline.cursor == events[5].index
    await a.close()


async def test_the_buttons_slider_and_timeline_clicks_all_drive_the_step():
    a = await recorded_peer()
    player = Player(a.trace)
    player.buttons["last"].click()
    assert player.step == 5
    player.buttons["previous"].click()
    assert player.step == 4
    player.slider.value = 2  # what the Play widget does in the browser (jslinked)
    assert player.timeline.cursor == player.events[2].index
    player.timeline.selected = player.events[1].index  # a click on an arrow
    assert player.step == 1 and player.frame_view.value is player.events[1]
    player.speed.value = SPEEDS["10 frames/s"]
    assert player.play.interval == 100
    await a.close()


async def test_a_live_peer_is_played_as_a_snapshot():
    a = await recorded_peer()
    player = Player(a)
    frames = len(player.events)
    await a.request_bytes("echo", b"later")
    assert len(player.events) == frames == len(player.trace.events)
    assert player.trace is not a.trace
    await a.close()


async def test_a_saved_trace_plays_from_its_path(tmp_path):
    a = await recorded_peer()
    path = tmp_path / "conversation.jsonl"
    a.trace.save(path)
    player = Player(str(path))
    assert [event.raw for event in player.events] == [event.raw for event in a.trace.events]
    player.go(4)
    assert player.frame_view.value.raw == a.trace.events[4].raw
    assert isinstance(player.timeline, Timeline) and player.timeline.cursor == player.events[4].index
    await a.close()


def test_an_empty_trace_plays_nothing_without_failing():
    player = Player(gl.Trace())
    assert player.current is None and player.timeline.cursor == -1
    assert "no frames" in player.position.value
    assert all(button.disabled for button in player.buttons.values())


async def test_the_player_has_a_static_html_fallback():
    a = await recorded_peer()
    data = Player(a.trace)._repr_mimebundle_()  # an ipywidgets VBox: a dict, no metadata
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "greet" in data["text/html"]
    await a.close()


def test_the_position_counts_as_the_timeline_does_event_indices_from_zero():
    # Before: "frame 4 of 12 · #3", a 1-based position beside the 0-based index.
    trace = gl.Trace(cap=4, sides=("client", "upstream"))
    for number in range(6):  # a cap of 4: frames #0 and #1 are dropped
        message = gl.Notification("n", b"%d" % number)
        trace.record("out" if number % 2 else "in", gl.encode(message)[:-1], message)
    line = position_html(trace.events[1], list(trace.events), trace.sides)
    assert line.startswith("<b>frame #3</b> of #2–#5 (4 frames)")
    assert "client → upstream" in line
    assert "frame 2" not in line and "frame 4" not in line
    player = Player(trace)  # a snapshot, numbered afresh: the timeline's "#" column says the same
    player.go(1)
    assert player.position.value.startswith(f"<b>frame #{player.current.index}</b> of #0–#3 (4 frames)")
    assert player.timeline.lanes == ["client", "upstream"]
    assert player.timeline.detail is False  # the Player's own frame view shows the step

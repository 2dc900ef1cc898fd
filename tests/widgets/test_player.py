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


# -- predict, then reveal -----------------------------------------------------------------

import pytest  # noqa: E402


async def sleeps_player() -> tuple[gl.Peer, Player]:
    a, b = await gl.pipe(None, gl.demo.handlers())
    import asyncio

    await asyncio.gather(*(a.request("sleep", {"ms": ms}) for ms in (60, 20, 40)))
    player = Player(a.trace)
    player.ask(
        lambda event: event.direction == "in" and type(event.message) is gl.SingleResult,
        "Which result arrives first?", ["60 ms", "20 ms", "40 ms"], "20 ms",
        why={"60 ms": "it was asked first, but it sleeps longest.", "40 ms": "it finishes after the 20 ms one."},
        explanation="results travel in the order the requests finish.",
    )
    return a, player


async def test_a_question_hides_the_frame_it_asks_about_until_answered():
    a, player = await sleeps_player()
    first_result = 5  # 2 versions, 3 requests, then the results
    assert player.pending.at == first_result
    assert player.slider.max == player.play.max == first_result - 1
    player.last()
    assert player.step == first_result - 1 and player.buttons["next"].disabled
    assert player.timeline.cursor == player.events[first_result - 1].index  # the timeline stops there too
    assert "What comes next?" in player.prompt.value and "Which result arrives first?" in player.prompt.value
    player.next()
    player.timeline.selected = player.events[first_result].index  # not even a click reveals it
    assert player.step == first_result - 1

    wrong = player.answer("60 ms")
    assert not wrong and "sleeps longest" in wrong.message and "Try again" in wrong.message
    assert player.step == first_result - 1 and player.pending is not None
    assert "sleeps longest" in player.feedback.value

    right = player.answer("20 ms")
    assert right and "order the requests finish" in right.message
    assert player.pending is None and player.step == first_result
    assert player.slider.max == len(player.events) - 1
    assert player.question_panel.layout.display == "flex"  # the explanation stays under the frame
    assert player.questions[0].tries == ["60 ms", "20 ms"]
    await a.close()


async def test_the_check_and_show_me_buttons_answer_and_reveal():
    a, player = await sleeps_player()
    player.last()
    player.check_button.click()  # nothing chosen yet
    assert "Pick one of the choices" in player.feedback.value and player.pending is not None
    player.choices.value = "40 ms"
    player.check_button.click()
    assert "finishes after the 20 ms one" in player.feedback.value
    player.show_button.click()
    assert player.pending is None and player.questions[0].revealed
    assert 'The answer is "20 ms"' in player.feedback.value and player.step == 5
    await a.close()


async def test_a_question_must_say_why_each_wrong_choice_is_wrong():
    a, player = await sleeps_player()
    with pytest.raises(ValueError, match="missing: \\['b'\\]"):
        player.ask(6, "?", ["a", "b"], "a", why={}, explanation="")
    with pytest.raises(ValueError, match="not one of the choices"):
        player.ask(6, "?", ["a", "b"], "c", why={"a": "", "b": ""}, explanation="")
    with pytest.raises(ValueError, match="no frame of this trace matches"):
        player.ask(lambda event: False, "?", ["a"], "a", why={}, explanation="")
    with pytest.raises(ValueError, match="not a frame after the first"):
        player.ask(0, "?", ["a"], "a", why={}, explanation="")
    await a.close()


async def test_two_questions_are_asked_in_trace_order():
    a, player = await sleeps_player()
    player.ask(7, "Which result comes last?", ["60 ms", "40 ms"], "60 ms",
               why={"40 ms": "the 40 ms one came second."}, explanation="it sleeps longest.")
    player.last()
    assert player.step == 4
    player.answer("20 ms")
    assert player.step == 5 and player.slider.max == 6 and player.feedback.value.count("Right") == 1
    player.last()
    assert player.step == 6 and "Which result comes last?" in player.prompt.value
    assert player.feedback.value == ""  # the old question's feedback is gone
    assert player.answer("60 ms") and player.step == 7
    await a.close()


async def test_the_buttons_tooltips_say_where_a_waiting_question_stops_them():
    a, player = await sleeps_player()
    player.last()  # stops before the question's frame: the tooltips say so, not "last frame"
    assert player.buttons["last"].tooltip == "last frame before the question"
    assert player.buttons["next"].disabled and "answer the question" in player.buttons["next"].tooltip
    assert player.timeline.click_hint == "click to step the player to this frame"
    player.answer("20 ms")
    player.first()
    assert player.buttons["last"].tooltip == "last frame" and player.buttons["next"].tooltip == "next frame"
    player.last()
    assert player.step == len(player.events) - 1  # the last frame now is the trace's last
    await a.close()

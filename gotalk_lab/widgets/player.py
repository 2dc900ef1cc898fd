"""Step through a recorded conversation, frame by frame, as a tutorial would.

``Player`` is an ipywidgets composition: buttons, a slider and a ``Play`` with a
speed choice drive one step number; the step moves a ``Timeline`` cursor (the
frames up to it, the current one marked) and shows the current frame in a
``FrameView`` and ``FieldTable``. It plays a snapshot, never a live trace, and
never touches a connection.

``ask(...)`` turns it into a prediction exercise: the frames from the one asked
about on stay hidden until the student has chosen what comes next; a wrong choice
is told why it is wrong and may try again (or press "Show me"), a right one is
told why it is right, and then the frame is revealed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import ipywidgets as widgets
import traitlets

from ..exercises import Verdict
from ..html import trace_html
from ..palette import type_style
from ..trace import OUT, Trace
from .dashboard import view_and_table
from .frames import FieldTable, FrameView, badge_letters
from .timeline import Timeline, frame_label, type_of, with_html_fallback

#: Playback speeds: label -> milliseconds between steps.
SPEEDS = {
    "1 frame/s": 1000,
    "2 frames/s": 500,
    "4 frames/s": 250,
    "10 frames/s": 100,
    "25 frames/s": 40,
}
DEFAULT_SPEED = "2 frames/s"


def snapshot(trace: Trace) -> Trace:
    """A copy of ``trace`` as it is now, which later frames of the original do not change."""
    copy = Trace(cap=None, sides=trace.sides)
    copy.started_wall = trace.started_wall
    for event in list(trace.events):
        copy.record(event.direction, event.header, event.message, at=event.time)
    copy.dropped = trace.dropped
    return copy


def _trace_of(source: Any) -> Trace:
    if isinstance(source, (str, Path)):
        return Trace.load(source, cap=None)
    if isinstance(source, Trace):
        return snapshot(source)
    trace = getattr(source, "trace", None)  # a Peer, or anything else that records one
    if isinstance(trace, Trace):
        return snapshot(trace)
    raise TypeError(f"Player plays a Trace, a saved trace's path or a peer, not {type(source).__name__}")


def position_html(event, events: list, sides: tuple[str, str] = ("this side", "other side")) -> str:
    """The line above the timeline: which frame of which, when, which way, what.

    Every count is an event index, as the timeline's "#" column, the frame view's
    title and the trace number frames (from 0, and past dropped frames): "#3 of
    #0–#11", never a 1-based position next to a 0-based index.
    """
    first, last = events[0].index, events[-1].index
    writer, reader = sides if event.direction == OUT else sides[::-1]
    type_char = type_of(event.message)
    style = type_style(type_char)
    badge = (
        f'<b style="background:{style.colour};color:{style.on};border-radius:8px;padding:0 5px">'
        f"{escape(style.glyph)} {escape(badge_letters(type_char))}</b> "
        if style
        else ""
    )
    return (
        f"<b>frame #{event.index}</b> of #{first}–#{last} ({len(events)} frames) · at {event.time * 1000:.3f} ms · "
        f"{escape(writer)} → {escape(reader)} · {badge}<code>{escape(frame_label(event))}</code>"
    )


@dataclass
class Question:
    """A "what comes next?" stop of a ``Player``: asked before the frame at ``at`` is shown.

    ``why`` says, for each wrong choice, why it is wrong (a sentence a student
    understands); ``explanation`` says why the answer is right, shown with it.
    """

    at: int
    text: str
    choices: tuple[str, ...]
    answer: str
    why: Mapping[str, str]
    explanation: str
    #: The choices tried so far, in order; ``revealed``: shown without a right answer.
    tries: list[str] = field(default_factory=list)
    revealed: bool = False

    @property
    def answered(self) -> bool:
        return self.revealed or self.answer in self.tries

    def judge(self, choice: str) -> Verdict:
        if choice == self.answer:
            return Verdict(True, f"Right: {self.explanation}")
        reason = self.why.get(choice) or "that is not what the recording shows."
        return Verdict(False, f"Not \"{choice}\": {reason} Try again, or press \"Show me\".")


class Player(widgets.VBox):
    """``Player(trace_or_path)``: step through a recorded trace.

    Takes a ``Trace`` (copied as it is now), a path written by ``Trace.save``, or
    a peer (its trace, copied). ``player.step`` (0-based position in the trace)
    and ``player.go(i)`` drive it from code; ``first()``, ``previous()``,
    ``next()`` and ``last()`` do what the buttons do. Clicking a frame in the
    timeline jumps there.
    """

    def __init__(self, trace_or_path: Any, *, title: str | None = None, speed: str = DEFAULT_SPEED) -> None:
        self.trace = _trace_of(trace_or_path)
        self.events = list(self.trace.events)
        last = max(len(self.events) - 1, 0)
        self.frame_view = FrameView()
        self.field_table = FieldTable(self.frame_view)
        # No detail panel of its own: the frame view below already follows the step.
        self.timeline = Timeline(self.trace, title=title or "Player", detail=False)
        # A click moves the player there; its own frame view shows the bytes.
        self.timeline.click_hint = "click to step the player to this frame"
        self.slider = widgets.IntSlider(
            value=0, min=0, max=last, description="frame", readout=False, continuous_update=True,
            layout=widgets.Layout(flex="1 1 auto"),
        )
        self.play = widgets.Play(value=0, min=0, max=last, step=1, interval=SPEEDS[speed], description="play")
        self.speed = widgets.Dropdown(options=SPEEDS, value=SPEEDS[speed], layout=widgets.Layout(width="120px"))
        # In the browser: play ticks move the slider without a kernel round trip each.
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        traitlets.dlink((self.speed, "value"), (self.play, "interval"))
        # Font Awesome icons, which JupyterLab ships (unlike ⏮ and ⏭, missing from many fonts).
        self.buttons = {
            name: widgets.Button(icon=icon, tooltip=tip, layout=widgets.Layout(width="40px"))
            for name, icon, tip in (
                ("first", "fast-backward", "first frame"),
                ("previous", "step-backward", "previous frame"),
                ("next", "step-forward", "next frame"),
                ("last", "fast-forward", "last frame"),
            )
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _button, name=name: getattr(self, name)())
        self.position = widgets.HTML()
        #: Prediction stops (``ask``), in trace order; the panel that asks the pending one.
        self.questions: list[Question] = []
        self._asking: Question | None = None
        self.prompt = widgets.HTML()
        self.choices = widgets.ToggleButtons(options=[], value=None, style={"button_width": "auto"})
        self.check_button = widgets.Button(description="Check", button_style="primary", tooltip="check your prediction")
        self.show_button = widgets.Button(description="Show me", tooltip="show the frame the question is about, and the answer")
        self.feedback = widgets.HTML()
        self.check_button.on_click(lambda _button: self.answer(self.choices.value))
        self.show_button.on_click(lambda _button: self.reveal())
        self.question_panel = widgets.VBox(
            [self.prompt, self.choices, widgets.HBox([self.check_button, self.show_button]), self.feedback],
            layout=widgets.Layout(display="none", border="2px solid #0072b2", padding="4px 8px", margin="4px 0"),
        )
        self.question_panel.add_class("gl-player-question")
        controls = widgets.HBox(
            [self.buttons["first"], self.buttons["previous"], self.play, self.buttons["next"],
             self.buttons["last"], self.slider, self.speed],
            layout=widgets.Layout(align_items="center", flex_flow="row wrap"),
        )
        frames = view_and_table(self.frame_view, self.field_table)
        super().__init__([controls, self.position, self.question_panel, self.timeline, frames], layout=widgets.Layout(width="100%"))
        self.slider.observe(self._on_slider, "value")
        self.timeline.observe(self._on_timeline_click, "selected")
        for button in self.buttons.values():
            button.disabled = not self.events
        self._show(0)

    # -- predictions ----------------------------------------------------------------------

    def ask(
        self,
        at: int | Callable[[Any], bool],
        question: str,
        choices: Sequence[str],
        answer: str,
        *,
        why: Mapping[str, str],
        explanation: str,
    ) -> "Player":
        """Stop before the frame at position ``at`` (or the first frame ``at(event)`` is true of).

        The student sees the frames before it and the question; the frame is shown once
        they chose ``answer`` or pressed "Show me". ``why`` maps each wrong choice to the
        reason it is wrong. Returns the player, so that calls chain.
        """
        if callable(at):
            position = next((i for i, event in enumerate(self.events) if at(event)), None)
            if position is None:
                raise ValueError(f"ask({question!r}): no frame of this trace matches the given test")
        else:
            position = at + len(self.events) if at < 0 else at
        if not 1 <= position < len(self.events):
            raise ValueError(f"ask({question!r}): at={at} is not a frame after the first of this trace (0..{len(self.events) - 1})")
        choices = tuple(choices)
        if answer not in choices:
            raise ValueError(f"ask({question!r}): the answer {answer!r} is not one of the choices {choices}")
        unexplained = [choice for choice in choices if choice != answer and choice not in why]
        if unexplained:
            raise ValueError(f"ask({question!r}): say why each wrong choice is wrong; missing: {unexplained}")
        if any(q.at == position for q in self.questions):
            raise ValueError(f"ask({question!r}): frame {position} has a question already")
        self.questions.append(Question(position, question, choices, answer, dict(why), explanation))
        self.questions.sort(key=lambda q: q.at)
        self._limit()
        if self.step >= position:
            self.go(position - 1)
        else:
            self._show(self.step)
        return self

    @property
    def pending(self) -> Question | None:
        """The first question not answered yet (None when all are, or there are none)."""
        return next((q for q in self.questions if not q.answered), None)

    def answer(self, choice: str | None) -> Verdict:
        """Judge ``choice`` for the pending question (what the Check button does)."""
        question = self.pending
        if question is None:
            verdict = Verdict(True, "There is no question waiting: step on with the buttons.")
        elif choice is None:
            verdict = Verdict(False, "Pick one of the choices first, then press Check.")
        elif choice not in question.choices:
            verdict = Verdict(False, f"{choice!r} is not one of the choices: {', '.join(question.choices)}.")
        else:
            question.tries.append(choice)
            verdict = question.judge(choice)
        self.feedback.value = verdict.html()
        if question is not None and question.answered:
            self._unlock(question)
        return verdict

    def reveal(self) -> Verdict:
        """Show the frame the pending question is about without a right answer ("Show me")."""
        question = self.pending
        if question is None:
            return self.answer(None)
        question.revealed = True
        verdict = Verdict(False, f"The answer is \"{question.answer}\": {question.explanation}")
        self.feedback.value = verdict.html()
        self._unlock(question)
        return verdict

    def _unlock(self, question: Question) -> None:
        self._limit()
        self.go(question.at)

    def _limit(self) -> None:
        """The slider and Play stop before the pending question's frame."""
        question = self.pending
        last = max(len(self.events) - 1, 0) if question is None else question.at - 1
        self.play.max = last
        self.slider.max = last

    # -- driving it ---------------------------------------------------------------------

    @property
    def step(self) -> int:
        """The position of the current frame in the trace (0 = first)."""
        return self.slider.value

    @step.setter
    def step(self, position: int) -> None:
        self.go(position)

    def go(self, position: int) -> "Player":
        """Move to frame ``position`` (clamped to the trace); negative counts from the end."""
        if position < 0:
            position += len(self.events)
        self.slider.value = min(max(position, 0), self.slider.max)  # observed: _show
        return self

    def first(self) -> "Player":
        return self.go(0)

    def previous(self) -> "Player":
        return self.go(max(self.step - 1, 0))

    def next(self) -> "Player":
        return self.go(self.step + 1)

    def last(self) -> "Player":
        """The last frame, or the one before a question still waiting for its answer."""
        return self.go(self.slider.max)

    @property
    def current(self):
        """The TraceEvent at the current step (None for an empty trace)."""
        return self.events[self.step] if self.events else None

    # -- following the step -------------------------------------------------------------------

    def _on_slider(self, change: dict) -> None:
        self._show(change["new"])

    def _on_timeline_click(self, change: dict) -> None:
        if change["new"] < 0 or not self.events:
            return
        position = change["new"] - self.events[0].index  # the snapshot's indices are consecutive
        if 0 <= position < len(self.events) and position != self.step:
            self.go(position)

    def _show(self, position: int) -> None:
        if not self.events:
            self.position.value = "<i>this trace has no frames</i>"
            self.timeline.cursor = -1
            return
        event = self.events[position]
        self.timeline.cursor = event.index
        self.frame_view.show(event)
        self.position.value = position_html(event, self.events, self.trace.sides)
        self.buttons["first"].disabled = self.buttons["previous"].disabled = position == 0
        self.buttons["last"].disabled = self.buttons["next"].disabled = position == self.slider.max
        # While a question waits, the slider stops before its frame: the tooltips say so.
        waiting = self.pending is not None
        self.buttons["last"].tooltip = "last frame before the question" if waiting else "last frame"
        self.buttons["next"].tooltip = (
            "answer the question (Check or Show me) to see the next frame"
            if waiting and position == self.slider.max else "next frame"
        )
        self._show_question(position)

    def _show_question(self, position: int) -> None:
        question = self.pending
        if question is None:
            # The last answer's feedback stays under the frame it revealed; nothing else to ask.
            self.question_panel.layout.display = "flex" if self.feedback.value else "none"
            self.prompt.value = ""
            self.choices.layout.display = self.check_button.layout.display = self.show_button.layout.display = "none"
            return
        self.question_panel.layout.display = "flex"
        if position < question.at - 1:
            self.prompt.value = f"<i>A question waits before frame #{self.events[question.at].index}: step on to reach it.</i>"
            self.choices.layout.display = self.check_button.layout.display = self.show_button.layout.display = "none"
            return
        self.prompt.value = (
            f"<b>What comes next?</b> Frame #{self.events[question.at].index} is hidden until you answer. "
            f"{escape(question.text)}"
        )
        if self._asking is not question:  # a new question: its own choices, no old feedback
            self._asking = question
            self.choices.options = question.choices
            self.choices.value = None
            self.feedback.value = ""
        self.choices.layout.display = self.check_button.layout.display = self.show_button.layout.display = ""

    def _repr_mimebundle_(self, **kwargs: Any):
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), trace_html(self.trace))

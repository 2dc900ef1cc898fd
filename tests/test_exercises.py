"""The tutorial exercise checks accept right answers, refuse wrong ones with a reason,
name the variable the notebook uses, and never raise, whatever a student types."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import gotalk_lab as gl
from gotalk_lab import exercises

#: Values a student might leave in an answer cell, right type or not.
ODD_VALUES = [
    None, ..., 0, 50, -1, 3.5, float("nan"), True, "", "50", "e", "E", "r...", b"", b"e", b"\xff",
    [], [50], [None], ["50", "150", "250"], [50, 150, 250, 250], (50, 150, 250), {50, 150, 250},
    {}, {"count": "x"}, {"a": 1}, object(), lambda: None, range(3), bytearray(b"r"),
]


def _verdict(check, *args):
    result = check(*args)
    if inspect.isawaitable(result):
        result = asyncio.run(result)
    return result


def _handlers_with(**registered) -> gl.Handlers:
    handlers = gl.Handlers()
    for name, function in registered.items():
        handlers.handle(name.replace("_", "-"), function)
    return handlers


#: Each check with a function from one odd value to its arguments.
CHECKS = {
    "greet": (exercises.check_greet_request, lambda value: (value,)),
    "reverse": (exercises.check_reverse_handler, lambda value: (value,)),
    "sleep order": (exercises.check_sleep_order, lambda value: (value,)),
    "running sum": (exercises.check_running_sum, lambda value: (value,)),
    "limit": (exercises.check_limit_answer, lambda value: (value,)),
    "counter (handlers)": (exercises.check_notification_counter, lambda value: (value, {"count": 0})),
    "counter (counter)": (exercises.check_notification_counter, lambda value: (_counting_handlers(), value)),
    "ping": (exercises.check_ping_over_network, lambda value: (value,)),
    "changed frames": (exercises.check_changed_frames, lambda value: (value, _tap_that_changed(["delayed", "dropped", None]))),
}


def _tap_that_changed(actions):
    """What the interception check reads of a tap: its first connection's trace events."""
    from types import SimpleNamespace

    events = [SimpleNamespace(action=action) for action in actions]
    return SimpleNamespace(connections=[SimpleNamespace(trace=SimpleNamespace(events=events))])


def test_the_interception_check_counts_marked_frames_and_explains_a_forgotten_drop():
    tap = _tap_that_changed(["delayed", "dropped", None, "edited"])
    assert exercises.check_changed_frames(3, tap).ok
    assert "dropped" in exercises.check_changed_frames(2, tap).message
    assert "every frame" in exercises.check_changed_frames(4, tap).message
    assert not exercises.check_changed_frames(None, _tap_that_changed([])).ok
    assert "no connection" in exercises.check_changed_frames(1, object()).message


def _counting_handlers() -> gl.Handlers:
    handlers = gl.Handlers()
    handlers.on_notification(None, lambda name, payload: None)
    return handlers


#: Odd-looking values that are right answers all the same.
RIGHT_ANSWERS = {"limit": ("e", b"e"), "sleep order": ((50, 150, 250),)}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("check", sorted(CHECKS))
def test_no_check_raises_on_what_a_student_might_type(check):
    function, arguments = CHECKS[check]
    for value in ODD_VALUES:
        if value in RIGHT_ANSWERS.get(check, ()):
            continue
        verdict = _verdict(function, *arguments(value))
        assert isinstance(verdict, exercises.Verdict), (check, value)
        assert not verdict.ok, (check, value, verdict)
        assert verdict.message and "`" not in verdict._repr_html_(), (check, value, verdict)


def test_an_unanswered_exercise_names_its_own_variable():
    assert "`answer`" in exercises.check_greet_request(None).message
    assert "`prediction`" in asyncio.run(exercises.check_sleep_order(None)).message
    assert "`answer`" in asyncio.run(exercises.check_limit_answer(None)).message
    assert "`answer`" in exercises.check_ping_over_network(None).message
    assert "answer" not in asyncio.run(exercises.check_sleep_order(None)).message.replace("answers", "")


def test_code_is_shown_as_code_not_as_backticks():
    verdict = asyncio.run(exercises.check_sleep_order(None))
    shown = verdict._repr_html_()
    assert "<code>prediction</code>" in shown and "`" not in shown
    # Text that looks like markup is shown, not interpreted.
    odd = exercises.check_ping_over_network(b"<b>bold</b>")
    assert "<b>bold" not in odd._repr_html_() and "&lt;b&gt;" in odd._repr_html_()


def test_a_call_left_without_await_is_pointed_out_and_closed():
    async def request():
        return b"ping:net"

    coroutine = request()
    verdict = exercises.check_ping_over_network(coroutine)
    assert not verdict.ok and "await" in verdict.message
    assert inspect.getcoroutinestate(coroutine) == inspect.CORO_CLOSED  # no "never awaited" warning


def test_greet_request_bytes():
    assert exercises.check_greet_request(b'rab12005greet0000000e{"name":"Ada"}').ok
    assert exercises.check_greet_request('rab12005greet0000000e{"name":"Ada"}').ok
    assert not exercises.check_greet_request(None).ok
    wrong_size = exercises.check_greet_request(b'rab12005greet00000010{"name":"Ada"}')
    assert not wrong_size.ok and "not one valid message" in wrong_size.message
    decimal = exercises.check_greet_request(b'rab12005greet00000014{"name":"Ada"}')
    assert not decimal.ok and "hexadecimal" in decimal.message
    wrong_id = exercises.check_greet_request(b'r0001005greet0000000e{"name":"Ada"}')
    assert not wrong_id.ok and "request ID" in wrong_id.message
    spaced = exercises.check_greet_request(b'rab12005greet0000000f{"name": "Ada"}')
    assert not spaced.ok and "no spaces" in spaced.message
    assert "Not yet" in wrong_id._repr_html_()
    assert "should be bytes" in exercises.check_greet_request(50).message


async def test_reverse_handler():
    handlers = gl.Handlers()
    assert not (await exercises.check_reverse_handler(handlers)).ok
    handlers.handle("reverse", lambda payload: payload[::-1])
    assert (await exercises.check_reverse_handler(handlers)).ok
    unchanged = await exercises.check_reverse_handler(_handlers_with(reverse=lambda payload: payload))
    assert not unchanged.ok and "unchanged" in unchanged.message
    wrong_type = await exercises.check_reverse_handler(_handlers_with(reverse=lambda payload: len(payload)))
    assert not wrong_type.ok and "must return bytes" in wrong_type.message


async def test_reverse_handler_that_never_answers_is_reported(monkeypatch):
    monkeypatch.setattr(exercises, "LIVE_TIMEOUT", 0.2)
    handlers = gl.Handlers()

    @handlers.handle("reverse")
    async def stuck(payload):
        await asyncio.sleep(10)

    verdict = await exercises.check_reverse_handler(handlers)
    assert not verdict.ok and "did not answer" in verdict.message


async def test_sleep_order_prediction():
    assert (await exercises.check_sleep_order([50, 150, 250])).ok
    in_order_sent = await exercises.check_sleep_order([250, 50, 150])
    assert not in_order_sent.ok and "order they were sent" in in_order_sent.message
    wrong_order = await exercises.check_sleep_order([150, 50, 250])
    assert not wrong_order.ok and "shortest sleep answers first" in wrong_order.message
    # The example: a number where a list belongs.
    number = await exercises.check_sleep_order(50)
    assert not number.ok and "`prediction` should be a list" in number.message and "int" in number.message
    quoted = await exercises.check_sleep_order("50, 150, 250")
    assert not quoted.ok and "without quotes" in quoted.message
    missing = await exercises.check_sleep_order([50, 150])
    assert not missing.ok and "once" in missing.message


async def test_running_sum_stream():
    handlers = gl.Handlers()

    @handlers.handle_stream("running-sum", json=True)
    async def running_sum(numbers):
        total = 0
        async for number in numbers:
            total += number
            yield total

    assert (await exercises.check_running_sum(handlers)).ok
    assert not (await exercises.check_running_sum(gl.Handlers())).ok

    echoing = gl.Handlers()

    @echoing.handle_stream("running-sum", json=True)
    async def echo(numbers):
        async for number in numbers:
            yield number

    verdict = await exercises.check_running_sum(echoing)
    assert not verdict.ok and "the part itself" in verdict.message

    as_bytes = gl.Handlers()

    @as_bytes.handle_stream("running-sum")
    async def adds_bytes(parts):
        total = 0
        async for part in parts:
            total += part  # bytes: fails
            yield total

    verdict = await exercises.check_running_sum(as_bytes)
    assert not verdict.ok and "json=True" in verdict.message

    single = _handlers_with(running_sum=lambda payload: payload)
    verdict = await exercises.check_running_sum(single)
    assert not verdict.ok and "handle_stream" in verdict.message


async def test_limit_answer():
    assert (await exercises.check_limit_answer("e")).ok
    assert (await exercises.check_limit_answer(" 'e' ")).ok
    error_result = await exercises.check_limit_answer("E")
    assert not error_result.ok and "case-sensitive" in error_result.message
    success = await exercises.check_limit_answer("R")
    assert not success.ok and "SingleResult" in success.message
    name = await exercises.check_limit_answer("RetryResult")
    assert not name.ok and "letter" in name.message


async def test_notification_counter():
    handlers = gl.Handlers()
    counter = {"count": 0}

    @handlers.on_notification()
    def count(name, payload):
        counter["count"] += 1

    assert (await exercises.check_notification_counter(handlers, counter)).ok
    assert not (await exercises.check_notification_counter(gl.Handlers(), counter)).ok

    # The cell run twice: two listeners, each counting.
    handlers.on_notification(None, count)
    twice = await exercises.check_notification_counter(handlers, counter)
    assert not twice.ok and "2 catch-all listeners" in twice.message


async def test_notification_counter_reports_a_listener_that_raises(caplog):
    handlers = gl.Handlers()

    @handlers.on_notification()
    def count(name, payload):
        counter["count"] += 1

    counter = {}
    verdict = await exercises.check_notification_counter(handlers, counter)
    assert not verdict.ok and "KeyError" in verdict.message
    assert not caplog.records  # reported in the verdict, not logged

    one_argument = gl.Handlers()
    one_argument.on_notification(None, lambda payload: None)
    verdict = await exercises.check_notification_counter(one_argument, {"count": 0})
    assert not verdict.ok and "(name, payload)" in verdict.message


def test_ping_over_network():
    assert exercises.check_ping_over_network(b"ping:net").ok
    assert not exercises.check_ping_over_network(b"net").ok
    text = exercises.check_ping_over_network("ping:net")
    assert not text.ok and "bytes" in text.message
    callback = exercises.check_ping_over_network(b"pong:ping:net")
    assert not callback.ok and "callback" in callback.message

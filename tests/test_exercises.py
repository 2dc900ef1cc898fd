"""The tutorial exercise checks accept right answers, refuse wrong ones, and never raise."""

from __future__ import annotations

import gotalk_lab as gl
from gotalk_lab import exercises


def test_greet_request_bytes():
    assert exercises.check_greet_request(b'rab12005greet0000000e{"name":"Ada"}').ok
    assert not exercises.check_greet_request(None).ok
    wrong_size = exercises.check_greet_request(b'rab12005greet00000010{"name":"Ada"}')
    assert not wrong_size.ok and "not one valid message" in wrong_size.message
    wrong_id = exercises.check_greet_request(b'r0001005greet0000000e{"name":"Ada"}')
    assert not wrong_id.ok and "request ID" in wrong_id.message
    assert "Not yet" in wrong_id._repr_html_()


async def test_reverse_handler():
    handlers = gl.Handlers()
    assert not (await exercises.check_reverse_handler(handlers)).ok
    handlers.handle("reverse", lambda payload: payload[::-1])
    assert (await exercises.check_reverse_handler(handlers)).ok
    wrong = gl.Handlers()
    wrong.handle("reverse", lambda payload: payload)
    assert not (await exercises.check_reverse_handler(wrong)).ok


async def test_sleep_order_prediction():
    assert (await exercises.check_sleep_order([50, 150, 250])).ok
    assert not (await exercises.check_sleep_order([250, 50, 150])).ok


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


async def test_limit_answer():
    assert (await exercises.check_limit_answer("e")).ok
    assert not (await exercises.check_limit_answer("E")).ok


async def test_notification_counter():
    handlers = gl.Handlers()
    counter = {"count": 0}

    @handlers.on_notification()
    def count(name, payload):
        counter["count"] += 1

    assert (await exercises.check_notification_counter(handlers, counter)).ok
    assert not (await exercises.check_notification_counter(gl.Handlers(), counter)).ok


def test_ping_over_network():
    assert exercises.check_ping_over_network(b"ping:net").ok
    assert not exercises.check_ping_over_network(b"net").ok

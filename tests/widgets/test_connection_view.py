"""ConnectionView.of: a live peer's connection, redrawn as frames pass, never once per frame."""

from __future__ import annotations

import asyncio

import gotalk_lab as gl
from gotalk_lab.widgets.connection_view import REDRAW_INTERVAL, ConnectionView


async def test_a_live_view_redraws_a_few_times_for_many_frames_and_ends_up_current():
    a, b = await gl.pipe(None, gl.demo.handlers())
    view = ConnectionView.of(a)
    redraws = []
    view.observe(lambda change: redraws.append(change["new"]), "value")
    try:
        waiting = asyncio.ensure_future(a.request("sleep", {"ms": 600}))
        for _ in range(300):  # 600 frames, in well under a second
            await a.request_bytes("echo", b"x")
        await asyncio.sleep(REDRAW_INTERVAL * 1.5)
        assert "sleep" in view.value  # the request still waiting is in the table drawn last
        assert 1 <= len(redraws) <= 15, len(redraws)
        await waiting
        await asyncio.sleep(REDRAW_INTERVAL * 1.5)
        assert "sleep" not in view.value  # answered: the next redraw shows it gone
    finally:
        view.close()
        await a.close()
        await b.close()


def test_without_an_event_loop_the_view_redraws_at_each_frame():
    connection = gl.Connection()
    trace = gl.Trace()

    class Peer:  # what ConnectionView.of reads of a peer
        pass

    peer = Peer()
    peer.connection, peer.trace = connection, trace
    view = ConnectionView.of(peer)
    redraws = []
    view.observe(lambda change: redraws.append(change["new"]), "value")
    for number in range(3):
        request = gl.SingleRequest(b"%04d" % number, "echo", b"x")
        connection.request("echo", b"x")  # the table changes, then the frame is noted
        trace.add("out", gl.encode_header(request), request)
    assert len(redraws) == 3 and "0002" in view.value
    view.close()

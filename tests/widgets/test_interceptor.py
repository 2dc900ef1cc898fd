"""The Interceptor's model: the held queue follows the tap; its buttons decide frames."""

from __future__ import annotations

import asyncio

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.widgets import Interceptor
from gotalk_lab.widgets.timeline import Timeline


async def _wait_for(condition, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


async def test_forward_and_drop_through_the_model_update_the_held_queue():
    server = await gl.serve("tcp://127.0.0.1:0", demo.handlers())
    tap = await gl.tap(listen="127.0.0.1:0", upstream=server.addresses[0].removeprefix("tcp://"))
    tap.hold(dir="client", type="r")
    view = Interceptor(tap)
    assert view.queue.options == ()
    client = await gl.connect(f"tcp://{tap.address}")
    first = asyncio.ensure_future(client.request_bytes("echo", b"one"))
    await _wait_for(lambda: len(view.queue.options) == 1)
    assert "echo" in view.queue.options[0][0] and bytes(view.frame_view.data).endswith(b"one")
    assert isinstance(view.timeline_box.children[0], Timeline)
    view.press("Forward")
    assert await first == b"one"
    assert view.queue.options == ()
    second = asyncio.ensure_future(client.request_bytes("echo", b"two"))
    await _wait_for(lambda: len(view.queue.options) == 1)
    view.press("Drop")
    assert view.queue.options == () and tap.held == []
    await asyncio.sleep(0.2)
    assert not second.done()
    third = asyncio.ensure_future(client.request_bytes("echo", b"three"))
    await _wait_for(lambda: len(view.queue.options) == 1)
    view.payload.value = "x" * 10
    view.press("Edit")
    assert await third == b"x" * 10
    second.cancel()
    await client.close()
    await tap.close()
    await server.close()


async def test_an_edit_that_cannot_be_encoded_is_refused_and_the_frame_stays_held():
    server = await gl.serve("tcp://127.0.0.1:0", demo.handlers())
    tap = await gl.tap(listen="127.0.0.1:0", upstream=server.addresses[0].removeprefix("tcp://"))
    tap.hold(dir="client", type="r")
    view = Interceptor(tap)
    client = await gl.connect(f"tcp://{tap.address}")
    answer = asyncio.ensure_future(client.request_bytes("echo", b"one"))
    await _wait_for(lambda: len(view.queue.options) == 1)
    view.raw.value = "not hex"
    view.press("Edit raw")
    assert "refused" in view.status.value and len(tap.held) == 1
    view.press("Forward")
    assert await answer == b"one"
    assert "nothing held" in view._repr_mimebundle_()["text/html"]
    await client.close()
    await tap.close()
    await server.close()

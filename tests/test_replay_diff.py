"""Replaying a recorded client side against a live server, and the diff of the answers."""

from __future__ import annotations

import asyncio

import gotalk_lab as gl
from gotalk_lab import demo


async def _record(tmp_path):
    """A conversation with the demo server, recorded by a tap, saved as JSON lines."""
    server = await gl.serve("tcp://127.0.0.1:0", demo.handlers())
    tap = await gl.tap(listen="127.0.0.1:0", upstream=server.addresses[0].removeprefix("tcp://"), intercept=False)
    client = await gl.connect(f"tcp://{tap.address}")
    assert await client.request_bytes("echo", b"one") == b"one"
    assert await client.request("greet", {"name": "Ada"}) == {"greeting": "Hello Ada"}
    assert await client.request_bytes("echo", b"two") == b"two"
    await client.close()
    await asyncio.sleep(0.05)
    path = tmp_path / "recorded.jsonl"
    tap.connections[0].trace.save(path)
    await tap.close()
    return server, path


async def test_replay_against_the_same_server_finds_no_difference(tmp_path):
    server, path = await _record(tmp_path)
    report = await gl.replay(path, server.addresses[0], timing=True)
    await server.close()
    assert report.same, str(report)
    assert report.sent >= 4 and len(report.entries) == 3
    assert report.to_json()["same"] is True


async def test_replay_against_a_different_echo_names_the_answer_that_differs(tmp_path):
    server, path = await _record(tmp_path)
    await server.close()
    changed = await gl.serve("tcp://127.0.0.1:0", _echo_differs())
    report = await gl.replay(path, changed.addresses[0])
    await changed.close()
    assert not report.same
    (difference,) = report.differences
    assert (difference.status, difference.type, difference.recorded, difference.replayed) == ("different", "R", b"two", b"TWO")
    assert "different" in str(report) and "TWO" in report._repr_html_()


def _echo_differs():
    """The demo operations, with an echo that shouts one word."""
    handlers = demo.handlers()

    @handlers.handle("echo")
    def echo(payload: bytes) -> bytes:
        return payload.upper() if payload == b"two" else payload

    return handlers


async def test_replay_reads_a_pcap_written_by_the_tap(tmp_path):
    from gotalk_lab.tap_pcap import PcapRecorder

    server = await gl.serve("tcp://127.0.0.1:0", demo.handlers())
    tap = await gl.tap(listen="127.0.0.1:0", upstream=server.addresses[0].removeprefix("tcp://"), intercept=False)
    recorder = PcapRecorder(tmp_path / "c.pcap")
    tap.on_bytes(recorder.on_bytes)
    client = await gl.connect(f"tcp://{tap.address}")
    assert await client.request_bytes("ping", b"x") == b"ping:x"
    await client.close()
    await asyncio.sleep(0.1)
    await tap.close()
    recorder.close()
    report = await gl.replay(tmp_path / "c.pcap", server.addresses[0])
    await server.close()
    assert report.same, str(report)
    assert [(e.type, e.replayed) for e in report.entries] == [("R", b"ping:x")]

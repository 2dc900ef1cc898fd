"""Blocking helpers: plain scripts (background loop) and code already inside the loop (nesting)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

from gotalk_lab import sync


def test_a_plain_script_can_serve_and_request_without_await():
    script = textwrap.dedent(
        """
        import gotalk_lab as gl
        from gotalk_lab import sync
        server = sync.serve("tcp://127.0.0.1:0", gl.demo.handlers())
        peer = sync.connect(server.addresses[0], gl.demo.handlers())
        print(peer.sync.request("greet", {"name": "script"}))
        print(peer.sync.request_bytes("callback", "zz"))
        print(peer.sync.stream("upper-stream", [b"a", b"b"]))
        a, b = sync.pipe(gl.demo.handlers(), gl.demo.handlers())
        print(a.sync.request("sleep", {"ms": 1}))
        try:
            a.sync.request_bytes("fail")
        except gl.RequestError as error:
            print("error", error.text)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "{'greeting': 'Hello script'}",
        "b'pong:ping:zz'",
        "[b'A', b'B']",
        "{'slept': 1}",
        "error boom",
    ]


def test_blocking_call_from_code_running_inside_the_loop():
    # A notebook cell is plain code running inside the kernel's loop: the blocking
    # facade must re-enter that loop rather than deadlock or refuse. nest-asyncio
    # patches asyncio for the whole process, so this runs in a process of its own.
    script = textwrap.dedent(
        """
        import asyncio
        import gotalk_lab as gl

        async def main():
            a, b = await gl.pipe(gl.demo.handlers(), gl.demo.handlers())

            def cell():
                return a.sync.request("greet", {"name": "cell"}), a.sync.request_bytes("echo", b"\\x00")

            result = cell()
            await a.close()
            return result

        print(asyncio.run(main()))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "({'greeting': 'Hello cell'}, b'\\x00')"


def test_run_with_timeout_raises():
    async def never():
        await asyncio.sleep(10)

    loop = asyncio.new_event_loop()
    try:
        try:
            sync.run(never(), loop, timeout=0.05)
        except asyncio.TimeoutError:
            pass
        else:
            raise AssertionError("expected a timeout")
    finally:
        loop.close()

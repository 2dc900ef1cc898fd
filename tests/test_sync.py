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


def _run_script(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60)


def test_importing_the_package_does_not_import_nest_asyncio2():
    # Only a blocking call inside a running loop needs it (Pyodide may not have it).
    result = _run_script(
        """
        import sys
        import gotalk_lab as gl
        from gotalk_lab import sync
        a, b = sync.pipe(gl.demo.handlers(), gl.demo.handlers())
        print(a.sync.request("greet", {"name": "x"}), "nest_asyncio2" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'greeting': 'Hello x'} False"


def test_nesting_without_nest_asyncio2_says_what_to_install():
    result = _run_script(
        """
        import asyncio, sys
        sys.modules["nest_asyncio2"] = None  # as if it were not installed
        import gotalk_lab as gl

        async def main():
            a, b = await gl.pipe(gl.demo.handlers(), gl.demo.handlers())
            try:
                a.sync.request("greet", {"name": "x"})
            except RuntimeError as error:
                print(error)

        asyncio.run(main())
        """
    )
    assert result.returncode == 0, result.stderr
    assert "needs the nest-asyncio2 package" in result.stdout and "await peer.request" in result.stdout


def test_a_loop_patched_by_the_old_nest_asyncio_is_patched_again():
    # The original nest-asyncio marks the loop's class as patched; nest-asyncio2 would
    # then leave it alone and keep its bug. Here the class carries only the marker (so
    # that this test needs no old package): unless the facade patches it anyway,
    # run_until_complete refuses with "This event loop is already running".
    result = _run_script(
        """
        import asyncio, warnings
        warnings.simplefilter("error")  # no warning may reach the cell's stderr
        import gotalk_lab as gl

        class MarkedLoop(asyncio.SelectorEventLoop):
            _nest_patched = True

        async def main():
            a, b = await gl.pipe(gl.demo.handlers(), gl.demo.handlers())
            first = a.sync.request("greet", {"name": "old"})
            result = first, a.sync.request("sleep", {"ms": 1}), hasattr(MarkedLoop, "_nest_asyncio2")
            await a.close()
            return result

        loop = MarkedLoop()
        try:
            print(loop.run_until_complete(main()))
        finally:
            loop.close()
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "({'greeting': 'Hello old'}, {'slept': 1}, True)"
    assert result.stderr == ""

"""Floods from a client that never reads, against `gotalk-lab serve` as users start it.

Whatever the server writes because of what it read (a notification answered by
another, RetryResults, results) waits on the socket like anything else: once its
queue is over the high-water mark the server reads no more from that client, so
the flood costs a bounded amount of memory, and a good client on another
connection is answered all the while. Memory is the server process's resident
set (``VmRSS`` in ``/proc/PID/status``), before and after the flood. Every flood
runs on both event loops ``--loop`` offers: asyncio's own and uvloop (which the
test extra installs), whose turns run callbacks and socket reads in another order.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

MiB = 1024 * 1024
COMMAND = Path(sys.executable).parent / "gotalk-lab"
#: What a flood may add to the server's resident set: its queue (256 KiB), one read
#: (256 KiB) waiting decoded, and allocator slack.
BOUND = 8 * MiB


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def echo_latency(port: int) -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as good:
        good.sendall(b"01r0001004echo00000002hi")
        received = b""
        while not received.endswith(b"R000100000002hi"):
            chunk = good.recv(4096)
            assert chunk, received
            received += chunk
    return time.monotonic() - started


def request_id(number: int) -> bytes:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    for _ in range(4):
        number, digit = divmod(number, 36)
        text = digits[digit] + text
    return text.encode()


def flood(port: int, message, total: int):
    """Send ``message(n)`` for n = 1, 2... never reading, until ``total`` bytes or a 2 s stall."""
    sent = 0
    number = 0
    flooder = socket.create_connection(("127.0.0.1", port), timeout=2)
    flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and read nothing
    pending = b"01"
    try:
        while sent < total:
            while len(pending) < 64 * 1024:
                number += 1
                pending += message(number)
            done = flooder.send(pending)
            sent += done
            pending = pending[done:]
    except (socket.timeout, OSError):
        pass  # the server stopped reading us: what we mean to show
    return sent, flooder


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request):
    process = subprocess.Popen(
        [str(COMMAND), "serve", "--tcp", "127.0.0.1:0", "--buffer-limit", "1", "--loop", request.param],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    port = int(process.stdout.readline().rsplit(":", 1)[1])
    yield process, port
    process.terminate()
    process.wait(10)
    process.stdout.close()


SLEEP = json.dumps({"ms": 60000}).encode()

FLOODS = {
    # a notification the demo answers with another: hello -> hello-back
    "hello notifications": lambda n: b"n005hello00000010" + b"h" * 16,
    # the one request slot (--buffer-limit 1) taken by a long sleep, then RetryResults for every other
    "retried requests": lambda n: b"r" + request_id(n) + b"005sleep%08x" % len(SLEEP) + SLEEP,
    # plain requests, answered as they are read
    "echo requests": lambda n: b"r" + request_id(n) + b"004echo00000010" + b"e" * 16,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("message", FLOODS.values(), ids=FLOODS.keys())
def test_a_client_that_floods_and_never_reads_costs_the_server_a_bounded_amount(server, message):
    process, port = server
    echo_latency(port)  # warm: the first connection's allocations are not the flood's
    before = rss(process.pid)
    sent, flooder = flood(port, message, 24 * MiB)
    try:
        grown = rss(process.pid) - before
        latency = echo_latency(port)
        print(f"flood of {sent / MiB:.1f} MiB: server +{grown / MiB:.1f} MiB, a good client answered in {latency * 1000:.0f} ms")
        assert grown < BOUND, f"the server grew by {grown / MiB:.0f} MiB after a {sent / MiB:.1f} MiB flood"
    finally:
        flooder.close()
    # The flooder gone, the server serves on.
    assert echo_latency(port) < 10

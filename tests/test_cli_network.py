"""The installed `gotalk-lab serve`, `request` and `tap` commands, run as a user would."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gotalk_lab import cli_network
from gotalk_lab.trace import Trace

COMMAND = Path(sys.executable).parent / "gotalk-lab"


def _command() -> str:
    assert COMMAND.exists(), f"the console script is not installed next to {sys.executable}"
    return str(COMMAND)


class Background:
    """A long-running gotalk-lab command whose 'listening' lines we wait for."""

    def __init__(self, *args: str, expect_lines: int = 1) -> None:
        self.process = subprocess.Popen(
            [_command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines = []
        deadline = time.monotonic() + 20
        while len(self.lines) < expect_lines:
            assert time.monotonic() < deadline, "no 'listening' line within 20 s"
            line = self.process.stdout.readline()
            assert line, f"command ended early: {self.process.stderr.read()}"
            self.lines.append(line.strip())

    def addresses(self) -> list[str]:
        return [re.search(r"(tcp|ws)://\S+", line).group(0) for line in self.lines]

    def stop(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGINT)
        out, err = self.process.communicate(timeout=10)
        return self.process.returncode, out, err


@pytest.fixture
def server():
    background = Background("serve", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", expect_lines=2)
    yield background
    if background.process.poll() is None:
        background.stop()


def request(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([_command(), "request", *args], input=stdin, capture_output=True, timeout=30)


def test_serve_prints_the_bound_addresses_and_stops_cleanly(server):
    tcp, ws = server.addresses()
    assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", tcp) and not tcp.endswith(":0")
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/gotalk/", ws)
    assert all(line.startswith("listening ") for line in server.lines)
    code, _, _ = server.stop()
    assert code == 0


@pytest.mark.parametrize("which", [0, 1], ids=["tcp", "ws"])
def test_request_every_single_demo_operation(server, which):
    address = server.addresses()[which]
    assert request(address, "echo", "hello").stdout == b"hello\n"
    greet = request(address, "greet", '{"name":"Ada"}', "--json")
    assert json.loads(greet.stdout) == {"greeting": "Hello Ada"}
    assert request(address, "sleep", '{"ms":5}', "--json").returncode == 0
    assert request(address, "ping", "x").stdout == b"ping:x\n"
    # The requesting side serves the demo operations too, so the server can call back.
    assert request(address, "callback", "zz").stdout == b"pong:ping:zz\n"
    streamed = request(address, "upper-stream", "--stream", "abc", "def")
    assert streamed.stdout.splitlines() == [b"ABC", b"DEF"]


def test_request_error_result_goes_to_stderr_with_status_1(server):
    tcp = server.addresses()[0]
    failed = request(tcp, "fail", "x")
    assert (failed.returncode, failed.stdout, failed.stderr.strip()) == (1, b"", b"boom")
    unknown = request(tcp, "no-such-op")
    assert unknown.returncode == 1 and unknown.stderr.strip() == b'unknown operation "no-such-op"'


def test_request_reads_stdin_and_checks_json(server):
    tcp = server.addresses()[0]
    assert request(tcp, "echo", "-", stdin=b"\x00\xffbinary").stdout == b"\x00\xffbinary\n"
    bad = request(tcp, "greet", "{not json", "--json")
    assert bad.returncode == 2 and b"not JSON" in bad.stderr


def test_request_to_nothing_fails_with_one_line():
    result = request("tcp://127.0.0.1:1", "echo")
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1 and "cannot connect" in result.stderr.decode()
    assert request("http://127.0.0.1:1", "echo").returncode == 2


def test_serve_limits_reach_the_peer():
    background = Background("serve", "--tcp", "127.0.0.1:0", "--stream-limit", "0")
    try:
        refused = request(background.addresses()[0], "upper-stream", "--stream", "a")
        assert refused.returncode == 1 and refused.stderr.strip() == b"stream requests not supported"
    finally:
        background.stop()


def test_serve_needs_an_address():
    result = subprocess.run([_command(), "serve"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--tcp" in result.stderr


def test_tap_prints_and_records_frames_between_two_programs(server, tmp_path):
    upstream = server.addresses()[0].removeprefix("tcp://")
    trace_file = tmp_path / "tap.jsonl"
    tap = Background("tap", "--listen", "127.0.0.1:0", "--upstream", upstream, "--trace", str(trace_file))
    try:
        through = tap.addresses()[0]
        assert request(through, "callback", "q").stdout == b"pong:ping:q\n"
        deadline = time.monotonic() + 10
        while trace_file.read_text().count("\n") < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        code, printed, _ = tap.stop()
    assert code == 0
    frame_lines = [line for line in printed.splitlines() if line.startswith("[1]") and " finding: " not in line]
    assert [line.split()[3] for line in frame_lines] == ["->", "<-", "->", "<-", "->", "<-"]
    assert "callback" in frame_lines[2] and "ping" in frame_lines[3] and "pong:ping:q" in frame_lines[5]
    records = [json.loads(line) for line in trace_file.read_text().splitlines()]
    assert {record["conn"] for record in records} == {1}
    trace = Trace.from_json(records)
    assert [type(event.message).__name__ for event in trace] == [
        "ProtocolVersion", "ProtocolVersion", "SingleRequest", "SingleRequest", "SingleResult", "SingleResult",
    ]
    outcomes = sorted((exchange.operation, exchange.outcome) for exchange in trace.exchanges.values())
    assert outcomes == [("callback", "result"), ("ping", "result")]


def test_tap_tells_a_connections_findings_when_it_ends(server, tmp_path):
    upstream = server.addresses()[0].removeprefix("tcp://")
    trace_file = tmp_path / "tap.jsonl"
    tap = Background("tap", "--listen", "127.0.0.1:0", "--upstream", upstream, "--trace", str(trace_file))
    try:
        host, port = tap.addresses()[0].removeprefix("tcp://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(b"01p000900000000")  # a part of a stream never started
            while connection.recv(4096):  # until the upstream (through the tap) closes
                pass
        deadline = time.monotonic() + 10
        while '"findings"' not in trace_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        code, printed, _ = tap.stop()
    assert code == 0
    finding_lines = [line for line in printed.splitlines() if line.startswith("[1] finding: ")]
    assert any("[unknown-exchange; frames #1]" in line for line in finding_lines), printed
    records = [json.loads(line) for line in trace_file.read_text().splitlines()]
    told = [record for record in records if "findings" in record]
    assert told[0]["conn"] == 1 and "unknown-exchange" in {finding["rule"] for finding in told[0]["findings"]}
    assert len(Trace.from_json(records)) == sum("hex" in record for record in records)  # the findings line is not a frame


def test_tap_drop_rule_swallows_the_matching_result_and_marks_it(server):
    upstream = server.addresses()[0].removeprefix("tcp://")
    tap = Background("tap", "--listen", "127.0.0.1:0", "--upstream", upstream, "--drop", "dir=upstream,type=R,op=echo")
    try:
        through = tap.addresses()[0]
        assert request(through, "echo", "hi", "--timeout", "1").returncode == 1
        assert request(through, "greet", '{"name": "a"}', "--json").returncode == 0  # other results pass
    finally:
        code, printed, _ = tap.stop()
    assert code == 0
    assert [line for line in printed.splitlines() if "[dropped]" in line and "<-" in line]


def test_tap_delay_rule_still_delivers_late(server):
    upstream = server.addresses()[0].removeprefix("tcp://")
    tap = Background("tap", "--listen", "127.0.0.1:0", "--upstream", upstream, "--delay", "300:dir=upstream,type=R")
    try:
        started = time.monotonic()
        assert request(tap.addresses()[0], "echo", "hi").stdout == b"hi\n"
        assert time.monotonic() - started >= 0.3
    finally:
        code, printed, _ = tap.stop()
    assert "[delayed]" in printed


def test_tap_rewrite_rule_sends_the_bytes_as_given(server, tmp_path):
    upstream = server.addresses()[0].removeprefix("tcp://")
    trace_file = tmp_path / "tap.jsonl"
    tap = Background("tap", "--listen", "127.0.0.1:0", "--upstream", upstream, "--trace", str(trace_file),
                     "--rewrite", "dir=client,type=r,op=echo=text:r00zz")
    try:
        assert request(tap.addresses()[0], "echo", "hi", "--timeout", "3").returncode == 1  # the server refused garbage
    finally:
        tap.stop()
    records = [json.loads(line) for line in trace_file.read_text().splitlines()]
    (edited,) = [record for record in records if record.get("action") == "edited"]
    assert bytes.fromhex(edited["hex"]) == b"r00zz" and edited["malformed"] is True
    assert b"echo" in bytes.fromhex(edited["original"])


@pytest.mark.parametrize("bad", ["colour=red", "dir=sideways", "type=rr"])
def test_tap_refuses_a_bad_rule(bad):
    result = subprocess.run([_command(), "tap", "--listen", ":0", "--upstream", ":1", "--drop", bad], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and bad in result.stderr


def test_replay_exits_0_when_the_answers_match_and_1_when_they_differ(server, tmp_path):
    upstream = server.addresses()[0].removeprefix("tcp://")
    trace_file = tmp_path / "tap.jsonl"
    tap = Background("tap", "--listen", "127.0.0.1:0", "--upstream", upstream, "--trace", str(trace_file))
    try:
        assert request(tap.addresses()[0], "echo", "hi").returncode == 0
        deadline = time.monotonic() + 10
        while trace_file.read_text().count("\n") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        tap.stop()
    same = subprocess.run([_command(), "replay", str(trace_file), "--target", server.addresses()[0], "--json"], capture_output=True, text=True, timeout=30)
    assert same.returncode == 0, same.stdout + same.stderr
    assert json.loads(same.stdout)["same"] is True
    # The same conversation, as if the server had once answered "bye".
    records = [json.loads(line) for line in trace_file.read_text().splitlines()]
    for record in records:
        if "hex" not in record:  # the tap's findings line for the connection
            continue
        raw = bytes.fromhex(record["hex"])
        if raw[:1] == b"R":
            record["hex"] = (raw[:5] + b"00000003bye").hex()
    changed = tmp_path / "changed.jsonl"
    changed.write_text("".join(json.dumps(record) + "\n" for record in records))
    differs = subprocess.run([_command(), "replay", str(changed), "--target", server.addresses()[0]], capture_output=True, text=True, timeout=30)
    assert differs.returncode == 1
    assert "different R" in differs.stdout and "b'bye'" in differs.stdout and "b'hi'" in differs.stdout


# -- conformance: a stream request whose first part is empty --------------------------
# The Go peer reads `s` with an empty payload as the whole stream request and ends
# the stream at once with an empty `S`; `serve` must answer it the same way on both
# transports, and the connection goes on.

EMPTY_FIRST_PART = b"s0001" b"00c" b"upper-stream" b"00000000"
STREAM_END = b"S0001" b"00000000"


def test_serve_ends_a_stream_whose_first_part_is_empty_over_tcp(server):
    host, port = server.addresses()[0].removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"01" + EMPTY_FIRST_PART)
        received = _read_until(connection, b"01" + STREAM_END)
        assert received == b"01" + STREAM_END
        connection.sendall(b"r0002004echo00000002hi")
        assert _read_until(connection, b"R000200000002hi").endswith(b"R000200000002hi")


def test_serve_ends_a_stream_whose_first_part_is_empty_over_websocket(server):
    from websockets.sync.client import connect as ws_connect

    address = server.addresses()[1]
    with ws_connect(address, origin="http://127.0.0.1", open_timeout=10) as socket_:
        socket_.send(b"01")
        socket_.send(EMPTY_FIRST_PART)  # gotalk.js framing: a header with no payload is one message
        assert socket_.recv(timeout=10) == b"01"
        assert socket_.recv(timeout=10) == STREAM_END
        socket_.send(b"r0002004echo00000002")
        socket_.send(b"hi")
        assert [socket_.recv(timeout=10), socket_.recv(timeout=10)] == [b"R000200000002", b"hi"]


def _read_until(connection: socket.socket, expected: bytes) -> bytes:
    received = b""
    while not received.endswith(expected):
        chunk = connection.recv(65536)
        assert chunk, f"connection closed after {received!r}"
        received += chunk
        assert len(received) <= len(expected) + 64, f"unexpected bytes: {received!r}"
    return received


def test_request_says_how_it_gave_up_on_a_server_that_stays_busy():
    """A server that answers every request with RetryResult "busy", wait 7 ms."""
    from gotalk_lab.wire import RetryResult, encode

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)

    def busy_server() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(20)
            connection.sendall(b"01")
            received = b""
            answered = 0
            while answered < 6:  # the first try and five retries
                chunk = connection.recv(4096)
                if not chunk:
                    return
                received += chunk
                while (start := received.find(b"r")) >= 0 and len(received) >= start + 5:
                    request_id = received[start + 1 : start + 5]
                    received = received[start + 5 :]
                    connection.sendall(encode(RetryResult(request_id, 7, b"busy")))
                    answered += 1

    import threading

    thread = threading.Thread(target=busy_server, daemon=True)
    thread.start()
    try:
        done = request(f"tcp://127.0.0.1:{listener.getsockname()[1]}", "echo", "x")
    finally:
        thread.join(20)
        listener.close()
    assert done.returncode == 1
    assert done.stderr.decode().strip() == "gotalk-lab request: echo: gave up after 5 retries, last wait 7 ms (busy)"


def _listen_backlog(port: int) -> int:
    """The backlog of the socket listening on ``port``: ss shows it as Send-Q."""
    shown = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout.split()
    return int(shown[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2; make test installs it)")
def test_serve_and_tap_listen_with_the_systems_backlog_not_asyncios_100(server):
    system = int(Path("/proc/sys/net/core/somaxconn").read_text())
    ports = [int(address.rsplit(":", 1)[1].split("/")[0]) for address in server.addresses()]
    assert [_listen_backlog(port) for port in ports] == [system, system]  # tcp and ws
    tap = Background("tap", "--listen", "127.0.0.1:0", "--upstream", server.addresses()[0])
    try:
        tap_port = int(re.search(r":(\d+)", tap.lines[0]).group(1))
        assert _listen_backlog(tap_port) == system
    finally:
        tap.stop()


def test_serve_hands_out_its_browser_client_and_says_where_it_is_when_asked_for_gotalk_js(server):
    import urllib.error
    import urllib.request

    base = server.addresses()[1].replace("ws://", "http://")  # .../gotalk/
    with urllib.request.urlopen(base + "static/gotalk-client.js", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/javascript")
        assert answer.read() == (Path(__file__).resolve().parents[1] / "gotalk_lab" / "static" / "gotalk-client.js").read_bytes()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "gotalk.js", timeout=10)
    assert refused.value.code == 404
    assert b"/gotalk/static/gotalk-client.js" in refused.value.read()


def _echo_once(port: int, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(b"01r0001004echo00000002hi")
        return _read_until(connection, b"R000100000002hi")


@pytest.mark.timeout(120)
def test_serve_keeps_serving_and_stops_on_sigterm_when_nobody_reads_its_stderr():
    """-v writes two lines per connection; with a stderr pipe never read, the pipe
    (64 KiB) fills after a few hundred connections. The server must go on
    answering, and SIGTERM must still end it, within a bounded wait."""
    process = subprocess.Popen(
        [_command(), "serve", "--tcp", "127.0.0.1:0", "-v"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        port = int(process.stdout.readline().decode().rsplit(":", 1)[1])
        for _ in range(1500):  # about 150 KB of per-connection lines
            with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
                connection.sendall(b"01")
                assert connection.recv(2) == b"01"
        assert _echo_once(port).endswith(b"R000100000002hi")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()


def test_serve_tells_connections_only_when_verbose_and_says_how_it_stopped(server):
    port = int(server.addresses()[0].rsplit(":", 1)[1])
    assert _echo_once(port).endswith(b"R000100000002hi")
    code, _, err = server.stop()
    assert code == 0
    assert "connected" not in err
    assert re.fullmatch(r"gotalk-lab serve: stopped by SIGINT: closed \d+ open connections in \d+\.\d\d s, 1 served in all\n", err), err
    verbose = Background("serve", "--tcp", "127.0.0.1:0", "-v")
    port = int(verbose.addresses()[0].rsplit(":", 1)[1])
    assert _echo_once(port).endswith(b"R000100000002hi")
    time.sleep(0.3)  # the close line is written by the writer thread
    verbose.process.send_signal(signal.SIGTERM)
    out, err = verbose.process.communicate(timeout=10)
    assert verbose.process.returncode == 0
    lines = err.splitlines()
    assert lines[0].startswith("connected tcp 127.0.0.1:") and lines[1].startswith("closed tcp 127.0.0.1:"), err
    assert lines[-1].startswith("gotalk-lab serve: stopped by SIGTERM: closed 0 open connections"), err


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_serve_and_request_on_either_event_loop(loop):
    background = Background("serve", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--loop", loop, expect_lines=2)
    try:
        for address in background.addresses():
            echoed = request(address, "echo", "on " + loop, "--loop", loop)
            assert (echoed.returncode, echoed.stdout) == (0, f"on {loop}\n".encode())
            called_back = request(address, "callback", '"x"', "--loop", loop)  # the server requests of the client
            assert called_back.returncode == 0 and called_back.stdout.strip() == b'pong:ping:"x"'
        streamed = request(background.addresses()[0], "upper-stream", "--stream", "ab", "cd", "--loop", loop)
        assert streamed.stdout.split() == [b"AB", b"CD"]
    finally:
        code, _, err = background.stop()
    assert code == 0 and "stopped by SIGINT" in err


def test_the_network_commands_run_on_uvloop_where_installed_by_default():
    from gotalk_lab.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in ("serve", "request", "tap", "replay"):
        loop = next(a for a in commands[name]._actions if a.dest == "loop")
        assert (loop.default, loop.choices) == ("auto", cli_network.LOOPS), name


def test_the_loop_option_takes_uvloop_where_installed_and_says_when_it_is_missing(monkeypatch, capsys):
    async def which_loop() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert cli_network._run(which_loop(), argparse.Namespace(loop="asyncio")).startswith("asyncio")
    # The test extra installs uvloop (as the "fast" extra does).
    assert cli_network._run(which_loop(), argparse.Namespace(loop="auto")).startswith("uvloop")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if not installed: the import fails
    assert cli_network._run(which_loop(), argparse.Namespace(loop="auto")).startswith("asyncio")
    with pytest.raises(SystemExit) as stopped:
        cli_network._run(which_loop(), argparse.Namespace(loop="uvloop"))
    assert stopped.value.code == 2
    assert "uvloop is not installed (pip install 'gotalk-lab[fast]')" in capsys.readouterr().err

"""`gotalk-lab decode CAPTURE`, `tap --pcap` and tcpdump's own captures of a real conversation."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from capture_helpers import ROOT, TCPDUMP, TSHARK, conversation, free_port, start, stop, tshark
from gotalk_lab.capture import PcapWriter, TcpConversation


def decode(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "gotalk_lab.cli", "decode", *args], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, input=stdin,
    )


def _write(path, client=b"01r0001004echo00000005hello", server=b"01R000100000005hello", server_port=9000, open_=True):
    with open(path, "wb") as sink:
        conversation = TcpConversation(PcapWriter(sink), ("127.0.0.1", 40000), ("127.0.0.1", server_port))
        if open_:
            conversation.open(1700000000.0)
        conversation.send("client", client, 1700000000.25)
        conversation.send("server", server, 1700000000.5)
        conversation.close("client", 1700000001.0)


def test_decode_json_adds_connection_direction_and_time(tmp_path):
    _write(tmp_path / "a.pcap")
    done = decode(str(tmp_path / "a.pcap"), "--json")
    assert done.returncode == 0 and done.stderr == ""
    records = _messages(done.stdout)
    assert [(r["type"], r["direction"]) for r in records] == [("v", "client"), ("r", "client"), ("v", "server"), ("R", "server")]
    assert records[1]["connection"] == {"number": 1, "client": "127.0.0.1:40000", "server": "127.0.0.1:9000"}
    assert records[1]["time"] == 1700000000.25 and records[1]["id"] == b"0001".hex() and records[1]["offset"] == 2
    assert {"fields", "payload", "summary", "length"} <= set(records[1])


def test_decode_text_names_the_connection_and_reads_standard_input(tmp_path):
    _write(tmp_path / "a.pcap")
    done = subprocess.run(
        [sys.executable, "-m", "gotalk_lab.cli", "decode", "-"], stdin=open(tmp_path / "a.pcap", "rb"),
        capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    text = done.stdout.decode()
    assert done.returncode == 0, done.stderr
    assert "connection 1, client (127.0.0.1:40000 -> 127.0.0.1:9000), 2023-11-14 22:13:20.250000 UTC" in text
    assert "SingleRequest" in text and "operation" in text


def test_not_gotalk_is_skipped_with_a_note_and_exit_0(tmp_path):
    _write(tmp_path / "http.pcap", client=b"GET / HTTP/1.1\r\n\r\n", server=b"HTTP/1.1 200 OK\r\n\r\n", server_port=80)
    done = decode(str(tmp_path / "http.pcap"))
    assert done.returncode == 0 and done.stdout == ""
    assert "not Gotalk" in done.stderr and "no Gotalk connection found" in done.stderr and "Traceback" not in done.stderr


def test_mid_connection_with_port(tmp_path):
    _write(tmp_path / "late.pcap", client=b"r0001004echo00000005hello", server=b"R000100000005hello", server_port=7000, open_=False)
    done = decode(str(tmp_path / "late.pcap"), "--port", "7000", "--json")
    assert done.returncode == 0
    assert [record["type"] for record in _messages(done.stdout)] == ["r", "R"]
    assert "mid-connection" in done.stderr


@pytest.mark.parametrize("cut", [3, 30, 100])
def test_a_truncated_capture_prints_what_it_can_then_exit_2(tmp_path, cut):
    _write(tmp_path / "a.pcap")
    data = (tmp_path / "a.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(data[: len(data) - cut] if cut != 3 else data[:3])
    done = decode(str(tmp_path / "cut.pcap"))
    if cut == 3:  # not even a magic number: raw bytes, decoded as Gotalk, invalid
        assert done.returncode == 2 and "invalid input" in done.stderr
    else:
        assert done.returncode == 2 and "cannot read the capture on" in done.stderr and "cut short" in done.stderr
    assert "Traceback" not in done.stderr


def test_raw_input_is_unchanged():
    done = decode("-", stdin="01r0001004echo00000005hello")
    assert done.returncode == 0 and "SingleRequest" in done.stdout


def test_tap_pcap_matches_the_taps_own_trace(tmp_path):
    server, server_address = start("serve", "--tcp", "127.0.0.1:0")
    try:
        tap, tap_address = start("tap", "--listen", "127.0.0.1:0", "--upstream", server_address.removeprefix("tcp://"),
                                 "--pcap", str(tmp_path / "t.pcap"), "--trace", str(tmp_path / "t.jsonl"))
        try:
            request = subprocess.run([sys.executable, "-m", "gotalk_lab.cli", "request", tap_address, "echo", "hi"],
                                     capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
            assert request.stdout.strip() == "hi"
            time.sleep(0.2)
        finally:
            stop(tap)
    finally:
        stop(server)
    records = _messages(decode(str(tmp_path / "t.pcap"), "--json").stdout)
    traced = [record for line in (tmp_path / "t.jsonl").read_text().splitlines() if "hex" in (record := json.loads(line))]
    assert sorted(r["fields"][0]["raw"] if r["type"] == "v" else r["type"] + r.get("payload", "") for r in records) == sorted(
        t["hex"] if len(t["hex"]) == 4 else bytes.fromhex(t["hex"][:2]).decode() + _payload_of(t["hex"]) for t in traced
    )
    client_port = int(records[0]["connection"]["client"].rsplit(":", 1)[1])
    assert records[0]["connection"]["server"] == server_address.removeprefix("tcp://") and client_port > 0
    assert abs(records[0]["time"] - time.time()) < 60


def _payload_of(hex_text):
    from gotalk_lab.trace import frame_from_bytes

    _, message = frame_from_bytes(bytes.fromhex(hex_text))
    return getattr(message, "payload", b"").hex() if hasattr(message, "payload") else ""


def _tcpdump_can_capture(tmp_path):
    if TCPDUMP is None:
        return "tcpdump is not installed (make test installs it with apt-get)"
    if os.geteuid() != 0:
        return "tcpdump needs root (or CAP_NET_RAW) to capture here"
    return None


@pytest.mark.parametrize("interface", ["lo", "any"])
def test_tcpdump_on_loopback_captures_a_real_serve_conversation(tmp_path, interface):
    reason = _tcpdump_can_capture(tmp_path)
    if reason:
        pytest.skip(reason)
    port = free_port()
    pcap = tmp_path / f"{interface}.pcap"
    dump = subprocess.Popen([TCPDUMP, "-i", interface, "-B", "32768", "--immediate-mode", "-U", "-s", "0", "-w", str(pcap),
                             f"tcp port {port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = ""
        while "listening on" not in said and dump.poll() is None:  # printed once it captures
            said += dump.stderr.readline()
        if dump.poll() is not None:
            pytest.skip(f"tcpdump cannot capture here: {said.strip() or dump.stderr.read().strip()}")
        server, address = start("serve", "--tcp", f"127.0.0.1:{port}", "--heartbeat", "0.1", "--buffer-limit", "1", "--read-timeout", "2")
        try:
            asyncio.run(conversation(address))
        finally:
            stop(server)
        time.sleep(0.3)
    finally:
        dump.send_signal(signal.SIGINT)
        _, err = dump.communicate(timeout=20)
    assert "\n0 packets dropped by kernel" in "\n" + err, err
    done = decode(str(pcap), "--json")
    assert done.returncode == 0, done.stderr
    records = _messages(done.stdout)
    assert {"v", "r", "R", "E", "e", "s", "p", "S", "n", "h", "f"} <= {r["type"] for r in records}
    requests = {(r["connection"]["number"], r["direction"], r["id"]) for r in records if r["type"] in "rs"}
    answered = {(r["connection"]["number"], "client" if r["direction"] == "server" else "server", r["id"]) for r in records if r["type"] in "RES"}
    assert requests <= answered
    if TSHARK:
        home = tmp_path / "home"
        home.mkdir()
        checked = tshark("-r", str(pcap), "-q", "-z", "expert,error", home=home)
        assert checked.returncode == 0 and not checked.stderr.strip() and "Errors (" not in checked.stdout, checked.stdout
        count = tshark("-r", str(pcap), "-Y", "gotalk", "-T", "fields", "-e", "gotalk.version", "-e", "gotalk.type", home=home)
        shown = sum(len([v for v in column.split(",") if v]) for line in count.stdout.splitlines() for column in line.split("\t"))
        assert shown == len(records)


def _messages(stdout: str) -> list[dict]:
    """The message lines of decode --json (the final findings line checked and left off)."""
    records = [json.loads(line) for line in stdout.splitlines()]
    assert records and set(records[-1]) == {"findings"}, records[-1:]
    return records[:-1]


def test_decode_capture_reports_findings_per_connection(tmp_path):
    _write(tmp_path / "ok.pcap")
    text = decode(str(tmp_path / "ok.pcap")).stdout
    assert text.endswith("\nfindings, connection 1 (127.0.0.1:40000 -> 127.0.0.1:9000): none\n")
    # The server answers an ID nobody asked about, and sends a ProtocolError.
    _write(tmp_path / "bad.pcap", server=b"01R000200000005hellof00000002")
    done = decode(str(tmp_path / "bad.pcap"))
    section = done.stdout.split("\nfindings, connection 1 (127.0.0.1:40000 -> 127.0.0.1:9000): 2\n")[1]
    assert "[unknown-exchange; frames #3]" in section and "[protocol-error; frames #4]" in section
    listed = json.loads(decode(str(tmp_path / "bad.pcap"), "--json").stdout.splitlines()[-1])["findings"]
    assert [(f["rule"], f["severity"], f["connection"]) for f in listed] == [("unknown-exchange", "error", 1), ("protocol-error", "error", 1)]


def test_decode_capture_findings_include_bytes_that_are_not_gotalk(tmp_path):
    _write(tmp_path / "x.pcap", client=b"01x000100000000")
    done = decode(str(tmp_path / "x.pcap"))
    assert done.returncode == 2 and "[unknown-message-type]" in done.stdout.split("findings, connection 1")[1]

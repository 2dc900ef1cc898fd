"""tshark reads what `tap --pcap` writes, and the dissector agrees with the kit, field by field.

Needs Debian's tshark (`make test` installs it). Every tshark run has a HOME of its own,
so that a dissector installed in the real personal plugin folder is not loaded twice.
A Lua error in tshark 4.0 never reaches stderr and leaves the exit status 0: it shows as
an expert-info error, which is why every run is also checked with `-z expert,error`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from capture_helpers import ROOT, TSHARK, dissected, record_conversation, tshark
from gotalk_lab.capture import PcapWriter, TcpConversation, read_capture

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (make test installs it with apt-get)")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    pcap = tmp_path_factory.mktemp("tap") / "tap.pcap"
    record_conversation(pcap)
    return pcap


def _no_expert_errors(pcap, home, *args):
    result = tshark("-r", str(pcap), "-q", "-z", "expert,error", *args, home=home)
    assert result.returncode == 0, result.stderr
    assert not result.stderr.strip(), result.stderr
    assert "Lua Error" not in result.stdout and "Malformed" not in result.stdout and "Errors (" not in result.stdout, result.stdout
    return result


def test_tshark_reads_the_tap_pcap_without_malformed_packets_or_lua_errors(recorded, tmp_path):
    _no_expert_errors(recorded, tmp_path)
    plain = tshark("-r", str(recorded), "-q", "-z", "expert,error", home=tmp_path, plugin=False)
    assert plain.returncode == 0 and "Errors (" not in plain.stdout, plain.stdout
    # Proper TCP: no analysis flags (lost segments, bad ACKs, retransmissions) in what the tap wrote.
    flagged = tshark("-r", str(recorded), "-Y", "tcp.analysis.flags && !tcp.analysis.window_update", home=tmp_path)
    assert flagged.stdout.strip() == "", flagged.stdout


def _kit_messages(pcap):
    out = subprocess.run(
        [sys.executable, "-m", "gotalk_lab.cli", "decode", str(pcap), "--json"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert records and set(records[-1]) == {"findings"}  # decode's last line: its Expert Info
    return records[:-1]


def _expected_fields(record: dict) -> dict:
    """What the dissector must show for one message of `decode --json`."""
    if record["type"] == "v":
        return {"gotalk.version": str(record["version"])}
    fields = {"gotalk.type": record["type"]}
    if "id" in record:
        fields["gotalk.id"] = record["id"]
    if "name" in record:
        fields["gotalk.op"] = record["name"]
    if "payload" in record:
        fields["gotalk.size"] = str(len(record["payload"]) // 2)
        fields["gotalk.payload"] = record["payload"]
    if "wait" in record:
        fields["gotalk.wait"] = str(record["wait"])
    if "code" in record:
        fields["gotalk.code"] = str(record["code"])
    return fields


def test_every_message_of_a_real_conversation_matches_the_kits_decoder_field_by_field(recorded, tmp_path):
    kit = _kit_messages(recorded)
    types = {record["type"] for record in kit}
    assert {"v", "r", "R", "E", "e", "s", "p", "S", "n", "h", "f"} <= types, types
    assert any(len(record.get("payload", "")) // 2 > 65536 for record in kit), "no message split over segments"
    shown = dissected(recorded, tmp_path)
    # Wireshark shows each direction's messages in stream order; compare direction by direction.
    assert len(shown) == len(kit)
    for direction in ("client", "server"):
        for number in {record["connection"]["number"] for record in kit}:
            ours = [r for r in kit if r["connection"]["number"] == number and r["direction"] == direction]
            ends = [ours[0]["connection"][side].rsplit(":", 1)[1] for side in ("client", "server")]
            ports = tuple(ends) if direction == "client" else tuple(reversed(ends))
            theirs = [m for m in shown if m["ports"] == ports]
            assert len(theirs) == len(ours), f"connection {number} {direction}: tshark {len(theirs)}, kit {len(ours)}"
            for record, fields in zip(ours, theirs):
                expected = _expected_fields(record)
                got = {name: fields.get(name, "") for name in expected}
                if "gotalk.payload" in got:  # tshark leaves an empty payload's value empty
                    got["gotalk.payload"] = got["gotalk.payload"] or ""
                assert got == expected, f"{direction} {record['summary']}"


def test_tshark_output_with_the_display_filter_and_the_heuristic(recorded, tmp_path):
    listing = tshark("-r", str(recorded), "-Y", "gotalk.type == \"E\"", "-T", "fields", "-e", "gotalk.payload", home=tmp_path)
    assert listing.returncode == 0 and bytes.fromhex(listing.stdout.split()[0].replace(":", "").split(",")[-1]) == b"boom"


def test_decode_as_on_a_port_where_the_heuristic_cannot_see_the_start(tmp_path):
    """A capture without the connection's start: only Decode As finds Gotalk on it."""
    pcap = tmp_path / "midstream.pcap"
    with open(pcap, "wb") as sink:
        conversation = TcpConversation(PcapWriter(sink), ("10.0.0.1", 40001), ("10.0.0.2", 7777))
        conversation.next_seq["client"] += 1000  # no SYN, no version: the capture starts later
        conversation.next_seq["server"] += 1000
        conversation.send("client", b"r0001004echo00000002hir0002004echo00000002yo", 1.0)
        conversation.send("server", b"R000100000002hi", 1.1)
    home = tmp_path / "home"
    home.mkdir()
    without = dissected(pcap, home)
    assert without == []
    shown = dissected(pcap, home, "-d", "tcp.port==7777,gotalk")
    assert [(m["gotalk.type"], m["gotalk.op"] if "gotalk.op" in m else "") for m in shown] == [("r", "echo"), ("r", "echo"), ("R", "")]
    _no_expert_errors(pcap, home, "-d", "tcp.port==7777,gotalk")
    ours = [e for e in read_capture(pcap, port=7777) if hasattr(e, "frame")]
    assert [e.frame.message.request_id for e in ours] == [b"0001", b"0002", b"0001"]


def test_the_heuristic_finds_gotalk_on_any_port_from_the_version(tmp_path):
    pcap = tmp_path / "heuristic.pcap"
    with open(pcap, "wb") as sink:
        conversation = TcpConversation(PcapWriter(sink), ("10.0.0.1", 40002), ("10.0.0.2", 31337))
        conversation.open(1.0)
        conversation.send("client", b"01", 1.0)
        conversation.send("server", b"01", 1.0)
        conversation.send("client", b"n005hello00000002hi", 1.1)
        conversation.close("client", 1.2)
    home = tmp_path / "home"
    home.mkdir()
    shown = dissected(pcap, home)
    assert [m.get("gotalk.version") or m.get("gotalk.type") for m in shown] == ["1", "1", "n"]
    assert shown[2]["gotalk.op"] == "hello"


def test_wireshark_install_into_a_temporary_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    environment = {**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "gotalk_lab.cli", "wireshark", "--install"], capture_output=True, text=True, env=environment, timeout=60)
    assert done.returncode == 0, done.stderr
    folders = subprocess.run([TSHARK, "-G", "folders"], capture_output=True, text=True, env=environment, timeout=60).stdout
    folder = next(line.split(":", 1)[1].strip() for line in folders.splitlines() if line.startswith("Personal Lua Plugins"))
    assert (home / ".local/lib/wireshark/plugins/gotalk.lua").is_file()
    assert os.path.samefile(folder, home / ".local/lib/wireshark/plugins")
    assert str(home) in done.stdout
    protocols = subprocess.run([TSHARK, "-G", "protocols"], capture_output=True, text=True, env=environment, timeout=60).stdout
    assert any(line.split("\t")[-1] == "gotalk" for line in protocols.splitlines()), "tshark did not load the installed dissector"
    plugins = subprocess.run([TSHARK, "-G", "plugins"], capture_output=True, text=True, env=environment, timeout=60).stdout
    assert any(line.startswith("gotalk.lua") and folder in line for line in plugins.splitlines()), plugins
    path = subprocess.run([sys.executable, "-m", "gotalk_lab.cli", "wireshark", "--path"], capture_output=True, text=True, env=environment, timeout=60)
    assert path.stdout.strip().endswith("gotalk.lua") and os.path.isfile(path.stdout.strip())

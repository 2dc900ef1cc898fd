"""Tests for the installed ``gotalk-lab`` command, run as a user runs it: a subprocess on real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conformance import CONFORMANCE_DIR

from gotalk_lab.decoder import decode_all

GOTALK_LAB = Path(sys.executable).parent / "gotalk-lab"

#: Keys every --json line has, and the keys each message type adds (DESIGN.md).
COMMON_KEYS = {"type", "kind", "offset", "length", "summary", "fields"}
KEYS_BY_TYPE = {
    "v": {"version"},
    "r": {"id", "name", "payload"},
    "s": {"id", "name", "payload"},
    "p": {"id", "payload"},
    "R": {"id", "payload"},
    "S": {"id", "payload"},
    "E": {"id", "payload"},
    "e": {"id", "wait", "payload"},
    "n": {"name", "payload"},
    "h": {"load", "time"},
    "f": {"code"},
}


def _conformance_dir() -> Path:
    return CONFORMANCE_DIR


def _streams() -> dict[str, bytes]:
    streams = {}
    for path in sorted(_conformance_dir().glob("*.json")):
        events = json.loads(path.read_text())["events"]
        for direction in ("send", "recv"):
            streams[f"{path.stem}.{direction}"] = b"".join(
                bytes.fromhex(e["hex"]) for e in events if e["dir"] == direction
            )
    return streams


STREAMS = _streams()
assert STREAMS, f"no conformance transcripts found in {_conformance_dir()}"
BAD = {
    "10-protocol-error-unknown-type.send": ("byte 2", "type"),
    "11-bad-size-digits.send": ("byte 18", "payload_size"),
    "12-version-mismatch.send": ("byte 0", "version"),
}
GOOD = sorted(set(STREAMS) - set(BAD))


@pytest.fixture(scope="session")
def command() -> str:
    assert GOTALK_LAB.exists(), f"the gotalk-lab console script is not installed next to {sys.executable}"
    return str(GOTALK_LAB)


def _run(command: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([command, *args], input=stdin, capture_output=True, timeout=60)


def _write(tmp_path: Path, name: str, data: bytes | None = None) -> Path:
    path = tmp_path / f"{name}.bin"
    path.write_bytes(STREAMS[name] if data is None else data)
    return path


def _json_lines(stdout: bytes) -> list[dict]:
    """The message lines of --json output (the final ``{"findings": [...]}`` line checked and left off)."""
    records = [json.loads(line) for line in stdout.decode("ascii").splitlines()]
    assert records and set(records[-1]) == {"findings"}, records[-1:]
    return records[:-1]


@pytest.mark.parametrize("name", GOOD)
def test_decode_explains_every_message(command, tmp_path, name):
    result = _run(command, "decode", str(_write(tmp_path, name)))
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    out = result.stdout.decode()
    messages = decode_all(STREAMS[name])
    headers = [line for line in out.splitlines() if line.startswith("[")]
    assert len(headers) == len(messages)
    for header, message in zip(headers, messages):
        assert type(message).__name__ in header


@pytest.mark.parametrize("name", GOOD)
def test_decode_json_lines_have_the_documented_keys_and_tile_the_file(command, tmp_path, name):
    data = STREAMS[name]
    result = _run(command, "decode", "--json", str(_write(tmp_path, name)))
    assert result.returncode == 0, result.stderr
    lines = _json_lines(result.stdout)
    assert len(lines) == len(decode_all(data))
    position = 0
    for line in lines:
        assert COMMON_KEYS | KEYS_BY_TYPE[line["type"]] <= set(line), line
        assert line["offset"] == position
        assert data[position : position + 1] == line["type"].encode() or line["type"] == "v"
        end = line["offset"] + line["length"]
        if "payload" in line:  # the payload is the message's last bytes
            assert data[end - len(line["payload"]) // 2 : end].hex() == line["payload"]
        if "id" in line:
            assert data[position + 1 : position + 5].hex() == line["id"]
        for field in line["fields"]:
            assert {"name", "start", "end", "value"} <= set(field)
            assert field["start"] == position
            position = field["end"]
        assert position == line["offset"] + line["length"]
    assert sum(line["length"] for line in lines) == len(data)
    assert lines[0]["type"] == "v" and lines[0]["version"] == 1


def test_decode_human_output_reads_field_by_field(command, tmp_path):
    result = _run(command, "decode", str(_write(tmp_path, "06-bidirectional.recv")))
    out = result.stdout.decode()
    assert '[2:24] SingleRequest, 22 bytes: r \\x00\\x00\\x00\\x00 ping "zz" (2 bytes, text)' in out
    row = next(line for line in out.splitlines() if "request_id" in line)
    assert row.split()[:4] == ["[3:7]", "\\x00\\x00\\x00\\x00", "request_id", "\\x00\\x00\\x00\\x00"]
    assert "little-endian counter: 0" in row
    assert "payload size: 0x00000002 = 2 bytes follow" in out


def test_long_payloads_are_cut_in_the_middle_with_a_count(command, tmp_path):
    data = b"01R000100000400" + b"a" * 1024
    result = _run(command, "decode", str(_write(tmp_path, "long", data)))
    assert result.returncode == 0
    payload_row = next(line for line in result.stdout.decode().splitlines() if "  payload  " in line)
    assert f"{'a' * 28} …986 bytes hidden… {'a' * 10}" in payload_row
    assert len(payload_row) < 200


@pytest.mark.parametrize("stdin_args", [["-"], []])
def test_decode_reads_standard_input(command, tmp_path, stdin_args):
    name = "04-streaming.send"
    from_file = _run(command, "decode", "--json", str(_write(tmp_path, name)))
    from_stdin = _run(command, "decode", "--json", *stdin_args, stdin=STREAMS[name])
    assert from_stdin.returncode == 0
    assert from_stdin.stdout == from_file.stdout
    assert len(_json_lines(from_stdin.stdout)) == 4


def test_no_version_reads_a_stream_without_the_preamble(command):
    without_preamble = STREAMS["02-single-requests.recv"][2:]
    result = _run(command, "decode", "--json", "--no-version", "-", stdin=without_preamble)
    assert result.returncode == 0, result.stderr
    lines = _json_lines(result.stdout)
    assert [line["type"] for line in lines] == ["R", "R", "R"]
    assert lines[0]["offset"] == 0
    assert sum(line["length"] for line in lines) == len(without_preamble)
    # Without the flag the same bytes are refused at byte 0: "R0" is not a version.
    refused = _run(command, "decode", "-", stdin=without_preamble)
    assert refused.returncode == 2
    assert b"byte 0: version" in refused.stderr


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_transcripts_exit_2_with_one_located_line(command, tmp_path, name):
    where, field = BAD[name]
    path = _write(tmp_path, name)
    for args in ([], ["--json"]):
        result = _run(command, "decode", *args, str(path))
        assert result.returncode == 2
        error_lines = result.stderr.decode().splitlines()
        assert len(error_lines) == 1, error_lines
        assert error_lines[0].startswith(f"gotalk-lab: invalid input at {where}: {field}: expected ")
    # The version preamble before the bad message is still printed.
    printed = _json_lines(_run(command, "decode", "--json", str(path)).stdout)
    assert [line["type"] for line in printed] == ([] if where == "byte 0" else ["v"])


def test_bad_size_digit_message_is_exact(command, tmp_path):
    result = _run(command, "decode", str(_write(tmp_path, "11-bad-size-digits.send")))
    assert result.stderr.decode() == (
        "gotalk-lab: invalid input at byte 18: payload_size: expected 8 hex digits, found 'z' at digit 5\n"
    )
    out = result.stdout.decode()
    assert out.startswith("[0:2] ProtocolVersion")
    assert "[2:22] not a whole message: reading stopped at byte 18" in out


def test_truncated_input_is_invalid_and_located(command):
    data = STREAMS["02-single-requests.send"][:30]  # cut inside the first payload
    result = _run(command, "decode", "-", stdin=data)
    assert result.returncode == 2
    error_lines = result.stderr.decode().splitlines()
    assert len(error_lines) == 1
    assert error_lines[0].startswith("gotalk-lab: invalid input at byte 30: payload: expected ")
    assert error_lines[0].endswith(", found end of input")
    assert result.stdout.decode().startswith("[0:2] ProtocolVersion")


def test_unreadable_file_is_one_line_and_status_1(command, tmp_path):
    result = _run(command, "decode", str(tmp_path / "missing.bin"))
    assert result.returncode == 1
    assert len(result.stderr.decode().splitlines()) == 1
    assert b"cannot read" in result.stderr and b"Traceback" not in result.stderr


def test_help_documents_the_version_rule(command):
    result = _run(command, "decode", "--help")
    assert result.returncode == 0
    assert b'"type": "v"' in result.stdout


def test_a_subcommand_is_required(command):
    result = _run(command)
    assert result.returncode == 2
    assert b"usage: gotalk-lab" in result.stderr


def test_a_reader_that_stops_early_gets_no_traceback(command, tmp_path):
    path = _write(tmp_path, "15-go-client-session.send")  # its --json output is far larger than a pipe buffer
    process = subprocess.Popen([command, "decode", "--json", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == 141
    assert json.loads(first)["type"] == "v"
    assert stderr == b""

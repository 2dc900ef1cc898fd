"""Expert Info: each rule fires on a trace made to trigger it and stays quiet on a near miss;
the Go reference transcripts of normal conversations give no findings at all."""

from __future__ import annotations

import pytest

import gotalk_lab as gl
from gotalk_lab.errors import ProtocolViolation
from gotalk_lab.findings import RULES, Undecodable, format_findings, markers, read_conversation
from gotalk_lab.trace import IN, OUT, Trace
from gotalk_lab.wire import (
    ErrorResult,
    Heartbeat,
    Notification,
    ProtocolError,
    ProtocolVersion,
    RetryResult,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
    encode_header,
)

from conformance import CONFORMANCE_DIR

FAULTY = {
    "10-protocol-error-unknown-type": {"unknown-message-type", "protocol-error"},
    "11-bad-size-digits": {"invalid-bytes"},
    "12-version-mismatch": {"version-mismatch"},
    "13-stream-part-without-request": {"unknown-exchange"},
    "14-read-timeout": {"protocol-error"},
}


def make(*frames, start_with_versions=True):
    """A trace of (time, direction, message) frames, after both versions at time 0."""
    trace = Trace(cap=None)
    if start_with_versions:
        for direction in (OUT, IN):
            trace.record(direction, b"01", ProtocolVersion(1), at=0.0)
    for at, direction, message in frames:
        trace.record(direction, encode_header(message), message, at=at)
    return trace


def rules_of(trace, **options):
    return {finding.rule for finding in gl.findings(trace, **options)}


def transcript_trace(path):
    import json

    document = json.loads(path.read_text())
    chunks = [(e["t"], OUT if e["dir"] == "send" else IN, bytes.fromhex(e["hex"])) for e in document["events"]]
    return read_conversation(chunks, sides=("client", "server"))


@pytest.mark.parametrize("path", sorted(CONFORMANCE_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_transcripts_normal_ones_give_no_findings_faulty_ones_the_expected(path):
    trace, bad = transcript_trace(path)
    found = {f.rule for f in gl.findings(trace, undecodable=bad)}
    assert found == FAULTY.get(path.stem, set())


# -- one pair per rule: it fires / a near miss does not ------------------------------


def test_gotalk_js_retry_result_fires_with_explicit_peer_kind():
    trace = make((1, IN, SingleRequest(b"0000", "echo", b"x")), (1.1, OUT, RetryResult(b"0000", 500, b"request rate limit")))
    found = gl.findings(trace, peer_kind="gotalk.js")
    assert [f.rule for f in found] == ["gotalk-js-unsupported"] and found[0].severity == "error" and found[0].frames == (3,)
    assert "4002" in found[0].sentence


def test_gotalk_js_detected_by_its_stream_ids_stream_request_sent_to_it():
    trace = make(
        (1, IN, StreamRequest(b"!000", "upper-stream", b"a")),
        (1.1, OUT, StreamResult(b"!000", b"")),
        (2, OUT, StreamRequest(b"\x00\x00\x00\x00", "x", b"")),
    )
    assert "gotalk-js-unsupported" in rules_of(trace)


def test_gotalk_js_near_miss_retry_to_a_base36_client_that_is_not_known_as_gotalk_js():
    trace = make((1, OUT, SingleRequest(b"0000", "echo", b"x")), (1.1, IN, RetryResult(b"0000", 500, b"limit")), (2, OUT, SingleRequest(b"0000", "echo", b"x")), (2.1, IN, SingleResult(b"0000", b"x")))
    assert rules_of(trace) == set()
    # gotalk.js *as the other side* may be sent r, n, h and answers: nothing to say.
    ok = make((1, OUT, SingleRequest(b"0000", "echo", b"x")), (1.1, IN, SingleResult(b"0000", b"x")), (2, OUT, Notification("hello", b"")), (3, OUT, Heartbeat(0, 5)))
    assert rules_of(ok, peer_kind="gotalk.js") == set()


def test_unanswered_request_by_the_trace_clock():
    trace = make((1, OUT, SingleRequest(b"0001", "sleep", b"")), (20, IN, Heartbeat(0, 1)))
    found = gl.findings(trace, unanswered_after=10)
    assert [f.rule for f in found] == ["request-unanswered"] and found[0].frames == (2,)
    assert rules_of(trace, unanswered_after=30) == set()  # near miss: not long enough
    assert rules_of(trace, unanswered_after=30, now=40.0) == {"request-unanswered"}  # a live trace, asked again later


def test_answered_late_is_not_unanswered():
    trace = make((1, OUT, SingleRequest(b"0001", "sleep", b"")), (20, IN, SingleResult(b"0001", b"")))
    assert rules_of(trace, unanswered_after=10) == set()


def test_request_id_reused_in_flight():
    trace = make((1, OUT, SingleRequest(b"0001", "a", b"")), (1.1, OUT, SingleRequest(b"0001", "b", b"")))
    found = gl.findings(trace)
    assert [f.rule for f in found] == ["request-id-reused"] and found[0].frames == (2, 3)


def test_request_id_reused_after_its_answer_or_as_a_retry_is_fine():
    trace = make(
        (1, OUT, SingleRequest(b"0001", "a", b"")),
        (1.1, IN, SingleResult(b"0001", b"")),
        (2, OUT, SingleRequest(b"0001", "b", b"")),
        (2.1, IN, RetryResult(b"0001", 0, b"")),
        (2.2, OUT, SingleRequest(b"0001", "b", b"")),
        (2.3, IN, ErrorResult(b"0001", b"boom")),
    )
    assert rules_of(trace) == set()


def test_result_for_unknown_exchange():
    trace = make((1, OUT, SingleRequest(b"0001", "a", b"")), (1.1, IN, SingleResult(b"0002", b"")), (1.2, IN, SingleResult(b"0001", b"")))
    found = gl.findings(trace)
    assert [f.rule for f in found] == ["unknown-exchange"] and found[0].frames == (3,)


def test_stream_parts_of_a_started_stream_are_known():
    trace = make(
        (1, OUT, StreamRequest(b"0001", "upper-stream", b"a")),
        (1.1, OUT, StreamRequestPart(b"0001", b"b")),
        (1.2, IN, StreamResult(b"0001", b"A")),
        (1.3, OUT, StreamRequestPart(b"0001", b"")),
        (1.4, IN, StreamResult(b"0001", b"")),
    )
    assert rules_of(trace) == set()
    assert rules_of(make((1, OUT, StreamRequestPart(b"0001", b"b")))) == {"unknown-exchange"}


def test_results_without_any_request():
    trace = make((1, IN, SingleResult(b"0001", b"")), (1.1, IN, ErrorResult(b"0002", b"")))
    found = gl.findings(trace)
    assert [f.rule for f in found] == ["results-without-request"] and found[0].frames == (2, 3)
    assert rules_of(trace, one_sided=True) == set()  # near miss: one side's bytes only


def test_silent_connection_without_heartbeats():
    trace = make((1, OUT, SingleRequest(b"0001", "a", b"")), (1.1, IN, SingleResult(b"0001", b"")), (40, OUT, SingleRequest(b"0002", "a", b"")), (40.1, IN, SingleResult(b"0002", b"")))
    found = gl.findings(trace)
    assert {f.rule for f in found} == {"silent-connection"} and found[0].frames == (2, 4)


def test_heartbeats_keep_a_connection_from_being_silent():
    trace = make((1, OUT, SingleRequest(b"0001", "a", b"")), (1.1, IN, SingleResult(b"0001", b"")), (21, OUT, Heartbeat(0, 1)), (40, OUT, SingleRequest(b"0002", "a", b"")), (40.1, IN, SingleResult(b"0002", b"")))
    # Each side is judged on its own: the server's silence is still reported, the client's is not.
    found = gl.findings(trace)
    assert all(f.frames[0] != 2 for f in found)  # the client's heartbeats kept its side alive
    assert rules_of(trace, read_timeout=60) == set()


def test_size_above_the_receivers_limit():
    trace = make((1, OUT, SingleRequest(b"0001", "echo", b"x" * 100)), (1.1, IN, SingleResult(b"0001", b"x" * 100)))
    assert rules_of(trace, max_payload_size=50) == {"size-above-limit"}
    assert rules_of(trace, max_payload_size=100) == set()
    error = ProtocolViolation(20, "payload_size", "at most 10 bytes (the payload limit)", "4294967295")
    assert rules_of(make(), undecodable=[Undecodable(OUT, error)]) == {"size-above-limit"}


def test_unknown_message_type_and_other_invalid_bytes():
    unknown = Undecodable(OUT, ProtocolViolation(2, "type", "a type", "'x'"))
    digits = Undecodable(OUT, ProtocolViolation(18, "payload_size", "8 hex digits", "'z'"))
    assert rules_of(make(), undecodable=[unknown]) == {"unknown-message-type"}
    assert rules_of(make(), undecodable=[digits]) == {"invalid-bytes"}
    assert rules_of(make()) == set()


def test_version_mismatch():
    trace = Trace(cap=None)
    trace.record(OUT, b"02", ProtocolVersion(2), at=0)
    trace.record(IN, b"01", ProtocolVersion(1), at=0)
    assert rules_of(trace) == {"version-mismatch"}
    assert rules_of(make()) == set()


def test_protocol_error_received():
    trace = make((1, IN, ProtocolError(3)))
    found = gl.findings(trace)
    assert [f.rule for f in found] == ["protocol-error"] and "timeout" in found[0].sentence
    assert rules_of(make((1, IN, Heartbeat(0, 1)))) == set()


def test_every_rule_is_tested_here():
    assert set(RULES) == {
        "gotalk-js-unsupported", "request-unanswered", "request-id-reused", "unknown-exchange", "results-without-request",
        "silent-connection", "size-above-limit", "unknown-message-type", "version-mismatch", "invalid-bytes", "protocol-error",
    }


def test_findings_are_frozen_and_serialisable_and_show_as_markers_and_text():
    found = gl.findings(make((1, IN, ProtocolError(2)), (1, IN, SingleResult(b"0001", b""))))
    assert found[0].to_dict()["frames"] and all(f.severity in ("error", "warning", "note") for f in found)
    with pytest.raises(Exception):
        found[0].rule = "x"  # type: ignore[misc]
    assert markers(found)[2]["symbol"] == "✖"
    assert format_findings(found).startswith("findings: 2") and format_findings([]) == "findings: none\n"


def test_trace_findings_is_gl_findings():
    trace = make((1, IN, ProtocolError(2)))
    assert trace.findings() == gl.findings(trace) and trace.findings(rules=["version-mismatch"]) == []


def test_bad_peer_kind_is_refused():
    with pytest.raises(ValueError):
        gl.findings(make(), peer_kind="python")


# -- the decode command ------------------------------------------------------------


def _decode(capsys, monkeypatch, data: bytes, *args):
    import io
    import sys

    from gotalk_lab import cli

    class Stdin:
        buffer = io.BufferedReader(io.BytesIO(data))

    monkeypatch.setattr(sys, "stdin", Stdin)
    status = cli.main(["decode", *args, "-"])
    return status, capsys.readouterr()


def test_decode_text_ends_with_the_findings_section(capsys, monkeypatch):
    status, out = _decode(capsys, monkeypatch, b"01r0001004echo00000005hello")
    assert status == 0 and out.out.endswith("\nfindings: none\n")
    status, out = _decode(capsys, monkeypatch, b"01r0001004echo00000005hellor0001004echo00000005hello")
    assert out.out.endswith("[request-id-reused; frames #1, #2]\n") and "\nfindings: 1\n  error: " in out.out


def test_decode_json_ends_with_one_findings_line(capsys, monkeypatch):
    import json

    status, out = _decode(capsys, monkeypatch, b"01p000900000000", "--json")
    last = json.loads(out.out.splitlines()[-1])
    assert status == 0 and [f["rule"] for f in last["findings"]] == ["unknown-exchange"] and last["findings"][0]["frames"] == [1]
    # Bytes that are not Gotalk: the messages, the findings line, exit 2.
    status, out = _decode(capsys, monkeypatch, b"01x000100000000", "--json")
    assert status == 2 and json.loads(out.out.splitlines()[-1])["findings"][0]["rule"] == "unknown-message-type"
    # One side's bytes: a result with no request in sight is not a finding.
    status, out = _decode(capsys, monkeypatch, b"R000100000002ok", "--json", "--no-version")
    assert json.loads(out.out.splitlines()[-1]) == {"findings": []}

"""The malformed-message lab: its Go answers agree with the transcripts, its readings and
this kit's live answers are what the protocol says."""

from __future__ import annotations

import pytest

from gotalk_lab import malformed
from gotalk_lab.errors import ProtocolViolation
from gotalk_lab.wire import VERSION_BYTES

from conformance import CONFORMANCE_DIR, load_transcript

CASES = {case.key: case for case in malformed.CASES}


@pytest.mark.parametrize("case", [c for c in malformed.CASES if c.go], ids=lambda c: c.key)
def test_what_the_go_peer_answers_is_read_from_its_transcript(case):
    transcript = load_transcript(CONFORMANCE_DIR / case.go.transcript)
    sent = transcript.stream("send")
    assert sent == case.stream, "the case must be the bytes the transcript sent"
    written = transcript.stream("recv")
    assert written.startswith(VERSION_BYTES)
    assert written[len(VERSION_BYTES):] == case.go.written
    assert transcript.closed_by_peer == case.go.closes


def test_every_case_without_a_transcript_says_why():
    for case in malformed.CASES:
        assert case.go is not None or case.go_note.startswith("no transcript:"), case.key


async def test_this_kit_answers_each_case_as_the_table_says():
    answers = {case.key: kit for case, kit in await malformed.run_cases()}
    assert answers["bad-hex"].written == b"f00000002" and answers["bad-hex"].closes
    assert answers["unknown-type"].written == b"f00000002" and answers["unknown-type"].closes
    assert answers["part-without-request"].written == b"f00000002" and answers["part-without-request"].closes
    assert answers["version"].written == b"f00000001" and answers["version"].closes
    for waiting in ("decimal-size", "truncated"):
        assert answers[waiting].written == b"" and not answers[waiting].closes, waiting
    rows = malformed.summary(list(zip(malformed.CASES, [answers[c.key] for c in malformed.CASES])))
    assert rows[0]["this kit"] == "writes f00000002, then closes"
    assert rows[0]["Go reference"] == "writes nothing, then closes"
    assert rows[1]["this kit"] == "writes nothing and keeps waiting"


def test_the_reading_locates_the_error_and_explains_the_offset():
    state = malformed.reading(CASES["bad-hex"])
    assert isinstance(state.error, ProtocolViolation) and state.error.offset == 18
    assert state.describe(2).startswith("error at byte 18 of the stream (byte 16 of the message, after the 2-byte version)")
    assert malformed.reading(CASES["version"]).describe(0).startswith("error at byte 0 of the stream: version")
    refused = malformed.reading(CASES["part-without-request"]).describe(2)
    assert "refused by the connection's state" in refused and "0009" in refused


def test_the_reading_counts_the_bytes_still_awaited_byte_by_byte():
    case = CASES["decimal-size"]
    assert malformed.reading(case).describe(2) == "waiting for 6 more bytes (it holds 30 of an unfinished message)"
    assert malformed.reading(case, 1).describe(2) == "waiting for 1 more byte (it holds 1 of an unfinished message)"
    assert malformed.reading(case, 2).describe(2) == "1 whole message(s) read, nothing unfinished"
    assert malformed.reading(case, 10).describe(2).startswith("waiting for at least")  # sizes not read yet
    assert malformed.hint(case) == "sizes are hexadecimal: payload_size 00000010 is 16 bytes; if 10 was meant, it is written 0000000a"
    assert malformed.hint(CASES["bad-hex"]) is None and malformed.hint(CASES["version"]) is None

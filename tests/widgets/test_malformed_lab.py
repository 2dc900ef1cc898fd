"""The malformed-message lab widget: each case's bytes, the receiver's state as the slider
feeds it, and both peers' answers (kernel side)."""

from __future__ import annotations

import pytest

from gotalk_lab import malformed
from gotalk_lab.widgets import MalformedLab


async def test_each_case_shows_its_bytes_state_and_both_answers():
    lab = MalformedLab(await malformed.run_cases())
    assert [title for title, _ in lab.picker.options][0] == "A size that is not hexadecimal"
    assert lab.frame_view.data == b"r0001004echo0000zzzz"  # never an empty panel
    assert "error at byte 18 of the stream (byte 16 of the message" in lab.state.value
    assert "writes f00000002, then closes" in lab.answers.value
    assert "writes nothing, then closes" in lab.answers.value and "11-bad-size-digits.json" in lab.answers.value

    lab.picker.value = 1  # a size written in decimal
    assert lab.frame_view.data == b"r0001004echo00000010hello worl"
    assert "The classic mistake:" in lab.what.value and "it is written 0000000a" in lab.what.value
    assert "waiting for 6 more bytes" in lab.state.value
    assert "keeps waiting" in lab.answers.value and "no transcript:" in lab.answers.value

    lab.received.value = 1  # the slider feeds the receiver a byte at a time
    assert "after 1 of 32 bytes: waiting for 1 more byte " in lab.state.value
    lab.received.value = 22
    assert "after 22 of 32 bytes: waiting for 16 more bytes" in lab.state.value

    lab.pick(5)  # another version: the bytes are shown as a version, offsets from 0
    assert lab.frame_view.data == b"02" and lab.received.max == 2
    assert "error at byte 0 of the stream: version" in lab.state.value
    assert "writes f00000001, then closes" in lab.answers.value


def test_a_lab_without_cases_says_what_to_pass():
    with pytest.raises(ValueError, match="run_cases"):
        MalformedLab([])

"""``Decoder.waiting``: how many bytes of an unfinished message a decoder holds, and how
many more it needs before it can hand the message on."""

from __future__ import annotations

import pytest

from gotalk_lab.decoder import Decoder, Waiting
from gotalk_lab.errors import ProtocolViolation

REQUEST = b"r0001004echo00000005hello"


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", Waiting(0, 0, True)),
        (REQUEST, Waiting(0, 0, True)),  # between messages: nothing held
        (REQUEST[:-1], Waiting(24, 1, True)),  # the header is whole: one payload byte to go
        (REQUEST[:20], Waiting(20, 5, True)),  # header whole, no payload byte yet
        (REQUEST[:12], Waiting(12, 8, False)),  # cut before the payload size: at least its 8 digits
        (REQUEST[:6], Waiting(6, 2 + 8, False)),  # in the name size: its last digits, then the size field
        (b"h0001", Waiting(5, 8, True)),  # a heartbeat has no payload: its length is fixed
        (b"f000", Waiting(4, 5, True)),
        (REQUEST + b"n005hel", Waiting(7, 2 + 8, False)),  # after a whole message, the next one counts
    ],
)
def test_waiting_counts_the_bytes_held_and_still_needed(data, expected):
    decoder = Decoder(expect_version=False)
    decoder.feed(data)
    assert decoder.waiting() == expected


def test_waiting_follows_more_bytes_and_the_version_preamble():
    decoder = Decoder(expect_version=True)
    decoder.feed(b"0")
    assert decoder.waiting() == Waiting(1, 1, True)
    decoder.feed(b"1" + REQUEST[:22])
    assert decoder.waiting() == Waiting(22, 3, True)
    decoder.feed(b"ll")
    assert decoder.waiting() == Waiting(24, 1, True)
    assert decoder.feed(b"o") and decoder.waiting() == Waiting(0, 0, True)


def test_a_stopped_decoder_waits_for_nothing():
    decoder = Decoder(expect_version=False)
    decoder.feed(REQUEST[:-1])
    with pytest.raises(ProtocolViolation):
        decoder.feed(b"o" + b"x")
    assert decoder.waiting() == Waiting(0, 0, True)

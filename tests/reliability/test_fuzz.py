"""Fuzzing, bounded for every test run: the codec and a live peer fed the conformance transcripts as an attacker edits them.

The same target and mutations as the long run (``make fuzz``, benchmarks/fuzz.py:
bit flips, truncation, size fields rewritten, types swapped, messages
duplicated, dropped or reordered), a few hundred inputs here, driven by
hypothesis so that a failure shrinks. The codec may only ever raise its own
located ``ProtocolViolation``; a peer fed the same bytes may only answer
(results, errors, at most one ``f`` as its last word) and, once closed, hold
nothing. tests/test_decoder.py fuzzes generated messages; these start from
what the Go reference peer really wrote.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gotalk_lab import demo
from gotalk_lab.decoder import Decoder, LAYOUTS
from gotalk_lab.errors import ProtocolViolation
from gotalk_lab.peer import Peer, PeerState
from gotalk_lab.transports.pipe import pipe_transports
from gotalk_lab.wire import ProtocolError, ProtocolVersion
from reliability_support import assert_tables_empty

FUZZ_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz.py"
_spec = importlib.util.spec_from_file_location("gotalk_lab_fuzz_run", FUZZ_SCRIPT)
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

SEEDS = fuzz.seeds(max_len=1024)
FUZZ_SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PEER_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def attacked_transcripts(draw) -> bytes:
    """A transcript (or one message of each type) after one to four attacker's edits."""
    data = draw(st.sampled_from(SEEDS), label="seed")
    rng = draw(st.randoms(use_true_random=False), label="edits")
    for _ in range(draw(st.integers(1, 4))):
        data = fuzz.mutate(data, rng, 1024)
    return data


def test_the_seeds_are_every_transcript_in_both_directions():
    assert len(SEEDS) >= 2 * 14 and all(seed[:2] in (b"01", b"02") for seed in SEEDS if len(seed) >= 2)


@FUZZ_SETTINGS
@given(attacked_transcripts())
def test_attacked_transcripts_raise_only_located_violations(data):
    fuzz.check_one(data)  # whole, chunked, trickled, other limits, decode, annotate: see benchmarks/fuzz.py


HOSTILE_SIZE_FIELDS = st.one_of(
    st.sampled_from([b"ffffffff", b"FFFFFFFF", b"7fffffff", b"00000000", b"04000001"]),
    st.binary(min_size=8, max_size=8),
    st.text("0123456789abcdefABCDEF", min_size=8, max_size=8).map(str.encode),
)


@FUZZ_SETTINGS
@given(st.sampled_from(SEEDS), st.data())
def test_every_size_field_of_every_transcript_frame_rewritten(seed, data):
    """Shrinkable: which frame, which hex field, what goes there."""
    try:
        frames = Decoder(max_payload_size=len(seed) + 1).feed_frames(seed)
    except ProtocolViolation as violation:  # the transcripts of bad input: their frames before it
        frames = violation.messages
    candidates = []
    for frame in frames[1:]:
        cursor, name_size = frame.offset, 0
        for field, width, kind in LAYOUTS[frame.header[:1]]:
            width = name_size if kind == "name" else width
            if field == "name_size":
                name_size = int(seed[cursor : cursor + 3], 16)
            if kind == "hex":
                candidates.append((cursor, width))
            cursor += width
    if not candidates:
        fuzz.check_one(seed)
        return
    start, width = data.draw(st.sampled_from(candidates), label="field")
    replacement = data.draw(HOSTILE_SIZE_FIELDS if width == 8 else st.binary(min_size=width, max_size=width), label="value")
    attacked = seed[:start] + replacement[:width].ljust(width, b"0") + seed[start + width :]
    fuzz.check_one(attacked)


# -- a live peer fed the same bytes -----------------------------------------------------------------------


class RawEnd:
    def __init__(self, transport) -> None:
        self.transport = transport
        self.received = bytearray()
        transport.attach(self)

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, error) -> None:
        pass


async def feed_a_peer(data: bytes, cuts: list[int], trace: bool) -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    transport_peer, transport_raw = pipe_transports()
    raw = RawEnd(transport_raw)
    peer = Peer(demo.handlers(), name="fuzzed", trace=trace, request_ids="binary").attach(transport_peer)
    previous = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        transport_raw.write(data[previous:cut])
        previous = cut
        await asyncio.sleep(0)
    for _ in range(5):  # let inline answers and quick handlers run
        await asyncio.sleep(0)
    # Whatever the peer wrote is valid Gotalk, and an ``f`` is at most its last word.
    written = Decoder(max_payload_size=len(raw.received) + 1).feed(bytes(raw.received))
    assert written[0] == ProtocolVersion()
    errors_written = [index for index, message in enumerate(written) if type(message) is ProtocolError]
    assert errors_written in ([], [len(written) - 1])
    if errors_written:
        assert peer.state is PeerState.CLOSED
    if peer.state is PeerState.CLOSED:
        assert peer.close_reason
        assert_tables_empty(peer)
    await asyncio.wait_for(peer.close(), 5)
    for _ in range(3):
        await asyncio.sleep(0)
    assert_tables_empty(peer)
    assert not errors, errors  # nothing escaped into the event loop


@PEER_SETTINGS
@given(attacked_transcripts(), st.lists(st.integers(0, 1024), max_size=6), st.booleans())
def test_a_peer_fed_attacked_transcripts_answers_or_closes_cleanly(data, cuts, trace):
    if data[:2] != b"01":
        data = b"01" + data  # past the handshake: the messages are what is attacked
    asyncio.run(feed_a_peer(data, [cut for cut in cuts if cut < len(data)], trace))


def test_a_violation_after_a_closing_message_in_the_same_chunk_starts_nothing():
    """Found by the peer fuzz: an ``f`` then a request then garbage, in one read."""
    asyncio.run(feed_a_peer(b'01f00000000r0001005sleep0000000a{"ms":500}xx', [], True))
    asyncio.run(feed_a_peer(b'01f00000000r0001005sleep0000000a{"ms":500}xx', [], False))


def test_the_long_run_reports_a_planted_bug():
    """The harness itself: check_one raises for what is not a ProtocolViolation."""
    original = fuzz._codec

    def broken_codec():
        annotate, decoder, errors, wire = original()

        class Broken:
            Decoder = decoder.Decoder
            decode = staticmethod(lambda data, **_: (_ for _ in ()).throw(IndexError("planted")))
            check_complete = staticmethod(decoder.check_complete)

        return annotate, Broken, errors, wire

    fuzz._codec = broken_codec
    try:
        try:
            fuzz.check_one(b"01R000100000000")
        except IndexError:
            pass
        else:
            raise AssertionError("a planted IndexError went unnoticed")
    finally:
        fuzz._codec = original
    rng = random.Random(0)
    assert {fuzz.mutate(SEEDS[1], rng) for _ in range(50)} - {SEEDS[1]}  # mutations mutate
    for bad in (b"\x00", b"01x", b"01r0001fff\xff"):
        try:
            Decoder().feed(bad)
        except ProtocolViolation:
            pass

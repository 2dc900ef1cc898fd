"""Conformance replay: our Peer, serving the demo operations, in the Go reference peer's seat.

Each transcript's ``send`` bytes are fed to a Peer on an in-memory transport, in
order and (scaled down) in time; the Peer must write what the Go peer wrote (``recv``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conformance import CONFORMANCE_DIR

from gotalk_lab import demo
from gotalk_lab.decoder import Decoder
from gotalk_lab.errors import ProtocolViolation
from gotalk_lab.peer import Peer, PeerState
from gotalk_lab.transports.base import Transport

TRANSCRIPTS = sorted(CONFORMANCE_DIR.glob("*.json")) if CONFORMANCE_DIR.is_dir() else []

#: Gaps between the connecting side's writes are replayed at this fraction of
#: their recorded length. Durations the Peer measures itself (sleeps, the read
#: timeout, retry waits) are real and are not scaled.
TIME_SCALE = 0.1
#: Upper bound for the Peer to write what the transcript says it wrote next.
BOUND = 5.0

#: Peer options matching how the Go demo peer was configured for a transcript.
SETTINGS = {
    "09-retry-result": {"max_requests": 1, "retry_wait": (100, 100)},
    "14-read-timeout": {"read_timeout": 0.5},
}

#: Where our Peer deliberately differs from the Go peer: what it writes after the
#: Go peer's last bytes, before closing.
DIFFERENCES = {
    # Non-hex size digits: the Go peer closes silently; we say "invalid message" first.
    "11-bad-size-digits": b"f00000002",
    # Version 02: the Go peer closes silently; we write f00000001 first, as gotalk.js does.
    "12-version-mismatch": b"f00000001",
    # A part for a stream never started: the Go peer closes silently; we say why first.
    "13-stream-part-without-request": b"f00000002",
}

#: Transcripts in which the order of answers between two writes of the connecting
#: side was decided by goroutine scheduling in the Go peer, not by the protocol:
#: there, each such group of answers is compared as a multiset.
SCHEDULING_ORDERED = {
    # 200 echo requests in two chunks (the Go peer answered "m7" first) and five
    # equal 300 ms sleeps that finish together.
    "15-go-client-session",
}

RESULT_TYPES = frozenset(b"RSEe")
REQUEST_TYPES = frozenset(b"rs")


@dataclass
class Event:
    time: float
    direction: str
    data: bytes


def load_events(path: Path) -> tuple[dict, list[Event]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    events = [Event(event["t"], event["dir"], bytes.fromhex(event["hex"])) for event in document["events"]]
    return document, events


def whole_frames(stream: bytes) -> list[tuple[int, bytes]]:
    """(offset, raw bytes) of every whole frame in a conversation, the version first.

    Stops quietly at bytes that are not valid Gotalk (some transcripts end so).
    """
    decoder = Decoder(expect_version=True)
    try:
        frames = decoder.feed_frames(stream)
    except ProtocolViolation as violation:
        frames = violation.messages
    return [(frame.offset, frame.header + getattr(frame.message, "payload", b"")) for frame in frames]


class RecordingTransport(Transport):
    """In memory: keeps what the Peer writes (and when); the test feeds what it reads."""

    description = "replay"

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.write_times: list[tuple[int, float]] = []  # (bytes written so far, monotonic time)
        self.closed_by_peer = False

    def write(self, header: bytes, payload: bytes = b"") -> None:
        self.written += header + payload
        self.write_times.append((len(self.written), time.monotonic()))

    def write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass  # the test feeds at its own pace

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed_by_peer:
            self.closed_by_peer = True
            asyncio.get_running_loop().call_soon(self._set_closed, None)


class Replay:
    """Feeds one transcript's ``send`` side to a Peer and collects what the Peer writes."""

    def __init__(self, path: Path, *, bytewise: bool, **options) -> None:
        self.stem = path.stem
        self.document, self.events = load_events(path)
        self.bytewise = bytewise
        self.transport = RecordingTransport()
        self.peer = Peer(demo.handlers(), name="replay", **{**SETTINGS.get(self.stem, {}), **options})
        self.send_stream = b"".join(e.data for e in self.events if e.direction == "send")
        self.recv_stream = b"".join(e.data for e in self.events if e.direction == "recv")
        self.expected = whole_frames(self.recv_stream)
        # The Go peer's own requests (r, s) carry its request IDs; ours will carry ours.
        self.go_request_ids = [raw[1:5] for _, raw in self.expected if raw[0] in REQUEST_TYPES]
        # Results in the send side answer those requests: their IDs must become ours.
        self.send_result_id_offsets = [
            (offset + 1, raw[1:5]) for offset, raw in whole_frames(self.send_stream) if raw[0] in RESULT_TYPES
        ]
        self.ours_by_go: dict[bytes, bytes] = {}
        self.fed_up_to: list[int] = []  # how many bytes we had fed when each send event was done

    # -- what the peer wrote --------------------------------------------------------

    def written_frames(self) -> list[tuple[int, bytes]]:
        return whole_frames(bytes(self.transport.written))

    def learn_request_ids(self) -> None:
        ours = [raw[1:5] for _, raw in self.written_frames() if raw[0] in REQUEST_TYPES]
        for go_id, our_id in zip(self.go_request_ids, ours):
            assert self.ours_by_go.setdefault(go_id, our_id) == our_id, "one Go request ID became two of ours"

    def as_go_would_write(self, raw: bytes) -> bytes:
        """Our frame with our own request IDs replaced by the Go peer's, for comparison."""
        if raw[:1] and raw[0] in REQUEST_TYPES:
            go_by_ours = {ours: go for go, ours in self.ours_by_go.items()}
            return raw[:1] + go_by_ours.get(raw[1:5], raw[1:5]) + raw[5:]
        return raw

    async def wait_for_frames(self, count: int) -> None:
        deadline = time.monotonic() + BOUND
        while len(self.written_frames()) < count:
            assert time.monotonic() < deadline, (
                f"{self.stem}: the peer wrote {len(self.written_frames())} frames, the Go peer {count} by now: "
                f"{bytes(self.transport.written)!r}"
            )
            await asyncio.sleep(0.001)

    # -- feeding --------------------------------------------------------------------

    def patched(self, start: int, chunk: bytes) -> bytes:
        """``chunk`` (at ``start`` in the send stream) with Go request IDs turned into ours."""
        data = bytearray(chunk)
        end = start + len(chunk)
        for id_offset, go_id in self.send_result_id_offsets:
            if id_offset + 4 <= start or id_offset >= end or go_id not in self.go_request_ids:
                continue
            assert go_id in self.ours_by_go, f"{self.stem}: an answer to request {go_id!r} before we asked it"
            our_id = self.ours_by_go[go_id]
            for i in range(4):
                if start <= id_offset + i < end:
                    data[id_offset + i - start] = our_id[i]
        return bytes(data)

    def expected_before(self, recv_bytes: int) -> int:
        """How many whole frames the Go peer had written within its first ``recv_bytes`` bytes."""
        return sum(1 for offset, raw in self.expected if offset + len(raw) <= recv_bytes)

    async def run(self) -> None:
        self.peer.attach(self.transport)
        fed = recv_seen = 0
        last_send_time = 0.0
        for event in self.events:
            if event.direction == "recv":
                recv_seen += len(event.data)
                continue
            # Causality: the connecting side wrote this after reading what came before it.
            await self.wait_for_frames(self.expected_before(recv_seen))
            self.learn_request_ids()
            await asyncio.sleep(max(0.0, event.time - last_send_time) * TIME_SCALE)
            last_send_time = event.time
            data = self.patched(fed, event.data)
            chunks = [data[i : i + 1] for i in range(len(data))] if self.bytewise else [data]
            for chunk in chunks:
                self.peer.data_received(chunk)
            fed += len(data)
            self.fed_up_to.append(fed)
            self.fed_at = time.monotonic()
        extra = DIFFERENCES.get(self.stem)
        await self.wait_for_frames(len(self.expected) + (1 if extra else 0))
        self.learn_request_ids()
        if self.document["closed_by_peer"] or extra:
            await asyncio.wait_for(self.peer.wait_closed(), BOUND)
        else:
            await asyncio.sleep(0.05)  # room for anything the peer should not write

    def windows(self) -> list[tuple[list[bytes], list[bytes]]]:
        """(expected, written) frames between consecutive writes of the connecting side."""
        written = [self.as_go_would_write(raw) for _, raw in self.written_frames()]
        expected = [raw for _, raw in self.expected] + ([DIFFERENCES[self.stem]] if self.stem in DIFFERENCES else [])
        bounds, recv_seen = [], 0
        for event in self.events:
            if event.direction == "recv":
                recv_seen += len(event.data)
            else:
                bounds.append(self.expected_before(recv_seen))
        bounds = sorted(set(bounds + [len(expected)]))
        windows, start = [], 0
        for bound in bounds:
            windows.append((expected[start:bound], written[start:bound]))
            start = bound
        assert len(written) == len(expected), (
            f"{self.stem}: the peer wrote {len(written)} frames, expected {len(expected)}: {written!r}"
        )
        return windows


def transcript_ids(paths):
    return [path.stem for path in paths] if paths else ["missing-conformance-dir"]


@pytest.fixture(params=TRANSCRIPTS or [None], ids=transcript_ids(TRANSCRIPTS))
def transcript(request) -> Path:
    if request.param is None:
        pytest.fail(
            f"no conformance transcripts in {CONFORMANCE_DIR}: the checkout is incomplete",
            pytrace=False,
        )
    return request.param


def test_the_transcripts_are_all_there():
    stems = {path.stem for path in TRANSCRIPTS}
    assert {"01-handshake", "05-multiplexing", "06-bidirectional", "15-go-client-session"} <= stems, CONFORMANCE_DIR
    assert set(SETTINGS) | set(DIFFERENCES) | SCHEDULING_ORDERED <= stems


@pytest.mark.parametrize("bytewise", [False, True], ids=["as-captured", "one-byte-at-a-time"])
async def test_the_peer_writes_what_the_go_peer_wrote(transcript, bytewise):
    replay = Replay(transcript, bytewise=bytewise)
    await replay.run()
    for expected, written in replay.windows():
        if replay.stem in SCHEDULING_ORDERED:
            assert sorted(written) == sorted(expected)
        else:
            assert written == expected
    # What the peer wrote is exactly those frames, nothing between or after them.
    assert sum(len(raw) for _, raw in replay.written_frames()) == len(replay.transport.written)
    if replay.document["closed_by_peer"] or replay.stem in DIFFERENCES:
        assert replay.transport.closed_by_peer and replay.peer.state is PeerState.CLOSED
    else:
        assert replay.peer.is_open and not replay.transport.closed_by_peer
        await asyncio.wait_for(replay.peer.close(), BOUND)
    assert replay.peer.pending_count == 0


async def test_results_come_back_in_completion_order_b_c_a():
    (path,) = [p for p in TRANSCRIPTS if p.stem == "05-multiplexing"]
    replay = Replay(path, bytewise=False)
    await replay.run()
    answered = [raw[1:5] for _, raw in replay.written_frames() if raw[:1] == b"R"]
    assert answered == [b"000b", b"000c", b"000a"]  # sleeps of 100, 200, 300 ms
    await replay.peer.close()


async def test_the_retry_answer_and_the_busy_request():
    (path,) = [p for p in TRANSCRIPTS if p.stem == "09-retry-result"]
    replay = Replay(path, bytewise=False)
    await replay.run()
    assert [raw for _, raw in replay.written_frames()][1:] == [
        b"e00020000006400000012request rate limit",
        b'R00010000000d{"slept":300}',
    ]
    await replay.peer.close()


async def test_the_read_timeout_fires_no_sooner_than_configured():
    (path,) = [p for p in TRANSCRIPTS if p.stem == "14-read-timeout"]
    replay = Replay(path, bytewise=False)
    await replay.run()
    assert bytes(replay.transport.written) == b"01f00000003"
    (_, written_at) = replay.transport.write_times[-1]
    assert written_at - replay.fed_at >= 0.5 - time.get_clock_info("monotonic").resolution


@pytest.mark.parametrize("stem", ["06-bidirectional", "15-go-client-session"])
async def test_our_request_ids_are_mapped_and_binary_ids_match_the_go_peer_exactly(stem):
    (path,) = [p for p in TRANSCRIPTS if p.stem == stem]
    text = Replay(path, bytewise=False)
    await text.run()
    assert text.ours_by_go == {b"\x00\x00\x00\x00": b"0000"}  # gotalk.js-style IDs, mapped
    await text.peer.close()
    binary = Replay(path, bytewise=False, request_ids="binary")
    await binary.run()
    # With a little-endian counter our own request carries exactly the Go peer's ID.
    assert binary.ours_by_go == {b"\x00\x00\x00\x00": b"\x00\x00\x00\x00"}
    assert any(raw == b"r\x00\x00\x00\x00004ping00000002zz" for _, raw in binary.written_frames())
    await binary.peer.close()

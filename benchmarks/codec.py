"""How fast gotalk_lab's incremental decoder is, against baselines measured in the same run.

(a) small mixed messages (R r S E n h) fed in 64 KiB chunks through ``Decoder.feed``,
    in messages per second, against a plain slice-and-int() parse of the same
    messages already split one per ``bytes``; both keep every message they make,
    and only the decoder checks that each hex digit is one (target ratio >= 1.0);
(b) 1 MiB payload messages fed in 64 KiB chunks, in MB/s, against copying the same
    chunks with ``b"".join``, one payload's worth at a time (target ratio >= 0.5);
(c) one 100 MiB payload fed in 64 KiB chunks, in MB/s, against the same copy.

Each figure is the best of several runs, the decoder and its baseline alternated.
Run ``python benchmarks/codec.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Callable

from gotalk_lab.decoder import Decoder
from gotalk_lab.wire import (
    ErrorResult,
    Heartbeat,
    Message,
    Notification,
    SingleRequest,
    SingleResult,
    StreamResult,
    encode,
)

CHUNK_SIZE = 64 * 1024
MIB = 1024 * 1024
SMALL_TARGET = 1.0
LARGE_TARGET = 0.5


def chunked(stream: bytes, size: int = CHUNK_SIZE) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def best_of(runs: int, *contenders: Callable[[], object]) -> list[float]:
    """The shortest time of each contender over ``runs`` rounds, run alternately."""
    best = [float("inf")] * len(contenders)
    for _ in range(runs):
        for index, contender in enumerate(contenders):
            start = time.perf_counter()
            contender()
            best[index] = min(best[index], time.perf_counter() - start)
    return best


# -- (a) small mixed messages --------------------------------------------------


def small_messages(count: int, seed: int = 1) -> list[Message]:
    """A conversation-like mix: mostly requests and results, some streams, errors, notifications."""
    rng = random.Random(seed)
    operations = ["echo", "greet", "sleep", "upper-stream", "ping"]
    messages: list[Message] = []
    for number in range(count):
        request_id = number.to_bytes(4, "little")
        payload = b'{"n":%d}' % rng.randrange(10**6)
        kind = rng.random()
        if kind < 0.30:
            messages.append(SingleRequest(request_id, rng.choice(operations), payload))
        elif kind < 0.60:
            messages.append(SingleResult(request_id, payload))
        elif kind < 0.75:
            messages.append(StreamResult(request_id, payload))
        elif kind < 0.85:
            messages.append(ErrorResult(request_id, b"boom"))
        elif kind < 0.95:
            messages.append(Notification("hello", payload))
        else:
            messages.append(Heartbeat(rng.randrange(0x10000), 1_700_000_000 + number))
    return messages


def baseline_parse(frames: list[bytes]) -> list[Message]:
    """The plainest parse of messages already split apart: slice, int(), construct."""
    out: list[Message] = []
    append = out.append
    for raw in frames:
        kind = raw[0]
        if kind == 0x52:  # R
            append(SingleResult(raw[1:5], raw[13 : 13 + int(raw[5:13], 16)]))
        elif kind == 0x53:  # S
            append(StreamResult(raw[1:5], raw[13 : 13 + int(raw[5:13], 16)]))
        elif kind == 0x45:  # E
            append(ErrorResult(raw[1:5], raw[13 : 13 + int(raw[5:13], 16)]))
        elif kind == 0x72:  # r
            name_end = 8 + int(raw[5:8], 16)
            size = int(raw[name_end : name_end + 8], 16)
            start = name_end + 8
            append(SingleRequest(raw[1:5], raw[8:name_end].decode(), raw[start : start + size]))
        elif kind == 0x6E:  # n
            name_end = 4 + int(raw[1:4], 16)
            size = int(raw[name_end : name_end + 8], 16)
            start = name_end + 8
            append(Notification(raw[4:name_end].decode(), raw[start : start + size]))
        elif kind == 0x68:  # h
            append(Heartbeat(int(raw[1:5], 16), int(raw[5:13], 16)))
        else:
            raise ValueError(f"the benchmark has no baseline for {raw[:1]!r}")
    return out


def decode_chunks(chunks: list[bytes], max_payload_size: int = MIB) -> int:
    """Feed ``chunks`` to one decoder, dropping messages as they come; return how many came."""
    decoder = Decoder(expect_version=False, max_payload_size=max_payload_size)
    count = 0
    for chunk in chunks:
        count += len(decoder.feed(chunk))
    return count


def decode_chunks_to_list(chunks: list[bytes]) -> list[Message]:
    """Feed ``chunks`` to one decoder and keep every message, as ``baseline_parse`` does."""
    decoder = Decoder(expect_version=False)
    messages: list[Message] = []
    for chunk in chunks:
        messages += decoder.feed(chunk)
    return messages


def bench_small(count: int, runs: int) -> float:
    messages = small_messages(count)
    frames = [encode(message) for message in messages]
    chunks = chunked(b"".join(frames))
    assert decode_chunks_to_list(chunks) == messages
    assert baseline_parse(frames) == messages
    # Both sides keep all their messages, so both pay the same for memory and garbage collection.
    decoder_time, baseline_time = best_of(runs, lambda: decode_chunks_to_list(chunks), lambda: baseline_parse(frames))
    decoder_rate, baseline_rate = count / decoder_time, count / baseline_time
    ratio = decoder_rate / baseline_rate
    print(f"(a) {count} small mixed messages (R r S E n h), {len(chunks)} chunks of 64 KiB")
    print(f"    decoder  Decoder.feed       {decoder_rate:12,.0f} msgs/s")
    print(f"    baseline slice-and-int()    {baseline_rate:12,.0f} msgs/s")
    print(f"    ratio {ratio:.2f} (target >= {SMALL_TARGET:.1f})")
    return ratio


# -- (b) and (c) large payloads -------------------------------------------------


def bench_large(title: str, stream: bytes, message_count: int, runs: int, max_payload_size: int) -> float:
    """MB/s of the decoder against copying the same chunks with ``b"".join``.

    The copy joins as many chunks at a time as one payload spans, so that both
    sides allocate buffers of the payload's size (joining a whole 256 MiB stream
    at once would mostly measure fresh pages being faulted in, not copying).
    """
    chunks = chunked(stream)
    per_payload = max(1, min(len(chunks), max_payload_size // CHUNK_SIZE))
    groups = [chunks[start : start + per_payload] for start in range(0, len(chunks), per_payload)]

    def copy() -> None:
        for group in groups:
            b"".join(group)

    assert decode_chunks(chunks, max_payload_size) == message_count
    decoder_time, copy_time = best_of(runs, lambda: decode_chunks(chunks, max_payload_size), copy)
    decoder_rate, copy_rate = len(stream) / decoder_time / 1e6, len(stream) / copy_time / 1e6
    ratio = decoder_rate / copy_rate
    print(title)
    print(f"    decoder  Decoder.feed       {decoder_rate:12,.0f} MB/s")
    print(f"    baseline b''.join (copy)    {copy_rate:12,.0f} MB/s   ({per_payload} chunks per join)")
    print(f"    ratio {ratio:.2f} (target >= {LARGE_TARGET:.1f})")
    return ratio


def bench_megabyte_payloads(count: int, runs: int) -> float:
    payload = random.Random(2).randbytes(MIB)
    stream = b"".join(encode(SingleResult(number.to_bytes(4, "little"), payload)) for number in range(count))
    title = f"(b) {count} messages of 1 MiB payload, 64 KiB chunks"
    return bench_large(title, stream, count, runs, max_payload_size=MIB)


def bench_single_payload(size_mib: int, runs: int) -> float:
    stream = encode(SingleResult(b"\x00\x00\x00\x00", bytes(size_mib * MIB)))
    title = f"(c) one {size_mib} MiB payload, 64 KiB chunks"
    return bench_large(title, stream, 1, runs, max_payload_size=size_mib * MIB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and smaller runs (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        small_count, megabyte_count, single_mib, runs = 10_000, 16, 16, 2
    else:
        small_count, megabyte_count, single_mib, runs = 100_000, 256, 100, 5
    results = [
        ("(a) small messages", bench_small(small_count, runs), SMALL_TARGET),
        ("(b) 1 MiB payloads", bench_megabyte_payloads(megabyte_count, runs), LARGE_TARGET),
        (f"(c) {single_mib} MiB payload", bench_single_payload(single_mib, runs), LARGE_TARGET),
    ]
    print("summary:")
    for name, ratio, target in results:
        verdict = "meets" if ratio >= target else "MISSES"
        print(f"    {name:22} ratio {ratio:5.2f}  target >= {target:.1f}  {verdict}")


if __name__ == "__main__":
    main()

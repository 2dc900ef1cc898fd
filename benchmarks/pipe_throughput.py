"""Requests per second between two gotalk_lab peers joined by ``gl.pipe()`` in one event loop.

Both peers share one loop (the notebook case): N coroutines each await
``a.request_bytes("echo", payload)`` in a loop, answered by ``b`` (the demo
operations), with the trace off and on (``gl.pipe``'s default). The baseline
is the least a multiplexed requester over an in-memory pipe can do in one
loop: a future per request, matched by ID, bytes delivered on the next turn
of the loop in batches, a minimal parse on each side. Runs alternate; medians
compared. Run ``python benchmarks/pipe_throughput.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time

import gotalk_lab as gl
from _common import KIB, median, print_summary, ratio_of

PAYLOADS = (16, 4 * KIB)


class MiniEnd:
    """One end of the baseline's pipe: what the other end writes arrives on a later turn, batched."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.other: MiniEnd | None = None
        self.inbox: list[bytes] = []
        self.receive = None

    def write(self, data: bytes) -> None:
        other = self.other
        if not other.inbox:
            self.loop.call_soon(other.deliver)
        other.inbox.append(data)

    def deliver(self) -> None:
        data = b"".join(self.inbox)
        self.inbox.clear()
        self.receive(data)


def parse(buffer: bytes, with_name: bool):
    """Whole ``r`` (with_name) or ``R`` frames at the front of buffer: [(id, payload)], rest."""
    frames, pos, end = [], 0, len(buffer)
    while end - pos >= 13:
        if with_name:
            name_end = pos + 8 + int(buffer[pos + 5 : pos + 8], 16)
            start = name_end + 8
            if start > end:
                break
            stop = start + int(buffer[name_end:start], 16)
        else:
            start = pos + 13
            stop = start + int(buffer[pos + 5 : start], 16)
        if stop > end:
            break
        frames.append((buffer[pos + 1 : pos + 5], buffer[start:stop]))
        pos = stop
    return frames, buffer[pos:]


class MiniRequester:
    def __init__(self, end: MiniEnd) -> None:
        self.end = end
        self.futures: dict[bytes, asyncio.Future] = {}
        self.counter = 0
        self.buffer = b""
        end.receive = self.receive

    async def request(self, payload: bytes) -> bytes:
        self.counter = (self.counter + 1) & 0xFFFFFFFF
        request_id = self.counter.to_bytes(4, "little")
        future = self.end.loop.create_future()
        self.futures[request_id] = future
        self.end.write(b"r%s004echo%08x%s" % (request_id, len(payload), payload))
        return await future

    def receive(self, data: bytes) -> None:
        frames, self.buffer = parse(self.buffer + data, with_name=False)
        for request_id, payload in frames:
            self.futures.pop(request_id).set_result(payload)


class MiniResponder:
    def __init__(self, end: MiniEnd) -> None:
        self.end = end
        self.buffer = b""
        end.receive = self.receive

    def receive(self, data: bytes) -> None:
        frames, self.buffer = parse(self.buffer + data, with_name=True)
        self.end.write(b"".join(b"R%s%08x%s" % (request_id, len(payload), payload) for request_id, payload in frames))


async def timed(request, payload: bytes, in_flight: int, warmup: float, seconds: float) -> float:
    """Requests per second with ``in_flight`` coroutines calling ``request(payload)`` in a loop."""
    count = 0
    running = True

    async def worker() -> None:
        nonlocal count
        while running:
            await request(payload)
            count += 1

    assert await request(payload) == payload
    workers = [asyncio.create_task(worker()) for _ in range(in_flight)]
    await asyncio.sleep(warmup)
    first = (count, time.perf_counter())
    await asyncio.sleep(seconds)
    last = (count, time.perf_counter())
    running = False
    await asyncio.gather(*workers)
    return (last[0] - first[0]) / (last[1] - first[1])


async def baseline(payload: bytes, in_flight: int, warmup: float, seconds: float) -> float:
    a, b = MiniEnd(), MiniEnd()
    a.other, b.other = b, a
    requester = MiniRequester(a)
    MiniResponder(b)
    return await timed(requester.request, payload, in_flight, warmup, seconds)


async def peers(payload: bytes, in_flight: int, warmup: float, seconds: float, trace: bool) -> float:
    a, b = await gl.pipe(None, gl.demo.handlers(), trace=trace)
    try:
        return await timed(lambda p: a.request_bytes("echo", p), payload, in_flight, warmup, seconds)
    finally:
        await a.close()


async def main(runs: int, warmup: float, seconds: float) -> None:
    summary = []
    for in_flight in (1, 64):
        for size in PAYLOADS:
            payload = (b"abcdefghijklmnopqrstuvwxyz" * (size // 26 + 1))[:size]
            label = f"{in_flight} in flight, {size} B"
            print(f"pipe, {label}: {runs} runs of {seconds:g} s each, alternated", flush=True)
            figures = {"baseline": [], "off": [], "on": []}
            for round_number in range(runs):
                for name in figures:
                    gc.collect()  # each run starts without the garbage of the one before
                    if name == "baseline":
                        rate = await baseline(payload, in_flight, warmup, seconds)
                    else:
                        rate = await peers(payload, in_flight, warmup, seconds, trace=name == "on")
                    figures[name].append(rate)
                shown = "  ".join(f"{name} {figures[name][-1]:,.0f}" for name in figures)
                print(f"    {label} run {round_number + 1}/{runs}: {shown}", flush=True)
            base = median(figures["baseline"])
            print(f"    baseline (futures over a minimal pipe) {base:12,.0f} requests/s")
            for name, title in (("off", "gl.pipe(), trace off"), ("on", "gl.pipe(), trace on")):
                ours = median(figures[name])
                print(f"    {title:38} {ours:12,.0f} requests/s  ratio {ratio_of(ours, base):.2f}")
                summary.append((f"pipe {label}, {title[11:]}", ratio_of(ours, base), None))
    print_summary(summary)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (a smoke test)")
    parser.add_argument("--runs", type=int, help="runs of each contender per load (default 5, quick 2)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 1.5, quick 0.4)")
    args = parser.parse_args()
    asyncio.run(
        main(args.runs or (2 if args.quick else 5), 0.1 if args.quick else 0.3, args.seconds or (0.4 if args.quick else 1.5))
    )

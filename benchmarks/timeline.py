"""What a live Timeline costs the kernel per recorded frame, against the same run without one.

Each run makes a fresh ``gl.pipe()`` with the demo operations and sends N echo
requests one after another (2 N frames in ``a``'s trace). With a Timeline on
``a.trace``, every custom message it sends is encoded as JSON, as the comm would
encode it, and the final flush is included. The two kinds of run alternate; the
best of each is kept. Prints seconds, microseconds per frame, the widget's extra
cost per frame, the ratio and how many messages the browser would have received.
Run ``python benchmarks/timeline.py`` (``--requests N``, ``--runs R``, ``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time

import gotalk_lab as gl
from gotalk_lab.widgets.timeline import Timeline


async def conversation(requests: int, with_timeline: bool, batch_interval: float) -> tuple[float, int, int]:
    """Seconds for ``requests`` echoes (and the final flush); frames recorded; messages sent."""
    a, b = await gl.pipe(None, gl.demo.handlers())
    messages = [0]
    timeline = None
    if with_timeline:
        timeline = Timeline(a.trace, batch_interval=batch_interval)

        def send(content, buffers=None):
            json.dumps(content)  # what the comm would do with it
            messages[0] += 1

        timeline.send = send
    payload = b"hello gotalk"
    started = time.perf_counter()
    for _ in range(requests):
        await a.request_bytes("echo", payload)
    if timeline is not None:
        timeline.flush()
    elapsed = time.perf_counter() - started
    frames = len(a.trace.events) - 2  # the two version preambles came before the clock started
    if timeline is not None:
        timeline.close()
    await a.close()
    return elapsed, frames, messages[0]


async def main(requests: int, runs: int, batch_interval: float) -> None:
    best = {False: float("inf"), True: float("inf")}
    frames = messages = 0
    for run in range(runs):
        for with_timeline in (False, True):
            gc.collect()  # each run starts without the garbage of the one before
            elapsed, frames, sent = await conversation(requests, with_timeline, batch_interval)
            best[with_timeline] = min(best[with_timeline], elapsed)
            if with_timeline:
                messages = sent
            print(f"  run {run + 1} {'with' if with_timeline else 'without'} timeline: {elapsed:.3f} s")
    without, with_ = best[False], best[True]
    print(f"{requests} echo requests over gl.pipe(), {frames} frames, best of {runs}:")
    print(f"  without a timeline: {without:.3f} s  {without / frames * 1e6:7.2f} us/frame")
    print(f"  with a timeline:    {with_:.3f} s  {with_ / frames * 1e6:7.2f} us/frame"
          f"  ({messages} messages to the browser, batch_interval {batch_interval} s)")
    print(f"  timeline cost: {(with_ - without) / frames * 1e6:.2f} us/frame; ratio with/without {with_ / without:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-interval", type=float, default=0.25)
    parser.add_argument("--quick", action="store_true", help="2 000 requests, 2 runs (a smoke test)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.requests, arguments.runs = 2_000, 2
    asyncio.run(main(arguments.requests, arguments.runs, arguments.batch_interval))

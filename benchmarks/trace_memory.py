"""What a peer's trace holds in memory after a million frames, against the same peer untraced.

Each contender runs in a fresh process of its own: two peers over ``gl.pipe()``,
the demo operations on ``b``, N echo requests from ``a`` (16-byte payloads by
default, 2 N frames in ``a``'s trace). The process's resident memory (Linux
``VmRSS``) is read after the handshake and after the last answer, with the trace
read once (its frames filed, as a notebook reading it would). Contenders:

  untraced       ``trace=False``: the floor (the peers' own tables, the allocator)
  default        ``trace=True``: a ``Trace`` with its defaults (100,000 frames, 64 MiB)
  bytes 8 MiB    ``Trace(max_bytes=8 MiB)``: the byte bound set lower
  no bound       ``Trace(cap=None, max_bytes=None)``: every frame kept (for scale)

Printed per contender: the memory it grew by, the frames and wire bytes its trace
kept, and the memory per kept frame; the ratio is the growth over the untraced
growth plus the trace's stated bound (frames × per-frame cost is what the bound
in bytes does not count). Run ``python benchmarks/trace_memory.py``
(``--frames N``; ``--quick`` for a smoke run; ``--payload BYTES``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
CONTENDERS = {
    "untraced": None,
    "default": {},
    "bytes 8 MiB": {"max_bytes": 8 * MIB},
    "no bound": {"cap": None, "max_bytes": None},
}


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def conversation(name: str, requests: int, payload_size: int) -> dict:
    import gotalk_lab as gl
    from gotalk_lab.trace import Trace

    options = CONTENDERS[name]
    trace = False if options is None else Trace(**options)
    a, b = await gl.pipe(None, gl.demo.handlers(), options_a={"trace": trace}, options_b={"trace": False})
    payload = b"x" * payload_size
    for _ in range(200):  # warm-up: the allocator's first arenas, the decoder's memos
        await a.request_bytes("echo", payload)
    if a.trace is not None:
        a.trace.clear()
    start = rss()
    for _ in range(requests):
        await a.request_bytes("echo", payload)
    kept = len(a.trace.events) if a.trace is not None else 0  # reading files every queued frame
    kept_bytes = sum(len(event.header) + len(getattr(event.message, "payload", b"")) for event in a.trace.events) if kept else 0
    grown = rss() - start
    await a.close()
    await b.close()
    return {"grown": grown, "kept": kept, "kept_bytes": kept_bytes, "dropped": a.trace.dropped if a.trace is not None else 0}


def run(name: str, requests: int, payload_size: int) -> dict:
    done = subprocess.run(
        [sys.executable, str(HERE / "trace_memory.py"), "--contender", name, "--requests", str(requests), "--payload", str(payload_size)],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{name} failed: {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames traced (two per echo)")
    parser.add_argument("--payload", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="20,000 frames (a smoke run)")
    parser.add_argument("--contender", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        print(json.dumps(asyncio.run(conversation(args.contender, args.requests, args.payload))))
        return
    frames = 20_000 if args.quick else args.frames
    requests = frames // 2
    print(f"{frames:,} frames ({requests:,} echoes of {args.payload} B over gl.pipe()), each contender in a fresh process", flush=True)
    figures = {}
    for name in CONTENDERS:
        figures[name] = result = run(name, requests, args.payload)
        per_frame = (result["grown"] - figures["untraced"]["grown"]) / result["kept"] if result["kept"] else 0.0
        print(
            f"  {name:12} grew {result['grown'] / MIB:8.1f} MiB; trace kept {result['kept']:>9,} frames,"
            f" {result['kept_bytes'] / MIB:6.1f} MiB of wire bytes ({result['dropped']:,} dropped);"
            f" {per_frame:6.0f} B per kept frame",
            flush=True,
        )
    floor = figures["untraced"]["grown"]
    for name in ("default", "bytes 8 MiB"):
        result = figures[name]
        print(f"  {name}: grew {(result['grown'] - floor) / MIB:.1f} MiB over untraced for {frames:,} frames;"
              f" ratio to no bound {(result['grown'] - floor) / max(1, figures['no bound']['grown'] - floor):.3f}")


if __name__ == "__main__":
    main()

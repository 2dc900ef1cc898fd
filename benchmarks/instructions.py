"""CPU work per request of the Peer as a client, counted in instructions by valgrind (callgrind).

Throughput with one request in flight mostly measures how fast an idle core wakes
up for the next answer, and on a shared machine it moves by a third between runs
of the same code. The instructions a requester executes per request do not: for
the same program, inputs and Python they come out the same (±0.5 %) whatever else
the machine is doing. This script counts them for the requester only (the server,
``baseline_server.py``, runs outside valgrind): each contender makes N1 and then
N2 echo requests in a process of its own, and (count(N2) - count(N1)) / (N2 - N1)
is its cost per request, start-up and imports cancelled out.

Contenders: ``floor``, the minimal futures requester of ``loadgen.py`` (the
baseline of ``client_throughput.py``); ``peer``, this tree's ``Peer``; with
``--before REV``, also that commit's ``Peer`` (checked out into a temporary git
worktree, as ``versions.py`` does). Ratios are of instructions, lower is cheaper:
``peer / floor``, and ``after / before`` with ``--before``.

Run ``python benchmarks/instructions.py [--before REV]`` (``--quick`` for a
smoke run). Needs valgrind (Debian's ``valgrind``); under it Python runs about
50 times slower, so a full run takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import HERE, PYTHON, baseline_server
from versions import checkout

PAYLOAD = b"abcdefghijklmnop"  # 16 bytes, as the other benchmarks' small echo


# -- the requester, run under valgrind ----------------------------------------------


async def client(kind: str, port: int, requests: int, in_flight: int, trace: bool, timeout: str) -> None:
    if kind == "floor":
        from loadgen import MinimalRequester

        loop = asyncio.get_running_loop()
        transport, requester = await loop.create_connection(MinimalRequester, "127.0.0.1", port)
        request = requester.request
        close = transport.close
    else:
        import gotalk_lab as gl

        peer = await gl.connect(f"tcp://127.0.0.1:{port}", trace=trace)
        if timeout == "none":
            peer.request_timeout = None

        def request(payload: bytes):
            return peer.request_bytes("echo", payload)

        close = None
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            if await request(PAYLOAD) != PAYLOAD:
                raise SystemExit("a wrong answer to an echo")

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    if close is not None:
        close()
    else:
        await peer.close()


# -- counting --------------------------------------------------------------------------


def instructions(command: list[str], tree: Path | None) -> int:
    """Instructions ``command`` executed, by callgrind (its own output file, thrown away)."""
    with tempfile.TemporaryDirectory(prefix="gotalk-lab-callgrind-") as folder:
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = str(tree)
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out", *command],
            capture_output=True, text=True, env=env, timeout=900,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed ({done.returncode}): {done.stderr[-1500:]}")
    return int(found.group(1))


def per_request(kind: str, tree: Path | None, port: int, counts: tuple[int, int], in_flight: int, trace: bool, timeout: str) -> float:
    def run(requests: int) -> int:
        command = [PYTHON, str(HERE / "instructions.py"), "--client", kind, str(port), str(requests),
                   str(in_flight), "on" if trace else "off", timeout]  # fmt: skip
        return instructions(command, tree)

    low, high = counts
    return (run(high) - run(low)) / (high - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="also count this older git revision's Peer (a commit, tag or branch)")
    parser.add_argument("--quick", action="store_true", help="one load, few requests (a smoke test)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind); nothing was counted")
    counts = (50, 150) if args.quick else (500, 2500)
    # (in flight, trace, the peer's request timeout): the default timeout keeps a timer in the loop.
    loads = [(1, False, "default")] if args.quick else [
        (1, False, "default"), (1, False, "none"), (1, True, "default"), (64, False, "default"),
    ]  # fmt: skip
    summary = []
    older_tree = checkout(args.before) if args.before else contextlib.nullcontext()
    with older_tree as before, baseline_server() as server:
        for in_flight, trace, timeout in loads:
            label = f"{in_flight} in flight, 16 B, trace {'on' if trace else 'off'}, request timeout {timeout}"
            print(f"counting: {label} ({counts[0]} and {counts[1]} requests each)", flush=True)
            floor = per_request("floor", None, server.port, counts, in_flight, False, timeout)
            peer = per_request("peer", HERE.parent, server.port, counts, in_flight, trace, timeout)
            line = f"  floor {floor:,.0f}  peer {peer:,.0f} instructions/request  ratio peer/floor {peer / floor:.2f}"
            if before is not None:
                older = per_request("peer", before, server.port, counts, in_flight, trace, timeout)
                line += f"; before {older:,.0f}  ratio after/before {peer / older:.3f}"
                summary.append((label, peer / older))
            print(line, flush=True)
    if summary:
        print(f"after = this tree, before = {args.before}; instructions per request, lower is cheaper")
        for label, ratio in summary:
            print(f"  {label}: ratio after/before {ratio:.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        kind, port, requests, in_flight, trace, timeout = sys.argv[2:8]
        asyncio.run(client(kind, int(port), int(requests), int(in_flight), trace == "on", timeout))
    else:
        main()

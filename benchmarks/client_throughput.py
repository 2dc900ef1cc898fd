"""How many echo requests gotalk_lab's Peer makes per second as the requester, against a minimal client.

Both clients run in a process of their own (``loadgen.py``) against the same
minimal server (``baseline_server.py``, in another process) over loopback TCP,
one connection, with 1 and with 64 requests in flight, 16-byte and 4 KiB
payloads. The peer runs N coroutines, each awaiting ``request_bytes`` in a
loop, with the trace off and then on (``gl.connect``'s default). The baseline
is ``loadgen.py futures``: the same N coroutines awaiting a future per request,
which a minimal asyncio.Protocol resolves by request ID (the floor for a
requester with an API like the Peer's). Runs alternate; medians compared.
For scale: ``loadgen.py asyncio`` (an asyncio.Protocol that writes a new
request whenever a result completes: no futures, no coroutines) and the
blocking-socket load generator.
Run ``python benchmarks/client_throughput.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse

from _common import KIB, alternate, baseline_server, median, print_summary, ratio_of, run_load

PAYLOADS = (16, 4 * KIB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (a smoke test)")
    parser.add_argument("--runs", type=int, help="runs of each client per load (default 5, quick 2)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 2, quick 0.5)")
    args = parser.parse_args()
    runs = args.runs or (2 if args.quick else 5)
    seconds = args.seconds or (0.5 if args.quick else 2.0)
    warmup = 0.2 if args.quick else 0.5
    summary = []
    with baseline_server() as server:
        for in_flight in (1, 64):
            for payload in PAYLOADS:
                label = f"{in_flight} in flight, {payload} B"
                print(f"client, {label}: {runs} runs of {seconds:g} s each, alternated", flush=True)

                def load(mode, **options):
                    return lambda: run_load(
                        mode, server, payload=payload, in_flight=in_flight, seconds=seconds, warmup=warmup, **options
                    )["rate"]

                contenders = {
                    "baseline": load("futures"),
                    "protocol": load("asyncio"),
                    "peer": load("peer", trace="off"),
                    "peer traced": load("peer", trace="on"),
                    "socket": load("socket"),
                }
                figures = alternate(runs, contenders, progress=label)
                base = median(figures["baseline"])
                print(f"    blocking-socket generator         {median(figures['socket']):12,.0f} requests/s (for scale)")
                print(f"    asyncio.Protocol, no futures      {median(figures['protocol']):12,.0f} requests/s (for scale)")
                print(f"    baseline: futures + Protocol      {base:12,.0f} requests/s")
                for name, title in (("peer", "Peer, trace off"), ("peer traced", "Peer, trace on")):
                    ours = median(figures[name])
                    print(f"    {title:33} {ours:12,.0f} requests/s  ratio {ratio_of(ours, base):.2f}")
                    summary.append((f"client {label}, {title.lower()}", ratio_of(ours, base), None))
    print_summary(summary)


if __name__ == "__main__":
    main()

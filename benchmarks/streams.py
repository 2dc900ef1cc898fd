"""256 MiB through an ``upper-stream`` stream over TCP: MB/s, and the memory it takes on the way.

The stream is 64 KiB parts, each answered by one upper-cased result part.
Server side: ``gotalk-lab serve`` (its ``upper-stream`` demo operation)
against ``baseline_server.py`` (a minimal asyncio.Protocol that answers each
part with it upper-cased, pausing reading while its writes back up), both
driven by the same blocking driver in its own process (``loadgen.py stream``:
one thread sends every part, the main thread counts the results). Client side:
gotalk_lab's Peer as the requester (``loadgen.py peer-stream``: one task sends
the parts, the ``async for`` reads the results) against ``gotalk-lab serve``.
Each server is started afresh for each run; its peak resident set during the
stream (Linux ``VmHWM``, reset just before) is compared with its resident set
just before: the extra must stay under 64 MiB. Runs alternate; medians kept.
Run ``python benchmarks/streams.py`` (``--quick``: 64 MiB, fewer runs).
"""

from __future__ import annotations

import argparse

from _common import MIB, alternate, baseline_server, gotalk_lab_serve, median, print_summary, ratio_of, reset_peak_rss, rss_bytes, run_load

RSS_TARGET = 64 * MIB
PART = 64 * 1024


def measure(start_server, mode: str, total: int, results: dict) -> float:
    """One stream through a fresh server; note its extra peak RSS (and the client's); return MB/s."""
    with start_server() as server:
        baseline_rss = rss_bytes(server.pid)
        if not reset_peak_rss(server.pid):
            raise SystemExit("cannot reset the peak RSS of the server (/proc/PID/clear_refs): not Linux, or not allowed")
        figures = run_load(mode, server, total=total, part=PART)
        results.setdefault("server_extra", []).append(rss_bytes(server.pid, "VmHWM") - baseline_rss)
        if figures.get("rss_extra") is not None:
            results.setdefault("client_extra", []).append(figures["rss_extra"])
    return figures["mb_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB and fewer runs (a smoke test)")
    parser.add_argument("--runs", type=int, help="runs of each contender (default 3, quick 1)")
    parser.add_argument("--mib", type=int, help="MiB per stream (default 256, quick 64)")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    total = (args.mib or (64 if args.quick else 256)) * MIB
    print(f"streams: {total // MIB} MiB in {PART // 1024} KiB parts through upper-stream, {runs} runs each, alternated", flush=True)
    memory: dict[str, dict] = {"baseline": {}, "peer": {}, "peer client": {}}
    figures = alternate(
        runs,
        {
            "baseline": lambda: measure(baseline_server, "stream", total, memory["baseline"]),
            "peer": lambda: measure(gotalk_lab_serve, "stream", total, memory["peer"]),
            "peer client": lambda: measure(gotalk_lab_serve, "peer-stream", total, memory["peer client"]),
        },
        progress="MB/s",
    )
    base = median(figures["baseline"])
    rows = [
        ("baseline server, blocking driver", "baseline", "server"),
        ("gotalk-lab serve, blocking driver", "peer", "server"),
        ("gotalk-lab serve, Peer as client", "peer client", "server"),
        ("  ... the Peer client itself", "peer client", "client"),
    ]
    for title, name, side in rows:
        extra = max(memory[name][f"{side}_extra"])
        rate = "" if side == "client" else f"{median(figures[name]):8,.0f} MB/s"
        verdict = "" if name == "baseline" else f"  (target < {RSS_TARGET // MIB} MiB: {'meets' if extra < RSS_TARGET else 'MISSES'})"
        print(f"    {title:36} {rate:13}  peak RSS +{extra / MIB:6.1f} MiB{verdict}")
    summary = []
    for name, title in (("peer", "gotalk-lab serve"), ("peer client", "Peer client -> gotalk-lab serve")):
        ratio = ratio_of(median(figures[name]), base)
        print(f"    {title} throughput ratio to the baseline: {ratio:.2f}")
        summary.append((f"streams {title} MB/s", ratio, None))
    print_summary(summary)


if __name__ == "__main__":
    main()

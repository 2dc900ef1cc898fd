"""How many echo requests ``gotalk-lab serve`` answers per second, against a minimal asyncio server.

The full peer (``gotalk-lab serve``: dispatch, limits, flow control; no trace,
as users run it) and ``baseline_server.py`` (a minimal asyncio.Protocol that
answers every ``r`` with an ``R``) each run in their own process, on their own
core when there are two, and are driven by the same load generator
(``loadgen.py socket``: a tight blocking-socket client in a third process)
over loopback TCP, one connection, with 1 and with 64 requests in flight,
16-byte and 4 KiB payloads. Runs alternate (baseline, peer, baseline, peer...);
each figure is the median of its runs. Targets: >= 0.65x the baseline at 64 in
flight, >= 0.8x at 1. Also printed: each server's CPU time per request (from
/proc), steadier than throughput when other work shares the machine, and
lower than throughput suggests when the generator cannot keep the baseline busy.
``serve`` runs on asyncio's own loop (the targets are for it); where uvloop is
installed, ``serve --loop uvloop`` is measured in the same rounds too (no target).
Run ``python benchmarks/server_throughput.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse

import contextlib

from _common import KIB, alternate, baseline_server, gotalk_lab_serve, has_uvloop, median, print_summary, ratio_of, run_load

TARGETS = {1: 0.8, 64: 0.65}
PAYLOADS = (16, 4 * KIB)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (a smoke test)")
    parser.add_argument("--runs", type=int, help="runs of each server per load (default 5, quick 2)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 2, quick 0.5)")
    args = parser.parse_args()
    runs = args.runs or (2 if args.quick else 5)
    seconds = args.seconds or (0.5 if args.quick else 2.0)
    warmup = 0.2 if args.quick else 0.5
    summary = []
    with contextlib.ExitStack() as servers:
        baseline = servers.enter_context(baseline_server())
        peer = servers.enter_context(gotalk_lab_serve())
        fast = servers.enter_context(gotalk_lab_serve("uvloop")) if has_uvloop() else None
        for in_flight in (1, 64):
            for payload in PAYLOADS:
                label = f"{in_flight} in flight, {payload} B"
                print(f"server, {label}: {runs} runs of {seconds:g} s each, alternated", flush=True)

                cpu: dict[str, list[float]] = {"baseline": [], "peer": [], "uvloop": []}

                def load(name, server):
                    def run() -> float:
                        figures = run_load(
                            "socket", server, payload=payload, in_flight=in_flight, seconds=seconds, warmup=warmup
                        )
                        cpu[name].append(figures["server_cpu_us"])
                        return figures["rate"]

                    return run

                contenders = {"baseline": load("baseline", baseline), "peer": load("peer", peer)}
                if fast is not None:
                    contenders["uvloop"] = load("uvloop", fast)
                figures = alternate(runs, contenders, progress=label)
                base, ours = median(figures["baseline"]), median(figures["peer"])
                ratio = ratio_of(ours, base)
                print(f"    baseline asyncio.Protocol echo {base:12,.0f} requests/s (best {max(figures['baseline']):,.0f})"
                      f"  {median(cpu['baseline']):5.2f} us server CPU per request")
                print(f"    gotalk-lab serve               {ours:12,.0f} requests/s (best {max(figures['peer']):,.0f})"
                      f"  {median(cpu['peer']):5.2f} us server CPU per request")
                if fast is not None:
                    quick = median(figures["uvloop"])
                    print(f"    serve --loop uvloop            {quick:12,.0f} requests/s (best {max(figures['uvloop']):,.0f})"
                          f"  {median(cpu['uvloop']):5.2f} us server CPU per request; ratio to the baseline {ratio_of(quick, base):.2f}")
                    summary.append((f"server {label}, uvloop", ratio_of(quick, base), None))
                print(f"    ratio {ratio:.2f} (target >= {TARGETS[in_flight]:.2f});"
                      f" CPU per request, baseline / peer: {median(cpu['baseline']) / median(cpu['peer']):.2f}", flush=True)
                summary.append((f"server {label}", ratio, TARGETS[in_flight]))
    print_summary(summary)


if __name__ == "__main__":
    main()

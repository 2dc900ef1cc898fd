"""What recording the trace costs a peer under load: throughput with it on, against off.

Server side: ``peer_server.py`` (the demo operations through ``gl.serve``, as
``gotalk-lab serve`` has them) with ``--trace off``, ``on`` (a Trace per
connection, default cap) and ``timeline`` (that trace plus a live Timeline
widget model, kernel side, its messages JSON-encoded and dropped), each in its
own process, driven by the blocking-socket load generator over loopback TCP.
Client side: the Peer as requester (``loadgen.py peer``) with the trace off
and on, against the minimal baseline server. 16-byte echo requests, 1 and 64
in flight; runs alternate; medians compared. Target: on >= 0.7x off.
Run ``python benchmarks/tracing.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse

from _common import PYTHON, HERE, ServerProcess, alternate, baseline_server, median, print_summary, ratio_of, run_load

TARGET = 0.7
PAYLOAD = 16


def peer_server(trace: str) -> ServerProcess:
    return ServerProcess(f"peer_server --trace {trace}", [PYTHON, str(HERE / "peer_server.py"), "--trace", trace])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (a smoke test)")
    parser.add_argument("--runs", type=int, help="runs of each contender per load (default 5, quick 2)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 2, quick 0.5)")
    args = parser.parse_args()
    runs = args.runs or (2 if args.quick else 5)
    seconds = args.seconds or (0.5 if args.quick else 2.0)
    warmup = 0.2 if args.quick else 0.5
    summary = []
    with peer_server("off") as off, peer_server("on") as on, peer_server("timeline") as timeline:
        for in_flight in (1, 64):
            label = f"{in_flight} in flight, {PAYLOAD} B"
            print(f"tracing, server side, {label}: {runs} runs of {seconds:g} s each, alternated", flush=True)

            cpu: dict[str, list[float]] = {"off": [], "on": [], "timeline": []}

            def load(name, server):
                def run() -> float:
                    figures = run_load("socket", server, payload=PAYLOAD, in_flight=in_flight, seconds=seconds, warmup=warmup)
                    cpu[name].append(figures["server_cpu_us"])
                    return figures["rate"]

                return run

            figures = alternate(
                runs, {"off": load("off", off), "on": load("on", on), "timeline": load("timeline", timeline)}, progress=label
            )
            base = median(figures["off"])
            print(f"    trace off                    {base:12,.0f} requests/s  {median(cpu['off']):6.2f} us server CPU per request")
            for name, title in (("on", "trace on"), ("timeline", "trace on + Timeline model")):
                ours = median(figures[name])
                print(f"    {title:28} {ours:12,.0f} requests/s  {median(cpu[name]):6.2f} us server CPU per request"
                      f"  ratio {ratio_of(ours, base):.2f}")
                summary.append((f"server {label}, {title}", ratio_of(ours, base), TARGET if name == "on" else None))
    with baseline_server() as server:
        for in_flight in (1, 64):
            label = f"{in_flight} in flight, {PAYLOAD} B"
            print(f"tracing, client side, {label}: {runs} runs of {seconds:g} s each, alternated", flush=True)

            def client(trace):
                return lambda: run_load(
                    "peer", server, payload=PAYLOAD, in_flight=in_flight, seconds=seconds, warmup=warmup, trace=trace
                )["rate"]

            figures = alternate(runs, {"off": client("off"), "on": client("on")}, progress=label)
            base, ours = median(figures["off"]), median(figures["on"])
            print(f"    trace off                    {base:12,.0f} requests/s")
            print(f"    trace on                     {ours:12,.0f} requests/s  ratio {ratio_of(ours, base):.2f}")
            summary.append((f"client {label}, trace on", ratio_of(ours, base), TARGET))
    print_summary(summary)


if __name__ == "__main__":
    main()

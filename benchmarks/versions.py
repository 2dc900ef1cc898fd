"""Two versions of gotalk_lab in one run: an older commit's Peer and serve against this tree's.

A change meant to keep speed (a refactor) is judged here: the older version is
checked out into a temporary git worktree and imported from there
(``PYTHONPATH``), this tree's from here; both are driven by this tree's load
generator over loopback TCP, runs alternated (before, after, before, after...),
medians compared. Client: ``loadgen.py peer`` against one minimal server
(``baseline_server.py``). Server: ``gotalk-lab serve`` of each version under
``loadgen.py socket``. The ratio is after / before: 1.00 is no change, higher is
faster. Then the in-process benchmarks whose ratio is to a baseline of their
own (the decoder's ``codec.py`` (a), a live Timeline's ``timeline.py``): this
tree's script, run once per version in a process importing that version,
alternated, each version's median ratio printed side by side.

Run ``python benchmarks/versions.py --before 1182ef8`` (any git revision;
``--quick`` for a short run). The older version must import as gotalk_lab does
today (``gl.connect``, ``request_bytes``, ``python -m gotalk_lab.cli serve``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import HERE, KIB, PYTHON, ServerProcess, alternate, baseline_server, median, print_summary, run_load

TREE = HERE.parent


@contextlib.contextmanager
def checkout(revision: str):
    """The source tree of ``revision``, in a temporary git worktree removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="gotalk-lab-before-") as folder:
        where = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(TREE), "worktree", "add", "--quiet", "--detach", str(where), revision], check=True)
        try:
            yield where
        finally:
            subprocess.run(["git", "-C", str(TREE), "worktree", "remove", "--force", str(where)], check=False)


@contextlib.contextmanager
def imported_from(tree: Path):
    """Child processes started inside import gotalk_lab from ``tree``."""
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def serve_from(tree: Path) -> ServerProcess:
    with imported_from(tree):
        return ServerProcess(f"serve of {tree}", [PYTHON, "-m", "gotalk_lab.cli", "serve", "--tcp", "127.0.0.1:0"])


#: (label, script and its arguments (full, quick), the figure's pattern in its output,
#: whether higher is better): the in-process benchmarks run under each version.
IN_PROCESS = [
    ("decoder / slice-and-int(), small messages (codec.py (a))", ["codec.py"], ["codec.py", "--quick"],
     r"\(a\) small messages\s+ratio\s+([\d.]+)", True),
    ("traced pipe peer with a live Timeline / without (timeline.py)", ["timeline.py", "--runs", "1"],
     ["timeline.py", "--quick"], r"ratio with/without ([\d.]+)", False),
]


def in_process_figure(tree: Path, arguments: list[str], pattern: str, higher_is_better: bool) -> float:
    """Run this tree's benchmark script with ``tree``'s gotalk_lab; its ratio, as higher-is-better."""
    with imported_from(tree):
        done = subprocess.run([PYTHON, str(HERE / arguments[0]), *arguments[1:]], capture_output=True, text=True,
                              env=dict(os.environ))
    match = re.search(pattern, done.stdout)
    if done.returncode != 0 or match is None:
        sys.exit(f"{arguments[0]} under {tree} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    value = float(match.group(1))
    return value if higher_is_better else 1 / value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the older git revision (a commit, tag or branch)")
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (a smoke test)")
    parser.add_argument("--runs", type=int, help="runs of each version per load (default 5, quick 2)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 2, quick 0.5)")
    args = parser.parse_args()
    runs = args.runs or (2 if args.quick else 5)
    seconds = args.seconds or (0.5 if args.quick else 2.0)
    warmup = 0.2 if args.quick else 0.5
    loads = [(1, 16), (64, 16)] if args.quick else [(1, 16), (1, 4 * KIB), (64, 16), (64, 4 * KIB)]
    summary = []
    with checkout(args.before) as before:
        trees = {"before": before, "after": TREE}
        with baseline_server() as server:
            for in_flight, payload in loads:
                for trace in ("off", "on"):
                    label = f"client {in_flight} in flight, {payload} B, trace {trace}"

                    cpu: dict[str, list[float]] = {name: [] for name in trees}

                    def client(name: str, tree: Path):
                        def run() -> float:
                            with imported_from(tree):
                                figures = run_load("peer", server, payload=payload, in_flight=in_flight,
                                                   seconds=seconds, warmup=warmup, trace=trace)
                            cpu[name].append(figures["client_cpu_us"])
                            return figures["rate"]
                        return run

                    figures = alternate(runs, {name: client(name, tree) for name, tree in trees.items()}, progress=label)
                    summary.append(report(label, figures))
                    # CPU per request leaves out the idle core's wake-ups that make one request
                    # in flight swing; lower is cheaper, so the ratio is before / after.
                    print(f"    client CPU per request: before {median(cpu['before']):.1f} us  after {median(cpu['after']):.1f} us"
                          f"  ratio before/after {median(cpu['before']) / median(cpu['after']):.2f}", flush=True)
        servers = {name: serve_from(tree) for name, tree in trees.items()}
        try:
            for in_flight, payload in loads:
                label = f"serve {in_flight} in flight, {payload} B"

                def load(process: ServerProcess):
                    return lambda: run_load("socket", process, payload=payload, in_flight=in_flight,
                                            seconds=seconds, warmup=warmup)["rate"]

                figures = alternate(runs, {name: load(process) for name, process in servers.items()}, progress=label)
                summary.append(report(label, figures))
        finally:
            for process in servers.values():
                process.stop()
        for label, full, quick, pattern, higher in IN_PROCESS:
            arguments = quick if args.quick else full

            def figure(tree: Path, arguments=arguments, pattern=pattern, higher=higher):
                return lambda: in_process_figure(tree, arguments, pattern, higher)

            print(f"    {label}: {runs} runs of each version", flush=True)
            figures = alternate(runs, {name: figure(tree) for name, tree in trees.items()})
            before, after = median(figures["before"]), median(figures["after"])
            print(f"    {label}: before {before:.3f}  after {after:.3f} (ratio to its baseline, higher is better;"
                  f" per run before {', '.join(f'{v:.3f}' for v in figures['before'])},"
                  f" after {', '.join(f'{v:.3f}' for v in figures['after'])})", flush=True)
            summary.append((label, after / before, None))
    print(f"after = this tree, before = {args.before}; ratio after / before, {runs} alternated runs each")
    print_summary(summary)


def report(label: str, figures: dict[str, list[float]]) -> tuple[str, float, None]:
    before, after = median(figures["before"]), median(figures["after"])
    spread = ", ".join(f"{a / b:.2f}" for a, b in zip(figures["after"], figures["before"]))
    print(f"    {label}: before {before:,.0f}  after {after:,.0f} requests/s  ratio {after / before:.2f} (per run: {spread})", flush=True)
    return (label, after / before, None)


if __name__ == "__main__":
    main()

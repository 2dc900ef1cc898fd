"""What the networked benchmarks share: servers and load generators as processes, and figures.

Every contender runs in a process of its own (the server under test on one
core, its load on the other, when there are two), runs are alternated
(baseline, contender, baseline, contender...) and the median of each is
compared. Nothing here is part of gotalk_lab or of its tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Stopped by SIGTERM as by Ctrl-C: the ``with`` blocks stop the servers they started.
signal.signal(signal.SIGTERM, signal.default_int_handler)

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
#: The server under test gets CPU 0 and its load CPU 1, when the machine has two:
#: otherwise the scheduler moves them about and the figures wander.
SERVER_CPUS = {0}
LOAD_CPUS = {1}
KIB = 1024
MIB = 1024 * 1024


def gotalk_lab_command() -> list[str]:
    """The installed ``gotalk-lab`` console script (what users run), or the module."""
    script = Path(PYTHON).with_name("gotalk-lab")
    if script.exists():
        return [str(script)]
    found = shutil.which("gotalk-lab")
    return [found] if found else [PYTHON, "-m", "gotalk_lab.cli"]


def _pin(cpus: set[int]):
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if not cpus <= usable or len(usable) < 2:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class ServerProcess:
    """A server in a subprocess, started with ``--tcp 127.0.0.1:0``; ``url`` is what it printed."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name = name
        self._log = tempfile.TemporaryFile()  # its stderr (a line per connection): never a full pipe
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._log, text=True, preexec_fn=_pin(SERVER_CPUS)
        )
        deadline = time.monotonic() + 20
        line = ""
        while not line.startswith("listening "):
            line = self.process.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not print its 'listening' line: {self.stderr()}")
        self.url = line.split()[1]
        match = re.fullmatch(r"tcp://(.+):(\d+)", self.url)
        self.host, self.port = match.group(1).strip("[]"), int(match.group(2))

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(2)  # SIGINT: `gotalk-lab serve` closes cleanly
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self._log.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def baseline_server() -> ServerProcess:
    return ServerProcess("baseline", [PYTHON, str(HERE / "baseline_server.py")])


def gotalk_lab_serve(loop: str = "asyncio") -> ServerProcess:
    """``gotalk-lab serve`` on asyncio's own loop (what every target is set for), or on ``loop``."""
    return ServerProcess(f"gotalk-lab serve ({loop})", [*gotalk_lab_command(), "serve", "--tcp", "127.0.0.1:0", "--loop", loop])


def has_uvloop() -> bool:
    """Whether uvloop is installed here (``pip install 'gotalk-lab[fast]'``)."""
    import importlib.util

    return importlib.util.find_spec("uvloop") is not None


def run_load(mode: str, server: ServerProcess, **options) -> dict:
    """Run ``loadgen.py MODE`` against ``server`` in its own process; return its JSON figures.

    When the load reports how many requests the server answered, ``server_cpu_us``
    is the server's CPU time (user + system) per answer: a steadier figure than
    throughput when other work shares the machine.
    """
    command = [PYTHON, str(HERE / "loadgen.py"), mode, server.host, str(server.port)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    cpu_before = cpu_seconds(server.pid)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, preexec_fn=_pin(LOAD_CPUS))
    cpu_used = cpu_seconds(server.pid) - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"loadgen {mode} against {server.name} failed: {done.stderr.strip()}\n{server.stderr()}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if figures.get("answered"):
        figures["server_cpu_us"] = cpu_used / figures["answered"] * 1e6
    return figures


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, user and system (Linux ``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alternate(runs: int, contenders: dict[str, callable], progress: str = "") -> dict[str, list[float]]:
    """Call each contender once per round, in turn, ``runs`` rounds; collect the figures each returns."""
    figures: dict[str, list[float]] = {name: [] for name in contenders}
    for round_number in range(runs):
        for name, contender in contenders.items():
            figures[name].append(contender())
        if progress:
            shown = "  ".join(f"{name} {figures[name][-1]:,.0f}" for name in contenders)
            print(f"    {progress} run {round_number + 1}/{runs}: {shown}", flush=True)
    return figures


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio_of(ours: float, base: float) -> float:
    """ours / base; NaN (printed "nan", never a verdict) when the baseline measured nothing,
    as a run of a tenth of a second can on a machine busy with other work."""
    return ours / base if base else float("nan")


def verdict(ratio: float, target: float | None) -> str:
    if ratio != ratio:  # NaN
        return "(the baseline measured nothing: run it again on a quieter machine)"
    if target is None:
        return "(no target)"
    return f"target >= {target:.2f}  {'meets' if ratio >= target else 'MISSES'}"


def print_summary(rows: list[tuple[str, float, float | None]]) -> None:
    print("summary:")
    for name, ratio, target in rows:
        print(f"    {name:56} ratio {ratio:5.2f}  {verdict(ratio, target)}")


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """A process's resident set (``VmRSS``) or its peak since the last reset (``VmHWM``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} for process {pid}")


def reset_peak_rss(pid: int) -> bool:
    """Start counting the peak resident set afresh (Linux ``clear_refs`` 5); False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def quick_or_full(quick: bool, quick_value, full_value):
    return quick_value if quick else full_value

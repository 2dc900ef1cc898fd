"""Every benchmark runs in a seconds-long smoke form, so that none of them rots.

These are not speed tests: they assert that each script runs to the end and prints
its ratio against the baseline it measures in the same run (the figures themselves
are read by people, from `make bench`; benchmarks/README.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

#: The shortest run of each script that still goes through all of its code.
SMOKE_ARGUMENTS = {
    "server_throughput": ["--quick", "--runs", "1", "--seconds", "0.1"],
    "client_throughput": ["--quick", "--runs", "1", "--seconds", "0.1"],
    "pipe_throughput": ["--quick", "--runs", "1", "--seconds", "0.1"],
    "streams": ["--quick", "--runs", "1", "--mib", "2"],
    "tracing": ["--quick", "--runs", "1", "--seconds", "0.1"],
    "codec": ["--quick"],
    "timeline": ["--quick", "--runs", "1", "--requests", "300"],
    "carriers": ["--quick", "--runs", "1", "--seconds", "0.1"],
    "instructions": ["--quick"],
    "trace_memory": ["--quick"],
    # This tree against its own last commit: the smoke run needs only the clone's history.
    "versions": ["--quick", "--before", "HEAD", "--runs", "1", "--seconds", "0.1"],
}


def test_every_benchmark_script_has_a_smoke_form():
    scripts = {path.stem for path in BENCHMARKS.glob("*.py") if not path.stem.startswith("_")}
    helpers = {"baseline_server", "loadgen", "peer_server", "fuzz", "hostile"}  # driven by the others, or by make fuzz
    assert scripts - helpers == set(SMOKE_ARGUMENTS)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", sorted(SMOKE_ARGUMENTS))
def test_benchmark_runs_and_prints_its_ratio(name):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *SMOKE_ARGUMENTS[name]],
        capture_output=True, text=True, timeout=170, cwd=BENCHMARKS.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio" in done.stdout, done.stdout[-2000:]

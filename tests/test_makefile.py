"""`make lab` serves the tutorials: the command it runs starts JupyterLab on notebook 1."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_make_lab_serves_tutorial_one(tmp_path):
    port = _free_port()
    # The recipe exactly as make would run it (make -n prints it without running it),
    # with this environment's jupyter in place of .venv's.
    recipe = subprocess.run(
        ["make", "-s", "-n", "lab", f"LAB_PORT={port}", "STAMP=/dev/null"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.replace("\\\n", " ")
    line = next(line for line in recipe.splitlines() if "jupyter lab" in line)
    command = shlex.split(line)
    command[0] = str(Path(sys.executable).parent / "jupyter")
    if os.geteuid() == 0:
        assert "--allow-root" in command, "JupyterLab refuses root without --allow-root"
    environment = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")}
    server = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            assert line, "jupyter lab ended early"
            match = re.search(rf"http://127\.0\.0\.1:{port}/lab/tree/01-wire-format\.ipynb\?token=\w+", line)
            url = match.group(0) if match else None
        assert url, "no URL of tutorial 1 printed"
        page = None
        while page is None and time.monotonic() < deadline:  # the URL is printed just before it listens
            try:
                page = urllib.request.urlopen(url, timeout=20)
            except urllib.error.URLError:
                time.sleep(0.2)
        assert page is not None and page.status == 200 and b"<title>JupyterLab</title>" in page.read()
        token = url.split("token=")[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/01-wire-format.ipynb?content=0&token={token}", timeout=20) as info:
            assert b'"type": "notebook"' in info.read().replace(b'"type":"notebook"', b'"type": "notebook"')
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)

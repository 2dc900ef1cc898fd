"""The classroom notebook renders under Voilà: widgets shown, code hidden, no errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "08-classroom-demo.ipynb"


def test_voila_renders_the_classroom_demo(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    voila = Path(sys.executable).parent / "voila"
    assert voila.exists(), "voila is part of the test extra; reinstall with pip install -e '.[test]'"
    environment = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)}
    server = subprocess.Popen(
        [str(voila), str(NOTEBOOK), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        page = None
        deadline = time.monotonic() + 90
        while page is None and time.monotonic() < deadline:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60).read().decode()
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        assert page is not None, "voila did not answer"
        assert "Gotalk, live" in page
        assert "application/vnd.jupyter.widget-view+json" in page
        # Voilà strips the source; a failing cell would leave a traceback in the page.
        assert "Traceback" not in page and not re.search(r"\w+Error: ", page)
        assert "gl.pipe(" not in page
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)

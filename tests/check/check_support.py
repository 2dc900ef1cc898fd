"""Helpers for the checker's tests: run a RawServer on a loop thread, start `gotalk-lab serve`."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from check_servers import RawServer

REPO = Path(__file__).resolve().parents[2]


class ThreadedServer:
    """A RawServer (or any async server factory) on its own loop thread, for tests that
    call the blocking CLI (``cli.main`` runs its own ``asyncio.run``)."""

    def __init__(self, factory) -> None:
        self.factory = factory
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self.server

    async def _start(self):
        server = self.factory()
        await server.__aenter__()
        return server

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def raw_server(*defects: str, websocket: bool = False) -> ThreadedServer:
    return ThreadedServer(lambda: RawServer(defects, websocket=websocket))


class ServeProcess:
    """`gotalk-lab serve --tcp 127.0.0.1:0 --ws 127.0.0.1:0` in a subprocess; ``tcp``/``ws`` URLs."""

    def __enter__(self):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gotalk_lab.cli", "serve", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )
        lines = [self.process.stdout.readline() for _ in range(2)]
        self.tcp = re.search(r"tcp://\S+", "".join(lines)).group(0)
        self.ws = re.search(r"ws://\S+", "".join(lines)).group(0)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process.stdout.close()
        self.process.stderr.close()

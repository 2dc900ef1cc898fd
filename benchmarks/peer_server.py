"""``gotalk-lab serve`` with the trace recording on, for the tracing benchmark.

``gotalk-lab serve`` keeps no trace (a long-running server keeps no history),
so this serves the same demo operations through the same public API
(``gl.serve``) with ``--trace off``, ``on`` (a ``Trace`` per connection, the
default cap, as a notebook peer has) or ``timeline`` (that trace plus a live
``Timeline`` widget model on it, kernel side: every message the widget would
send to a browser is encoded as JSON, as the comm would, then dropped).
Prints ``listening tcp://HOST:PORT``; stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

import gotalk_lab as gl


async def main(mode: str) -> None:
    server = await gl.serve("tcp://127.0.0.1:0", gl.demo.handlers(), trace=mode != "off")
    timelines = []
    if mode == "timeline":
        from gotalk_lab.widgets.timeline import Timeline

        def attach(peer) -> None:
            timeline = Timeline(peer.trace)
            timeline.send = lambda content, buffers=None: json.dumps(content)  # what the comm would do
            timelines.append(timeline)

        server.on_connect(attach)
    print(f"listening {server.addresses[0]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for timeline in timelines:
        timeline.close()
    await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", choices=["off", "on", "timeline"], default="on")
    asyncio.run(main(parser.parse_args().trace))

"""The floor the peer is measured against: a minimal asyncio.Protocol that speaks just enough Gotalk.

It writes its version, then answers every ``r`` with an ``R`` carrying the same
payload (whatever the operation), and every ``s``/``p`` part with an ``S`` of
the part upper-cased (an empty ``p`` ends the stream with an empty ``S``). One
socket write per batch of bytes received; no validation, no limits, no trace,
no tasks. Prints ``listening tcp://HOST:PORT`` like ``gotalk-lab serve``.
Run ``python benchmarks/baseline_server.py [PORT]``; stop it with Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
import sys


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.buffer = b""  # the start of a message whose rest has not arrived
        self.version_seen = False
        transport.write(b"01")

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.version_seen:
            if len(buffer) < 2:
                self.buffer = buffer
                return
            buffer = buffer[2:]
            self.version_seen = True
        out = []
        pos, end = 0, len(buffer)
        while end - pos >= 13:
            kind = buffer[pos]
            if kind == 0x72 or kind == 0x73:  # r s: type, id, name size, name, payload size
                name_end = pos + 8 + int(buffer[pos + 5 : pos + 8], 16)
                start = name_end + 8
                if start > end:
                    break
                stop = start + int(buffer[name_end:start], 16)
            else:  # p: type, id, payload size
                start = pos + 13
                stop = start + int(buffer[pos + 5 : start], 16)
            if stop > end:
                break
            payload = buffer[start:stop]
            if kind == 0x72:
                out.append(b"R%s%08x" % (buffer[pos + 1 : pos + 5], stop - start))
                out.append(payload)
            else:
                out.append(b"S%s%08x" % (buffer[pos + 1 : pos + 5], stop - start))
                out.append(payload.upper())
            pos = stop
        self.buffer = buffer[pos:]
        if out:
            self.transport.write(b"".join(out))

    # The least flow control that keeps memory bounded: stop reading while the
    # other side is not reading what we write.
    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, "127.0.0.1", port)
    host, bound = server.sockets[0].getsockname()[:2]
    print(f"listening tcp://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))

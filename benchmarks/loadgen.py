"""Load for the networked benchmarks, run in a process of its own; prints one JSON line of figures.

Modes (each connects to HOST PORT, speaks Gotalk and keeps ``--in-flight``
``echo`` requests outstanding on one connection for ``--warmup`` + ``--seconds``):

  socket       the load generator: a tight blocking-socket client. Requests are
               prebuilt (IDs cycle, never two alike in flight), results are
               counted by their size, never parsed. The same generator drives
               the baseline server and ``gotalk-lab serve``.
  asyncio      the floor for any asyncio requester: a minimal asyncio.Protocol
               doing the same in an event loop, no futures, no coroutines.
  futures      the floor for a requester with an API like the Peer's (the client
               benchmark's baseline): ``--in-flight`` coroutines each awaiting a
               future per request, resolved by a minimal asyncio.Protocol that
               matches results to requests by ID; requests written in one turn
               of the loop go out in one write.
  peer         gotalk_lab's Peer as the requester: ``--in-flight`` coroutines,
               each awaiting ``request_bytes`` in a loop (``--trace on|off``).
  stream       a blocking stream driver: ``--total`` bytes in ``--part``-byte
               parts through ``upper-stream`` (a thread sends, the main thread
               counts the result parts).
  peer-stream  the same stream through gotalk_lab's Peer as the requester;
               reports its own peak RSS above its baseline too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import threading
import time

from _common import reset_peak_rss, rss_bytes

clock = time.perf_counter
LETTERS = b"abcdefghijklmnopqrstuvwxyz"


def pattern(size: int) -> bytes:
    return (LETTERS * (size // len(LETTERS) + 1))[:size]


def request_frame(number: int, payload: bytes) -> bytes:
    """``r`` for ``echo`` with a Go-style little-endian counter as the request ID."""
    return b"r%s004echo%08x%s" % (number.to_bytes(4, "little"), len(payload), payload)


def result_frame(number: int, payload: bytes) -> bytes:
    return b"R%s%08x%s" % (number.to_bytes(4, "little"), len(payload), payload)


def connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"01")
    version = receive_exactly(sock, 2)
    if version != b"01":
        raise SystemExit(f"the server answered the handshake with {version!r}")
    return sock


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise SystemExit(f"the server closed the connection after {len(data)} of {size} bytes")
        data += chunk
    return data


# -- socket: the load generator ---------------------------------------------------


def socket_load(args) -> dict:
    payload = pattern(args.payload)
    sock = connect(args.host, args.port)
    # One checked exchange first: the server really echoes.
    sock.sendall(request_frame(0, payload))
    if receive_exactly(sock, 13 + len(payload)) != result_frame(0, payload):
        raise SystemExit("the server's answer to the first echo is wrong")

    in_flight = args.in_flight
    distinct = max(256, 2 * in_flight)  # IDs cycle through these: never two alike in flight
    request_size, result_size = 20 + len(payload), 13 + len(payload)
    block = b"".join(request_frame(number, payload) for number in range(distinct))
    requests = memoryview(block + block)  # any run of up to `distinct` requests is one slice
    buffer = memoryview(bytearray(max(1 << 20, 2 * result_size * in_flight)))
    sent = received = 0

    def send(count: int) -> None:
        nonlocal sent
        start = (sent % distinct) * request_size
        sock.sendall(requests[start : start + count * request_size])
        sent += count

    send(in_flight)
    warm_end = clock() + args.warmup
    end = warm_end + args.seconds
    measuring = False
    first = last = (0, 0.0)
    recv_into = sock.recv_into
    while True:
        size = recv_into(buffer)
        if not size:
            raise SystemExit("the server closed the connection")
        received += size
        completed = received // result_size
        now = clock()
        if not measuring:
            if now >= warm_end:
                measuring, first = True, (completed, now)
        elif now >= end:
            last = (completed, now)
            break
        missing = in_flight - (sent - completed)
        if missing > 0:
            send(missing)
    while received < sent * result_size:  # the answers still on their way
        size = recv_into(buffer)
        if not size:
            raise SystemExit("the server closed the connection")
        received += size
    if received != sent * result_size:
        raise SystemExit(f"received {received} bytes for {sent} results of {result_size}")
    sock.close()
    count, seconds = last[0] - first[0], last[1] - first[1]
    # "answered": every request of the connection, warm-up and check included (for CPU per request).
    return {"rate": count / seconds, "requests": count, "seconds": seconds, "answered": sent + 1}


# -- asyncio: the floor for a requester ---------------------------------------------


class MinimalClient(asyncio.Protocol):
    """Keeps ``in_flight`` requests outstanding, refilling as results complete (counted by size)."""

    def __init__(self, payload: bytes, in_flight: int, warmup: float, seconds: float) -> None:
        self.in_flight = in_flight
        self.distinct = max(256, 2 * in_flight)
        self.request_size, self.result_size = 20 + len(payload), 13 + len(payload)
        block = b"".join(request_frame(number, payload) for number in range(self.distinct))
        self.requests = block + block
        self.sent = 0
        self.received = -2  # the version comes first
        self.warmup, self.seconds = warmup, seconds
        self.first = self.last = None
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"01")
        self.warm_end = clock() + self.warmup
        self.end = self.warm_end + self.seconds
        self.send(self.in_flight)

    def send(self, count: int) -> None:
        start = (self.sent % self.distinct) * self.request_size
        self.transport.write(self.requests[start : start + count * self.request_size])
        self.sent += count

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        completed = max(0, self.received) // self.result_size
        if self.last is not None:
            if completed == self.sent and not self.done.done():
                self.done.set_result(None)
            return
        now = clock()
        if self.first is None:
            if now >= self.warm_end:
                self.first = (completed, now)
        elif now >= self.end:
            self.last = (completed, now)
            if completed == self.sent:
                self.done.set_result(None)
            return
        missing = self.in_flight - (self.sent - completed)
        if missing > 0:
            self.send(missing)

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"the server closed the connection: {exc}"))


async def asyncio_load(args) -> dict:
    loop = asyncio.get_running_loop()
    payload = pattern(args.payload)
    transport, client = await loop.create_connection(
        lambda: MinimalClient(payload, args.in_flight, args.warmup, args.seconds), args.host, args.port
    )
    await client.done
    transport.close()
    if client.received != client.sent * client.result_size:
        raise SystemExit(f"received {client.received} bytes for {client.sent} results")
    count, seconds = client.last[0] - client.first[0], client.last[1] - client.first[1]
    return {"rate": count / seconds, "requests": count, "seconds": seconds}


# -- futures: the floor for a requester API -------------------------------------------


class MinimalRequester(asyncio.Protocol):
    """``await request(payload)``: a future per request, results matched by ID, nothing else.

    Requests made in one turn of the loop are joined into one write (one
    system call instead of one each: without it this is no floor at all).
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.futures: dict[bytes, asyncio.Future] = {}
        self.counter = 0
        self.buffer = b""
        self.version_seen = False
        self.outgoing: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"01")

    async def request(self, payload: bytes) -> bytes:
        self.counter = (self.counter + 1) & 0xFFFFFFFF
        request_id = self.counter.to_bytes(4, "little")
        future = self.loop.create_future()
        self.futures[request_id] = future
        if not self.outgoing:
            self.loop.call_soon(self.flush)
        self.outgoing.append(b"r%s004echo%08x%s" % (request_id, len(payload), payload))
        return await future

    def flush(self) -> None:
        self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.version_seen:
            if len(buffer) < 2:
                self.buffer = buffer
                return
            buffer, self.version_seen = buffer[2:], True
        pos, end = 0, len(buffer)
        while end - pos >= 13:
            stop = pos + 13 + int(buffer[pos + 5 : pos + 13], 16)
            if stop > end:
                break
            self.futures.pop(buffer[pos + 1 : pos + 5]).set_result(buffer[pos + 13 : stop])
            pos = stop
        self.buffer = buffer[pos:]

    def connection_lost(self, exc) -> None:
        for future in self.futures.values():
            if not future.done():
                future.set_exception(ConnectionError(f"the server closed the connection: {exc}"))


async def workers_load(request, args) -> dict:
    """``--in-flight`` coroutines, each awaiting ``request(payload)`` in a loop, for warmup + seconds."""
    payload = pattern(args.payload)
    if await request(payload) != payload:
        raise SystemExit("the server's answer to the first echo is wrong")
    count = 0
    running = True

    async def worker() -> None:
        nonlocal count
        while running:
            await request(payload)
            count += 1

    workers = [asyncio.create_task(worker()) for _ in range(args.in_flight)]
    await asyncio.sleep(args.warmup)
    first = (count, clock(), cpu_time())
    await asyncio.sleep(args.seconds)
    last = (count, clock(), cpu_time())
    running = False
    await asyncio.gather(*workers)
    done, seconds = last[0] - first[0], last[1] - first[1]
    # CPU per request (user + system) does not count the time an idle core takes to wake
    # for the next answer: the steadier figure with one request in flight.
    cpu_us = (last[2] - first[2]) / done * 1e6 if done else float("nan")
    return {"rate": done / seconds, "requests": done, "seconds": seconds, "client_cpu_us": cpu_us}


def cpu_time() -> float:
    """CPU seconds this process has used, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def futures_load(args) -> dict:
    loop = asyncio.get_running_loop()
    transport, requester = await loop.create_connection(MinimalRequester, args.host, args.port)
    figures = await workers_load(requester.request, args)
    transport.close()
    return figures


# -- peer: gotalk_lab as the requester ---------------------------------------------


async def peer_load(args) -> dict:
    import gotalk_lab as gl

    peer = await gl.connect(f"tcp://{args.host}:{args.port}", trace=args.trace == "on")
    figures = await workers_load(lambda payload: peer.request_bytes("echo", payload), args)
    await peer.close()
    return figures


# -- stream: the blocking stream driver ----------------------------------------------


def stream_load(args) -> dict:
    part = pattern(args.part)
    parts = args.total // len(part)
    request_id = b"\x00\x00\x00\x00"
    sock = connect(args.host, args.port)
    expected = parts * (13 + len(part)) + 13  # one S per part, then the empty S

    def send_all() -> None:
        sock.sendall(b"s%s00cupper-stream%08x%s" % (request_id, len(part), part))
        frame = b"p%s%08x%s" % (request_id, len(part), part)
        for _ in range(parts - 1):
            sock.sendall(frame)
        sock.sendall(b"p%s00000000" % request_id)

    started = clock()
    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    head = receive_exactly(sock, 13 + len(part))
    if head != b"S%s%08x%s" % (request_id, len(part), part.upper()):
        raise SystemExit(f"the first result part is wrong: {head[:40]!r}")
    received = len(head)
    buffer = memoryview(bytearray(1 << 20))
    tail = b""
    while received < expected:
        size = sock.recv_into(buffer)
        if not size:
            raise SystemExit(f"the server closed the connection after {received} of {expected} bytes")
        received += size
        tail = (tail + bytes(buffer[:size]))[-13:] if size < 13 else bytes(buffer[size - 13 : size])
    seconds = clock() - started
    sender.join()
    if received != expected or tail != b"S%s00000000" % request_id:
        raise SystemExit(f"the stream did not end as expected ({received} of {expected} bytes, tail {tail!r})")
    sock.close()
    return {"mb_per_s": parts * len(part) / seconds / 1e6, "bytes": parts * len(part), "seconds": seconds}


async def peer_stream_load(args) -> dict:
    import gotalk_lab as gl

    part = pattern(args.part)
    parts = args.total // len(part)
    peer = await gl.connect(f"tcp://{args.host}:{args.port}", trace=args.trace == "on")
    baseline = rss_bytes(os.getpid())
    peak_known = reset_peak_rss(os.getpid())
    started = clock()
    received = 0
    async with peer.stream_request("upper-stream") as stream:

        async def send_all() -> None:
            for _ in range(parts):
                await stream.send(part)
            await stream.end()

        sender = asyncio.create_task(send_all())
        upper = part.upper()
        async for result in stream:
            if received == 0 and result != upper:
                raise SystemExit(f"the first result part is wrong: {result[:40]!r}")
            received += len(result)
        await sender
    seconds = clock() - started
    peak = rss_bytes(os.getpid(), "VmHWM") if peak_known else None
    await peer.close()
    if received != parts * len(part):
        raise SystemExit(f"received {received} of {parts * len(part)} bytes")
    return {
        "mb_per_s": received / seconds / 1e6,
        "bytes": received,
        "seconds": seconds,
        "rss_extra": None if peak is None else peak - baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["socket", "asyncio", "futures", "peer", "stream", "peer-stream"])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--payload", type=int, default=16, help="echo payload bytes")
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--trace", choices=["on", "off"], default="off")
    parser.add_argument("--total", type=int, default=256 << 20, help="stream bytes")
    parser.add_argument("--part", type=int, default=64 << 10, help="stream part bytes")
    args = parser.parse_args()
    if args.mode == "socket":
        figures = socket_load(args)
    elif args.mode == "stream":
        figures = stream_load(args)
    else:
        run = {"asyncio": asyncio_load, "futures": futures_load, "peer": peer_load, "peer-stream": peer_stream_load}[args.mode]
        figures = asyncio.run(run(args))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

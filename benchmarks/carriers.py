"""What TLS and a UNIX socket cost ``gotalk-lab serve``, against plain TCP on the same server code.

Two ``gotalk-lab serve`` processes, started as users start them (on CPU 0 when
there are two): one with ``--tcp 127.0.0.1:0 --unix PATH``, one with ``--tcp
127.0.0.1:0 --tls CERT KEY`` (a certificate trustme makes for the run). The same
tight blocking-socket client (this script with ``--load``, in a process of its
own on CPU 1; loadgen.py's frames and counting) keeps 1 and 64 ``echo`` requests
of 16 bytes in flight on one connection over each carrier in turn: tcp, unix,
tls, tcp, unix, tls... Each figure is the median of its runs; the ratios are
unix / tcp and tls / tcp (the baseline: plain TCP, measured in the same run).
No target: the figures say what a carrier costs. Run ``python benchmarks/carriers.py``
(``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import HERE, LOAD_CPUS, PYTHON, SERVER_CPUS, _pin, alternate, gotalk_lab_command, median, print_summary
from loadgen import pattern, receive_exactly, request_frame, result_frame

clock = time.perf_counter
PAYLOAD = 16


def open_carrier(url: str, ca_file: str | None) -> socket.socket:
    """A blocking socket to ``url`` (tcp://, unix:// or tls://), the Gotalk version exchanged."""
    if url.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(url.removeprefix("unix://"))
    else:
        host, _, port = url.split("://", 1)[1].rpartition(":")
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if url.startswith("tls://"):
            sock = ssl.create_default_context(cafile=ca_file).wrap_socket(sock, server_hostname=host)
    sock.sendall(b"01")
    if receive_exactly(sock, 2) != b"01":
        raise SystemExit("the server did not answer the handshake with 01")
    return sock


def load(url: str, ca_file: str | None, in_flight: int, seconds: float, warmup: float) -> dict:
    """loadgen.py's socket load over any carrier: ``in_flight`` echoes outstanding, results counted by size."""
    payload = pattern(PAYLOAD)
    sock = open_carrier(url, ca_file)
    sock.sendall(request_frame(0, payload))
    if receive_exactly(sock, 13 + len(payload)) != result_frame(0, payload):
        raise SystemExit("the server's answer to the first echo is wrong")
    distinct = max(256, 2 * in_flight)
    request_size, result_size = 20 + len(payload), 13 + len(payload)
    block = b"".join(request_frame(number, payload) for number in range(distinct))
    requests = memoryview(block + block)
    buffer = memoryview(bytearray(1 << 20))
    sent = received = 0

    def send(count: int) -> None:
        nonlocal sent
        start = (sent % distinct) * request_size
        sock.sendall(requests[start : start + count * request_size])
        sent += count

    send(in_flight)
    warm_end = clock() + warmup
    end = warm_end + seconds
    first = last = None
    while True:
        size = sock.recv_into(buffer)
        if not size:
            raise SystemExit("the server closed the connection")
        received += size
        completed = received // result_size
        now = clock()
        if first is None:
            if now >= warm_end:
                first = (completed, now)
        elif now >= end:
            last = (completed, now)
            break
        if in_flight - (sent - completed) > 0:
            send(in_flight - (sent - completed))
    while received < sent * result_size:
        size = sock.recv_into(buffer)
        if not size:
            raise SystemExit("the server closed the connection")
        received += size
    sock.close()
    return {"rate": (last[0] - first[0]) / (last[1] - first[1])}


class Serve:
    """``gotalk-lab serve`` in a process of its own; ``urls``: its 'listening' lines."""

    def __init__(self, *arguments: str, lines: int) -> None:
        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [*gotalk_lab_command(), "serve", *arguments], stdout=subprocess.PIPE, stderr=self._log, text=True,
            preexec_fn=_pin(SERVER_CPUS),
        )
        self.urls = []
        deadline = time.monotonic() + 20
        while len(self.urls) < lines:
            line = self.process.stdout.readline()
            if not line or time.monotonic() > deadline:
                self._log.seek(0)
                raise RuntimeError(f"gotalk-lab serve did not print its 'listening' lines: {self._log.read()[-2000:]!r}")
            self.urls.append(line.split()[1])

    def __enter__(self) -> "Serve":
        return self

    def __exit__(self, *exc) -> None:
        self.process.send_signal(2)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self._log.close()


def run_load(url: str, ca_file: str, in_flight: int, seconds: float, warmup: float) -> float:
    command = [PYTHON, str(HERE / "carriers.py"), "--load", url, "--ca", ca_file,
               "--in-flight", str(in_flight), "--seconds", str(seconds), "--warmup", str(warmup)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, preexec_fn=_pin(LOAD_CPUS))
    if done.returncode != 0:
        raise RuntimeError(f"the load over {url} failed: {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])["rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (a smoke test)")
    parser.add_argument("--runs", type=int, help="runs of each carrier per load (default 5, quick 2)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 2, quick 0.5)")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)  # the client process
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    parser.add_argument("--in-flight", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=0.5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        print(json.dumps(load(args.load, args.ca, args.in_flight, args.seconds or 2.0, args.warmup)))
        return
    import trustme  # a test dependency: the benchmarks run where the tests do

    runs = args.runs or (2 if args.quick else 5)
    seconds = args.seconds or (0.5 if args.quick else 2.0)
    warmup = 0.2 if args.quick else 0.5
    summary = []
    with tempfile.TemporaryDirectory() as folder:
        ca = trustme.CA()
        certificate = ca.issue_cert("127.0.0.1")
        ca_file, cert_file, key_file = (str(Path(folder) / name) for name in ("ca.pem", "cert.pem", "key.pem"))
        ca.cert_pem.write_to_path(ca_file)
        certificate.cert_chain_pems[0].write_to_path(cert_file)
        certificate.private_key_pem.write_to_path(key_file)
        with Serve("--tcp", "127.0.0.1:0", "--unix", str(Path(folder) / "g.sock"), lines=2) as plain, \
                Serve("--tcp", "127.0.0.1:0", "--tls", cert_file, key_file, lines=1) as secure:
            urls = {"tcp": plain.urls[0], "unix": plain.urls[1], "tls": secure.urls[0]}
            for in_flight in (1, 64):
                label = f"{in_flight} in flight, {PAYLOAD} B"
                print(f"carriers, {label}: {runs} runs of {seconds:g} s each, alternated", flush=True)
                contenders = {
                    name: (lambda url=url: run_load(url, ca_file, in_flight, seconds, warmup)) for name, url in urls.items()
                }
                figures = alternate(runs, contenders, progress=label)
                rates = {name: median(values) for name, values in figures.items()}
                for name, rate in rates.items():
                    print(f"    {name:5} {rate:12,.0f} requests/s (best {max(figures[name]):,.0f})")
                for name in ("unix", "tls"):
                    ratio = rates[name] / rates["tcp"]
                    print(f"    ratio {name} / tcp {ratio:.2f}", flush=True)
                    summary.append((f"{name} / tcp, {label}", ratio, None))
    print_summary(summary)


if __name__ == "__main__":
    main()

"""The networked ``gotalk-lab`` commands: ``serve``, ``request``, ``tap`` and ``replay``.

Each command is a parser block plus an async body; ``cli.py`` registers them.
They use the public peer API only and print for people: results on stdout,
problems on stderr as one line, exit status 1 for a failed request or an
unreachable address. TLS options follow curl's names: ``--cacert FILE`` trusts
that CA (a test certificate's), ``-k``/``--insecure`` checks nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time

from . import demo
from .connect import DEFAULT_HOST, TLS_SCHEMES, Address, connect, parse_address, serve, tls_client_context, tls_server_context
from .decoder import DEFAULT_MAX_PAYLOAD_SIZE
from .errors import GotalkError
from .errors import CertificateError, ConnectionClosed, RequestError, RequestTimeout, RetryExhausted
from .intercept import RULE_SYNTAX, Rule, parse_bytes
from .replay import replay
from .tap import Tap
from .trace import OUT, event_to_json
from .transports.base import format_address


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1); ``[::1]:PORT`` for IPv6."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number} is out of range 0..65535")
    return host, number


def stream_address(text: str) -> Address:
    """``HOST:PORT`` (TCP), or a tcp://, tls:// or unix:// address: what the tap listens on and reaches."""
    if "://" not in text and not text.lower().startswith("unix:"):
        return Address("tcp", *host_port(text))
    try:
        where = parse_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if where.scheme not in ("tcp", "tls", "unix"):
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, tcp://, tls:// or unix://, got {text!r}")
    return where


def _add_tls_client_options(parser, what: str) -> None:
    parser.add_argument("--cacert", "--cafile", metavar="FILE", help=f"trust the CA certificates in FILE (PEM) when verifying {what}: how to trust a test certificate")
    parser.add_argument("-k", "--insecure", action="store_true", help=f"do not verify {what}'s certificate or name (the bytes are still encrypted)")


def _tls_client(args: argparse.Namespace, command: str) -> ssl.SSLContext | None:
    """The context the options ask for; None (the system's trusted CAs) without them. Raises SystemExit(2) on a bad --cacert."""
    if not args.cacert and not args.insecure:
        return None
    try:
        return tls_client_context(args.cacert, insecure=args.insecure)
    except (OSError, ssl.SSLError) as error:
        _print(f"gotalk-lab {command}: cannot read --cacert {args.cacert}: {error.strerror or error}", file=sys.stderr)
        raise SystemExit(2) from None


LOOPS = ("auto", "asyncio", "uvloop")


def _add_loop_option(parser) -> None:
    parser.add_argument(
        "--loop", choices=LOOPS, default="auto",
        help="the event loop: uvloop where it is installed (pip install 'gotalk-lab[fast]'), else asyncio's own "
        "(default auto); asyncio chooses the standard loop even where uvloop is installed, uvloop insists on it",
    )  # fmt: skip


def _run(coroutine, args: argparse.Namespace):
    """Run a command's coroutine on the event loop ``--loop`` names."""
    choice = getattr(args, "loop", "auto")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                coroutine.close()
                _print("gotalk-lab: --loop uvloop: uvloop is not installed (pip install 'gotalk-lab[fast]')", file=sys.stderr)
                raise SystemExit(2) from None
        else:
            return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def add_parsers(commands) -> None:
    serve_parser = commands.add_parser(
        "serve",
        help="serve the demo operations over TCP, WebSocket and/or a UNIX socket (TLS with --tls)",
        description="Serve the demo operations (echo, greet, fail, sleep, ping, callback, upper-stream, hello) "
        "until interrupted. Port 0 picks a free port; the bound addresses are printed as 'listening ...' lines "
        "(tcp://, tls://, ws://, wss:// or unix://).",
    )
    serve_parser.add_argument("--tcp", type=host_port, metavar="HOST:PORT", help="TCP address (default host 127.0.0.1); TLS with --tls")
    serve_parser.add_argument("--ws", type=host_port, metavar="HOST:PORT", help="WebSocket address; endpoint /gotalk/; wss:// with --tls")
    serve_parser.add_argument("--unix", metavar="PATH", help="UNIX socket file (a stale socket there is replaced; removed on exit)")
    serve_parser.add_argument(
        "--tls", nargs=2, metavar=("CERT", "KEY"),
        help="serve --tcp as tls:// and --ws as wss:// with this certificate chain and private key (PEM files)",
    )
    serve_parser.add_argument(
        "-v", "--verbose", action="store_true",
        help="a line on stderr for every connection opened and closed (never blocking: dropped and counted if stderr is not read)",
    )
    serve_parser.add_argument("--buffer-limit", type=int, metavar="N", default=256, help="single requests handled at once (default 256); over it: RetryResult")
    serve_parser.add_argument("--stream-limit", type=int, metavar="N", default=64, help="stream requests handled at once (default 64; 0 refuses streams)")
    serve_parser.add_argument("--read-timeout", type=float, metavar="SECONDS", help="close idle connections with f00000003")
    serve_parser.add_argument("--heartbeat", type=float, metavar="SECONDS", help="send a heartbeat at this interval")
    serve_parser.add_argument("--max-payload", type=int, metavar="BYTES", default=DEFAULT_MAX_PAYLOAD_SIZE, help="largest payload accepted (default 64 MiB)")
    serve_parser.add_argument(
        "--allow-origin", action="append", default=[], metavar="ORIGIN",
        help="also accept WebSocket connections from pages at ORIGIN (default: loopback origins only); repeatable",
    )
    _add_loop_option(serve_parser)
    serve_parser.set_defaults(run=cmd_serve)

    request_parser = commands.add_parser(
        "request",
        help="send one request (or a stream request) and print the result",
        description="Send OP with PAYLOAD to ADDRESS (tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH, "
        "wss://HOST:PORT/PATH or unix:///PATH) and print the result payload. A TLS server's certificate is checked "
        "against the system's trusted CAs, or --cacert's. An ErrorResult prints its text on stderr and exits 1. "
        "This side serves the demo operations too, so 'callback' works.",
    )
    request_parser.add_argument("address", metavar="ADDRESS")
    request_parser.add_argument("operation", metavar="OP")
    request_parser.add_argument("payload", nargs="?", default="", metavar="PAYLOAD", help="text to send ('-' reads stdin)")
    request_parser.add_argument("--json", action="store_true", help="PAYLOAD is JSON (checked before sending); the result is printed as indented JSON")
    request_parser.add_argument("--stream", nargs="+", metavar="PART", help="send a stream request with these parts (PAYLOAD, if any, goes first); print each result part on its own line")
    request_parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="give up after this long (default 30)")
    _add_tls_client_options(request_parser, "the server")
    _add_loop_option(request_parser)
    request_parser.set_defaults(run=cmd_request)

    tap_parser = commands.add_parser(
        "tap",
        help="a recording proxy between two other Gotalk programs",
        description="Listen on --listen, forward every connection to --upstream, print each frame as it passes "
        "('->' from the connecting program, '<-' from upstream) and append it to --trace as JSON lines. "
        "Either side may be TLS (--tls CERT KEY for clients, a tls:// upstream) or a UNIX socket (unix:///PATH): "
        "the tap ends TLS there, so what it shows is the plaintext. "
        "Without rules it is a transparent recorder, byte for byte; with --drop, --delay or --rewrite it relays "
        "whole frames and marks in the trace what it changed.",
        epilog=TAP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tap_parser.add_argument("--listen", type=stream_address, required=True, metavar="ADDRESS", help="HOST:PORT, tls://HOST:PORT (with --tls) or unix:///PATH")
    tap_parser.add_argument("--upstream", type=stream_address, required=True, metavar="ADDRESS", help="HOST:PORT, tls://HOST:PORT (its certificate verified) or unix:///PATH")
    tap_parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="accept TLS from clients with this certificate chain and private key (PEM files)")
    _add_tls_client_options(tap_parser, "a tls:// upstream")
    tap_parser.add_argument("--trace", metavar="FILE", help="write every frame as a JSON line (with its connection number); when a connection ends, a line {\"conn\": N, \"findings\": [...]}, its Expert Info, also printed as \"[N] finding: ...\" lines")
    tap_parser.add_argument("--pcap", metavar="FILE", help="also write what is relayed as a pcap file (Wireshark, tshark, `decode` read it)")
    tap_parser.add_argument("--drop", action="append", default=[], type=_rule("drop"), metavar="RULE", help="never send frames matching RULE; repeatable")
    tap_parser.add_argument("--delay", action="append", default=[], type=_rule("delay"), metavar="MS:RULE", help="send frames matching RULE MS milliseconds late (later frames may overtake them); repeatable")
    tap_parser.add_argument("--rewrite", action="append", default=[], type=_rule("rewrite"), metavar="RULE=BYTES", help="send BYTES, as given, instead of frames matching RULE; repeatable")
    _add_loop_option(tap_parser)
    tap_parser.set_defaults(run=cmd_tap)

    replay_parser = commands.add_parser(
        "replay",
        help="replay a recorded client side against a live server and diff the answers",
        description="Send the client side of FILE (a JSON-lines trace from `tap --trace` or `Trace.save`, or a pcap) "
        "to --target in order, read the server's answers and compare them with the recorded ones by message type and "
        "request ID. Exit status 0 when they match, 1 when they differ.",
    )
    replay_parser.add_argument("file", metavar="FILE")
    replay_parser.add_argument("--target", required=True, metavar="ADDRESS", help="tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH")
    _add_tls_client_options(replay_parser, "the target")
    replay_parser.add_argument("--timing", action="store_true", help="keep the recorded timing between frames")
    replay_parser.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_loop_option(replay_parser)
    replay_parser.set_defaults(run=cmd_replay)


TAP_EPILOG = "rules:\n  " + RULE_SYNTAX + """

examples:
  gotalk-lab tap --listen :7001 --upstream :7000 --drop dir=upstream,type=S
  gotalk-lab tap --listen :7001 --upstream :7000 --delay 300:dir=upstream,type=R,op=sleep
  gotalk-lab tap --listen :7001 --upstream :7000 --rewrite dir=client,op=echo=7230303030
  gotalk-lab tap --listen :7001 --upstream tls://example.org:7443 --cacert ca.pem
  gotalk-lab tap --listen tls://:7002 --tls cert.pem key.pem --upstream unix:///tmp/gotalk.sock"""


def _rule(action: str):
    """An argparse type: ``RULE``, ``MS:RULE`` or ``RULE=BYTES`` into a ``Rule``."""
    def parse(text: str) -> Rule:
        try:
            if action == "delay":
                milliseconds, _, rule = text.partition(":")
                return Rule.parse(rule, action="delay", delay=float(milliseconds) / 1000)
            if action == "rewrite":
                rule, equals, data = text.rpartition("=")
                if not equals or not rule:
                    raise ValueError("expected RULE=BYTES")
                return Rule.parse(rule, action="rewrite", replacement=parse_bytes(data))
            return Rule.parse(text, action=action)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    return parse


def _print(*parts, file=None) -> None:
    print(*parts, file=file or sys.stdout, flush=True)


class LineWriter:
    """Lines for a file descriptor, written by a thread of their own.

    A long-running command must never wait on a pipe that nobody reads: its
    event loop only queues a line here. At most ``limit`` lines wait; beyond
    that they are dropped and counted, and the count is written once the
    reader catches up. ``os.write`` is used (not ``sys.stderr``), so a writer
    stuck on a full pipe holds no lock that the process needs to exit.
    """

    def __init__(self, fd: int, limit: int = 1000) -> None:
        self.fd = fd
        self.limit = limit
        self.dropped = 0
        self._lines: collections.deque[str] = collections.deque()
        self._ready = threading.Condition()
        self._idle = threading.Event()
        self._idle.set()
        threading.Thread(target=self._run, name=f"gotalk-lab lines to fd {fd}", daemon=True).start()

    def line(self, text: str) -> None:
        with self._ready:
            if len(self._lines) >= self.limit:
                self.dropped += 1
                return
            self._lines.append(text)
            self._idle.clear()
            self._ready.notify()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the queued lines to be written; False if they were not."""
        return self._idle.wait(timeout)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._lines:
                    self._idle.set()
                    self._ready.wait()
                text = self._lines.popleft()
                dropped, self.dropped = self.dropped, 0
            if dropped:
                text = f"({dropped} lines dropped: nobody was reading them)\n{text}"
            data = (text + "\n").encode("utf-8", "replace")
            try:
                while data:
                    data = data[os.write(self.fd, data) :]
            except OSError:  # the reader went away: nothing more can be told
                pass


class _LineHandler(logging.Handler):
    """Log records as lines of a ``LineWriter``."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__(logging.WARNING)
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.line(self.format(record))
        except Exception:  # pragma: no cover - a record that cannot be formatted
            self.handleError(record)


class _Interrupt(asyncio.Event):
    """Set by SIGINT or SIGTERM; ``by`` names the signal."""

    by = ""

    def signalled(self, sig: signal.Signals) -> None:
        self.by = sig.name
        self.set()


def _interrupted() -> _Interrupt:
    """An event set by SIGINT or SIGTERM. Made before the "listening" lines are
    printed: a script that reads them and signals at once gets a clean stop."""
    stop = _Interrupt()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.signalled, sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on this platform
            pass
    return stop


def _tls_server(args: argparse.Namespace, command: str) -> ssl.SSLContext | None:
    """The server context of ``--tls CERT KEY``, or None; raises SystemExit(1) when they do not load."""
    if not args.tls:
        return None
    cert, key = args.tls
    try:
        return tls_server_context(cert, key)
    except (OSError, ssl.SSLError) as error:
        _print(f"gotalk-lab {command}: cannot load --tls {cert} {key}: {error.strerror or error}", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_serve(args: argparse.Namespace) -> int:
    if args.tcp is None and args.ws is None and args.unix is None:
        _print("gotalk-lab serve: give --tcp HOST:PORT, --ws HOST:PORT and/or --unix PATH", file=sys.stderr)
        return 2
    if args.tls and args.tcp is None and args.ws is None:
        _print("gotalk-lab serve: --tls applies to --tcp and --ws; give one of them", file=sys.stderr)
        return 2
    return _run(_serve(args, _tls_server(args, "serve")), args)


async def _serve(args: argparse.Namespace, tls: ssl.SSLContext | None = None) -> int:
    addresses = []
    if args.tcp:
        addresses.append(f"{'tls' if tls else 'tcp'}://{format_address(args.tcp)}")
    if args.ws:
        addresses.append(f"{'wss' if tls else 'ws'}://{format_address(args.ws)}/gotalk/")
    if args.unix:
        addresses.append(f"unix://{args.unix}")
    try:
        server = await serve(
            addresses,
            demo.handlers(),
            ssl=tls,
            allow_origins=args.allow_origin,
            max_requests=args.buffer_limit,
            max_streams=args.stream_limit,
            read_timeout=args.read_timeout,
            heartbeat_interval=args.heartbeat,
            max_payload_size=args.max_payload,
            trace=False,  # a long-running server keeps no history; use `tap` to watch
        )
    except OSError as error:
        _print(f"gotalk-lab serve: cannot listen: {error}", file=sys.stderr)
        return 1

    # Everything serve tells on stderr from here on goes through one thread: a
    # full pipe delays the lines, never the connections.
    errors = LineWriter(sys.stderr.fileno())
    handler = _LineHandler(errors)
    logging.getLogger().addHandler(handler)

    if args.verbose:
        def connected(peer) -> None:
            errors.line(f"connected {peer.name}")
            peer.on_close(lambda peer: errors.line(f"closed {peer.name}: {peer.close_reason}"))

        server.on_connect(connected)
    stop = _interrupted()
    for address in server.addresses:
        _print(f"listening {address}")
    try:
        await stop.wait()
        open_now = len(server.peers)
        began = time.monotonic()
        await server.close()
        errors.line(
            f"gotalk-lab serve: stopped by {stop.by}: closed {open_now} open connections in "
            f"{time.monotonic() - began:.2f} s, {server.connections_accepted} served in all"
        )
        errors.flush(1.0)  # best effort: a stderr nobody reads must not keep the process
    finally:
        logging.getLogger().removeHandler(handler)
    return 0


def cmd_request(args: argparse.Namespace) -> int:
    payload = sys.stdin.buffer.read() if args.payload == "-" else args.payload.encode("utf-8")
    if args.json and payload:
        try:
            json.loads(payload)
        except ValueError as error:
            _print(f"gotalk-lab request: PAYLOAD is not JSON: {error}", file=sys.stderr)
            return 2
    try:
        return _run(asyncio.wait_for(_request(args, payload), args.timeout), args)
    except asyncio.TimeoutError:
        _print(f"gotalk-lab request: no answer within {args.timeout:g} s", file=sys.stderr)
        return 1


async def _request(args: argparse.Namespace, payload: bytes) -> int:
    try:
        where = parse_address(args.address)
    except ValueError as error:
        _print(f"gotalk-lab request: {error}", file=sys.stderr)
        return 2
    tls = _tls_client(args, "request") if where.scheme in TLS_SCHEMES else None
    try:
        peer = await connect(args.address, demo.handlers(), ssl=tls)
    except CertificateError as error:
        _print(f"gotalk-lab request: {error}", file=sys.stderr)
        return 1
    except (OSError, GotalkError, TimeoutError) as error:
        _print(f"gotalk-lab request: cannot connect to {args.address}: {error}", file=sys.stderr)
        return 1
    try:
        if args.stream is not None:
            parts = ([payload] if payload else []) + [part.encode("utf-8") for part in args.stream]
            async with peer.stream_request(args.operation) as stream:
                for part in parts:
                    await stream.send(part)
                await stream.end()
                async for result in stream:
                    _write_result(result, args.json)
        else:
            # --timeout bounds the whole command (connecting included), not the peer's default.
            _write_result(await peer.request_bytes(args.operation, payload, timeout=None), args.json)
        return 0
    except RetryExhausted as error:
        _print(f"gotalk-lab request: {error}", file=sys.stderr)
        return 1
    except RequestError as error:
        _print(error.text, file=sys.stderr)
        return 1
    except (ConnectionClosed, RequestTimeout) as error:
        _print(f"gotalk-lab request: {error}", file=sys.stderr)
        return 1
    finally:
        await peer.close()


def _write_result(payload: bytes, as_json: bool) -> None:
    if as_json and payload:
        try:
            _print(json.dumps(json.loads(payload), indent=2, ensure_ascii=False))
            return
        except ValueError:
            pass  # not JSON after all: show the bytes as they came
    out = sys.stdout.buffer
    out.write(payload)
    if not payload.endswith(b"\n"):
        out.write(b"\n")
    out.flush()


def cmd_tap(args: argparse.Namespace) -> int:
    return _run(_tap(args), args)


async def _tap(args: argparse.Namespace) -> int:
    from .annotate import annotate

    rules = [*args.drop, *args.delay, *args.rewrite]
    listen_tls = _tls_server(args, "tap")
    if listen_tls is not None and args.listen.scheme == "tcp":
        args.listen = Address("tls", args.listen.host, args.listen.port)
    if args.listen.scheme == "tls" and listen_tls is None:
        _print("gotalk-lab tap: a tls:// --listen needs --tls CERT KEY", file=sys.stderr)
        return 2
    if args.listen.scheme == "unix" and listen_tls is not None:
        _print("gotalk-lab tap: --tls is for a TCP --listen, not a UNIX socket", file=sys.stderr)
        return 2
    upstream_tls = _tls_client(args, "tap") if args.upstream.scheme == "tls" else None
    # It prints and files each frame as it passes: an ended connection lives on in
    # --trace/--pcap, not in memory, and a live one keeps 8 MiB for its findings.
    tap = Tap(args.upstream.url, rules=rules, upstream_ssl=upstream_tls, keep_finished=0, trace_bytes=8 * 1024 * 1024)
    trace_file = open(args.trace, "a", encoding="utf-8") if args.trace else None
    recorder = None
    if args.pcap:
        from .tap_pcap import PcapRecorder

        try:
            recorder = PcapRecorder(args.pcap)
        except OSError as error:
            _print(f"gotalk-lab tap: cannot write {args.pcap}: {error.strerror or error}", file=sys.stderr)
            return 1
        tap.on_bytes(recorder.on_bytes)

    def frame(connection: int, event) -> None:
        arrow = "->" if event.direction == OUT else "<-"
        mark = f" [{event.action}]" if event.action else ""
        _print(f"[{connection}] {event.time * 1000:9.3f} ms {arrow} {annotate(event.message).summary}{mark}")
        if trace_file is not None:
            trace_file.write(json.dumps({"conn": connection, **event_to_json(event)}) + "\n")
            trace_file.flush()

    def violation(connection: int, direction: str, error) -> None:
        side = "connecting program" if direction == OUT else "upstream"
        then = "the other side closed" if tap.intercept else "still forwarded, no longer decoded"
        _print(f"[{connection}] invalid bytes from the {side}: {error} ({then})", file=sys.stderr)

    def closed(connection) -> None:
        found = connection.findings()
        for finding in found:
            _print(f"[{connection.number}] finding: {finding}")
        if trace_file is not None and not trace_file.closed:
            trace_file.write(json.dumps({"conn": connection.number, "findings": [finding.to_dict() for finding in found]}) + "\n")
            trace_file.flush()

    tap.on_frame(frame)
    tap.on_violation(violation)
    tap.on_close(closed)
    try:
        await tap.listen(args.listen.url, ssl=listen_tls)
    except OSError as error:
        _print(f"gotalk-lab tap: cannot listen: {error}", file=sys.stderr)
        return 1
    stop = _interrupted()
    _print(f"listening {tap.url} -> upstream {tap.upstream_address.url}")
    try:
        await stop.wait()
    finally:
        await tap.close()
        if trace_file is not None:
            trace_file.close()
        if recorder is not None:
            recorder.close()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        where = parse_address(args.target)
        tls = _tls_client(args, "replay") if where.scheme in TLS_SCHEMES else None
        report = _run(replay(args.file, args.target, timing=args.timing, ssl=tls), args)
    except (OSError, ValueError) as error:
        _print(f"gotalk-lab replay: {error}", file=sys.stderr)
        return 2
    _print(json.dumps(report.to_json(), indent=2) if args.json else str(report))
    return 0 if report.same else 1

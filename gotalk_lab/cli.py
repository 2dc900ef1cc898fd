"""The ``gotalk-lab`` command: one subcommand per job, each an ``add_*_parser`` plus a ``cmd_*``.

``build_parser`` assembles the subcommands listed in ``COMMANDS``; ``main`` runs the one
chosen and returns its exit status: 0 done, 1 could not run (e.g. unreadable file),
2 invalid input or usage. Output formats are a public surface (DESIGN.md): scripts and
tests rely on them, so change them only on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from typing import BinaryIO, Callable, TextIO

from . import cli_network, wireshark
from .annotate import VERSION_TYPE, AnnotatedMessage, Annotation, Field, annotate_frame, annotate_stream, show_bytes, to_dict
from .capture import CaptureError, CaptureNote, CapturedMessage, capture_format, read_capture
from .checker.command import add_check_parser
from .decoder import DEFAULT_MAX_PAYLOAD_SIZE
from .findings import Undecodable, findings, format_findings, read_conversation
from .trace import CAPTURE_SIDES, IN, OUT, Trace

PROG = "gotalk-lab"

#: Exit statuses, as documented in the module docstring.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID_INPUT = 2
#: What a C program killed by SIGPIPE reports (128 + 13): the reader went away.
EXIT_BROKEN_PIPE = 141

#: Displayed characters of a field's bytes before and after the part a long field
#: (a payload, a long name) hides; keeps every table row on one screen line.
RAW_HEAD_CHARS = 28
RAW_TAIL_CHARS = 10


# -- decode -----------------------------------------------------------------

DECODE_DESCRIPTION = """\
Read a Gotalk byte stream (a conversation as one side wrote it: the version "01"
first, unless --no-version) and explain every message field by field: the byte
range [start:end] (end exclusive), the raw bytes (non-printable ones as \\xNN),
the field name, its value and what it means."""

DECODE_EPILOG = f"""\
--json prints one JSON object per message per line, with the keys
  "type"     the type character ("r", "R", ...); the version preamble, which has
             no type byte, is written as "type": "{VERSION_TYPE}" with "kind": "ProtocolVersion"
             and "version": 1
  "kind"     the message name ("SingleRequest", ...)
  "offset"   where the message starts; "length": its size, header and payload
  "id"       hex of the 4 request ID bytes (types with an ID)
  "name"     operation or notification name (r, s, n)
  "wait" "load" "time" "code" "version"   where the type has them (integers)
  "payload"  hex of the payload, with "hint" (json, text, binary, empty) and
             "text" when the payload is JSON or text
  "summary"  the one-line description
  "fields"   [{{"name", "start", "end", "value", "meaning", ...}}] absolute offsets,
             end exclusive; byte values are hex, other fields add "raw" (hex)

After the messages comes Expert Info: what the rules of gl.findings found (a
gotalk.js peer sent what it cannot read, an ID reused in flight, a part or result
of no exchange, a version mismatch, bytes that are not Gotalk, ...). The text
report ends with a "findings:" section (one line each: severity, sentence, rule,
frames); --json ends with one line {{"findings": [{{"rule", "severity", "frames",
"sentence"}}, ...]}}, "frames" counting messages from 0 (the version included).
A raw stream is one side's bytes, so answers are not matched with requests there.

Invalid or truncated input: the messages before it are printed, then one line on
stderr names the byte offset, the field and what was expected; exit status 2.

examples:
  {PROG} decode capture.bin
  printf '01r0001004echo00000005hello' | {PROG} decode --json
  printf 'R000100000002ok' | {PROG} decode --no-version -

A pcap or pcapng capture (told by its magic number) is read too: every TCP
connection is reassembled, the Gotalk ones are found by the version handshake (or
by --port N) and each message is printed with its connection, direction and time;
with --json the keys "connection" {{"number", "client", "server"}}, "direction"
("client": bytes from the side that opened the TCP connection, "server") and
"time" (Unix seconds of the packet that completed the message) are added, and
"offset" counts from the start of that direction's stream. Findings are made per
connection (the "findings:" section has one block each; in --json each finding adds
"connection": its number), "frames" counting that connection's messages from 0.
  {PROG} decode capture.pcapng --port 9000 --json"""


def add_decode_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="explain a Gotalk byte stream field by field",
        description=DECODE_DESCRIPTION,
        epilog=DECODE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", nargs="?", default="-", metavar="FILE|-", help="the bytes to read; - or nothing: standard input"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per message per line (keys below)")
    parser.add_argument(
        "--no-version",
        dest="expect_version",
        action="store_false",
        help='the stream does not start with the version "01" (e.g. bytes cut from the middle of a conversation)',
    )
    parser.add_argument(
        "--port", type=int, metavar="N", help="captures: decode the TCP connections on port N as Gotalk (e.g. when the handshake was not captured)"
    )
    parser.set_defaults(run=cmd_decode)


def cmd_decode(args: argparse.Namespace) -> int:
    try:
        capture = _open_capture(args.file)
        if capture is not None:
            with capture:
                return decode_capture(capture, args.file, port=args.port, as_json=args.json)
        data = _read_input(args.file)
    except OSError as error:
        _complain(f"cannot read {args.file}: {error.strerror or error}")
        return EXIT_FAILED
    # The whole input is already in memory, so the payload limit protects nothing here;
    # raising it to the input size lets a size field that overruns the input be reported
    # as the truncation it is.
    annotation = annotate_stream(
        data, expect_version=args.expect_version, max_payload_size=max(len(data), DEFAULT_MAX_PAYLOAD_SIZE)
    )
    trace, bad = read_conversation([(0.0, OUT, data)], expect_version=args.expect_version)
    found = findings(trace, undecodable=bad, one_sided=True)
    out = sys.stdout
    if args.json:
        for message in annotation.messages:
            # ASCII-only JSON survives any terminal encoding and stays valid JSON.
            out.write(json.dumps(to_dict(message)) + "\n")
        out.write(json.dumps({"findings": [finding.to_dict() for finding in found]}) + "\n")
    else:
        _tolerate_any_text(out)
        out.write(format_annotation(annotation))
        out.write("\n" + format_findings(found))
    out.flush()
    if annotation.error is not None:
        _complain(f"invalid input at {annotation.error.describe()}")
        return EXIT_INVALID_INPUT
    return EXIT_OK


def _open_capture(name: str):
    """The file opened for streaming when it is a pcap or pcapng capture (by its magic number), else None."""
    source = sys.stdin.buffer if name == "-" else open(name, "rb")
    head = source.peek(4)[:4] if hasattr(source, "peek") else b""
    if capture_format(head) is not None:
        return source
    if source is not sys.stdin.buffer:
        source.close()
    return None


# -- decode CAPTURE: the Gotalk messages of a pcap or pcapng file ----------------------
# The same report as for raw bytes, one message at a time as the capture is streamed,
# each with its connection, direction and time. Notes (connections skipped, captures
# starting mid-connection, messages cut short) go to stderr; exit 0, or 2 where the
# file cannot be read on or a Gotalk stream held invalid bytes; never a traceback.


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def decode_capture(source: BinaryIO, name: str, *, port: int | None, as_json: bool) -> int:
    """Print every Gotalk message in the capture ``source``; return the exit status."""
    out = sys.stdout
    if not as_json:
        _tolerate_any_text(out)
    status = EXIT_OK
    messages = 0
    connections: set[int] = set()
    traces: dict[int, tuple[Trace, str]] = {}  # per connection: its messages, for the findings
    invalid: dict[int, list[Undecodable]] = {}  # per connection: its bytes that are not Gotalk
    try:
        for event in read_capture(source, port=port):
            if isinstance(event, CaptureNote):
                if event.violation is not None and event.connection is not None:
                    invalid.setdefault(event.connection.number, []).append(
                        Undecodable(OUT if event.direction == "client" else IN, event.violation)
                    )
                out.flush()
                _complain(event.text)
                if event.error:
                    status = EXIT_INVALID_INPUT
                continue
            messages += 1
            connections.add(event.connection.number)
            annotated = annotate_frame(event.frame.header, event.frame.message, offset=event.frame.offset)
            connection = event.connection
            held = traces.get(connection.number)
            if held is None:
                held = traces[connection.number] = (Trace(cap=None, sides=CAPTURE_SIDES), f"{connection.client_text} -> {connection.server_text}")
                held[0].started_wall = event.time
            held[0].record(OUT if event.direction == "client" else IN, event.frame.header, event.frame.message, at=max(0.0, event.time - held[0].started_wall))
            if as_json:
                record = to_dict(annotated)
                record["connection"] = {"number": connection.number, "client": connection.client_text, "server": connection.server_text}
                record["direction"] = event.direction
                record["time"] = round(event.time, 6)
                out.write(json.dumps(record) + "\n")
            else:
                towards = f"{connection.client_text} -> {connection.server_text}" if event.direction == "client" else f"{connection.server_text} -> {connection.client_text}"
                out.write(f"connection {connection.number}, {event.direction} ({towards}), {_when(event.time)}\n")
                out.write(format_message(annotated) + "\n")
    except CaptureError as error:
        out.flush()
        _complain(f"{name}: cannot read the capture on at {error}")
        return EXIT_INVALID_INPUT
    except BrokenPipeError:
        raise  # the reader went away: cli.main ends quietly
    except OSError as error:
        out.flush()
        _complain(f"cannot read {name}: {error.strerror or error}")
        return 1
    _write_capture_findings(out, traces, invalid, as_json)
    out.flush()
    if not connections:
        _complain(f"{name}: no Gotalk connection found" + ("" if port else " (name its port with --port if the handshake was not captured)"))
    return status


def _write_capture_findings(out: TextIO, traces: dict[int, tuple[Trace, str]], invalid: dict[int, list[Undecodable]], as_json: bool) -> None:
    """Expert Info per connection: a "findings:" block each, or one JSON line of them all."""
    if as_json:
        listed = []
        for number, (trace, _) in traces.items():
            listed += [dict(finding.to_dict(), connection=number) for finding in findings(trace, undecodable=invalid.get(number, ()))]
        out.write(json.dumps({"findings": listed}) + "\n")
        return
    for number, (trace, endpoints) in traces.items():
        found = findings(trace, undecodable=invalid.get(number, ()))
        out.write("\n" + format_findings(found, f"findings, connection {number} ({endpoints})"))


def _read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    with open(name, "rb") as source:
        return source.read()


# -- the human-readable format ----------------------------------------------


def _cut_display(raw: bytes) -> str:
    """``show_bytes(raw)``, with the middle left out (and counted) when it would be long."""
    pieces = [show_bytes(raw[i : i + 1]) for i in range(len(raw))]
    if sum(map(len, pieces)) <= RAW_HEAD_CHARS + RAW_TAIL_CHARS + 4:
        return "".join(pieces)
    head, used = 0, 0
    while used + len(pieces[head]) <= RAW_HEAD_CHARS:
        used += len(pieces[head])
        head += 1
    tail, used = 0, 0
    while used + len(pieces[-1 - tail]) <= RAW_TAIL_CHARS:
        used += len(pieces[-1 - tail])
        tail += 1
    hidden = len(pieces) - head - tail
    return "".join(pieces[:head]) + f" …{hidden} bytes hidden… " + "".join(pieces[len(pieces) - tail :])


def _value_display(field: Field) -> str:
    if field.cut_short:
        return "(cut short)"
    if field.name == "payload":
        return field.hint or ""
    if isinstance(field.value, bytes):
        return _cut_display(field.value)
    if isinstance(field.value, str):
        return _cut_display(field.value.encode("utf-8")) if not field.value.isprintable() else field.value
    return str(field.value)


def _rows(fields: list[Field]) -> list[tuple[str, str, str, str, str]]:
    return [
        (
            f"[{field.start}:{field.end}]",
            _cut_display(field.raw) if field.raw else "(none)",
            field.name,
            _value_display(field),
            field.meaning,
        )
        for field in fields
    ]


def _table(rows: list[tuple[str, ...]]) -> str:
    """Rows as aligned columns; the last column (the meaning) is left ragged."""
    if not rows:
        return ""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append("  " + "  ".join(cells + [row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def format_message(annotated: AnnotatedMessage) -> str:
    """One block: a header line (range, kind, length, summary), then one row per field."""
    size = f"{annotated.length} byte" + ("" if annotated.length == 1 else "s")
    header = f"[{annotated.offset}:{annotated.end}] {annotated.kind}, {size}: {annotated.summary}\n"
    return header + _table(_rows(annotated.fields))


def format_annotation(annotation: Annotation) -> str:
    """Every message as a block, blank lines between; then the unreadable bytes, if any."""
    blocks = [format_message(message) for message in annotation.messages]
    error = annotation.error
    if error is not None:
        where = f"[{annotation.trailing_offset}:{annotation.size}]"
        header = f"{where} not a whole message: reading stopped at byte {error.offset}\n"
        rows = _rows(annotation.unfinished)
        valid_end = annotation.unfinished[-1].end if annotation.unfinished else annotation.trailing_offset
        unread = annotation.trailing[valid_end - annotation.trailing_offset :]
        shown = _cut_display(unread) if unread else "(end of input)"
        rows.append((f"[{valid_end}:{annotation.size}]", shown, "unread", "", error.describe()))
        blocks.append(header + _table(rows))
    return "\n".join(blocks)


# -- plumbing ---------------------------------------------------------------


def _complain(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr)


def _tolerate_any_text(stream: TextIO) -> None:
    # Names and meanings may hold characters the terminal's encoding lacks; show them
    # escaped rather than dying halfway through a conversation.
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


#: Every subcommand, as the function that adds its parser. Each one calls
#: ``parser.set_defaults(run=cmd_...)``; serve, request and tap live in cli_network,
#: check in checker/command.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_decode_parser,
    cli_network.add_parsers,
    wireshark.add_parser,
    add_check_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Learn and experiment with the Gotalk protocol: decode bytes, serve and call the demo operations.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_parser in COMMANDS:
        add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader (e.g. `head`) has gone: stop quietly. Point stdout at /dev/null so
        # that the interpreter's final flush does not raise the same error again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``gotalk-lab decode CAPTURE``: the Gotalk messages of a pcap or pcapng file, as text or JSON lines.

The same report as for raw bytes (``cli.format_message``, ``annotate.to_dict``), one
message at a time as the capture is streamed, each with its connection, direction and
time. Notes (connections skipped, captures starting mid-connection, messages cut short)
go to stderr. Exit 0, or 2 where the file cannot be read on or a Gotalk stream held
invalid bytes; never a traceback.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import BinaryIO

from ..annotate import annotate_frame, to_dict
from .pcapfile import CaptureError
from .reader import CaptureNote, CapturedMessage, read_capture


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def decode_capture(source: BinaryIO, name: str, *, port: int | None, as_json: bool) -> int:
    """Print every Gotalk message in the capture ``source``; return the exit status."""
    from ..cli import EXIT_INVALID_INPUT, EXIT_OK, _complain, _tolerate_any_text, format_message

    out = sys.stdout
    if not as_json:
        _tolerate_any_text(out)
    status = EXIT_OK
    messages = 0
    connections: set[int] = set()
    try:
        for event in read_capture(source, port=port):
            if isinstance(event, CaptureNote):
                out.flush()
                _complain(event.text)
                if event.error:
                    status = EXIT_INVALID_INPUT
                continue
            messages += 1
            connections.add(event.connection.number)
            annotated = annotate_frame(event.frame.header, event.frame.message, offset=event.frame.offset)
            connection = event.connection
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
    out.flush()
    if not connections:
        _complain(f"{name}: no Gotalk connection found" + ("" if port else " (name its port with --port if the handshake was not captured)"))
    return status

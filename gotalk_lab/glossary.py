"""The words the tutorials and widgets use, each defined once.

``TERMS`` is the glossary: notebook 01 shows it (``gl.glossary()``), and
``docs/glossary.md`` is written from it (``python -m gotalk_lab.glossary``), so the
page and the notebook cannot drift apart. A definition uses only words defined
here or plain English.
"""

from __future__ import annotations

import sys
from html import escape

#: term -> definition, in the order a reader meets them.
TERMS: dict[str, str] = {
    "peer": "One end of a Gotalk connection. Both ends are peers: either may send requests, and either answers the other's.",
    "version": "The two hex digits (`01`) each peer writes first, before any message. A peer that reads another version closes the connection (this kit and gotalk.js first send protocol error 1; the Go peer just closes).",
    "message": "One unit of the protocol: a type letter, fixed-width fields, and for most types a payload. There are ten types (r s p R S E e n h f), plus the version.",
    "header": "The part of a message before its payload: the type letter and the fixed-width fields (request ID, sizes, operation or name, wait, load, time, code).",
    "payload": "The bytes a message carries after its header, as many as its payload size says (8 hex digits). The protocol never looks inside: JSON, text or binary are all just bytes.",
    "frame": "One message as it crossed the wire: its exact bytes, which way it went and when. A row of a trace, an arrow on a timeline.",
    "request ID": "Four bytes the requester chooses to tell its requests apart; every answer carries the ID of the request it answers. A peer only matches IDs, never reads them as numbers: each requester numbers its own requests.",
    "operation": "The name a request calls (`echo`, `greet`), sized by 3 hex digits. The responder runs the handler registered under that name.",
    "requester": "The peer that sends a request and waits for its answer. On the same connection, each peer can be requester and responder at once.",
    "responder": "The peer that answers a request: with a result, an error result, or a retry result when it is busy.",
    "result": "The answer to a request: `R` for a single request, `S` parts for a stream; `E` is an error result, `e` a retry result (wait, then send again).",
    "exchange": "A request and everything that answers it, from its first frame to its last: one bar on the timeline. Exchanges side by side were in flight at once (multiplexing).",
    "stream": "A request or a result sent in parts: a stream request is `s` then `p` parts, a stream result is `S` parts; each ends with a part whose payload is empty.",
    "part": "One message of a stream (`p` for the request, `S` for the result). An empty part (payload size 00000000) ends its stream.",
    "notification": "A one-way message (`n`) with a name and a payload. Nobody answers it; a peer that does not know the name ignores it.",
    "heartbeat": "A message (`h`) a peer may send at an interval to show it is alive: its load (4 hex digits, 0 idle to ffff overloaded) and its Unix time (8 hex digits).",
    "protocol error": "A message (`f`) with a code (1 unsupported version, 2 invalid message, 3 timeout) sent just before a peer closes the connection because of bytes it could not read.",
    "trace": "Everything one peer wrote and read, frame by frame, with times: `peer.trace`. It can be saved, loaded, replayed and shown.",
    "timeline": "The live picture of a trace: two lanes, time flowing down, one arrow per frame and one bar per exchange (`peer.timeline()`).",
    "connection": "The protocol state of one side, without any network (`gl.Connection`): bytes in, events out; calls in, bytes out. Every peer has one.",
}


def markdown() -> str:
    """The glossary as the Markdown page ``docs/glossary.md``."""
    lines = [
        "# Glossary",
        "",
        "The words the tutorials and widgets use, each defined once. Written from",
        "`gotalk_lab/glossary.py` (`python -m gotalk_lab.glossary > docs/glossary.md`);",
        "notebook 01 shows the same list with `gl.glossary()`.",
        "",
    ]
    lines += [f"- **{term}**: {definition}" for term, definition in TERMS.items()]
    return "\n".join(lines) + "\n"


class Glossary:
    """The glossary as a notebook shows it (``gl.glossary()``); ``glossary["exchange"]`` is one definition."""

    def __getitem__(self, term: str) -> str:
        return TERMS[term]

    def __repr__(self) -> str:
        return "\n".join(f"{term}: {definition}" for term, definition in TERMS.items())

    def _repr_html_(self) -> str:
        rows = "".join(
            f'<tr><th style="text-align:left;vertical-align:top;padding:2px 10px 2px 0;white-space:nowrap">{escape(term)}</th>'
            f'<td style="text-align:left;padding:2px 0">{_code_spans(definition)}</td></tr>'
            for term, definition in TERMS.items()
        )
        return f'<table class="gl-glossary" style="border-collapse:collapse">{rows}</table>'


def _code_spans(text: str) -> str:
    parts = escape(text).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def glossary() -> Glossary:
    """The words of the tutorials, each defined once (``TERMS``)."""
    return Glossary()


if __name__ == "__main__":
    sys.stdout.write(markdown())

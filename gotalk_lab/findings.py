"""Expert Info for Gotalk conversations: rules run over a trace, each finding a severity, frames and one sentence.

``findings(trace)`` is a pure function of the trace's events (no I/O, no clock of its
own): it works on a live peer's trace, a tap's, a loaded recording or a capture's, and
a live trace can simply be asked again. Severities follow Wireshark's Expert Info:
``error`` (the conversation breaks here), ``warning`` (it will break, or a peer will
misbehave), ``note`` (worth knowing). Each rule is a small function in ``RULES``.

Bytes that could not be decoded never become trace events; whoever read them (the
``decode`` command, a transcript loader) passes them as ``undecodable``
(``Undecodable(direction, error)``, ``error`` the decoder's ``ProtocolViolation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Sequence

from .decoder import DEFAULT_MAX_PAYLOAD_SIZE
from .errors import ProtocolViolation
from .trace import IN, OUT, Trace, TraceEvent
from .wire import (
    PROTOCOL_VERSION,
    ErrorResult,
    Heartbeat,
    Notification,
    ProtocolError,
    ProtocolErrorCode,
    ProtocolVersion,
    RetryResult,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
)

ERROR = "error"  #: the conversation breaks here
WARNING = "warning"  #: a peer will (or may) misbehave
NOTE = "note"  #: worth knowing
SEVERITIES = (ERROR, WARNING, NOTE)

GOTALK_JS = "gotalk.js"
#: A Go server's default read timeout (DefaultLimits): silent this long, a client is dropped.
GO_READ_TIMEOUT = 30.0
#: Seconds after which a request with no answer at all is reported.
DEFAULT_UNANSWERED_AFTER = 10.0

_OTHER = {OUT: IN, IN: OUT}
_BASE36 = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyz")
#: What gotalk.js understands from the other side; any other type makes it close (code 4002).
_GOTALK_JS_READS = (SingleRequest, SingleResult, StreamResult, ErrorResult, Notification, Heartbeat)


@dataclass(frozen=True)
class Finding:
    """One thing worth telling about a conversation."""

    rule: str  #: the rule's id, e.g. "request-id-reused"
    severity: str  #: ERROR, WARNING or NOTE
    frames: tuple[int, ...]  #: the trace event indices concerned (may be empty: bytes that never made a frame)
    sentence: str  #: one sentence of explanation

    def to_dict(self) -> dict:
        return {"rule": self.rule, "severity": self.severity, "frames": list(self.frames), "sentence": self.sentence}

    def __str__(self) -> str:
        frames = ", ".join(f"#{index}" for index in self.frames)
        return f"{self.severity}: {self.sentence}" + (f" [{self.rule}; frames {frames}]" if frames else f" [{self.rule}]")


@dataclass(frozen=True)
class Undecodable:
    """Bytes one side wrote that did not decode (so they are in no trace event)."""

    direction: str  #: OUT or IN, as in the trace
    error: ProtocolViolation
    time: float = 0.0


@dataclass
class Context:
    """What the rules read: the events, the options, and one pass of request bookkeeping."""

    events: list[TraceEvent]
    sides: tuple[str, str]
    now: float
    unanswered_after: float
    read_timeout: float
    max_payload_size: int
    gotalk_js: frozenset[str]  #: the directions written by a gotalk.js peer
    one_sided: bool
    complete: bool  #: no frames were dropped from the front
    undecodable: tuple[Undecodable, ...]
    reused: list[tuple[int, int]] = field(default_factory=list)  #: (earlier request, reuse)
    unknown: list[TraceEvent] = field(default_factory=list)  #: parts and answers of no open exchange
    unanswered: list[TraceEvent] = field(default_factory=list)  #: requests with no answer at all, still open
    requested: set[str] = field(default_factory=set)  #: directions that sent a request

    def side(self, direction: str) -> str:
        return self.sides[0] if direction == OUT else self.sides[1]


Rule = Callable[[Context], Iterable[Finding]]
#: Every rule, by id, in the order findings are reported.
RULES: dict[str, Rule] = {}


def rule(rule_id: str) -> Callable[[Rule], Rule]:
    def register(function: Rule) -> Rule:
        RULES[rule_id] = function
        function.rule_id = rule_id  # type: ignore[attr-defined]
        return function

    return register


def findings(
    trace: Trace | Sequence[TraceEvent],
    *,
    unanswered_after: float = DEFAULT_UNANSWERED_AFTER,
    read_timeout: float = GO_READ_TIMEOUT,
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
    peer_kind: str | None = None,
    undecodable: Iterable[Undecodable] = (),
    now: float | None = None,
    one_sided: bool = False,
    rules: Iterable[str] | None = None,
) -> list[Finding]:
    """Run the rules over ``trace`` and return what they found, in rule order.

    ``unanswered_after``: a request with no answer at all that long (by the trace's own
    clock: ``now``, default the time of its last event) is reported. ``read_timeout``:
    a side that writes nothing, not even a heartbeat, for longer is reported (a Go
    server drops it). ``max_payload_size``: the receiver's limit for a declared size.
    ``one_sided``: the trace holds one side's bytes only (``decode`` of a raw stream), so
    answers are not matched with requests.

    ``peer_kind="gotalk.js"`` says the other side (the writer of IN frames) is the
    browser library gotalk.js. Without it a side counts as gotalk.js only when the
    trace shows it: it sent a stream request whose ID starts with ``!`` (gotalk.js's
    ``!000``, ``!001`` …) and all its request IDs are base-36 ASCII. Base-36 IDs alone are
    not enough (test clients use ``0001`` too), and a trace does not know its transport:
    for a WebSocket to a browser, say so with ``peer_kind``.
    """
    events = list(trace)
    sides = trace.sides if isinstance(trace, Trace) else ("this side", "other side")
    complete = not (isinstance(trace, Trace) and trace.dropped)
    if now is None:
        now = events[-1].time if events else 0.0
    js = set(_looks_like_gotalk_js(events))
    if peer_kind == GOTALK_JS:
        js.add(IN)
    elif peer_kind is not None:
        raise ValueError(f"peer_kind is None or {GOTALK_JS!r}, not {peer_kind!r}")
    context = Context(
        events, tuple(sides), now, unanswered_after, read_timeout, max_payload_size, frozenset(js), one_sided, complete, tuple(undecodable)
    )
    _bookkeep(context)
    chosen = RULES if rules is None else {name: RULES[name] for name in rules}
    found: list[Finding] = []
    for check in chosen.values():
        for finding in check(context):
            sentence = finding.sentence[:1].upper() + finding.sentence[1:]  # (it starts with a side's name)
            found.append(finding if sentence == finding.sentence else replace(finding, sentence=sentence))
    return found


def _looks_like_gotalk_js(events: list[TraceEvent]) -> Iterable[str]:
    for direction in (OUT, IN):
        ids = [e.message.request_id for e in events if e.direction == direction and type(e.message) in (SingleRequest, StreamRequest)]
        stream_ids = [e.message.request_id for e in events if e.direction == direction and type(e.message) is StreamRequest]
        if not any(i.startswith(b"!") for i in stream_ids):
            continue
        if all(i.startswith(b"!") or all(b in _BASE36 for b in i) for i in ids):
            yield direction


def _bookkeep(context: Context) -> None:
    """One pass: which requests are open, which IDs are reused in flight, what answers nothing."""
    # By requester direction, request ID: [first event, kind, retrying, answered]
    open_: dict[str, dict[bytes, list]] = {OUT: {}, IN: {}}
    for event in context.events:
        message = event.message
        cls = type(message)
        direction = event.direction
        if cls is SingleRequest or cls is StreamRequest:
            context.requested.add(direction)
            opened = open_[direction]
            state = opened.get(message.request_id)
            if state is not None and state[2]:  # a retry after a RetryResult
                state[2] = False
                continue
            if state is not None:
                context.reused.append((state[0].index, event.index))
            opened[message.request_id] = [event, "single" if cls is SingleRequest else "stream", False, False]
        elif cls is StreamRequestPart:
            state = open_[direction].get(message.request_id)
            if state is None or state[1] != "stream":
                context.unknown.append(event)
        elif cls in (SingleResult, StreamResult, ErrorResult, RetryResult):
            opened = open_[_OTHER[direction]]
            state = opened.get(message.request_id)
            if state is None:
                context.unknown.append(event)
                continue
            state[3] = True
            if cls is RetryResult:
                state[2] = True
            elif cls is not StreamResult or not message.payload:
                del opened[message.request_id]
    for opened in open_.values():
        for first, _kind, _retrying, answered in opened.values():
            if not answered:
                context.unanswered.append(first)


def _id(request_id: bytes) -> str:
    """A request ID as the timeline shows it: printable ASCII as is, other bytes as \\xNN."""
    return '"' + "".join(chr(b) if 32 <= b < 127 and b != 34 else f"\\x{b:02x}" for b in request_id) + '"'


def _name(event: TraceEvent) -> str:
    return type(event.message).__name__


# -- the rules -----------------------------------------------------------------


@rule("gotalk-js-unsupported")
def _gotalk_js_unsupported(context: Context) -> Iterable[Finding]:
    for event in context.events:
        receiver = _OTHER[event.direction]
        if receiver in context.gotalk_js and not isinstance(event.message, (ProtocolVersion, ProtocolError, *_GOTALK_JS_READS)):
            yield Finding(
                "gotalk-js-unsupported",
                ERROR,
                (event.index,),
                f"{context.side(event.direction)} sent a {_name(event)} to a gotalk.js peer, which understands only r, R, S, E, n and h: "
                "it answers f00000002 and closes the WebSocket (code 4002).",
            )


@rule("request-unanswered")
def _request_unanswered(context: Context) -> Iterable[Finding]:
    if context.one_sided:
        return
    for event in context.unanswered:
        waited = context.now - event.time
        if waited > context.unanswered_after:
            yield Finding(
                "request-unanswered",
                WARNING,
                (event.index,),
                f"{context.side(event.direction)}'s request {event.message.operation!r} has had no answer for {waited:.1f} s "
                f"(more than {context.unanswered_after:g} s).",
            )


@rule("request-id-reused")
def _request_id_reused(context: Context) -> Iterable[Finding]:
    events = {e.index: e for e in context.events}
    for earlier, later in context.reused:
        event = events[later]
        yield Finding(
            "request-id-reused",
            ERROR,
            (earlier, later),
            f"{context.side(event.direction)} reused request ID {_id(event.message.request_id)} while the request #{earlier} "
            "with that ID was still in flight: no answer can be told apart any more.",
        )


@rule("unknown-exchange")
def _unknown_exchange(context: Context) -> Iterable[Finding]:
    if not context.complete:
        return  # the requests may have been dropped at the cap
    for event in context.unknown:
        if type(event.message) is StreamRequestPart:
            yield Finding(
                "unknown-exchange",
                ERROR,
                (event.index,),
                f"{context.side(event.direction)} sent a stream part for ID {_id(event.message.request_id)}, a stream it never "
                "started: the Go peer closes the connection.",
            )
        elif not context.one_sided and _OTHER[event.direction] in context.requested:
            yield Finding(
                "unknown-exchange",
                ERROR,
                (event.index,),
                f"{context.side(event.direction)} sent a {_name(event)} for ID {_id(event.message.request_id)}, "
                "which matches no request in flight.",
            )


@rule("results-without-request")
def _results_without_request(context: Context) -> Iterable[Finding]:
    if context.one_sided or not context.complete:
        return
    for direction in (OUT, IN):
        if _OTHER[direction] in context.requested:
            continue
        frames = tuple(e.index for e in context.unknown if e.direction == direction and type(e.message) is not StreamRequestPart)
        if frames:
            yield Finding(
                "results-without-request",
                ERROR,
                frames,
                f"{context.side(direction)} sent {len(frames)} result(s) on a connection where "
                f"{context.side(_OTHER[direction])} sent no request at all.",
            )


@rule("silent-connection")
def _silent_connection(context: Context) -> Iterable[Finding]:
    if context.one_sided:
        return
    for direction in (OUT, IN):
        previous: TraceEvent | None = None
        for event in context.events:
            if event.direction != direction:
                continue
            if previous is not None and event.time - previous.time > context.read_timeout:
                yield Finding(
                    "silent-connection",
                    WARNING,
                    (previous.index, event.index),
                    f"{context.side(direction)} wrote nothing, not even a heartbeat, for {event.time - previous.time:.1f} s: "
                    f"a Go server (read timeout {context.read_timeout:g} s) would have closed the connection.",
                )
            previous = event


@rule("size-above-limit")
def _size_above_limit(context: Context) -> Iterable[Finding]:
    limit = context.max_payload_size
    for event in context.events:
        size = len(getattr(event.message, "payload", b""))
        if size > limit:
            yield Finding(
                "size-above-limit",
                WARNING,
                (event.index,),
                f"{context.side(event.direction)} declared a {size}-byte payload, above the receiver's limit of {limit} bytes.",
            )
    for bad in context.undecodable:
        if bad.error.field == "payload_size" and "limit" in bad.error.expected:
            yield Finding(
                "size-above-limit", ERROR, (), f"{context.side(bad.direction)} declared a payload size above the limit ({bad.error.describe()})."
            )


@rule("unknown-message-type")
def _unknown_message_type(context: Context) -> Iterable[Finding]:
    for bad in context.undecodable:
        if bad.error.field == "type":
            yield Finding(
                "unknown-message-type",
                ERROR,
                (),
                f"{context.side(bad.direction)} wrote an unknown message type {bad.error.found} (at byte {bad.error.offset}): "
                "the receiver answers f00000002 and closes.",
            )


@rule("version-mismatch")
def _version_mismatch(context: Context) -> Iterable[Finding]:
    for event in context.events:
        if type(event.message) is ProtocolVersion and event.message.version != PROTOCOL_VERSION:
            yield Finding(
                "version-mismatch",
                ERROR,
                (event.index,),
                f"{context.side(event.direction)} speaks protocol version {event.message.version}, not {PROTOCOL_VERSION}: "
                "the Go peer closes without a word, gotalk.js writes f00000001 first.",
            )
    for bad in context.undecodable:
        if bad.error.field == "version":
            yield Finding(
                "version-mismatch",
                ERROR,
                (),
                f"{context.side(bad.direction)} did not start with protocol version \"01\" ({bad.error.describe()}).",
            )


@rule("invalid-bytes")
def _invalid_bytes(context: Context) -> Iterable[Finding]:
    for bad in context.undecodable:
        if bad.error.field in ("type", "version") or (bad.error.field == "payload_size" and "limit" in bad.error.expected):
            continue  # told by the rules above
        yield Finding(
            "invalid-bytes",
            ERROR,
            (),
            f"{context.side(bad.direction)} wrote bytes that are not Gotalk ({bad.error.describe()}): the Go peer closes the connection.",
        )


@rule("protocol-error")
def _protocol_error(context: Context) -> Iterable[Finding]:
    for event in context.events:
        if type(event.message) is ProtocolError:
            code = event.message.code
            try:
                meaning = ProtocolErrorCode(code).name.lower().replace("_", " ")
            except ValueError:
                meaning = "an unknown code"
            yield Finding(
                "protocol-error",
                ERROR,
                (event.index,),
                f"{context.side(event.direction)} sent ProtocolError {code} ({meaning}) and is closing the connection.",
            )


# -- for the timeline and tables --------------------------------------------------

SYMBOLS = {ERROR: "✖", WARNING: "⚠", NOTE: "ℹ"}


def markers(found: Iterable[Finding]) -> dict[int, dict]:
    """Per frame index: the worst severity, its symbol and the sentences (for a timeline badge)."""
    out: dict[int, dict] = {}
    for finding in found:
        for index in finding.frames:
            marker = out.setdefault(index, {"severity": NOTE, "symbol": SYMBOLS[NOTE], "text": []})
            if SEVERITIES.index(finding.severity) < SEVERITIES.index(marker["severity"]):
                marker["severity"] = finding.severity
                marker["symbol"] = SYMBOLS[finding.severity]
            marker["text"].append(finding.sentence)
    return out


def format_findings(found: Sequence[Finding], title: str = "findings") -> str:
    """A text section: a title line, then one line per finding (or "none")."""
    if not found:
        return f"{title}: none\n"
    lines = [f"{title}: {len(found)}"] + [f"  {finding}" for finding in found]
    return "\n".join(lines) + "\n"


def read_conversation(
    chunks: Iterable[tuple[float, str, bytes]],
    *,
    sides: tuple[str, str] = ("this side", "other side"),
    expect_version: bool = True,
    max_payload_size: int | None = None,
) -> tuple[Trace, list[Undecodable]]:
    """A trace of the bytes both sides wrote, given as ``(time, direction, bytes)`` chunks in order.

    Each direction is decoded on its own; where one holds bytes that are not Gotalk,
    that direction stops there and the error is returned as an ``Undecodable``, ready
    for ``findings(trace, undecodable=...)``. ``max_payload_size`` None: no limit (the
    bytes are all at hand; the size rule judges declared sizes).
    """
    from .decoder import Decoder  # (the decoder sits below the trace: no cycle)

    trace = Trace(cap=None, sides=sides)
    limit = max_payload_size if max_payload_size is not None else 0xFFFFFFFF
    decoders = {direction: Decoder(expect_version=expect_version, max_payload_size=limit) for direction in (OUT, IN)}
    bad: list[Undecodable] = []
    broken: set[str] = set()
    for at, direction, data in chunks:
        if direction in broken:
            continue
        try:
            frames = decoders[direction].feed_frames(data)
        except ProtocolViolation as error:
            frames = error.messages
            broken.add(direction)
            bad.append(Undecodable(direction, error, at))
        for frame in frames:
            trace.record(direction, frame.header, frame.message, at=at)
    return trace, bad

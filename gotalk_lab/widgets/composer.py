"""Composer: build any Gotalk message from a form, see its bytes explained, break it on purpose, send it.

This module owns the form (an ipywidgets composition around a ``FrameView``), the pure
helpers that turn form values into bytes (``parse_request_id``, ``parse_payload``,
``malform``) and the Send action, which hands the bytes as they are to a live ``Peer``
(``Peer.send_raw``). It explains bytes only through the FrameView (``annotate``) and
follows them to the receiving side only through ``unframed`` (what its decoder makes of
what this side wrote). It writes to a connection only when Send is pressed or
``send_to_peer()`` called.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import ipywidgets
from html import escape

from ..annotate import annotate, payload_text, show_bytes
from ..decoder import Waiting
from ..errors import ConnectionClosed, EncodeError
from ..palette import TEXT
from ..trace import OUT
from ..wire import (
    MAX_LOAD,
    MAX_UINT32,
    REQUEST_ID_SIZE,
    ErrorResult,
    Heartbeat,
    Message,
    Notification,
    ProtocolError,
    ProtocolVersion,
    RetryResult,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
    encode,
)
from .frames import FrameView, with_html_fallback
from .unframed import ReceiverModel, last_index, split_raw, unframed_log, waiting_words

__all__ = ["Composer", "MALFORMATIONS", "MESSAGE_CHOICES", "malform", "parse_payload", "parse_request_id"]

#: The message kinds the form builds: type code -> label. "01" is the version preamble.
MESSAGE_CHOICES: dict[str, str] = {
    "r": "r  SingleRequest",
    "s": "s  StreamRequest",
    "p": "p  StreamRequestPart",
    "R": "R  SingleResult",
    "S": "S  StreamResult",
    "E": "E  ErrorResult",
    "e": "e  RetryResult",
    "n": "n  Notification",
    "h": "h  Heartbeat",
    "f": "f  ProtocolError",
    "01": "01 protocol version",
}

#: Which form inputs each kind uses, in wire order.
INPUTS: dict[str, tuple[str, ...]] = {
    "r": ("request_id", "name", "payload"),
    "s": ("request_id", "name", "payload"),
    "p": ("request_id", "payload"),
    "R": ("request_id", "payload"),
    "S": ("request_id", "payload"),
    "E": ("request_id", "payload"),
    "e": ("request_id", "wait", "payload"),
    "n": ("name", "payload"),
    "h": ("load", "time"),
    "f": ("code",),
    "01": ("version",),
}

#: Ways to break the bytes on purpose: key -> label.
MALFORMATIONS: dict[str, str] = {
    "none": "none",
    "size+1": "payload size +1 (announces a byte that never comes)",
    "size-1": "payload size −1 (the last byte spills into the next message)",
    "bad-hex": "bad hex digit in a size field ('z')",
    "unknown-type": "unknown type byte ('x')",
    "truncated": "truncated (drop the last N bytes)",
}

#: The type byte written by the "unknown-type" malformation, as in conformance/10.
UNKNOWN_TYPE_BYTE = b"x"
#: The digit written by "bad-hex": not hexadecimal, as the 'z's of conformance/11.
BAD_HEX_DIGIT = b"z"
#: Where "bad-hex" strikes: the payload size if the message has one, else the first sized field.
_HEX_TARGETS = ("payload_size", "name_size", "load", "code", "version")

_SETTABLE = (
    "type", "request_id", "request_id_format", "name", "payload", "payload_format",
    "wait", "load", "time", "code", "version", "malformation", "drop",
)  # fmt: skip


def malformations_for(kind: str) -> list[str]:
    """The malformations that apply to ``kind`` (size changes need a payload, a type byte...)."""
    available = ["none"]
    if "payload" in INPUTS[kind]:
        available += ["size+1", "size-1"]
    available.append("bad-hex")
    if kind != "01":
        available.append("unknown-type")
    available.append("truncated")
    return available


def malform(good: bytes, malformation: str, *, drop: int = 1) -> bytes:
    """``good`` (one whole message, or the version "01") broken the way ``malformation`` says.

    "size+1"/"size-1" rewrite the payload size (modulo 2**32), "bad-hex" puts a 'z' in
    the last digit of the payload size (or the first sized field), "unknown-type" makes
    the type byte 'x', "truncated" drops the last ``drop`` bytes.
    """
    if malformation == "none":
        return good
    if malformation == "truncated":
        if drop < 1:
            raise ValueError(f"truncated: drop at least 1 byte, not {drop}")
        return good[: max(len(good) - drop, 0)]
    fields = {field.name: field for field in annotate(good).fields}
    if malformation in ("size+1", "size-1"):
        size_field = fields.get("payload_size")
        if size_field is None:
            raise ValueError(f"{malformation}: this message has no payload size")
        size = (size_field.value + (1 if malformation == "size+1" else -1)) % (MAX_UINT32 + 1)
        return good[: size_field.start] + b"%08x" % size + good[size_field.end :]
    if malformation == "bad-hex":
        target = next(fields[name] for name in _HEX_TARGETS if name in fields)
        return good[: target.end - 1] + BAD_HEX_DIGIT + good[target.end :]
    if malformation == "unknown-type":
        if "type" not in fields:
            raise ValueError("unknown-type: the version preamble has no type byte")
        return UNKNOWN_TYPE_BYTE + good[1:]
    raise ValueError(f"unknown malformation {malformation!r}; one of {', '.join(MALFORMATIONS)}")


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|\\)")


def parse_escaped(text: str) -> bytes:
    """Text with ``\\xNN`` escapes (and ``\\\\`` for a backslash) as bytes; the rest is UTF-8.

    The inverse of ``annotate.show_bytes``, so an ID shown as ``\\x01\\x00\\x00\\x00`` can be
    typed back exactly as shown.
    """
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(text):
        out += text[position : match.start()].encode("utf-8")
        escape_ = match.group(1)
        out += b"\\" if escape_ == "\\" else bytes([int(escape_[1:], 16)])
        position = match.end()
    rest = text[position:]
    if "\\" in rest:
        column = position + rest.index("\\") + 1
        raise ValueError(f"a lone '\\' at character {column}: write \\xNN for a byte, \\\\ for a backslash")
    return bytes(out + rest.encode("utf-8"))


def _parse_hex(text: str, what: str) -> bytes:
    digits = "".join(text.split())
    for position, char in enumerate(digits):
        if char not in "0123456789abcdefABCDEF":
            raise ValueError(f"{what}: {char!r} (hex digit {position + 1}) is not a hex digit")
    if len(digits) % 2:
        raise ValueError(f"{what}: {len(digits)} hex digits; a byte is two, so the count must be even")
    return bytes.fromhex(digits)


def parse_request_id(text: str, format: str = "text") -> bytes:
    """The 4 request-ID bytes from the form: text with \\xNN escapes, or hex digits."""
    raw = _parse_hex(text, "request ID") if format == "hex" else parse_escaped(text)
    if len(raw) != REQUEST_ID_SIZE:
        shown = raw.hex(" ") if format == "hex" else show_bytes(raw)
        raise ValueError(f"request ID must be exactly 4 bytes; '{shown}' is {len(raw)}")
    return raw


def parse_payload(text: str, format: str = "text") -> bytes:
    """Payload bytes from the form: UTF-8 text, JSON (checked, sent as typed) or hex digits."""
    if format == "hex":
        return _parse_hex(text, "payload")
    if format == "json" and text.strip():
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"payload is not JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None
    return text.encode("utf-8")


def _payload_for_form(payload: Any) -> tuple[str, str]:
    """(text, format) showing ``payload`` in the form: text when it reads as text, else hex."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        raw = bytes(payload)
        text = payload_text(raw)
        return (text, "text") if text is not None else (raw.hex(" "), "hex")
    if isinstance(payload, str):
        return payload, "text"
    return json.dumps(payload), "json"


class Composer(ipywidgets.VBox):
    """A form that builds any Gotalk message, shown live in a ``FrameView``.

    ``Composer(peer=None, **fields)``: with a live ``peer``, Send writes the bytes to it as
    they are (``Peer.send_raw``), malformed or not, and the status line reports what
    happened: who sent how many bytes to whom, what the receiving side's decoder makes of
    them (``waiting``: it holds part of a message and waits for more bytes, updated live
    as more are written), and the end of the connection, after which Send stays disabled.
    Bytes that are no whole frame are kept beside the trace (``unframed``), so that the
    peer's timelines show them. Drive it from code with ``set(...)`` (the same names as the form: ``type``,
    ``request_id``, ``request_id_format``, ``name``, ``payload``, ``payload_format``,
    ``wait``, ``load``, ``time``, ``code``, ``version``, ``malformation``, ``drop``).
    ``value`` is the bytes (None while the form has an error, see ``error``), ``message``
    the Message (None when malformed or invalid), ``frame_view`` the view of the bytes.
    """

    def __init__(self, peer=None, **fields: Any) -> None:
        self.peer = peer
        self._value: bytes | None = None
        self._message: Message | None = None
        self._error: str | None = None
        self._holding = False
        self._status = ""
        #: What the other side's decoder still waits for after the last send (a
        #: ``decoder.Waiting``), None when it waits for nothing or cannot be told.
        self.waiting: Waiting | None = None
        self._sent = ""  # what the last send did, for the status line
        self._waiting_words = ""  # what the other side makes of it
        self._closed_reason: str | None = None
        self._receiver: ReceiverModel | None = None
        self._receiver_scheduled = False
        self._stop_listening = None
        self._close_watch = None
        wide = ipywidgets.Layout(width="auto", flex="1 1 auto")
        style = {"description_width": "7em"}
        self.type_input = ipywidgets.Dropdown(
            options=[(label, code) for code, label in MESSAGE_CHOICES.items()], value="r",
            description="type", style=style, layout=ipywidgets.Layout(width="22em"),
        )  # fmt: skip
        self.request_id_input = ipywidgets.Text(value="0001", description="request ID", style=style, layout=ipywidgets.Layout(width="22em"))
        self.request_id_format = ipywidgets.ToggleButtons(
            options=[("text \\xNN", "text"), ("hex", "hex")], value="text",
            tooltips=["4 bytes as text; \\xNN for any byte", "4 bytes as 8 hex digits"],
            style={"button_width": "7.5em"},
        )  # fmt: skip
        self.name_input = ipywidgets.Text(value="echo", description="name", style=style, layout=ipywidgets.Layout(width="22em"))
        self.payload_input = ipywidgets.Textarea(value="hello", description="payload", rows=3, style=style, layout=wide)
        self.payload_format = ipywidgets.ToggleButtons(options=["text", "json", "hex"], value="text", style={"button_width": "4.5em"})
        numbers = {
            "wait": ("wait (ms)", MAX_UINT32, 0),
            "load": ("load", MAX_LOAD, 0),
            "time": ("time (Unix s)", MAX_UINT32, int(time.time())),
            "code": ("code", MAX_UINT32, 2),
            "version": ("version", 0xFF, 1),
        }
        self.number_inputs = {
            name: ipywidgets.BoundedIntText(value=value, min=0, max=maximum, description=label, style=style, layout=ipywidgets.Layout(width="16em"))
            for name, (label, maximum, value) in numbers.items()
        }
        self.malformation_input = ipywidgets.Dropdown(
            options=[(MALFORMATIONS[key], key) for key in malformations_for("r")], value="none",
            description="malformation", style=style, layout=ipywidgets.Layout(width="42em", max_width="100%"),
        )  # fmt: skip
        self.drop_input = ipywidgets.BoundedIntText(value=1, min=1, max=1 << 20, description="N", style={"description_width": "1.5em"}, layout=ipywidgets.Layout(width="8em"))
        self.form_error = ipywidgets.HTML()
        self.send_button = ipywidgets.Button(description="Send", icon="paper-plane", button_style="primary")
        self.status_line = ipywidgets.HTML()
        self.frame_view = FrameView(expect_version=False)

        self._rows = {
            "request_id": ipywidgets.HBox([self.request_id_input, self.request_id_format]),
            "name": self.name_input,
            "payload": ipywidgets.HBox([self.payload_input, self.payload_format], layout=ipywidgets.Layout(align_items="flex-start")),
            **self.number_inputs,
        }
        numbers_row = ipywidgets.HBox(list(self.number_inputs.values()), layout=ipywidgets.Layout(flex_flow="row wrap"))
        super().__init__(
            [
                self.type_input,
                self._rows["request_id"],
                self.name_input,
                self._rows["payload"],
                numbers_row,
                ipywidgets.HBox([self.malformation_input, self.drop_input]),
                self.form_error,
                ipywidgets.HBox([self.send_button, self.status_line], layout=ipywidgets.Layout(align_items="center")),
                self.frame_view,
            ]
        )
        self.add_class("gl-composer")
        for control in self._controls():
            control.observe(self._on_form_change, names="value")
        self.send_button.on_click(lambda _button: self.send_to_peer())
        if peer is None:
            self._set_status("no connection: Composer(peer=...) sends to a live peer", kind="note")
        self.set(**fields)
        if peer is not None:
            self._watch_close()  # Send goes grey, with the reason, once the connection ends

    # -- reading the form ---------------------------------------------------------

    def _controls(self) -> list[ipywidgets.Widget]:
        return [
            self.type_input, self.request_id_input, self.request_id_format, self.name_input,
            self.payload_input, self.payload_format, *self.number_inputs.values(),
            self.malformation_input, self.drop_input,
        ]  # fmt: skip

    @property
    def value(self) -> bytes | None:
        """The bytes Send writes; None while the form has an error (see ``error``)."""
        return self._value

    @property
    def message(self) -> Message | None:
        """The message built; None when a malformation is chosen or the form has an error."""
        return self._message

    @property
    def error(self) -> str | None:
        """Why the form cannot be turned into bytes, or None."""
        return self._error

    @property
    def status(self) -> str:
        """The status line as plain text (what Send did, or why it cannot)."""
        return self._status

    @property
    def kind(self) -> str:
        return self.type_input.value

    def _build_message(self) -> Message:
        kind = self.kind
        used = INPUTS[kind]
        request_id = parse_request_id(self.request_id_input.value, self.request_id_format.value) if "request_id" in used else b""
        payload = parse_payload(self.payload_input.value, self.payload_format.value) if "payload" in used else b""
        number = {name: control.value for name, control in self.number_inputs.items()}
        name = self.name_input.value
        if kind == "01":
            return ProtocolVersion(number["version"])
        if kind in ("r", "s"):
            return (SingleRequest if kind == "r" else StreamRequest)(request_id, name, payload)
        if kind in ("p", "R", "S", "E"):
            cls = {"p": StreamRequestPart, "R": SingleResult, "S": StreamResult, "E": ErrorResult}[kind]
            return cls(request_id, payload)
        if kind == "e":
            return RetryResult(request_id, number["wait"], payload)
        if kind == "n":
            return Notification(name, payload)
        if kind == "h":
            return Heartbeat(number["load"], number["time"])
        return ProtocolError(number["code"])

    def _on_form_change(self, change: dict) -> None:
        if change["owner"] is self.type_input:
            self._fit_to_type()
        if not self._holding:
            self._update()

    def _fit_to_type(self) -> None:
        """Show only the inputs the chosen type has; offer only the malformations that apply."""
        kind = self.kind
        for name, row in self._rows.items():
            row.layout.display = None if name in INPUTS[kind] else "none"
        available = malformations_for(kind)
        current = self.malformation_input.value
        if [key for _, key in self.malformation_input.options] == available:
            return
        holding, self._holding = self._holding, True  # new options fire changes: rebuild once, after
        try:
            self.malformation_input.options = [(MALFORMATIONS[key], key) for key in available]
            self.malformation_input.value = current if current in available else "none"
        finally:
            self._holding = holding

    def _update(self) -> None:
        """Rebuild the bytes from the form and show them."""
        self.drop_input.layout.visibility = "visible" if self.malformation_input.value == "truncated" else "hidden"
        try:
            message = self._build_message()
            good = encode(message)
            data = malform(good, self.malformation_input.value, drop=self.drop_input.value)
        except (ValueError, EncodeError) as error:
            self._value, self._message, self._error = None, None, str(error)
            self.form_error.value = f'<span style="color:{TEXT["bad"]}">✖ {escape(str(error))}</span>'
            self.frame_view.show(None, title="fix the form to see the bytes")
            self._fit_send_button()
            return
        malformation = self.malformation_input.value
        self._value, self._error = data, None
        self._message = message if malformation == "none" else None
        self.form_error.value = ""
        title = type(message).__name__
        if malformation != "none":
            title += f", malformed: {self._malformation_note(malformation)}"
        self.frame_view.show(data, expect_version=self.kind == "01", title=title)
        self._fit_send_button()

    def _malformation_note(self, malformation: str) -> str:
        if malformation == "truncated":
            drop = self.drop_input.value
            return f"last {drop} byte{'s' if drop != 1 else ''} dropped"
        return MALFORMATIONS[malformation].split(" (")[0]

    def _fit_send_button(self) -> None:
        closed = self._closed_reason
        self.send_button.disabled = self.peer is None or self._value is None or closed is not None
        self.send_button.tooltip = (
            "Composer(peer=...) sends to a live peer" if self.peer is None
            else f"the connection is closed ({closed}): nothing more can be sent on it" if closed is not None
            else "fix the form first" if self._value is None
            else "write these bytes to the connection as they are"
        )  # fmt: skip

    def set(self, **fields: Any) -> "Composer":
        """Fill in the form from code; the bytes are rebuilt once, at the end.

        ``request_id`` and ``payload`` take bytes (shown as text when they read as text,
        else as hex) or the form's text; ``payload`` also takes any JSON value (a dict...).
        """
        unknown = set(fields) - set(_SETTABLE)
        if unknown:
            raise TypeError(f"Composer.set() got unknown fields {sorted(unknown)}; known: {', '.join(_SETTABLE)}")
        if "type" in fields and fields["type"] not in MESSAGE_CHOICES:
            raise ValueError(f"type must be one of {' '.join(MESSAGE_CHOICES)}, not {fields['type']!r}")
        self._holding = True
        try:
            if "type" in fields:
                self.type_input.value = fields["type"]
                self._fit_to_type()
            if "request_id" in fields:
                request_id = fields["request_id"]
                if isinstance(request_id, (bytes, bytearray, memoryview)):
                    request_id = show_bytes(bytes(request_id))
                    self.request_id_format.value = "text"
                self.request_id_input.value = request_id
            if "request_id_format" in fields:
                self.request_id_format.value = fields["request_id_format"]
            if "name" in fields:
                self.name_input.value = fields["name"]
            if "payload" in fields:
                text, format = _payload_for_form(fields["payload"])
                self.payload_input.value, self.payload_format.value = text, format
            if "payload_format" in fields:
                self.payload_format.value = fields["payload_format"]
            for name in self.number_inputs:
                if name in fields:
                    self.number_inputs[name].value = fields[name]
            if "drop" in fields:
                self.drop_input.value = fields["drop"]
            if "malformation" in fields:
                malformation = fields["malformation"]
                if malformation not in malformations_for(self.kind):
                    raise ValueError(
                        f"malformation {malformation!r} does not apply to type {self.kind!r}; "
                        f"choose from {', '.join(malformations_for(self.kind))}"
                    )
                self.malformation_input.value = malformation
        finally:
            self._fit_to_type()
            self._holding = False
        self._update()
        return self

    # -- sending ------------------------------------------------------------------

    def _set_status(self, text: str, *, kind: str = "ok") -> None:
        self._status = text
        # The palette's text colours, as every view: JupyterLab's own success green is 4.1:1 on white.
        colour = {"ok": TEXT["ok"], "bad": TEXT["bad"]}.get(kind, TEXT["muted"])
        self.status_line.value = f'<span style="color:{colour}">{escape(text)}</span>'

    def _sides(self) -> tuple[str, str]:
        """Who sends (the peer, by name) and who receives, as the status line names them."""
        trace = self.peer.trace
        other = trace.sides[1] if trace is not None else "other side"
        return self.peer.name, "the other side" if other == "other side" else other

    def send_to_peer(self) -> asyncio.Future:
        """Write ``value`` to the peer as it is; returns a future done when it is written.

        Button callbacks run on the kernel's event loop, which is the peer's in a notebook;
        a peer living on another thread's loop (``gotalk_lab.sync``) is handed the work.
        """
        if self.peer is None:
            raise RuntimeError("this Composer has no peer: create it with Composer(peer=...)")
        if self._value is None:
            raise ValueError(f"nothing to send: {self._error}")
        return self._on_peer_loop(self._write(self._value))

    def _on_peer_loop(self, coroutine) -> asyncio.Future:
        loop = self.peer.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is running:
            return asyncio.ensure_future(coroutine)
        if loop.is_running():
            return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))
        coroutine.close()
        raise RuntimeError("the peer's event loop is not running")

    async def _write(self, data: bytes) -> bool:
        peer = self.peer
        if not peer.is_open:
            self._set_status(f"connection closed: {peer.close_reason or 'connection closed'}", kind="bad")
            self._fit_send_button()
            return False
        trace = peer.trace
        frames, rest, problem = split_raw(data)
        if trace is not None and rest < len(data) and peer.transport is not None:
            # Noted before the write: the other side's answer (an f, say) is filed after it.
            unframed_log(trace).add(trace, last_index(trace) + len(frames), OUT, data[rest:], problem)
        try:
            await peer.send_raw(data)
        except ConnectionClosed as closed:
            self._set_status(f"connection closed: {closed.reason}", kind="bad")
            self._fit_send_button()
            return False
        sender, receiver = self._sides()
        self._sent = f"sent {len(data)} byte{'s' if len(data) != 1 else ''} from {sender} to {receiver}"
        self._follow_receiver()
        return True

    # -- what the receiver makes of it ----------------------------------------------

    def _follow_receiver(self) -> None:
        """Say what the other side's decoder now holds; keep saying it while it waits."""
        trace = self.peer.trace
        if trace is None:
            self._show_sent()
            return
        if self._receiver is None:
            self._receiver = ReceiverModel(trace, max_payload_size=self.peer.max_payload_size)
        self._update_receiver()

    def _update_receiver(self) -> None:
        self._receiver_scheduled = False
        receiver = self._receiver
        waiting = receiver.catch_up()
        _, name = self._sides()
        if receiver.lost:
            self._waiting_words = ""
        elif receiver.violation is not None:
            self._waiting_words = f"{name} cannot read it: {receiver.violation.describe()}"
        elif waiting.needed:
            self._waiting_words = (
                f"{name} holds {waiting.held} byte{'s' if waiting.held != 1 else ''} of an unfinished message "
                f"and is waiting for {waiting_words(waiting)}"
            )
        else:
            self._waiting_words = ""
        self.waiting = None if receiver.lost or receiver.violation is not None or not waiting.needed else waiting
        # Listen for more of this side's bytes only while the other side waits for some.
        if self.waiting is not None and self._closed_reason is None and self._stop_listening is None:
            trace, log = receiver.trace, receiver.log
            stops = [trace.subscribe(self._on_more_written), log.subscribe(self._on_more_written)]
            self._stop_listening = lambda: [stop() for stop in stops]
        elif self.waiting is None and self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        self._show_sent()

    def _on_more_written(self, item: Any) -> None:
        # Called from the peer's hot path (a trace listener): only schedule the work.
        if getattr(item, "direction", OUT) != OUT or self._receiver_scheduled:
            return
        self._receiver_scheduled = True
        self.peer.loop.call_soon_threadsafe(self._update_receiver)

    def _show_sent(self) -> None:
        parts = [part for part in (self._sent, self._waiting_words) if part]
        if self._closed_reason is not None:
            parts.append(f"connection closed: {self._closed_reason}")
        kind = "bad" if self._closed_reason is not None or self._receiver_failed() else "note" if self.waiting else "ok"
        self._set_status("; ".join(parts), kind=kind)

    def _receiver_failed(self) -> bool:
        return self._receiver is not None and self._receiver.violation is not None

    # -- the end of the connection ------------------------------------------------------

    def _watch_close(self) -> None:
        if not self.peer.is_open:
            self._on_closed()
            return
        try:
            self._close_watch = self._on_peer_loop(self.wait_closed())
        except RuntimeError:  # no loop runs the peer: nothing can close it while we look away
            self._close_watch = None

    async def wait_closed(self) -> str:
        """Wait until the peer's connection has ended; the status line then says why."""
        await self.peer.wait_closed()
        self._on_closed()
        return self._status

    def _on_closed(self) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = self.peer.close_reason or "connection closed"
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None
        if self.waiting is not None:
            _, name = self._sides()
            self._waiting_words = f"{name} was still waiting for {waiting_words(self.waiting)}"
        if self._sent or self._waiting_words:
            self._show_sent()
        else:
            self._set_status(f"connection closed: {self._closed_reason}", kind="bad")
        self._fit_send_button()

    # -- static fallback ----------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any):
        return with_html_fallback(super()._repr_mimebundle_(**kwargs), self.frame_view.static_html())

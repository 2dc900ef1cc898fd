"""What an intercepting tap decides about each frame: rules, held frames, edits.

A ``Rule`` says which frames it matches (direction, type, operation, request ID,
or any callable on the decoded message) and what to do with them (hold, drop,
delay, rewrite). A ``HeldFrame`` is one frame the tap keeps until someone decides.
This module does no I/O: the tap (``tap.py``) owns sockets and order; it only
asks here what to send for a frame, as a list of byte strings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import EncodeError
from .trace import IN, OUT, TAP_SIDES
from .wire import Message, ProtocolVersion, encode

#: The side names a rule uses, to the tap's directions.
_DIRECTIONS = {TAP_SIDES[0]: OUT, TAP_SIDES[1]: IN, OUT: OUT, IN: IN}
_RULE_KEYS = ("dir", "type", "op", "id")
_ALIASES = {"dir": "direction", "op": "operation", "id": "request_id"}
#: What a rule may do with the frames it matches.
ACTIONS = ("hold", "drop", "delay", "rewrite")

RULE_SYNTAX = (
    "A RULE is comma-separated key=value pairs, all of which must match: "
    "dir=client|upstream (who sent the frame), type=LETTER (r s p R S E e n h f), "
    "op=NAME (the operation; results match the operation of their request), "
    "id=TEXT or id=hex:8HEXDIGITS (the request ID). Example: dir=upstream,type=R,op=sleep. "
    "BYTES (for --rewrite) is hex digits, or text:... for literal text."
)


def parse_request_id(text: str) -> bytes:
    """``id=`` in a rule: ``hex:00000000`` or four characters of text."""
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    return text.encode()


def parse_bytes(text: str) -> bytes:
    """BYTES in ``--rewrite``: hex digits, or ``text:...``."""
    if text.startswith("text:"):
        return text[5:].encode()
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"expected hex digits or text:..., got {text!r}") from None


@dataclass(eq=False)
class Rule:
    """Frames that match every given criterion get ``action``."""

    direction: str | None = None  #: OUT (the client sent it) or IN (upstream sent it)
    type: str | None = None  #: one message-type letter
    operation: str | None = None
    request_id: bytes | None = None
    where: Callable[[Message], bool] | None = None  #: any test on the decoded message
    action: str = "hold"
    delay: float = 0.0  #: seconds, for action "delay"
    replacement: bytes = b""  #: for action "rewrite": sent instead of the frame, as is
    matched: int = 0  #: how many frames this rule has caught

    def __post_init__(self) -> None:
        if self.direction is not None:
            if self.direction not in _DIRECTIONS:
                raise ValueError(f"dir must be client or upstream, got {self.direction!r}")
            self.direction = _DIRECTIONS[self.direction]
        if self.type is not None and len(self.type) != 1:
            raise ValueError(f"type is one message-type letter, got {self.type!r}")
        if isinstance(self.request_id, str):
            self.request_id = parse_request_id(self.request_id)
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {self.action!r}")

    @classmethod
    def make(cls, **criteria: Any) -> "Rule":
        """As the constructor, also taking the rule-text names ``dir``, ``op`` and ``id``."""
        for short, name in _ALIASES.items():
            if short in criteria:
                criteria[name] = criteria.pop(short)
        return cls(**criteria)

    @classmethod
    def parse(cls, text: str, **options: Any) -> "Rule":
        """``dir=client,type=r,op=echo`` (see ``RULE_SYNTAX``)."""
        criteria: dict[str, Any] = {}
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            key, equals, value = part.partition("=")
            if not equals or key not in _RULE_KEYS:
                raise ValueError(f"bad rule part {part!r}: expected one of {', '.join(k + '=' for k in _RULE_KEYS)}")
            name = _ALIASES.get(key, key)
            criteria[name] = parse_request_id(value) if key == "id" else value
        return cls(**criteria, **options)

    def matches(self, direction: str, header: bytes, message: Message, operation: str | None) -> bool:
        if self.direction is not None and direction != self.direction:
            return False
        if self.type is not None and header[:1] != self.type.encode():
            return False
        if self.operation is not None and operation != self.operation:
            return False
        if self.request_id is not None and getattr(message, "request_id", None) != self.request_id:
            return False
        if self.where is not None:
            try:
                return bool(self.where(message))
            except Exception:  # a failing predicate does not match; it never stops the relay
                return False
        return True

    def __repr__(self) -> str:
        parts = [f"{k}={v!r}" for k, v in (("dir", self.direction), ("type", self.type), ("op", self.operation), ("id", self.request_id)) if v is not None]
        if self.where is not None:
            parts.append(f"where={getattr(self.where, '__name__', 'callable')}")
        return f"<Rule {self.action} {' '.join(parts) or 'every frame'} matched={self.matched}>"


def edited_bytes(message: Message, changes: dict[str, Any]) -> tuple[Message, bytes]:
    """``message`` with ``changes`` applied, re-encoded with correct sizes.

    Text given for a bytes field (payload, request ID) is UTF-8 encoded. Raises
    ``EncodeError`` saying which field could not be encoded, and why.
    """
    if isinstance(message, ProtocolVersion):
        raise EncodeError("the version preamble has no fields to edit; edit its raw bytes instead")
    names = {f.name for f in dataclasses.fields(message)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise EncodeError(f"{type(message).__name__} has no field {', '.join(unknown)} (it has {', '.join(sorted(names))})")
    fixed = {}
    for name, value in changes.items():
        current = getattr(message, name)
        if isinstance(current, bytes) and isinstance(value, str):
            value = value.encode()
        fixed[name] = value
    try:
        edited = dataclasses.replace(message, **fixed)
        return edited, encode(edited)
    except (EncodeError, ValueError, TypeError) as error:
        raise EncodeError(f"cannot encode the edited {type(message).__name__} ({', '.join(sorted(fixed))}): {error}") from error


@dataclass(eq=False)
class HeldFrame:
    """A frame the tap holds; later frames of its direction wait behind it.

    Decide once with ``forward``, ``edit``, ``edit_raw``, ``drop``, ``delay``
    or ``duplicate``. The tap's ``decide`` callback does the sending.
    """

    connection: int
    direction: str
    header: bytes
    message: Message
    rule: Rule | None
    _decide: Callable[["HeldFrame", str, list[bytes], float], None] = field(repr=False)
    decided: str | None = None  #: None while held, then the action taken

    @property
    def raw(self) -> bytes:
        payload = getattr(self.message, "payload", b"")
        return self.header + payload

    @property
    def side(self) -> str:
        return TAP_SIDES[0] if self.direction == OUT else TAP_SIDES[1]

    def _settle(self, action: str, chunks: list[bytes], delay: float = 0.0) -> None:
        if self.decided is not None:
            raise RuntimeError(f"this frame was already {self.decided}")
        self.decided = action
        self._decide(self, action, chunks, delay)

    def forward(self) -> None:
        self._settle("forwarded", [self.raw])

    def drop(self) -> None:
        self._settle("dropped", [])

    def delay(self, seconds: float) -> None:
        """Send it after ``seconds``; frames behind it go on meanwhile (so it may be overtaken)."""
        self._settle("delayed", [self.raw], seconds)

    def duplicate(self, times: int = 2) -> None:
        self._settle("duplicated", [self.raw] * times)

    def edit(self, **changes: Any) -> Message:
        """Change fields (``payload=b"..."``, ``request_id=``, ``operation=``…); sizes are re-encoded."""
        edited, data = edited_bytes(self.message, changes)
        self._settle("edited", [data])
        return edited

    def edit_raw(self, data: bytes) -> None:
        """Send ``data`` instead, exactly as given (deliberately malformed, if you like)."""
        self._settle("edited", [bytes(data)])

    def __repr__(self) -> str:
        arrow = "->" if self.direction == OUT else "<-"
        state = self.decided or "held"
        return f"<HeldFrame conn {self.connection} {arrow} {self.message!r} {state}>"

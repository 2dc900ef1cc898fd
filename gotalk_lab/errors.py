"""The one error family of gotalk_lab.

``GotalkError`` is the base. ``ProtocolViolation`` is bad input received from the
other side, located to the byte; ``EncodeError`` is a caller asking for a message
that cannot be written. Peer-level failures (an ErrorResult, a closed connection)
also derive from ``GotalkError``. This module defines errors and nothing else.
"""

from __future__ import annotations


class GotalkError(Exception):
    """Base of every error this kit raises on purpose."""


class EncodeError(GotalkError, ValueError):
    """A message that cannot be written (a field out of range, a wrong type)."""


class ProtocolViolation(GotalkError):
    """Received bytes that are not valid Gotalk, with where and why.

    ``offset`` is the absolute byte offset (from the start of the stream) of the
    first byte that is wrong, ``field`` the field it belongs to, ``expected`` and
    ``found`` say what should have been there and what was. ``code`` is the
    ProtocolError code a peer should send before closing (1 unsupported version,
    2 invalid message). ``messages`` holds what the same ``feed`` call decoded
    before reaching the bad bytes, so nothing read before the error is lost.
    """

    def __init__(self, offset: int, field: str, expected: str, found: str, code: int = 2) -> None:
        self.offset = offset
        self.field = field
        self.expected = expected
        self.found = found
        self.code = code
        self.messages: list = []
        super().__init__(self.describe())

    def describe(self) -> str:
        return f"byte {self.offset}: {self.field}: expected {self.expected}, found {self.found}"

    def __reduce__(self):  # keep the fields when pickled (e.g. across processes)
        return (type(self), (self.offset, self.field, self.expected, self.found, self.code))

"""The one error family of gotalk_lab, split by whose fault it is.

``RemoteProtocolError`` is what the other side sent wrong; it carries the ``f``
code to answer with (``ProtocolViolation`` adds where in the byte stream).
``LocalProtocolError`` is what the caller asked for that the protocol forbids
(``EncodeError``: a message that cannot be written). The outcomes of a request
(``RequestError``, ``RetryExhausted``, ``RequestTimeout``, ``ConnectionClosed``) and a TLS certificate
that was not trusted (``CertificateError``) complete the family.
This module defines errors and nothing else.
"""

from __future__ import annotations

from typing import Any

#: ``f`` codes, repeated here as plain ints so that this module imports nothing
#: (``wire.ProtocolErrorCode`` names the same values).
_INVALID = 2


class GotalkError(Exception):
    """Base of every error this kit raises on purpose."""


class LocalProtocolError(GotalkError, ValueError):
    """The caller asked for something the protocol (or this connection's state) forbids.

    Nothing was written: the connection is as it was before the call.
    """


class EncodeError(LocalProtocolError):
    """A message that cannot be written (a field out of range, a wrong type)."""


class RemoteProtocolError(GotalkError):
    """The other side sent something the protocol forbids; the connection cannot go on.

    ``code`` is the ProtocolError code to send before closing (1 unsupported
    version, 2 invalid message, 3 timeout).
    """

    def __init__(self, text: str, code: int = _INVALID) -> None:
        self.code = code
        #: The message that broke the rule, when it was read whole (a reused ID, say).
        self.received: Any = None
        super().__init__(text)


class ProtocolViolation(RemoteProtocolError):
    """Received bytes that are not valid Gotalk, with where and why.

    ``offset`` is the absolute byte offset (from the start of the stream) of the
    first byte that is wrong, ``field`` the field it belongs to, ``expected`` and
    ``found`` say what should have been there and what was. ``messages`` holds
    what the same ``feed`` call decoded before reaching the bad bytes, so
    nothing read before the error is lost.
    """

    def __init__(self, offset: int, field: str, expected: str, found: str, code: int = _INVALID) -> None:
        self.offset = offset
        self.field = field
        self.expected = expected
        self.found = found
        self.messages: list[Any] = []
        #: A likely cause in words, when one is known (a size written in decimal).
        self.hint: str | None = None
        super().__init__(self.describe(), code)

    def describe(self) -> str:
        text = f"byte {self.offset}: {self.field}: expected {self.expected}, found {self.found}"
        return f"{text} ({self.hint})" if self.hint else text

    def add_hint(self, hint: str | None) -> None:
        """Name a likely cause; the message (``str(error)``) says it too."""
        if hint:
            self.hint = hint
            self.args = (self.describe(), *self.args[1:])

    def __reduce__(self) -> tuple[Any, ...]:  # keep the fields when pickled (e.g. across processes)
        return (type(self), (self.offset, self.field, self.expected, self.found, self.code))


class RequestError(GotalkError):
    """The other side answered with an ErrorResult; ``text`` is its payload."""

    def __init__(self, operation: str, payload: bytes) -> None:
        self.operation = operation
        self.payload = payload
        self.text = payload.decode("utf-8", "replace")
        super().__init__(f"{operation}: {self.text}")


class RetryExhausted(RequestError):
    """The other side kept answering RetryResult; we gave up after ``attempts``.

    ``last_wait`` is the wait (ms) the last RetryResult asked for, when known.
    """

    def __init__(self, operation: str, payload: bytes, attempts: int, last_wait: int | None = None) -> None:
        super().__init__(operation, payload)
        self.attempts = attempts
        self.last_wait = last_wait
        waited = "" if last_wait is None else f", last wait {last_wait} ms"
        self.args = (f"{operation}: gave up after {attempts} retries{waited} ({self.text})",)


class HandlerTimeout(GotalkError):
    """A handler of ours ran past ``handler_timeout``; its text is what the other side is told."""


class RequestTimeout(GotalkError, TimeoutError):
    """No answer to a request of ours within its timeout; the request is forgotten.

    A ``TimeoutError`` too, so ``except TimeoutError`` (and asyncio's) catches it.
    """

    def __init__(self, operation: str, seconds: float) -> None:
        super().__init__(f"{operation}: no answer within {seconds:g} s (timeout=None waits as long as it takes)")
        self.operation = operation
        self.seconds = seconds


class ConnectionClosed(GotalkError):
    """The connection ended before this could finish; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CertificateError(GotalkError, ConnectionError):
    """The other side's TLS certificate failed verification; nothing was sent.

    An ``OSError`` too, like the failures to connect it stands beside. ``reason``
    is what the TLS library said failed (e.g. "self-signed certificate").
    """

    def __init__(self, message: str, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


def error_text(error: BaseException) -> bytes:
    """What an ErrorResult says about ``error``: its message, else its class name."""
    return (str(error) or type(error).__name__).encode("utf-8", "replace")


class BrowserEditionError(GotalkError, RuntimeError):
    """What a browser page cannot do: open a socket, listen, start a program.

    Raised by ``edition.require_network`` before anything is tried, so the message is
    the first and only thing the caller sees, not an error from deep in asyncio.
    """

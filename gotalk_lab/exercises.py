"""Live checks for the tutorials' closing exercises.

Each check looks at what the student built (bytes, a handler on a peer, a
prediction) and, where it can, runs it for real on a fresh in-memory pair. It
returns a ``Verdict`` that reads well in a notebook and never raises, so a
notebook with an unanswered exercise still runs top to bottom.
"""

from __future__ import annotations

import asyncio
import html
import json
import random
from dataclasses import dataclass

from .connect import pipe
from .decoder import decode
from .errors import GotalkError, ProtocolViolation
from .handlers import Handlers
from .wire import SingleRequest, encode


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return ("✓ " if self.ok else "✗ ") + self.message

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.ok else "#b35900"
        mark = "✓ Correct" if self.ok else "✗ Not yet"
        return f'<div style="color:{colour};font-weight:600">{mark}</div><div>{html.escape(self.message)}</div>'


def _unanswered(answer) -> Verdict | None:
    if answer is None or answer is ...:
        return Verdict(False, "Fill in `answer` in the cell above, run it, then run this cell again.")
    return None


def check_greet_request(answer) -> Verdict:
    """Exercise 1: the bytes of a SingleRequest, ID "ab12", operation "greet", payload {"name":"Ada"}."""
    if (verdict := _unanswered(answer)) is not None:
        return verdict
    if isinstance(answer, str):
        answer = answer.encode("utf-8")
    if not isinstance(answer, (bytes, bytearray)):
        return Verdict(False, f"`answer` should be bytes, like b'r...', not {type(answer).__name__}.")
    expected = encode(SingleRequest(b"ab12", "greet", b'{"name":"Ada"}'))
    try:
        message = decode(bytes(answer))
    except ProtocolViolation as violation:
        return Verdict(False, f"These bytes are not one valid message: {violation}.")
    if bytes(answer) == expected:
        return Verdict(True, f"{bytes(answer)!r} is a whole request: type, ID, name size, name, payload size, payload.")
    if not isinstance(message, SingleRequest):
        return Verdict(False, f"That decodes as a {type(message).__name__}; a single request starts with 'r'.")
    if message.request_id != b"ab12":
        return Verdict(False, f"The request ID is {message.request_id!r}; it should be the 4 bytes b'ab12'.")
    if message.operation != "greet":
        return Verdict(False, f"The operation is {message.operation!r}; it should be 'greet'.")
    return Verdict(False, f"The payload is {message.payload!r}; send the compact JSON b'{{\"name\":\"Ada\"}}'.")


async def check_reverse_handler(handlers: Handlers) -> Verdict:
    """Exercise 2: a "reverse" operation that returns its payload reversed."""
    if "reverse" not in handlers:
        return Verdict(False, "Register an operation named 'reverse' with @b.handle(\"reverse\").")
    a, b = await pipe(None, handlers, trace=False)
    try:
        for payload in (b"gotalk", bytes(random.randrange(256) for _ in range(16)), b""):
            try:
                got = await asyncio.wait_for(a.request_bytes("reverse", payload), 5)
            except GotalkError as error:
                return Verdict(False, f"Asking reverse({payload!r}) failed: {error}")
            if got != payload[::-1]:
                return Verdict(False, f"reverse({payload!r}) answered {got!r}, expected {payload[::-1]!r}.")
        return Verdict(True, "Your handler answered three live requests correctly, binary bytes included.")
    finally:
        await a.close()


async def check_sleep_order(prediction, delays=(250, 50, 150)) -> Verdict:
    """Exercise 3: predict the order in which concurrent sleeps finish."""
    if (verdict := _unanswered(prediction)) is not None:
        return verdict
    from .demo import handlers as demo_handlers

    a, b = await pipe(None, demo_handlers(), trace=False)
    finished: list[int] = []

    async def one(ms: int) -> None:
        await a.request("sleep", {"ms": ms})
        finished.append(ms)

    try:
        await asyncio.gather(*(one(ms) for ms in delays))
    finally:
        await a.close()
    if list(prediction) == finished:
        return Verdict(True, f"Live run: results came back {finished}, matched to their requests by ID.")
    return Verdict(False, f"Live run: results came back {finished}, you predicted {list(prediction)}. Each result leaves when its handler is done.")


async def check_running_sum(handlers: Handlers) -> Verdict:
    """Exercise 4: a "running-sum" stream operation: for each part (a JSON number), the total so far."""
    if "running-sum" not in handlers:
        return Verdict(False, "Register a stream operation named 'running-sum' with @b.handle_stream(...).")
    numbers = [3, 4, 10, -2]
    expected = [3, 7, 17, 15]
    a, b = await pipe(None, handlers, trace=False)
    try:
        async with a.stream_request("running-sum") as stream:
            for number in numbers:
                await stream.send(json.dumps(number))
            await stream.end()
            parts = await asyncio.wait_for(stream.collect(), 5)
        got = [json.loads(part) for part in parts]
    except (GotalkError, ValueError, asyncio.TimeoutError) as error:
        return Verdict(False, f"The live stream failed: {error!r}")
    finally:
        await a.close()
    if got == expected:
        return Verdict(True, f"Sent {numbers}, got the running totals {got}, one result part per request part.")
    return Verdict(False, f"Sent {numbers}, got {got}; expected {expected}.")


async def check_limit_answer(answer) -> Verdict:
    """Exercise 5: which message type answers a request over the responder's limit?"""
    if (verdict := _unanswered(answer)) is not None:
        return verdict
    from .demo import handlers as demo_handlers

    a, b = await pipe(None, demo_handlers(), max_requests=1, max_retries=0)
    try:
        results = await asyncio.gather(a.request("sleep", {"ms": 50}), a.request("sleep", {"ms": 1}), return_exceptions=True)
    finally:
        await a.close()
    seen = [event.message.TYPE.decode() for event in a.trace if event.direction == "in" and event.message.TYPE]
    actual = "e" if "e" in seen else "?"
    if str(answer).strip().strip("'\"") == actual:
        return Verdict(True, f"Live run: the second request got '{actual}' (RetryResult); letters received: {' '.join(seen)}. Outcome: {results[1]!r}")
    return Verdict(False, f"Live run: the letters received were {' '.join(seen)}. Look for the one that carries a wait.")


async def check_notification_counter(handlers: Handlers, counter) -> Verdict:
    """Exercise 6: a catch-all notification listener that counts into ``counter["count"]``."""
    if not handlers.any_notification:
        return Verdict(False, "Register a catch-all listener with @b.on_notification() (no name).")
    if not isinstance(counter, dict):
        return Verdict(False, "`counter` should be a dict like {'count': 0}.")
    before = counter.get("count", 0)
    a, b = await pipe(None, handlers, trace=False)
    try:
        for name in ("one", "two", "three"):
            await a.notify(name, name)
        for _ in range(20):  # notifications are never answered: give the loop a few turns
            await asyncio.sleep(0.005)
    finally:
        await a.close()
    counted = counter.get("count", 0) - before
    if counted == 3:
        return Verdict(True, "Three live notifications, three counted, and nothing was sent back.")
    return Verdict(False, f"Three notifications were sent; your listener counted {counted}.")


def check_ping_over_network(answer) -> Verdict:
    """Exercise 7: the result of calling ping with b"net" on the served address."""
    if (verdict := _unanswered(answer)) is not None:
        return verdict
    if answer == b"ping:net":
        return Verdict(True, "That is what the server's ping answers: the same bytes as in memory, now over a socket.")
    return Verdict(False, f"Got {answer!r}; call `await peer.request_bytes('ping', b'net')` on a connected peer.")

"""Live checks for the tutorials' closing exercises.

Each check looks at what the student built (bytes, a handler on a peer, a
prediction) and, where it can, runs it for real on a fresh in-memory pair. It
returns a ``Verdict`` that reads well in a notebook. A check never raises,
whatever the student typed (None, a string, a number, an un-awaited call...):
it says which variable to fill in and what is wrong with the value, so a
notebook with an unanswered or half-answered exercise still runs top to bottom.
"""

from __future__ import annotations

import asyncio
import functools
import html
import inspect
import json
import random
import re
from dataclasses import dataclass
from numbers import Real

from .capture import CapturedMessage, read_capture
from .checker.model import VERDICTS
from .connect import pipe
from .decoder import decode
from .errors import GotalkError, ProtocolViolation
from .handlers import STREAM, Handlers
from .palette import TEXT
from .wire import SingleRequest, encode

#: How long a live check waits for the student's handler before calling it stuck.
LIVE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Verdict:
    """The outcome of a check. ``message`` marks code as `code`, as Markdown does."""

    ok: bool
    message: str

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return ("✓ " if self.ok else "✗ ") + self.message

    def html(self) -> str:
        """The verdict as HTML: the mark in the palette's success or warning colour, then the message."""
        colour = TEXT["ok"] if self.ok else TEXT["warn"]
        mark = "✓ Correct" if self.ok else "✗ Not yet"
        return f'<div style="color:{colour};font-weight:600">{mark}</div><div>{_as_html(self.message)}</div>'

    def _repr_html_(self) -> str:
        return self.html()


def _as_html(message: str) -> str:
    """The message escaped, with its `code` spans shown as code rather than backticks."""
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(message, quote=False))
    return escaped.replace("\n", "<br>")  # a check that lists several problems puts one a line


def _never_raises(check):
    """Turn any exception a check did not foresee into a Verdict that names it.

    The checks test for the mistakes students make; this is the net under them, so
    that an answer nobody thought of still gets an explanation instead of a traceback.
    """

    def explained(error: Exception) -> Verdict:
        return Verdict(False, f"The check could not use this answer: {type(error).__name__}: {error}. Look at the value you gave, then run the check again.")

    if inspect.iscoroutinefunction(check):

        @functools.wraps(check)
        async def guarded(*args, **kwargs) -> Verdict:
            try:
                return await check(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - the point: a check never raises
                return explained(error)

    else:

        @functools.wraps(check)
        def guarded(*args, **kwargs) -> Verdict:
            try:
                return check(*args, **kwargs)
            except Exception as error:  # noqa: BLE001
                return explained(error)

    return guarded


def _kind(value) -> str:
    """'an int (50)', 'a str ('50')': what a value is, for a message."""
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    shown = repr(value)
    return f"{article} {name} ({shown if len(shown) <= 40 else shown[:37] + '...'})"


def _missing(value, variable: str, example: str) -> Verdict | None:
    """A verdict when ``value`` is not an answer yet: unset, or a call never awaited."""
    if value is None or value is ...:
        return Verdict(False, f"Fill in `{variable}` in the cell above (for example `{variable} = {example}`), run it, then run this cell again.")
    if inspect.isawaitable(value):
        if inspect.iscoroutine(value):
            value.close()  # never run: closing it spares a "never awaited" warning
        return Verdict(False, f"`{variable}` holds a call that has not run yet: put `await` in front of it, run that cell again, then this one.")
    return None


def _handlers_of(value, what: str) -> tuple[Handlers | None, Verdict | None]:
    """The Handlers registry to check: given as is, or taken from a peer."""
    registry = getattr(value, "handlers", value)
    if isinstance(registry, Handlers):
        return registry, None
    return None, Verdict(False, f"Pass `b.handlers` (the registry of the peer that answers) to the check, not {_kind(value)}; {what}")


def _names(handlers: Handlers) -> str:
    return ", ".join(repr(name) for name in handlers.operations) or "none"


# -- 1 · the wire format -------------------------------------------------------------

GREET = encode(SingleRequest(b"ab12", "greet", b'{"name":"Ada"}'))


@_never_raises
def check_greet_request(answer) -> Verdict:
    """Exercise 1: the bytes of a SingleRequest, ID "ab12", operation "greet", payload {"name":"Ada"}."""
    if (verdict := _missing(answer, "answer", "b'r...'")) is not None:
        return verdict
    as_text = isinstance(answer, str)
    if as_text:
        answer = answer.encode("utf-8")
    if not isinstance(answer, (bytes, bytearray, memoryview)):
        return Verdict(False, f"`answer` should be bytes, like `b'r...'`, not {_kind(answer)}.")
    answer = bytes(answer)
    if answer == GREET:
        note = " (You wrote it as a str; in code a message is bytes: `b'...'`.)" if as_text else ""
        return Verdict(True, f"{answer!r} is a whole request: type, ID, name size, name, payload size, payload.{note}")
    if answer.replace(b"00000014", b"0000000e", 1) == GREET:
        return Verdict(False, "The payload size is hexadecimal: 14 bytes is `0000000e`, not `00000014`.")
    if answer.replace(b"5greet", b"005greet", 1) == GREET or answer.replace(b"e{", b"0000000e{", 1) == GREET:
        return Verdict(False, "The sizes have fixed widths: 3 hex digits for the name size (`005`), 8 for the payload size (`0000000e`).")
    try:
        message = decode(answer)
    except ProtocolViolation as violation:
        return Verdict(False, f"These bytes are not one valid message: {violation}.")
    if not isinstance(message, SingleRequest):
        return Verdict(False, f"That decodes as a {type(message).__name__}; a single request starts with `r`.")
    if message.request_id != b"ab12":
        return Verdict(False, f"The request ID is {message.request_id!r}; it should be the 4 bytes `ab12`.")
    if message.operation != "greet":
        return Verdict(False, f"The operation is {message.operation!r}; it should be `greet`.")
    if message.payload.replace(b" ", b"") == b'{"name":"Ada"}':
        return Verdict(False, f"The payload is {message.payload!r}: the check wants the compact JSON, with no spaces: `{{\"name\":\"Ada\"}}` (14 bytes).")
    return Verdict(False, f"The payload is {message.payload!r}; it should be the JSON `{{\"name\":\"Ada\"}}`.")


# -- 2 · a first conversation -----------------------------------------------------------


@_never_raises
async def check_reverse_handler(handlers: Handlers) -> Verdict:
    """Exercise 2: a "reverse" operation that returns its payload reversed."""
    handlers, verdict = _handlers_of(handlers, "the check asks its `reverse` operation.")
    if verdict is not None:
        return verdict
    if "reverse" not in handlers:
        return Verdict(False, f"Register an operation named `reverse` with `@b.handle(\"reverse\")` (operations registered now: {_names(handlers)}).")
    if handlers.operations["reverse"].kind == STREAM:
        return Verdict(False, "`reverse` is registered as a stream operation: register it with `@b.handle(\"reverse\")`, which answers one payload with one result.")
    a, _ = await pipe(None, handlers, trace=False)
    try:
        for payload in (b"gotalk", bytes(random.randrange(256) for _ in range(16)), b""):
            try:
                got = await asyncio.wait_for(a.request_bytes("reverse", payload), LIVE_TIMEOUT)
            except asyncio.TimeoutError:
                return Verdict(False, f"`reverse({payload!r})` did not answer within {LIVE_TIMEOUT:.0f} s: does the handler return?")
            except GotalkError as error:
                return Verdict(False, f"Asking `reverse({payload!r})` failed: {error}. The handler gets the payload as bytes and must return bytes.")
            if got != payload[::-1]:
                hint = " That is the payload unchanged: return `payload[::-1]`." if got == payload else ""
                return Verdict(False, f"`reverse({payload!r})` answered {got!r}, expected {payload[::-1]!r}.{hint}")
        return Verdict(True, "Your handler answered three live requests correctly, binary bytes included.")
    finally:
        await a.close()


# -- 3 · multiplexing --------------------------------------------------------------------


@_never_raises
async def check_sleep_order(prediction, delays=(250, 50, 150)) -> Verdict:
    """Exercise 3: predict the order in which concurrent sleeps finish."""
    example = f"[{', '.join(str(ms) for ms in delays)}]"
    if (verdict := _missing(prediction, "prediction", example)) is not None:
        return verdict
    shape = f"`prediction` should be a list of the {len(delays)} ms values in the order their results arrive, like `{example}`"
    if isinstance(prediction, (str, bytes)):
        return Verdict(False, f"{shape}: numbers, without quotes; you gave {_kind(prediction)}.")
    if not isinstance(prediction, (list, tuple)):
        return Verdict(False, f"{shape}; you gave {_kind(prediction)}.")
    if not all(isinstance(ms, Real) and not isinstance(ms, bool) for ms in prediction):
        return Verdict(False, f"{shape}: every item a number of ms; you gave {list(prediction)!r}.")
    if sorted(prediction) != sorted(delays):
        return Verdict(False, f"{shape}. Yours holds {list(prediction)!r}: put each of {', '.join(str(ms) for ms in delays)} in it once.")
    predicted = [int(ms) for ms in prediction]
    from .demo import handlers as demo_handlers

    a, _ = await pipe(None, demo_handlers(), trace=False)
    finished: list[int] = []

    async def one(ms: int) -> None:
        await a.request("sleep", {"ms": ms})
        finished.append(ms)

    try:
        await asyncio.wait_for(asyncio.gather(*(one(ms) for ms in delays)), LIVE_TIMEOUT + max(delays) / 1000)
    finally:
        await a.close()
    if predicted == finished:
        return Verdict(True, f"Live run: results came back {finished}, matched to their requests by ID.")
    why = "That is the order they were sent in, but" if predicted == list(delays) else "Each result leaves when its handler is done, so"
    return Verdict(False, f"Live run: results came back {finished}; you predicted {predicted}. {why} the shortest sleep answers first.")


# -- 4 · streaming -----------------------------------------------------------------------


@_never_raises
async def check_running_sum(handlers: Handlers) -> Verdict:
    """Exercise 4: a "running-sum" stream operation: for each part (a JSON number), the total so far."""
    handlers, verdict = _handlers_of(handlers, "the check opens a stream to its `running-sum` operation.")
    if verdict is not None:
        return verdict
    if "running-sum" not in handlers:
        return Verdict(False, f"Register a stream operation named `running-sum` with `@b.handle_stream(\"running-sum\", json=True)` (operations registered now: {_names(handlers)}).")
    operation = handlers.operations["running-sum"]
    if operation.kind != STREAM:
        return Verdict(False, "`running-sum` is registered as a single operation: register it with `@b.handle_stream(...)`, an async generator that `yield`s a part for each part it reads.")
    numbers = [3, 4, 10, -2]
    expected = [3, 7, 17, 15]
    hint = "" if operation.json else " Without `json=True` the parts arrive as bytes such as `b'3'`: add `json=True` to get numbers."
    a, _ = await pipe(None, handlers, trace=False)

    async def exchange() -> list[bytes]:
        async with a.stream_request("running-sum") as stream:
            for number in numbers:
                await stream.send(json.dumps(number))
            await stream.end()
            return await stream.collect()

    try:
        parts = await asyncio.wait_for(exchange(), LIVE_TIMEOUT)
    except asyncio.TimeoutError:
        return Verdict(False, f"The stream did not end within {LIVE_TIMEOUT:.0f} s: does the handler finish when the request parts run out (`async for` ends)?")
    except GotalkError as error:
        return Verdict(False, f"The live stream failed: {error}.{hint}")
    finally:
        await a.close()
    try:
        got = [json.loads(part) for part in parts]
    except ValueError:
        return Verdict(False, f"The result parts {parts!r} are not all JSON: with `json=True`, `yield` the numbers themselves.{hint}")
    if got == expected:
        return Verdict(True, f"Sent {numbers}, got the running totals {got}, one result part per request part.")
    if got == numbers:
        why = "each answer is the part itself: keep a total across the parts and yield it after adding each one."
    elif len(got) != len(numbers):
        why = f"there should be one result part for each of the {len(numbers)} request parts, not {len(got)}."
    else:
        why = "each answer should be the sum of all the parts so far."
    return Verdict(False, f"Sent {numbers}, got {got}; expected {expected}: {why}")


# -- 5 · faults ----------------------------------------------------------------------------

#: What a wrong letter is, to say why it is not the answer.
LETTERS = {
    "E": "`E` is an ErrorResult: the request ran and failed. A busy responder does not run it at all",
    "R": "`R` is a SingleResult, the answer of a request that was run. Over the limit, it is not run",
    "f": "`f` is a ProtocolError, which ends the connection. Being busy is not a protocol error",
    "r": "`r` is a single request, not an answer",
    "s": "`s` is a stream request, not an answer",
    "p": "`p` is a part of a stream request, not an answer",
    "S": "`S` is a part of a streaming result, the answer of a stream that was run",
    "n": "`n` is a notification, which is never an answer",
    "h": "`h` is a heartbeat, which is never an answer",
}


@_never_raises
async def check_limit_answer(answer) -> Verdict:
    """Exercise 5: which message type answers a request over the responder's limit?"""
    if (verdict := _missing(answer, "answer", '"E"')) is not None:
        return verdict
    if isinstance(answer, (bytes, bytearray)):
        answer = bytes(answer).decode("utf-8", "replace")
    if not isinstance(answer, str):
        return Verdict(False, f"`answer` should be one letter in quotes, like `\"E\"`, not {_kind(answer)}.")
    letter = answer.strip().strip("'\"")
    if letter.lower() in ("retryresult", "retry"):
        return Verdict(False, "Right message, but the check wants the letter it starts with on the wire, like `\"E\"`.")
    if len(letter) != 1:
        return Verdict(False, f"`answer` should be a single letter, like `\"E\"`; you wrote {answer!r}.")
    from .demo import handlers as demo_handlers

    a, _ = await pipe(None, demo_handlers(), max_requests=1, max_retries=0)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(a.request("sleep", {"ms": 50}), a.request("sleep", {"ms": 1}), return_exceptions=True), LIVE_TIMEOUT
        )
    finally:
        await a.close()
    seen = [event.message.TYPE.decode() for event in a.trace if event.direction == "in" and event.message.TYPE]
    actual = "e" if "e" in seen else "?"
    if letter == actual:
        return Verdict(True, f"Live run: the second request got `{actual}` (RetryResult); letters received: {' '.join(seen)}. Outcome: {results[1]!r}")
    why = LETTERS.get(letter, f"{letter!r} is no Gotalk message type") + "."
    if letter.lower() == actual:
        why += " (Letters are case-sensitive.)"
    return Verdict(False, f"{why} Live run: the letters received were {' '.join(seen)}. Look for the one that carries a wait.")


# -- 6 · notifications -------------------------------------------------------------------


@_never_raises
async def check_notification_counter(handlers: Handlers, counter) -> Verdict:
    """Exercise 6: a catch-all notification listener that counts into ``counter["count"]``."""
    handlers, verdict = _handlers_of(handlers, "the check sends notifications to its listeners.")
    if verdict is not None:
        return verdict
    if not handlers.any_notification:
        return Verdict(False, "Register a catch-all listener with `@b.on_notification()` (no name), taking `(name, payload)`.")
    if not isinstance(counter, dict):
        return Verdict(False, f"`counter` should be a dict like `{{\"count\": 0}}`, not {_kind(counter)}.")
    before = counter.get("count", 0)
    if not isinstance(before, int) or isinstance(before, bool):
        return Verdict(False, f"`counter[\"count\"]` should be a number to add to; it is {_kind(before)}. Start with `counter = {{\"count\": 0}}`.")

    # The student's listeners run on a copy of the registry, each guarded: an error in
    # one is reported here instead of only being logged by the peer.
    failures: list[Exception] = []

    def guarded(listener):
        def hear(name, payload):
            try:
                result = listener(name, payload)
            except Exception as error:  # noqa: BLE001 - reported in the verdict
                failures.append(error)
                return None
            return finish(result) if inspect.isawaitable(result) else result

        async def finish(awaitable):
            try:
                await awaitable
            except Exception as error:  # noqa: BLE001
                failures.append(error)

        return hear

    checked = Handlers()
    checked.operations.update(handlers.operations)
    checked.any_notification.extend(guarded(listener) for listener in handlers.any_notification)
    a, _ = await pipe(None, checked, trace=False)
    try:
        for name in ("one", "two", "three"):
            await a.notify(name, name)
        for _ in range(20):  # notifications are never answered: give the loop a few turns
            await asyncio.sleep(0.005)
    finally:
        await a.close()
    if failures:
        error = failures[0]
        return Verdict(False, f"Your listener raised {type(error).__name__}: {error}. A catch-all listener is called with `(name, payload)` and should add 1 to `counter[\"count\"]`.")
    after = counter.get("count", 0)
    if not isinstance(after, Real):
        return Verdict(False, f"After the notifications `counter[\"count\"]` is {_kind(after)}; it should be a number, 3 more than before.")
    counted = after - before
    if counted == 3:
        return Verdict(True, "Three live notifications, three counted, and nothing was sent back.")
    listeners = len(handlers.any_notification)
    if listeners > 1 and counted == 3 * listeners:
        return Verdict(False, f"Three notifications were sent and {counted} counted: {listeners} catch-all listeners are registered, each counting. Running the cell again adds another one; keep one: `b.handlers.any_notification.clear()` before registering forgets the earlier ones.")
    if counted == 0:
        return Verdict(False, "Three notifications were sent; your listener counted 0. Does it add 1 to `counter[\"count\"]`, in the `counter` passed to the check?")
    return Verdict(False, f"Three notifications were sent; your listener counted {counted}. It should add exactly 1 for each.")


# -- 7 · over the network -------------------------------------------------------------------


@_never_raises
def check_ping_over_network(answer) -> Verdict:
    """Exercise 7: the result of calling ping with b"net" on the served address."""
    if (verdict := _missing(answer, "answer", 'await peer.request_bytes("ping", b"net")')) is not None:
        return verdict
    if answer == b"ping:net":
        return Verdict(True, "That is what the server's ping answers: the same bytes as in memory, now over a socket.")
    call = "call `await peer.request_bytes(\"ping\", b\"net\")` on the connected `peer`"
    if answer == "ping:net":
        return Verdict(False, "That is the right text, but `request_bytes` answers bytes: `b'ping:net'`. Put its result in `answer` as it is.")
    if isinstance(answer, (bytes, bytearray)) and bytes(answer).startswith(b"pong:"):
        return Verdict(False, f"Got {answer!r}: that is the answer of `callback`, which calls back. For the server's own ping, {call}.")
    if isinstance(answer, (bytes, bytearray)):
        return Verdict(False, f"Got {bytes(answer)!r}; the server's ping answers `ping:` and the payload. {call[0].upper() + call[1:]}.")
    return Verdict(False, f"`answer` should be the bytes the server answered, not {_kind(answer)}: {call}.")


# -- tutorial 10: captures ------------------------------------------------------------


@_never_raises
def check_server_message_count(answer, pcap) -> Verdict:
    """``answer``: how many Gotalk messages the server sent in the capture's last connection."""
    try:
        events = [e for e in read_capture(pcap) if isinstance(e, CapturedMessage)]
    except Exception as error:  # a checker explains, it never raises
        return Verdict(False, f"the capture could not be read ({error}); run the cells above first")
    if not events:
        return Verdict(False, "the capture holds no Gotalk message yet; run the conversation cell above")
    last = max(e.connection.number for e in events)
    server = [e for e in events if e.connection.number == last and e.direction == "server"]
    count = len(server)
    if answer is None:
        return Verdict(False, "set answer to a number: the messages the server sent, its version \"01\" included")
    if isinstance(answer, bool) or not isinstance(answer, int):
        return Verdict(False, f"answer should be a whole number, not {type(answer).__name__} {answer!r}")
    if answer == count:
        return Verdict(True, f"{count}: the server's version, then one answer per request (every stream part counts).")
    if answer == count - 1:
        return Verdict(False, f"{answer} is one short: the version \"01\" the server writes first is a message too.")
    client = sum(1 for e in events if e.connection.number == last and e.direction == "client")
    if answer == client:
        return Verdict(False, f"{answer} is what the client sent; count the rows whose direction is \"server\".")
    if answer == count + client:
        return Verdict(False, f"{answer} counts both directions; only the server's messages are asked for.")
    return Verdict(False, f"not {answer}: filter the table above (or tshark's column) on the server's direction and count.")


# -- tutorial 11: interception --------------------------------------------------------


@_never_raises
def check_changed_frames(answer, tap) -> Verdict:
    """``answer``: how many frames of the tap's first connection the tap changed (any action)."""
    if not getattr(tap, "connections", None):
        return Verdict(False, "the tap has no connection yet; run the cells above first")
    events = list(tap.connections[0].trace.events)
    changed = [event for event in events if event.action]
    if answer is None:
        return Verdict(False, "set answer to a number: the frames on `peer`'s connection with a badge in the timeline")
    if isinstance(answer, bool) or not isinstance(answer, int):
        return Verdict(False, f"answer should be a whole number, not {type(answer).__name__} {answer!r}")
    if answer == len(changed):
        kinds = ", ".join(sorted({event.action for event in changed}))
        return Verdict(True, f"{answer}: every one is marked in the trace ({kinds}); a dropped frame is recorded too, though never sent.")
    if answer == len(events):
        return Verdict(False, f"{answer} is every frame of the connection; count only those the tap changed (a [badge] after the label).")
    if answer == len([event for event in changed if event.action != "dropped"]):
        return Verdict(False, f"{answer} leaves out the dropped frames: the tap records them (marked dropped) even though it never sent them.")
    return Verdict(False, f"not {answer}: look at `peer`'s timeline above, or count `[e for e in tap.connections[0].trace.events if e.action]`.")


# -- tutorial 9: the conformance checker's verdicts for the Go reference server --------


#: The cases asked about, the verdict the Go reference server gets, and why.
GO_REFERENCE = {
    "1.2": ("pass", 'on a version other than "01" the Go peer closes without writing anything: a refusal, so pass '
                    "(gotalk.js writes f00000001 first, which the checker reports as informational)"),
    "4.3": ("non-strict", "on bad size digits the Go peer closes without writing f00000002: it ends the connection, "
                          "but the other side cannot tell a protocol error from a crash"),
    "7.1": ("informational", 'the Go default limits disable stream requests: the server answers E "stream requests '
                             'not supported", so the checker cannot judge the requirement and says so'),
    "5.4": ("informational", "a Go server sends no heartbeats unless its heartbeat interval is set: a fact, not a fault"),
}


def check_go_reference_verdicts(answer) -> Verdict:
    """``answer``: a dict such as ``{"1.2": "pass", "4.3": ..., "7.1": ..., "5.4": ...}``."""
    try:
        return _check(answer)
    except Exception as error:  # a learner's odd value must never break the notebook
        return Verdict(False, f"Could not read `answer` ({type(error).__name__}); it should be a dict of case ID -> verdict.")


def _check(answer) -> Verdict:
    wanted = ", ".join(f'"{case_id}": ...' for case_id in GO_REFERENCE)
    if answer is None or answer is ...:
        return Verdict(False, f"Fill in `answer` = {{{wanted}}} in the cell above, run it, then run this cell again.")
    if not isinstance(answer, dict):
        return Verdict(False, f"`answer` should be a dict like {{{wanted}}}, not {type(answer).__name__}.")
    missing = [case_id for case_id in GO_REFERENCE if answer.get(case_id) in (None, ...)]
    if missing:
        return Verdict(False, f"Give a verdict for {', '.join(missing)} too; the verdicts are {', '.join(VERDICTS)}.")
    problems = []
    for case_id, (right, why) in GO_REFERENCE.items():
        given = answer[case_id]
        if not isinstance(given, str) or given.strip().lower() not in VERDICTS:
            problems.append(f"{case_id}: {given!r} is not a verdict; use one of {', '.join(VERDICTS)}.")
        elif given.strip().lower() != right:
            problems.append(f"{case_id}: not {given.strip().lower()!r} but {right!r}: {why}.")
    if problems:
        return Verdict(False, "\n".join(problems))
    return Verdict(True, "All four right. The checker fails a server only for what breaks other peers; where the Go "
                         "reference and gotalk.js differ, or a fact cannot be judged, it says non-strict or informational.")

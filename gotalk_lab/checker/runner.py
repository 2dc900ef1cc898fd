"""Run the conformance cases against a server and collect a ``Report``.

The runner owns the rules that hold across cases: one connection (or more) per
case, a case bounded by the timeout, options a case needs, and a server that dies
during a run (the case that killed it fails saying so, later ones fail as "server
gone"). It decides no verdict about the protocol itself; cases do.
"""

from __future__ import annotations

import asyncio
import time

from ..edition import require_network
from . import cases_more  # noqa: F401  (registers sections 6-9)
from .cases import CASES
from .model import FAIL, SKIP, Case, Context, Outcome
from .report import CaseResult, Report
from .session import Session, Target, TargetError, parse_target

DEFAULT_TIMEOUT = 5.0
#: Added to a case's timeout before the runner stops it: the case's own waits end at
#: its deadline; this is only for a case stuck somewhere it should not be.
GRACE = 2.0


class CheckUsageError(TargetError):
    """The run was asked for something that does not exist (e.g. an unknown case ID)."""


def select_cases(ids: list[str] | None) -> list[Case]:
    if not ids:
        return list(CASES)
    known = {case.id: case for case in CASES}
    unknown = [case_id for case_id in ids if case_id not in known]
    if unknown:
        raise CheckUsageError(f"no case {', '.join(unknown)} (cases: {', '.join(known)})")
    return [case for case in CASES if case.id in set(ids)]


async def run_check(
    url: str,
    *,
    echo: str | None = None,
    stream_echo: str | None = None,
    aggressive: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    cases: list[str] | None = None,
    on_result=None,
    ssl=None,
) -> Report:
    """Check the server at ``url``; raises ``TargetError`` when it cannot be reached at all."""
    if not timeout or timeout <= 0:
        raise CheckUsageError(f"the timeout must be a positive number of seconds, not {timeout!r}")
    require_network(f"gl.check({url!r})")
    target = parse_target(url, ssl)
    chosen = select_cases(cases)
    await _reachable(target, timeout)
    started = time.monotonic()
    report = Report(url, [], {"echo": echo, "stream_echo": stream_echo, "aggressive": aggressive, "timeout": timeout})
    gone: str | None = None
    for case in chosen:
        result = await run_case(case, target, echo=echo, stream_echo=stream_echo, aggressive=aggressive, timeout=timeout, gone=gone)
        if result.verdict != SKIP and gone is None:
            still_up = await _still_up(target, timeout)
            if still_up is not None:
                gone = still_up
                result.verdict = FAIL
                result.detail += f" — and after this case the server stopped accepting connections ({still_up}): this case took it down."
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    report.duration = time.monotonic() - started
    return report


async def run_case(case: Case, target: Target, *, echo, stream_echo, aggressive, timeout, gone: str | None = None) -> CaseResult:
    ctx = Context(target, echo=echo, stream_echo=stream_echo, aggressive=aggressive, timeout=timeout)
    started = time.monotonic()
    if case.transport == "ws" and not target.websocket:
        outcome = Outcome(SKIP, "only on a WebSocket target: TCP has no message boundaries")
    elif missing := case.missing(ctx):
        outcome = Outcome(SKIP, f"needs {' and '.join(missing)}")
    else:
        try:
            outcome = await asyncio.wait_for(case.run(ctx), timeout + GRACE)
        except asyncio.TimeoutError:
            outcome = Outcome(FAIL, f"the case did not finish within {timeout + GRACE:g} s (a write the server never read?)")
        except TargetError as error:
            why = "server gone (it stopped accepting connections after an earlier case): " if gone else "the server refused a new connection: "
            outcome = Outcome(FAIL, f"{why}{error}")
        except Exception as error:  # a case must give a verdict, never a traceback
            outcome = Outcome(FAIL, f"the checker could not finish this case: {type(error).__name__}: {error}")
        finally:
            await ctx.close()
    if case.id != "1.1" and any(session.version_missing for session in ctx.sessions):
        outcome = Outcome(outcome.verdict, outcome.detail + ' (note: the server wrote no version "01" first, see 1.1; this case read on regardless)')
    frames = [(number, chunk) for number, session in enumerate(ctx.sessions, 1) for chunk in session.log]
    return CaseResult(case, outcome.verdict, outcome.detail, frames, time.monotonic() - started)


async def _reachable(target: Target, timeout: float) -> None:
    session = await Session.open(target, timeout)
    await session.close()


async def _still_up(target: Target, timeout: float) -> str | None:
    """None when a new connection is accepted; else why not."""
    try:
        await _reachable(target, min(timeout, 2.0))
    except TargetError as error:
        return str(error)
    return None

"""``gotalk-lab check``: a conformance checker for anyone's Gotalk server.

Cases grouped by section (``cases``, ``cases_more``), each isolating one
requirement, run over raw logged connections (``session``) by the ``runner``, and
read as a ``Report`` (terminal, JSON, JUnit, HTML, a notebook widget). The
checker judges servers written by others by what the Go reference and gotalk.js
actually do (PROTOCOL.md), not by this kit's own peer.
"""

from __future__ import annotations

from .cases import CASES
from .model import FAIL, INFORMATIONAL, NON_STRICT, PASS, SKIP, VERDICTS, Case, Outcome
from .report import CaseResult, Report
from .runner import DEFAULT_TIMEOUT, CheckUsageError, run_check
from .session import TargetError


async def check(
    url: str,
    *,
    echo: str | None = None,
    stream_echo: str | None = None,
    aggressive: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    cases: list[str] | None = None,
    ssl=None,
) -> Report:
    """Check the Gotalk server at ``url`` (``tcp://HOST:PORT``, ``ws://HOST:PORT/PATH``, tls://, wss://, unix:///PATH).

    ``echo``/``stream_echo`` name operations on the target that answer with their
    payload / upper-case each stream part (they unlock the cases that need them);
    ``aggressive`` adds the cases that may take a fragile server down; ``ssl``
    verifies a tls:// or wss:// server (default: the system's trusted CAs). Returns a
    ``Report``; raises ``TargetError`` when the target cannot be reached at all.
    Blocking form: ``gotalk_lab.check.sync(...)`` (``gotalk_lab.sync.check``, attached by the package).
    The interactive report: ``gotalk_lab.widgets.CheckReport(report)``.
    """
    return await run_check(url, echo=echo, stream_echo=stream_echo, aggressive=aggressive, timeout=timeout, cases=cases, ssl=ssl)


__all__ = [
    "check", "Report", "CaseResult", "Case", "Outcome", "CASES", "TargetError", "CheckUsageError",
    "PASS", "FAIL", "NON_STRICT", "INFORMATIONAL", "SKIP", "VERDICTS", "DEFAULT_TIMEOUT",
]

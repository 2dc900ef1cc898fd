"""The closing exercise of notebook 09: predict the checker's verdicts for the Go reference server.

``check_go_reference_verdicts(answer)`` compares a prediction (case ID -> verdict) with
what the checker concludes from what the Go reference server does with its default
settings (PROTOCOL.md, "What the other peers really do"). It never raises, whatever
``answer`` is, and explains each wrong guess with the fact behind the right one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from .model import VERDICTS

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
        lines = "<br>".join(html.escape(line) for line in self.message.splitlines())
        return f'<div style="color:{colour};font-weight:600">{mark}</div><div>{lines}</div>'


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

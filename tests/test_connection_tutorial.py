"""docs/connection-by-hand.md runs as written: its Python blocks, in order, in one namespace.

The blocks are the tutorial section that drives a ``Connection`` by hand (no
network, no asyncio); each carries its own assertions about what it shows.
"""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "connection-by-hand.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def test_the_page_has_its_five_steps():
    assert len(blocks()) == 5


def test_every_block_runs_in_order(capsys):
    namespace: dict = {}
    for number, code in enumerate(blocks(), 1):
        exec(compile(code, f"{PAGE.name} block {number}", "exec"), namespace)
    shown = capsys.readouterr().out
    assert "after byte 1: ProtocolVersion(version=1); state open" in shown
    assert "after byte 19: <Answer to echo" in shown
    assert "refused, nothing written" in shown and "answer with code 2" in shown

"""The glossary: defined once, the docs page written from it, its words used by the tutorials."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gotalk_lab as gl
from gotalk_lab.glossary import TERMS, markdown

ROOT = Path(__file__).resolve().parents[1]
#: The words the tutorials and widgets lean on; each must have its one definition.
REQUIRED = ("message", "frame", "header", "payload", "request ID", "exchange", "stream", "part",
            "trace", "timeline", "notification", "heartbeat", "version")


def test_every_word_the_tutorials_lean_on_is_defined():
    assert set(REQUIRED) <= set(TERMS)
    assert gl.glossary()["exchange"] == TERMS["exchange"]
    html = gl.glossary()._repr_html_()
    assert html.count("<tr>") == len(TERMS) and "<code>01</code>" in html


def test_the_docs_page_is_written_from_the_glossary():
    page = (ROOT / "docs" / "glossary.md").read_text()
    assert page == markdown(), "docs/glossary.md is stale: run python -m gotalk_lab.glossary > docs/glossary.md"


def notebook_prose() -> str:
    text = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                text.append("".join(cell["source"]))
    return "\n".join(text)


def test_the_tutorials_use_each_word_in_one_spelling():
    prose = notebook_prose()
    # "request ID" throughout, never "request id" or "request Id"; results, not replies.
    assert not re.search(r"request (id|Id)\b", prose)
    assert not re.search(r"\brepl(y|ies)\b", prose, re.IGNORECASE)
    for term in ("exchange", "frame", "payload", "request ID", "stream", "notification", "heartbeat"):
        assert term in prose, f"{term!r} is defined but no tutorial uses it"

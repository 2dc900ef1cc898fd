"""Which edition of the kit runs here: a Python process, or a browser page (Pyodide).

The browser edition (the JupyterLite site that ``make site`` builds) runs in
Pyodide, where there are no sockets and no programs to start (a WebSocket client is
the exception: ``gl.connect("ws://...")`` uses the browser's own). ``IN_BROWSER`` says
which edition this is, once; ``require_network(what)`` stops whatever needs a
network with one clear line before any deeper error can happen; and in a notebook
``skip_network_cells`` lets a tutorial run on past the cells that need one.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from .errors import BrowserEditionError

#: True in Pyodide (``sys.platform == "emscripten"``): the browser edition.
IN_BROWSER: bool = sys.platform == "emscripten"

#: A code cell whose first line starts with this needs a network (sockets, programs).
NETWORK_CELL = "# needs a network"

#: What the browser edition prints in place of running such a cell.
SKIPPED_LINE = "skipped in the browser edition: this cell needs a network, which a browser page does not have"


def no_sockets(what: str) -> str:
    """The one line that says what the browser edition cannot do, and what to do instead."""
    return (
        f"the browser edition of gotalk_lab has no sockets: {what} needs a network; "
        "use gl.pipe() for two peers inside this page, gl.connect('ws://HOST:PORT/gotalk/') for a "
        "WebSocket server (through the browser's own WebSocket), or the kit in a Python kernel (make lab)"
    )


def require_network(what: str) -> None:
    """Raise ``BrowserEditionError`` (one line naming ``what``) in the browser edition; else nothing."""
    if IN_BROWSER:
        raise BrowserEditionError(no_sockets(what))


def skip_network_cell(lines: list[str]) -> list[str]:
    """An IPython input transformer: a cell marked ``# needs a network`` becomes one print line."""
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith(NETWORK_CELL):
        return [f"print({SKIPPED_LINE!r})\n"]
    return lines


def skip_network_cells(shell: Any = None) -> bool:
    """In the browser edition, make the running IPython skip the cells marked ``# needs a network``.

    Elsewhere (or with no IPython running) nothing changes and the marker is a plain
    comment. Installing twice is the same as once. Returns whether it is installed.
    """
    if not IN_BROWSER:
        return False
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    transformers: list[Callable[[list[str]], list[str]]] = shell.input_transformers_cleanup
    if skip_network_cell not in transformers:
        transformers.append(skip_network_cell)
    return True

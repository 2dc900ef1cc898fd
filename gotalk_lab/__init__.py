"""gotalk_lab: learn and experiment with the Gotalk protocol in Jupyter.

Three layers, each usable alone: the codec (``encode``, ``Decoder``, ``annotate``),
the peer (``pipe``, ``connect``, ``serve``, ``Peer``, ``Trace``) and the lab
(widgets, tutorials, the ``gotalk-lab`` command). Every public name is listed in
``__all__`` below.
"""

import importlib

from . import demo
from . import edition as _edition
from . import html as _html
from .glossary import glossary
from . import peer as _peer
from .checker import check
from .connect import Address, Server, connect, parse_address, pipe, serve, tls_client_context, tls_server_context
from .decoder import DEFAULT_MAX_PAYLOAD_SIZE, Decoder, Frame, decode, decode_all
from .connection import Answer, Connection, ConnectionState, OutgoingRequest, RequestState
from .edition import IN_BROWSER
from .errors import (
    BrowserEditionError,
    CertificateError,
    ConnectionClosed,
    EncodeError,
    GotalkError,
    LocalProtocolError,
    ProtocolViolation,
    RemoteProtocolError,
    RequestError,
    RequestTimeout,
    RetryExhausted,
)
from .findings import Finding, Undecodable, findings
from .handlers import Handlers
from . import tap as _tap
from .intercept import HeldFrame, Rule
from .tap import Tap
from . import replay as _replay
from .replay import ReplayReport
from .peer import Peer, PeerState
from .trace import IN, OUT, Exchange, Trace, TraceEvent
from .wire import (
    PROTOCOL_VERSION,
    ErrorResult,
    Heartbeat,
    Message,
    Notification,
    ProtocolError,
    ProtocolErrorCode,
    ProtocolVersion,
    RetryResult,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
    encode,
    encode_header,
)

__version__ = "0.1.0"

# The lab layer imports ipywidgets and anywidget; load it only when asked for, so
# the codec, the peer and the command line start without Jupyter.
_LAZY = {"widgets": None, "show": "show", "lab": "lab"}


#: Where ``peer.sync`` and ``peer.timeline()`` come from, loaded on first use: the
#: package sits above every layer, so it alone may tell the peer where they live.
_VIEW_MODULES = {"sync": ".sync", "timeline": ".widgets"}


def _load_view(name: str) -> None:
    if name in _VIEW_MODULES:
        importlib.import_module(_VIEW_MODULES[name], __name__)


_peer.view_loader = _load_view
# gl.check.sync(...): the blocking form, as peer.sync is for a peer's calls.
check.sync = importlib.import_module(".sync", __name__).check  # type: ignore[attr-defined]
# ``trace.findings()`` runs the findings rules, which sit in a layer above the trace.
Trace.findings_runner = findings


def _tap_sync(listen: str = "127.0.0.1:0", upstream: str = "", **options):
    """``gl.tap.sync(...)``: the same tap, made without ``await`` (it relays in the background)."""
    from .sync import run

    return run(_tap.tap(listen, upstream, **options))


#: ``tap = await gl.tap(listen=..., upstream=...)``, or ``gl.tap.sync(...)`` in a cell.
tap = _tap.tap
tap.sync = _tap_sync  # type: ignore[attr-defined]


def _replay_sync(trace, target: str, **options):
    """``gl.replay.sync(trace, target)``: the same report, without ``await``."""
    from .sync import run

    return run(_replay.replay(trace, target, **options))


#: ``report = await gl.replay(trace_or_file, "tcp://HOST:PORT")``, or ``gl.replay.sync(...)``.
replay = _replay.replay
replay.sync = _replay_sync  # type: ignore[attr-defined]
# In a notebook, messages and traces display as HTML (a no-op elsewhere).
_html.register_formatters()
#: ``gl.field_map()``: every message type's layout in one picture.
field_map = _html.field_map
# In the browser edition, a notebook runs on past the cells marked "# needs a network".
_edition.skip_network_cells()


def __getattr__(name: str):
    if name in _LAZY:
        # import_module, not "from . import widgets": that would ask this hook again.
        widgets = importlib.import_module(".widgets", __name__)
        return widgets if _LAZY[name] is None else getattr(widgets, _LAZY[name])
    raise AttributeError(f"module 'gotalk_lab' has no attribute {name!r}")


__all__ = [
    # codec
    "PROTOCOL_VERSION",
    "Message",
    "ProtocolVersion",
    "SingleRequest",
    "StreamRequest",
    "StreamRequestPart",
    "SingleResult",
    "StreamResult",
    "ErrorResult",
    "RetryResult",
    "Notification",
    "Heartbeat",
    "ProtocolError",
    "ProtocolErrorCode",
    "encode",
    "encode_header",
    "decode",
    "decode_all",
    "Decoder",
    "Frame",
    "DEFAULT_MAX_PAYLOAD_SIZE",
    # the protocol state machine (sans-IO)
    "Connection",
    "ConnectionState",
    "RequestState",
    "OutgoingRequest",
    "Answer",
    # errors
    "GotalkError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ProtocolViolation",
    "EncodeError",
    "RequestError",
    "RequestTimeout",
    "RetryExhausted",
    "ConnectionClosed",
    "CertificateError",
    "BrowserEditionError",
    # the edition: True in the browser (Pyodide), where there are no sockets
    "IN_BROWSER",
    # peer
    "Peer",
    "PeerState",
    "Handlers",
    "pipe",
    "connect",
    "serve",
    "Server",
    "Address",
    "parse_address",
    "tls_client_context",
    "tls_server_context",
    "Trace",
    "findings",
    "Finding",
    "Undecodable",
    "TraceEvent",
    "Exchange",
    "IN",
    "OUT",
    "demo",
    # tools
    "check",
    "tap",
    "Tap",
    "Rule",
    "HeldFrame",
    "replay",
    "ReplayReport",
    # lab (loaded on first use)
    "widgets",
    "show",
    "lab",
    "field_map",
    "glossary",
]

"""Byte carriers for peers: in-memory pipe, TCP (and TLS), WebSocket."""
from .base import Transport
from .pipe import PipeTransport, pipe_transports
from .tcp import TcpTransport
from .websocket import WebSocketTransport

__all__ = ["Transport", "PipeTransport", "pipe_transports", "TcpTransport", "WebSocketTransport"]

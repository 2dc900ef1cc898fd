"""What a tap relays, written as a pcap file (``gotalk-lab tap --pcap FILE``).

``PcapRecorder`` listens to a ``Tap``'s bytes (``Tap.on_bytes``) and writes each of its
connections as one synthesized TCP connection between the real client address and the
real upstream address (the tap itself does not appear): a handshake when the upstream
answers, one segment per read, the time each was read, FINs when either side ends.
A TLS side is written as the plaintext the tap saw; a UNIX socket side as a loopback
address with a made-up port. Ethernet frames, so any tool reads the file; flushed
packet by packet.
"""

from __future__ import annotations

import time
from pathlib import Path

from .trace import OUT
from .capture.pcapfile import LINKTYPE_ETHERNET, PcapWriter
from .capture.synth import CLIENT, SERVER, TcpConversation


#: The ports a UNIX socket side is written with: the client's from the ephemeral
#: range (plus the connection number), the upstream's one below it.
UNIX_CLIENT_PORTS = 49152
UNIX_UPSTREAM_PORT = 49151


class PcapRecorder:
    """Writes every connection of a tap into one pcap file."""

    def __init__(self, path: str | Path) -> None:
        self.writer = PcapWriter(open(path, "wb"), LINKTYPE_ETHERNET)
        self._conversations: dict[int, TcpConversation] = {}
        self._first_end: dict[int, str] = {}

    def on_bytes(self, connection, what: str, direction: str, data: bytes) -> None:
        """A ``Tap.on_bytes`` listener."""
        now = time.time()
        number = connection.number
        if what == "open":
            # A UNIX socket side has no (host, port): it is written as one of loopback's,
            # the client's distinct per connection, so that readers keep the two ends apart.
            client = connection.client_peer or ("127.0.0.1", UNIX_CLIENT_PORTS + number % 16384)
            upstream = connection.upstream_peer or ("127.0.0.1", UNIX_UPSTREAM_PORT)
            conversation = TcpConversation(
                self.writer,
                (client[0], client[1]),
                (upstream[0], upstream[1]),
                client_isn=(number * 0x9E3779B1) & 0xFFFFFFFF,  # distinct per connection, like real ISNs
                server_isn=(number * 0x85EBCA77) & 0xFFFFFFFF,
            )
            conversation.open(now)
            self._conversations[number] = conversation
            return
        conversation = self._conversations.get(number)
        if conversation is None or self.writer.sink.closed:
            return
        side = CLIENT if direction == OUT else SERVER
        if what == "data":
            conversation.send(side, data, now)
        elif what == "end":
            self._first_end.setdefault(number, side)
        elif what == "close":
            conversation.close(self._first_end.pop(number, side), now)
            del self._conversations[number]

    def close(self) -> None:
        """End the file: connections still open are closed by a FIN from the client."""
        if self.writer.sink.closed:
            return
        now = time.time()
        for conversation in self._conversations.values():
            conversation.close(CLIENT, now)
        self._conversations.clear()
        self.writer.close()

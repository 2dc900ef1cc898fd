"""Loading the conformance transcripts (byte recordings of the Go reference peer).

Plain helpers, no pytest: a transcript file becomes the bytes each side wrote,
whole or in the chunks TCP delivered them. ``hex`` is authoritative; ``text`` is
only a readable escape and is never used here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: The Go reference peer's transcripts, kept in the repository so that a clone
#: tests on its own (tests/data/conformance/README.md says where they come from).
CONFORMANCE_DIR = Path(__file__).resolve().parent / "data" / "conformance"
#: The protocol reference the tests check their examples against.
PROTOCOL_DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "PROTOCOL.md"

#: Which way bytes went: "send" is the connecting side, "recv" the Go reference peer.
DIRECTIONS = ("send", "recv")


@dataclass(frozen=True)
class Transcript:
    """One conformance file: its name and, per direction, the chunks in order."""

    path: Path
    name: str
    description: str
    closed_by_peer: bool
    chunks_by_direction: dict[str, tuple[bytes, ...]]

    @property
    def stem(self) -> str:
        """The file name without ``.json``, e.g. ``06-bidirectional``."""
        return self.path.stem

    def chunks(self, direction: str) -> tuple[bytes, ...]:
        """The bytes of one direction, split where TCP delivered them."""
        return self.chunks_by_direction[direction]

    def stream(self, direction: str) -> bytes:
        """Everything one direction wrote, as one byte string."""
        return b"".join(self.chunks_by_direction[direction])


def load_transcript(path: Path) -> Transcript:
    """Read a conformance JSON file into a ``Transcript``."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    chunks: dict[str, list[bytes]] = {direction: [] for direction in DIRECTIONS}
    for event in document["events"]:
        chunks[event["dir"]].append(bytes.fromhex(event["hex"]))
    return Transcript(
        path=Path(path),
        name=document["name"],
        description=document["description"],
        closed_by_peer=document["closed_by_peer"],
        chunks_by_direction={direction: tuple(parts) for direction, parts in chunks.items()},
    )

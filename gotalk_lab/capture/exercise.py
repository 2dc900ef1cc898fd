"""The closing exercise of tutorial 10 (captures): count what the server sent.

``check_server_message_count(answer, pcap)`` reads the capture itself and compares;
it returns a ``Verdict`` that explains a wrong answer and never raises, so the
notebook runs top to bottom with the exercise unanswered.
"""

from __future__ import annotations

from ..exercises import Verdict
from .reader import CapturedMessage, read_capture


def check_server_message_count(answer, pcap) -> Verdict:
    """``answer``: how many Gotalk messages the server sent in the capture's last connection."""
    try:
        events = [e for e in read_capture(pcap) if isinstance(e, CapturedMessage)]
    except Exception as error:  # a checker explains, it never raises
        return Verdict(False, f"the capture could not be read ({error}); run the cells above first")
    if not events:
        return Verdict(False, "the capture holds no Gotalk message yet; run the conversation cell above")
    last = max(e.connection.number for e in events)
    server = [e for e in events if e.connection.number == last and e.direction == "server"]
    count = len(server)
    if answer is None:
        return Verdict(False, "set answer to a number: the messages the server sent, its version \"01\" included")
    if isinstance(answer, bool) or not isinstance(answer, int):
        return Verdict(False, f"answer should be a whole number, not {type(answer).__name__} {answer!r}")
    if answer == count:
        return Verdict(True, f"{count}: the server's version, then one answer per request (every stream part counts).")
    if answer == count - 1:
        return Verdict(False, f"{answer} is one short: the version \"01\" the server writes first is a message too.")
    client = sum(1 for e in events if e.connection.number == last and e.direction == "client")
    if answer == client:
        return Verdict(False, f"{answer} is what the client sent; count the rows whose direction is \"server\".")
    if answer == count + client:
        return Verdict(False, f"{answer} counts both directions; only the server's messages are asked for.")
    return Verdict(False, f"not {answer}: filter the table above (or tshark's column) on the server's direction and count.")

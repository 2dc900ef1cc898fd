"""Reading captures: TCP reassembly, finding the Gotalk connections, the link types, bad input.

Captures are built two independent ways, so that a bug in the kit's writer cannot hide
one in its reader: by the kit's ``TcpConversation`` and by dpkt (or by hand with struct).
"""

from __future__ import annotations

import io
import random
import struct

import dpkt
import pytest

import gotalk_lab as gl
from gotalk_lab.capture import CaptureNote, CapturedMessage, PcapWriter, TcpConversation, read_capture
from gotalk_lab.capture.pcapfile import CaptureError
from gotalk_lab.decoder import decode_all

CLIENT_BYTES = (
    b"01r0001005greet0000000e{\"name\":\"Ada\"}s000200cupper-stream00000003abcp000200000003defp000200000000"
    b"n005hello00000002hih000065000000r0003004echo00004000" + bytes(range(256)) * 64
)
SERVER_BYTES = b"01R000100000019{\"greeting\": \"Hello Ada\"}S000200000003ABCS000200000003DEFS000200000000E000300000004boom"
CLIENT_IP, SERVER_IP = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"


def _messages(events, direction=None):
    return [e.frame.message for e in events if isinstance(e, CapturedMessage) and direction in (None, e.direction)]


def _notes(events):
    return [e.text for e in events if isinstance(e, CaptureNote)]


# -- captures built by dpkt ---------------------------------------------------


def _dpkt_frame(source, destination, seq, flags, payload=b"", ack=0):
    """An Ethernet frame made by dpkt: (ip, port) for each end."""
    tcp = dpkt.tcp.TCP(sport=source[1], dport=destination[1], seq=seq & 0xFFFFFFFF, ack=ack, flags=flags, data=payload)
    ip = dpkt.ip.IP(src=source[0], dst=destination[0], p=dpkt.ip.IP_PROTO_TCP, data=tcp)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def _dpkt_capture(segments, *, handshake=True, isn=(1000, 5000), client_port=40000, server_port=9000):
    """A pcap written by dpkt: ``segments`` are (side, stream offset, bytes, time)."""
    client, server = (CLIENT_IP, client_port), (SERVER_IP, server_port)
    sink = io.BytesIO()
    writer = dpkt.pcap.Writer(sink)
    if handshake:
        writer.writepkt(_dpkt_frame(client, server, isn[0], dpkt.tcp.TH_SYN), ts=0.5)
        writer.writepkt(_dpkt_frame(server, client, isn[1], dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, ack=isn[0] + 1), ts=0.5)
    for side, offset, payload, moment in segments:
        source, destination = (client, server) if side == "client" else (server, client)
        start = isn[0] if side == "client" else isn[1]
        writer.writepkt(_dpkt_frame(source, destination, start + 1 + offset, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, payload), ts=moment)
    sink.seek(0)
    return sink


def _pieces(data, rng, most=40):
    cuts = sorted(rng.sample(range(1, len(data)), min(most, len(data) - 1)))
    return [(a, data[a:b]) for a, b in zip([0, *cuts], [*cuts, len(data)])]


@pytest.mark.parametrize("seed", range(12))
def test_segments_out_of_order_retransmitted_and_overlapping_give_the_stream_back(seed):
    rng = random.Random(seed)
    segments = []
    for side, data in (("client", CLIENT_BYTES), ("server", SERVER_BYTES)):
        pieces = _pieces(data, rng)
        extra = []
        for offset, piece in rng.sample(pieces, len(pieces) // 3):  # retransmissions, some widened to overlap
            grow = rng.randrange(0, 30)
            extra.append((max(0, offset - grow), data[max(0, offset - grow) : offset + len(piece) + grow]))
        mixed = pieces + extra
        rng.shuffle(mixed)
        segments += [(side, offset, piece, 1.0 + i * 0.001) for i, (offset, piece) in enumerate(mixed)]
    rng.shuffle(segments)
    events = list(read_capture(_dpkt_capture(segments)))
    assert _messages(events, "client") == decode_all(CLIENT_BYTES)
    assert _messages(events, "server") == decode_all(SERVER_BYTES)
    assert _notes(events) == []


def test_a_message_over_one_byte_segments_and_many_messages_in_one_segment():
    one_byte = [("client", i, CLIENT_BYTES[i : i + 1], 1.0 + i / 1e6) for i in range(300)]
    rest = [("client", 300, CLIENT_BYTES[300:], 2.0), ("server", 0, SERVER_BYTES, 3.0)]
    events = list(read_capture(_dpkt_capture(one_byte + rest)))
    assert _messages(events, "client") == decode_all(CLIENT_BYTES)
    assert _messages(events, "server") == decode_all(SERVER_BYTES)
    server_times = {e.time for e in events if isinstance(e, CapturedMessage) and e.direction == "server"}
    assert server_times == {3.0}  # every message of one segment: that segment's time


def test_the_time_is_that_of_the_packet_that_completed_the_message():
    request = b"r0001004echo00000005hello"
    segments = [("client", 0, b"01", 1.0), ("client", 2 + 10, request[10:], 3.0), ("client", 2, request[:10], 2.0)]
    events = [e for e in read_capture(_dpkt_capture(segments)) if isinstance(e, CapturedMessage)]
    assert [(type(e.frame.message).__name__, e.time) for e in events] == [("ProtocolVersion", 1.0), ("SingleRequest", 2.0)]
    assert events[1].frame.offset == 2 and events[1].connection.client_text == "10.0.0.1:40000"


def test_sequence_numbers_that_wrap_around():
    segments = [("client", 0, CLIENT_BYTES[:50], 1.0), ("client", 50, CLIENT_BYTES[50:], 1.1)]
    events = list(read_capture(_dpkt_capture(segments, isn=(0xFFFFFFF0, 0xFFFFFFFF))))
    assert _messages(events, "client") == decode_all(CLIENT_BYTES)


def test_a_capture_that_starts_mid_connection_resyncs_at_the_next_plausible_message():
    late = CLIENT_BYTES.index(b"s0002")
    segments = [("client", 0, CLIENT_BYTES[late - 7 :], 1.0)]  # starts inside the greet payload
    events = list(read_capture(_dpkt_capture(segments, handshake=False)))
    assert _messages(events) == decode_all(CLIENT_BYTES[late:], expect_version=False)
    assert any("mid-connection" in note and "no handshake" in note for note in _notes(events))
    with_port = list(read_capture(_dpkt_capture(segments, handshake=False), port=9000))
    assert _messages(with_port) == _messages(events)


def test_mid_connection_bytes_that_hold_no_message_are_skipped_and_port_is_suggested():
    events = list(read_capture(_dpkt_capture([("client", 0, b"just some bytes " * 10, 1.0)], handshake=False)))
    assert _messages(events) == []
    assert any("--port" in note for note in _notes(events))


def test_a_connection_cut_mid_message_is_said_so():
    segments = [("client", 0, CLIENT_BYTES[:60], 1.0)]
    events = list(read_capture(_dpkt_capture(segments)))
    assert len(_messages(events)) == 2
    assert any("cut mid-message" in note for note in _notes(events))


def test_a_segment_never_captured_is_reported_and_decoding_resumes_after_it():
    start = CLIENT_BYTES.index(b"n005")
    segments = [("client", 0, CLIENT_BYTES[:40], 1.0), ("client", start, CLIENT_BYTES[start:], 1.2)]
    events = list(read_capture(_dpkt_capture(segments)))
    notes = _notes(events)
    assert any("lacks stream bytes 40 to" in note for note in notes), notes
    assert _messages(events)[-3:] == decode_all(CLIENT_BYTES[start:], expect_version=False)[-3:]


def test_not_gotalk_is_skipped_with_a_note():
    segments = [("client", 0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1.0), ("server", 0, b"HTTP/1.1 200 OK\r\n\r\n", 1.1)]
    events = list(read_capture(_dpkt_capture(segments, server_port=80)))
    assert _messages(events) == []
    assert any("not Gotalk" in note for note in _notes(events))


def test_invalid_bytes_in_a_gotalk_stream_are_an_error_note():
    segments = [("client", 0, b"01r0001004echo00000005hellox", 1.0)]
    events = list(read_capture(_dpkt_capture(segments)))
    errors = [e for e in events if isinstance(e, CaptureNote) and e.error]
    assert len(_messages(events)) == 2 and errors and "stream byte 27" in errors[0].text


# -- captures built by the kit's writer -----------------------------------------


def _kit_capture(linktype_rewrite=None):
    sink = io.BytesIO()
    writer = PcapWriter(sink)
    conversation = TcpConversation(writer, ("10.1.0.1", 50000), ("10.1.0.2", 9000))
    conversation.open(10.0)
    conversation.send("client", CLIENT_BYTES, 10.1)
    conversation.send("server", SERVER_BYTES, 10.2)
    conversation.close("server", 10.3)
    conversation = TcpConversation(writer, ("10.1.0.1", 50000), ("10.1.0.2", 9000), client_isn=7, server_isn=9)
    conversation.open(11.0)  # the same address pair, a new connection
    conversation.send("client", b"01", 11.1)
    sink.seek(0)
    return sink


def test_the_kits_writer_and_a_reused_address_pair():
    events = list(read_capture(_kit_capture()))
    numbers = {e.connection.number for e in events if isinstance(e, CapturedMessage)}
    assert numbers == {1, 2}
    assert _messages([e for e in events if getattr(e, "connection", None) and e.connection.number == 1], "client") == decode_all(CLIENT_BYTES)


def _relinked(linktype: int, rewrite) -> io.BytesIO:
    """The kit's capture with each Ethernet header replaced by another link type's."""
    out = io.BytesIO()
    writer = dpkt.pcap.Writer(out, linktype=linktype)
    for moment, frame in dpkt.pcap.Reader(_kit_capture()):
        writer.writepkt(rewrite(frame[14:]), ts=moment)
    out.seek(0)
    return out


@pytest.mark.parametrize(
    "linktype, rewrite",
    [
        (113, lambda ip: struct.pack("!HHH8sH", 0, 772, 6, b"\0" * 8, 0x0800) + ip),  # Linux cooked v1
        (276, lambda ip: struct.pack("!HHIHBB8s", 0x0800, 0, 1, 772, 0, 6, b"\0" * 8) + ip),  # Linux cooked v2
        (101, lambda ip: ip),  # raw IP
        (228, lambda ip: ip),  # raw IPv4
        (0, lambda ip: struct.pack("<I", 2) + ip),  # BSD loopback, little-endian host
        (0, lambda ip: struct.pack(">I", 2) + ip),  # BSD loopback, big-endian host
        (1, lambda ip: b"\x04" * 6 + b"\x02" * 6 + b"\x81\x00\x00\x05\x08\x00" + ip),  # Ethernet with a VLAN tag
    ],
)
def test_link_types(linktype, rewrite):
    events = list(read_capture(_relinked(linktype, rewrite)))
    assert _messages(events, "client")[: len(decode_all(CLIENT_BYTES))] == decode_all(CLIENT_BYTES)
    assert not [e for e in events if isinstance(e, CaptureNote) and "link type" in e.text]


def test_ipv6():
    client, server = (b"\0" * 15 + b"\x01", 40000), (b"\0" * 15 + b"\x01", 9000)
    sink = io.BytesIO()
    writer = dpkt.pcap.Writer(sink, linktype=dpkt.pcap.DLT_RAW)
    for source, destination, seq, flags, payload in [
        (client, server, 1, dpkt.tcp.TH_SYN, b""),
        (client, server, 2, dpkt.tcp.TH_ACK, b"01n002hi00000000"),
    ]:
        tcp = dpkt.tcp.TCP(sport=source[1], dport=destination[1], seq=seq, flags=flags, data=payload)
        ip = dpkt.ip6.IP6(src=source[0], dst=destination[0], nxt=6, hlim=64, data=tcp, plen=len(bytes(tcp)))
        writer.writepkt(bytes(ip), ts=1.0)
    sink.seek(0)
    events = list(read_capture(sink))
    assert _messages(events) == decode_all(b"01n002hi00000000")
    assert events[0].connection.client_text == "[::1]:40000"


def _pcapng_two_interfaces() -> bytes:
    """By hand: interface 0 Ethernet in microseconds, interface 1 raw IPv4 in nanoseconds."""
    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    def idb(linktype, tsresol=None):
        options = b"" if tsresol is None else struct.pack("<HHB3x", 9, 1, tsresol)
        return block(1, struct.pack("<HHI", linktype, 0, 0) + options + struct.pack("<HH", 0, 0))

    def epb(interface, ticks, data):
        return block(6, struct.pack("<IIIII", interface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)) + data)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + idb(1) + idb(101, 9)
    frames = list(dpkt.pcap.Reader(_kit_capture()))[:6]
    for index, (moment, frame) in enumerate(frames):
        out += epb(0, int(moment * 1e6), frame)
        # the same packets again on interface 1, on another address pair, 100 s later
        ip = bytearray(frame[14:])
        ip[15 if ip[15] == 1 else 19] = 99  # the client is 10.1.0.99 there
        ip[10:12] = b"\0\0"
        out += epb(1, int((moment + 100) * 1e9), bytes(ip))
    return out


def test_a_pcapng_with_several_interfaces_of_different_link_types_and_clocks():
    events = list(read_capture(io.BytesIO(_pcapng_two_interfaces())))
    by_connection = {}
    for e in events:
        if isinstance(e, CapturedMessage):
            by_connection.setdefault(e.connection.number, []).append(e)
    assert sorted(by_connection) == [1, 2]
    assert [e.frame.message for e in by_connection[1]] == [e.frame.message for e in by_connection[2]]
    assert abs(by_connection[2][0].time - by_connection[1][0].time - 100) < 1e-3


def test_trace_from_pcap_feeds_the_timeline_and_the_player(tmp_path):
    path = tmp_path / "kit.pcap"
    path.write_bytes(_kit_capture().getvalue())
    traces = gl.Trace.from_pcap(path)
    assert len(traces) == 2
    first = traces[0]
    assert [event.direction for event in first][:2] == ["out", "out"]
    assert any(exchange.outcome == "error" for exchange in first.exchanges.values())
    assert any(exchange.kind == "stream" for exchange in first.exchanges.values())
    assert 0 <= first[-1].time < 1
    gl.widgets.Timeline(first)
    gl.widgets.Player(first)


def test_truncated_and_damaged_files_raise_a_located_error_after_the_whole_packets():
    data = _kit_capture().getvalue()
    events = []
    with pytest.raises(CaptureError) as raised:
        for event in read_capture(io.BytesIO(data[: len(data) - 30])):
            events.append(event)
    assert "cut short in packet" in str(raised.value)
    assert len(_messages(events)) > 5
    with pytest.raises(CaptureError, match="not a pcap"):
        list(read_capture(io.BytesIO(b"hello world")))
    with pytest.raises(CaptureError, match="cut short"):
        list(read_capture(io.BytesIO(_pcapng_two_interfaces()[:-3])))

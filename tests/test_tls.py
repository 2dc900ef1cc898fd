"""TLS and UNIX sockets end to end: ``serve`` and ``connect`` over tls://, wss:// and
unix://, certificates refused with one clear line, the tap ending TLS on either side,
replay of a recording against TLS and UNIX targets. (Clients this kit did not write
talk to ``gotalk-lab serve --tls`` in test_cli_tls.py.)

The certificates are the session's own (``certificates`` in conftest.py, by trustme).
"""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

import gotalk_lab as gl
from gotalk_lab import demo
from gotalk_lab.wire import SingleRequest, SingleResult

BOUND = 10.0


async def within(awaitable, seconds: float = BOUND):
    return await asyncio.wait_for(awaitable, seconds)


def socket_path(tmp_path) -> str:
    """A UNIX socket path in tmp_path (their names are limited to about 100 bytes)."""
    path = str(tmp_path / "g.sock")
    assert len(path) < 100, path
    return path


async def serve_every_scheme(certificates, tmp_path):
    return await within(gl.serve(
        ["tls://127.0.0.1:0", "wss://127.0.0.1:0/gotalk/", f"unix://{socket_path(tmp_path)}"],
        demo.handlers(),
        ssl=certificates.server_context(),
    ))


# -- serve and connect ----------------------------------------------------------------


def test_unix_addresses_parse_and_round_trip():
    assert gl.parse_address("unix:///tmp/a.sock") == gl.Address("unix", "", 0, "/tmp/a.sock")
    assert gl.parse_address("unix:rel/a.sock") == gl.Address("unix", "", 0, "rel/a.sock")
    assert gl.parse_address("unix:///tmp/a.sock").url == "unix:///tmp/a.sock"
    assert gl.parse_address(gl.parse_address("unix:rel/a.sock").url).path == "rel/a.sock"
    with pytest.raises(ValueError, match="no path"):
        gl.parse_address("unix://")


async def test_serve_names_each_scheme_it_listens_on(certificates, tmp_path):
    async with await serve_every_scheme(certificates, tmp_path) as server:
        tls, wss, unix = server.addresses
        assert tls.startswith("tls://127.0.0.1:") and not tls.endswith(":0")
        assert wss.startswith("wss://127.0.0.1:") and wss.endswith("/gotalk/")
        assert unix == f"unix://{socket_path(tmp_path)}"
    # The socket's file goes with the server.
    assert not os.path.exists(socket_path(tmp_path))


@pytest.mark.parametrize("which", [0, 1, 2], ids=["tls", "wss", "unix"])
async def test_requests_streams_and_notifications(certificates, tmp_path, which):
    heard = asyncio.get_running_loop().create_future()
    handlers = demo.handlers()  # "callback" asks this side's "ping"
    handlers.on_notification("hello-back", lambda payload: heard.done() or heard.set_result(payload))
    async with await serve_every_scheme(certificates, tmp_path) as server:
        address = server.addresses[which]
        context = certificates.client_context() if which < 2 else None
        client = await within(gl.connect(address, handlers, ssl=context))
        try:
            assert await within(client.request_bytes("echo", b"over " + address.encode())) == b"over " + address.encode()
            assert await within(client.request_bytes("callback", b"c")) == b"pong:ping:c"
            async with client.stream_request("upper-stream") as stream:
                for part in (b"one", b"two"):
                    await within(stream.send(part))
                await within(stream.end())
                assert [part async for part in stream] == [b"ONE", b"TWO"]
            await within(client.notify_bytes("hello", b"hi"))
            assert await within(heard) == b"hi"
            assert client.transport.description.startswith(("tls ", "ws wss://", "unix ")[which])
            # The server's side of the connection names its carrier too.
            assert [peer.name.split()[0] for peer in server.peers] == [("tls", "wss", "unix")[which]]
        finally:
            await within(client.close())


async def test_the_server_side_peer_names_a_unix_connection(tmp_path):
    async with await within(gl.serve(f"unix://{socket_path(tmp_path)}", demo.handlers())) as server:
        accepted = []
        server.on_connect(accepted.append)
        client = await within(gl.connect(server.addresses[0]))
        await within(client.request_bytes("echo", b"x"))
        assert accepted[0].name == f"unix {socket_path(tmp_path)}"
        await within(client.close())


async def test_a_stale_socket_file_is_replaced(tmp_path):
    import socket

    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(socket_path(tmp_path))  # a crashed server's file: nobody listens there
    async with await within(gl.serve(f"unix://{socket_path(tmp_path)}", demo.handlers())) as server:
        client = await within(gl.connect(server.addresses[0]))
        assert await within(client.request_bytes("echo", b"fresh")) == b"fresh"
        await within(client.close())


async def test_tls_addresses_need_a_server_context_and_plain_ones_refuse_one(certificates):
    with pytest.raises(ValueError, match="needs ssl="):
        await within(gl.serve("tls://127.0.0.1:0", demo.handlers()))
    with pytest.raises(ValueError, match="ssl= is for tls:// and wss://"):
        await within(gl.connect("tcp://127.0.0.1:1", ssl=certificates.client_context()))


async def test_one_server_serves_plain_and_tls_addresses_side_by_side(certificates):
    server = await within(gl.serve(["tcp://127.0.0.1:0", "tls://127.0.0.1:0"], demo.handlers(), ssl=certificates.server_context()))
    async with server:
        plain, secure = server.addresses
        assert plain.startswith("tcp://") and secure.startswith("tls://")
        for address, context in ((plain, None), (secure, certificates.client_context())):
            client = await within(gl.connect(address, ssl=context))
            assert await within(client.request_bytes("echo", b"x")) == b"x"
            await within(client.close())


# -- certificates refused --------------------------------------------------------------


@pytest.mark.parametrize("which", [0, 1], ids=["tls", "wss"])
async def test_a_certificate_the_system_does_not_trust_is_refused_in_one_clear_line(certificates, tmp_path, which):
    async with await serve_every_scheme(certificates, tmp_path) as server:
        address = server.addresses[which]
        with pytest.raises(gl.CertificateError) as refused:
            await within(gl.connect(address))  # the default context: the system's CAs only
        text = str(refused.value)
        assert "\n" not in text
        assert text.startswith(f"{address}: the server's TLS certificate is not trusted: ")
        assert refused.value.reason in text and refused.value.reason
        assert "cafile=" in text and "--cacert" in text and "--insecure" in text
        assert isinstance(refused.value, OSError)  # where callers already catch connection failures
        assert not server.peers


async def test_a_certificate_for_another_name_is_refused_saying_so(certificates):
    wrong_name = certificates.ca.issue_cert("gotalk.example")
    async with await within(gl.serve("tls://127.0.0.1:0", demo.handlers(), ssl=certificates.server_context(wrong_name))) as server:
        with pytest.raises(gl.CertificateError, match="mismatch"):
            await within(gl.connect(server.addresses[0], ssl=certificates.client_context()))


async def test_the_client_context_helpers_trust_a_ca_file_or_nothing(certificates):
    async with await within(gl.serve("tls://127.0.0.1:0", demo.handlers(), ssl=gl.tls_server_context(certificates.cert_file, certificates.key_file))) as server:
        for context in (gl.tls_client_context(certificates.ca_file), gl.tls_client_context(insecure=True)):
            client = await within(gl.connect(server.addresses[0], ssl=context))
            assert await within(client.request_bytes("echo", b"x")) == b"x"
            await within(client.close())
        with pytest.raises(gl.CertificateError):
            await within(gl.connect(server.addresses[0], ssl=gl.tls_client_context()))


# -- the tap ends TLS ----------------------------------------------------------------------------


def _plaintext(tap: gl.Tap) -> list:
    return [event.message for event in tap.connections[0].trace.events]


async def test_the_tap_terminates_tls_on_both_sides_and_records_the_plaintext(certificates):
    async with await within(gl.serve("tls://127.0.0.1:0", demo.handlers(), ssl=certificates.server_context())) as server:
        tap = await within(gl.tap(
            "tls://127.0.0.1:0", server.addresses[0],
            ssl=certificates.server_context(), upstream_ssl=certificates.client_context(), intercept=False,
        ))
        async with tap:
            assert tap.address.startswith("tls://127.0.0.1:") and tap.url == tap.address
            client = await within(gl.connect(tap.address, ssl=certificates.client_context()))
            assert await within(client.request_bytes("echo", b"secret")) == b"secret"
            await within(client.close())
    messages = _plaintext(tap)
    assert any(isinstance(m, SingleRequest) and m.operation == "echo" and m.payload == b"secret" for m in messages)
    assert any(isinstance(m, SingleResult) and m.payload == b"secret" for m in messages)


async def test_an_intercepting_tap_between_a_plain_client_and_a_tls_upstream(certificates):
    async with await within(gl.serve("tls://127.0.0.1:0", demo.handlers(), ssl=certificates.server_context())) as server:
        async with await within(gl.tap("127.0.0.1:0", server.addresses[0], upstream_ssl=certificates.client_context())) as tap:
            tap.rewrite(b"R000000000003abc", dir="upstream", type="R")
            client = await within(gl.connect(tap.address))
            assert await within(client.request_bytes("echo", b"xyz")) == b"abc"
            await within(client.close())
    assert any(isinstance(m, SingleRequest) and m.payload == b"xyz" for m in _plaintext(tap))


async def test_the_tap_listens_on_and_reaches_unix_sockets(tmp_path):
    (tmp_path / "up").mkdir()
    (tmp_path / "tap").mkdir()
    async with await within(gl.serve(f"unix://{socket_path(tmp_path / 'up')}", demo.handlers())) as server:
        tap = await within(gl.tap(f"unix://{socket_path(tmp_path / 'tap')}", server.addresses[0], intercept=False))
        async with tap:
            assert tap.address == f"unix://{socket_path(tmp_path / 'tap')}"
            client = await within(gl.connect(tap.address))
            assert await within(client.request_bytes("echo", b"u")) == b"u"
            await within(client.close())
            assert tap.connections[0].client_peer is None  # a UNIX socket has no (host, port)
    assert not os.path.exists(socket_path(tmp_path / "tap"))
    assert any(isinstance(m, SingleRequest) and m.payload == b"u" for m in _plaintext(tap))


async def test_the_tap_says_why_it_could_not_reach_an_untrusted_upstream(certificates, caplog):
    async with await within(gl.serve("tls://127.0.0.1:0", demo.handlers(), ssl=certificates.server_context())) as server:
        async with await within(gl.tap("127.0.0.1:0", server.addresses[0])) as tap:
            with caplog.at_level(logging.ERROR, logger="gotalk_lab.tap"):
                reader, writer = await within(asyncio.open_connection(*tap.address.rsplit(":", 1)))
                assert await within(reader.read()) == b""  # the tap closed the client
                writer.close()
    assert any("TLS certificate is not trusted" in record.getMessage() and "--cacert" in record.getMessage() for record in caplog.records)


async def test_a_tap_refuses_a_websocket_side():
    with pytest.raises(ValueError, match="tcp://, tls:// or unix://"):
        gl.Tap("ws://127.0.0.1:1/gotalk/")


# -- replay --------------------------------------------------------------------------------------


async def test_replay_reaches_tls_and_unix_targets(certificates, tmp_path):
    async with await serve_every_scheme(certificates, tmp_path) as server:
        tls, _, unix = server.addresses
        async with await within(gl.tap("127.0.0.1:0", unix, intercept=False)) as tap:
            client = await within(gl.connect(tap.address))
            assert await within(client.request_bytes("echo", b"again")) == b"again"
            await within(client.close())
        recorded = tap.connections[0].trace
        for target, context in ((tls, certificates.client_context()), (unix, None)):
            report = await within(gl.replay(recorded, target, ssl=context, quiet=0.3))
            assert report.same and report.sent >= 2, str(report)
        with pytest.raises(gl.CertificateError):
            await within(gl.replay(recorded, tls))


async def test_the_taps_pcap_keeps_both_ends_of_a_unix_to_unix_connection_apart(tmp_path):
    from gotalk_lab.tap_pcap import PcapRecorder

    (tmp_path / "up").mkdir()
    async with await within(gl.serve(f"unix://{socket_path(tmp_path / 'up')}", demo.handlers())) as server:
        tap = await within(gl.tap(f"unix://{socket_path(tmp_path)}", server.addresses[0], intercept=False))
        recorder = PcapRecorder(tmp_path / "tap.pcap")
        tap.on_bytes(recorder.on_bytes)
        async with tap:
            client = await within(gl.connect(tap.address))
            assert await within(client.request_bytes("echo", b"both ways")) == b"both ways"
            await within(client.close())
        recorder.close()
    (recorded,) = gl.Trace.from_pcap(tmp_path / "tap.pcap")
    messages = [event.message for event in recorded.events]
    assert any(isinstance(m, SingleRequest) and m.payload == b"both ways" for m in messages)
    assert any(isinstance(m, SingleResult) and m.payload == b"both ways" for m in messages)

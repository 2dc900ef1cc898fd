"""The installed command over TLS and UNIX sockets: `serve --tls/--unix`, `request`
and `tap` with tls:// and unix:// addresses, `--cacert` and `--insecure`; and
clients this kit did not write (Python's own ``ssl``, ``openssl s_client``)
sending raw Gotalk bytes to `serve --tls`."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from test_cli_network import Background, _command, request

#: What a raw client sends: the version, then echo "hello" as request 0001.
RAW_REQUEST = b"01" + b"r0001004echo00000005hello"
RAW_ANSWER = b"R000100000005hello"


def listening(background: Background) -> list[str]:
    return [re.fullmatch(r"listening (\S+)(?: -> upstream \S+)?", line).group(1) for line in background.lines]


@pytest.fixture
def tls_server(certificates, tmp_path):
    """`serve` on tls://, wss:// and unix://, the certificate the tests' CA signed."""
    background = Background(
        "serve", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--unix", str(tmp_path / "g.sock"),
        "--tls", str(certificates.cert_file), str(certificates.key_file), expect_lines=3,
    )
    yield background
    if background.process.poll() is None:
        background.stop()


def test_serve_prints_the_schemes_it_listens_on_and_removes_its_socket(tls_server, tmp_path):
    tls, wss, unix = listening(tls_server)
    assert re.fullmatch(r"tls://127\.0\.0\.1:\d+", tls) and not tls.endswith(":0")
    assert re.fullmatch(r"wss://127\.0\.0\.1:\d+/gotalk/", wss)
    assert unix == f"unix://{tmp_path / 'g.sock'}"
    code, _, _ = tls_server.stop()
    assert code == 0
    assert not (tmp_path / "g.sock").exists()


@pytest.mark.parametrize("which", [0, 1], ids=["tls", "wss"])
def test_request_over_tls_trusts_the_cacert_and_refuses_without_it(tls_server, certificates, which):
    address = listening(tls_server)[which]
    trusted = request(address, "echo", "hello", "--cacert", str(certificates.ca_file))
    assert (trusted.returncode, trusted.stdout) == (0, b"hello\n"), trusted.stderr
    stream = request(address, "upper-stream", "--stream", "a", "b", "--cafile", str(certificates.ca_file))
    assert stream.stdout == b"A\nB\n", stream.stderr
    assert request(address, "echo", "anyway", "--insecure").stdout == b"anyway\n"
    refused = request(address, "echo", "hello")  # the system's CAs do not know the tests' CA
    assert refused.returncode == 1 and refused.stdout == b""
    lines = refused.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"gotalk-lab request: {address}: the server's TLS certificate is not trusted: ")
    assert "--cacert" in lines[0] and "--insecure" in lines[0]


def test_request_over_the_unix_socket(tls_server):
    unix = listening(tls_server)[2]
    assert request(unix, "callback", "zz").stdout == b"pong:ping:zz\n"


def test_a_cacert_that_cannot_be_read_is_a_usage_error(tls_server, tmp_path):
    result = request(listening(tls_server)[0], "echo", "x", "--cacert", str(tmp_path / "missing.pem"))
    assert result.returncode == 2
    assert b"cannot read --cacert" in result.stderr


def test_serve_explains_tls_options_it_cannot_use(tmp_path, certificates):
    alone = subprocess.run([_command(), "serve", "--unix", str(tmp_path / "s"), "--tls", str(certificates.cert_file), str(certificates.key_file)], capture_output=True, text=True, timeout=30)
    assert alone.returncode == 2 and "--tls applies to --tcp and --ws" in alone.stderr
    missing = subprocess.run([_command(), "serve", "--tcp", "127.0.0.1:0", "--tls", str(tmp_path / "no.pem"), str(tmp_path / "no.key")], capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and "cannot load --tls" in missing.stderr
    help_text = subprocess.run([_command(), "serve", "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "--tls CERT KEY" in help_text and "--unix PATH" in help_text
    for command in ("request", "tap", "replay", "check"):
        help_text = subprocess.run([_command(), command, "--help"], capture_output=True, text=True, timeout=30).stdout
        assert "--cacert FILE" in help_text and "--insecure" in help_text and "tls://" in help_text, command


def test_the_tap_ends_tls_on_both_sides_and_prints_the_plaintext(tls_server, certificates):
    upstream = listening(tls_server)[0]
    tap = Background(
        "tap", "--listen", "127.0.0.1:0", "--tls", str(certificates.cert_file), str(certificates.key_file),
        "--upstream", upstream, "--cacert", str(certificates.ca_file),
    )
    try:
        assert re.fullmatch(rf"listening tls://127\.0\.0\.1:\d+ -> upstream {re.escape(upstream)}", tap.lines[0])
        through = request(listening(tap)[0], "echo", "plain to see", "--cacert", str(certificates.ca_file))
        assert through.stdout == b"plain to see\n", through.stderr
    finally:
        _, out, _ = tap.stop()
    assert re.search(r'-> r 0000 echo "plain to see"', out), out
    assert re.search(r'<- R 0000 "plain to see"', out), out


def test_the_tap_between_a_unix_socket_and_a_tls_upstream_says_why_it_cannot_trust_it(tls_server, tmp_path):
    tap = Background("tap", "--listen", f"unix://{tmp_path / 't.sock'}", "--upstream", listening(tls_server)[0])
    try:
        assert tap.lines[0].startswith(f"listening unix://{tmp_path / 't.sock'} -> upstream tls://")
        result = request(listening(tap)[0], "echo", "x")
        assert result.returncode == 1
    finally:
        _, _, err = tap.stop()
    assert "the server's TLS certificate is not trusted" in err and "--cacert" in err, err


# -- clients this kit did not write ------------------------------------------------------------


def test_pythons_ssl_client_sends_raw_gotalk_to_serve_tls(tls_server, certificates):
    port = int(listening(tls_server)[0].rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(certificates.ca_file))
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname="127.0.0.1") as secure:
            secure.sendall(RAW_REQUEST)
            for _ in range(100):
                if RAW_ANSWER in received:
                    break
                chunk = secure.recv(4096)
                if not chunk:
                    break
                received += chunk
    assert received == b"01" + RAW_ANSWER


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_sends_raw_gotalk_to_serve_tls(tls_server, certificates):
    address = listening(tls_server)[0].removeprefix("tls://")
    process = subprocess.Popen(
        ["openssl", "s_client", "-quiet", "-verify_return_error", "-connect", address, "-CAfile", str(certificates.ca_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    watchdog = threading.Timer(10, process.kill)  # a silent server must not hang the read below
    watchdog.start()
    try:
        process.stdin.write(RAW_REQUEST)
        process.stdin.flush()
        received = b""
        for _ in range(100):
            if RAW_ANSWER in received:
                break
            chunk = process.stdout.read1(4096)
            if not chunk:
                break
            received += chunk
    finally:
        watchdog.cancel()
        process.kill()
        process.communicate(timeout=10)
    assert received == b"01" + RAW_ANSWER


@pytest.mark.timeout(90)
@pytest.mark.parametrize("which", [0, 2], ids=["tls", "unix"])
def test_check_judges_a_tls_or_unix_server_and_refuses_an_untrusted_one(tls_server, certificates, which):
    import json

    target = listening(tls_server)[which]
    run = subprocess.run(
        [_command(), "check", target, "--echo", "echo", "--stream-echo", "upper-stream", "--cacert", str(certificates.ca_file), "--json", "-"],
        capture_output=True, text=True, timeout=80,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["counts"]["fail"] == 0 and report["counts"]["pass"] >= 20, report["counts"]
    if which == 0:
        refused = subprocess.run([_command(), "check", target], capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2
        assert refused.stderr.startswith(f"gotalk-lab check: cannot reach {target}: the server's TLS certificate is not trusted")

"""Shared by the capture tests: real conversations through `gotalk-lab tap --pcap`, and tshark."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import gotalk_lab as gl
from gotalk_lab.wireshark import plugin_path

ROOT = Path(__file__).resolve().parents[2]
TSHARK = shutil.which("tshark")
TCPDUMP = shutil.which("tcpdump")
#: tshark says this on stderr whenever it runs as root; it is not about the capture.
ROOT_WARNING = 'Running as user "root" and group "root". This could be dangerous.'


def start(*args: str) -> tuple[subprocess.Popen, str]:
    """A gotalk-lab command in the background and the address in its 'listening' line."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "gotalk_lab.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )
    line = process.stdout.readline()
    assert line.startswith("listening"), f"{args}: {line!r} {process.stderr.read() if process.poll() is not None else ''}"
    return process, line.split()[1]


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err


async def conversation(address: str) -> None:
    """Every kind of message: single, JSON, error, retry, stream, notification,
    heartbeats, a callback the other way, a payload split over many segments;
    then a second connection that says nothing and is closed with a protocol error."""
    peer = await gl.connect(address, gl.demo.handlers(), heartbeat_interval=0.1)
    heard = asyncio.Event()
    peer.on_notification("hello-back", lambda payload: heard.set())
    await peer.request("greet", {"name": "Ada"})
    await peer.request_bytes("echo", bytes(range(256)) * 400)  # 100 KiB: many segments
    try:
        await peer.request_bytes("fail", b"x")
    except Exception:
        pass
    await asyncio.gather(peer.request("sleep", {"ms": 150}), peer.request("sleep", {"ms": 150}))  # one is told to retry
    async with peer.stream_request("upper-stream") as stream:
        await stream.send(b"abc")
        await stream.send(b"def")
        await stream.end()
        async for _ in stream:
            pass
    await peer.notify("hello", "hi")
    await asyncio.wait_for(heard.wait(), 5)
    await peer.request_bytes("callback", b"zz")
    await asyncio.sleep(0.35)  # heartbeats both ways
    await peer.close()
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"01")  # then silence: the read timeout answers f00000003 and closes
    await writer.drain()
    await asyncio.wait_for(reader.read(), 10)  # until the server closes
    writer.close()


def record_conversation(pcap: Path, *extra: str) -> None:
    """Run ``conversation`` through `gotalk-lab tap --pcap` in front of `gotalk-lab serve`."""
    server, server_address = start("serve", "--tcp", "127.0.0.1:0", "--heartbeat", "0.1", "--buffer-limit", "1", "--read-timeout", "2", *extra)
    try:
        tap, tap_address = start("tap", "--listen", "127.0.0.1:0", "--upstream", server_address.removeprefix("tcp://"), "--pcap", str(pcap))
        try:
            asyncio.run(conversation(tap_address))
        finally:
            stop(tap)
    finally:
        stop(server)


def tshark(*args: str, home: Path, plugin: bool = True) -> subprocess.CompletedProcess:
    """tshark with a HOME of its own (no personal plugins, no preferences), the dissector loaded."""
    command = [TSHARK]
    if plugin:
        command += ["-X", f"lua_script:{plugin_path()}"]
    command += ["-o", "tcp.reassemble_out_of_order:TRUE", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(home)})
    result.stderr = "\n".join(line for line in result.stderr.splitlines() if line.strip() != ROOT_WARNING)
    return result


def dissected(pcap: Path, home: Path, *args: str) -> list[dict]:
    """Every gotalk tree item tshark shows, in order, as {field: value} (PDML)."""
    result = tshark("-r", str(pcap), "-T", "pdml", *args, home=home)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    messages = []
    for packet in ElementTree.fromstring(result.stdout).iter("packet"):
        tcp = {field.get("name"): field.get("show") for field in packet.iter("field") if field.get("name") in ("tcp.srcport", "tcp.dstport")}
        for proto in packet.iter("proto"):
            if proto.get("name") != "gotalk":
                continue
            fields = {}
            for field in proto.iter("field"):
                name = field.get("name")
                if name.startswith("gotalk."):
                    fields[name] = field.get("value") if name in ("gotalk.id", "gotalk.payload") else field.get("show")
            fields["ports"] = (tcp.get("tcp.srcport"), tcp.get("tcp.dstport"))
            messages.append(fields)
    return messages


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

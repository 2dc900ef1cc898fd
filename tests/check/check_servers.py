"""Small raw Gotalk servers for the checker's tests: a correct one, and the same with one defect.

``RawServer(defects)`` listens on 127.0.0.1:0 (TCP, or WebSocket with ``websocket=True``)
and speaks the protocol with the codec only (``Decoder`` to read, ``encode_header`` to
write): no Peer, so each defect is one ``if`` in plain sight. Operations: ``echo``
(single, answers its payload) and ``upper-stream`` (stream, one upper-cased part per
part). Each name in ``DEFECTS`` turns one behaviour wrong.
"""

from __future__ import annotations

import asyncio
import re
import time

from gotalk_lab.decoder import Decoder
from gotalk_lab.errors import ProtocolViolation
from gotalk_lab.wire import (
    ErrorResult,
    Heartbeat,
    Notification,
    ProtocolError,
    SingleRequest,
    SingleResult,
    StreamRequest,
    StreamRequestPart,
    StreamResult,
    encode,
    encode_header,
    payload_of,
)

DEFECTS = {
    "no_version": "never writes its version",
    "ignore_version": "carries on after a version other than 01",
    "version_f1": "writes f00000001 before closing on a version mismatch (as gotalk.js)",
    "decimal_sizes": "writes result sizes in decimal",
    "uppercase_sizes": "writes result sizes in uppercase hex",
    "reject_uppercase": "closes on a request whose size has uppercase hex digits",
    "tiny_reads_dropped": "drops any read shorter than a header (assumes a read holds a header)",
    "first_message_only": "handles only the first message of each read",
    "char_count_names": "sizes names in characters, not bytes",
    "text_payloads": "treats payloads as UTF-8 text",
    "empty_as_null": "answers an empty payload with 'null'",
    "mangle_ids": "passes request IDs through ASCII",
    "close_on_unknown_op": "drops the connection on an unknown operation",
    "silent_unknown_type": "ignores a message of unknown type",
    "silent_bad_size": "ignores a message with bad size digits",
    "close_without_f": "closes on a protocol error without writing f",
    "close_on_unknown_notification": "drops the connection on an unknown notification",
    "answer_notifications": "answers notifications with an error",
    "close_on_heartbeat": "drops the connection on a heartbeat",
    "bad_heartbeat_time": "sends heartbeats with time 0",
    "good_heartbeats": "sends heartbeats with the current time (not a defect)",
    "shared_id": "answers single requests late, under the latest request's ID",
    "serialize": "handles one exchange at a time, in arrival order",
    "forget_reused_ids": "ignores a request whose ID was used before",
    "forget_reused_stream_ids": "refuses a stream ID used before",
    "reverse_stream": "answers stream parts in reverse order at the end",
    "empty_first_part_waits": "takes an empty first part for data and waits",
    "no_stream_end": "never ends a result stream",
    "stray_part_opens_stream": "answers a part for an unknown stream",
    "streams_disabled": "answers stream requests E (the Go default)",
    "corrupt_large": "corrupts payloads past 64 KiB",
    "crash_on_huge_size": "dies on a header declaring more than its limit",
    "flood_cap": "stops answering after 500 requests on a connection",
    "name_limit_255": "refuses names longer than 255 bytes",
    "idle_close": "closes connections idle for 0.3 s",
    "crash_on_eof_mid_message": "dies when a client leaves in the middle of a message",
    "ws_packed": "packs header and payload into one WebSocket message",
    "go_silent_closes": "closes without f on bad size digits and on a stray stream part (as the Go peer does)",
}

#: What the Go reference server does with its default settings (PROTOCOL.md), as defects of ours.
GO_DEFAULTS = ("streams_disabled", "go_silent_closes")

MAX_PAYLOAD = 64 * 1024 * 1024


class RawServer:
    def __init__(self, defects=(), *, websocket: bool = False) -> None:
        unknown = set(defects) - set(DEFECTS)
        assert not unknown, unknown
        self.defects = frozenset(defects)
        self.websocket = websocket
        self.url = ""
        self._server = None
        self._tasks: set[asyncio.Task] = set()
        self._connections: set = set()

    async def __aenter__(self) -> "RawServer":
        if self.websocket:
            from websockets.asyncio.server import serve

            self._server = await serve(self._ws_handler, "127.0.0.1", 0, compression=None, max_size=None, ping_interval=None)
            port = next(iter(self._server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/gotalk/"
        else:
            self._server = await asyncio.start_server(self._tcp_handler, "127.0.0.1", 0)
            port = self._server.sockets[0].getsockname()[1]
            self.url = f"tcp://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and drop every connection (also how a defect "dies")."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.abort()
        for task in list(self._tasks):
            task.cancel()

    # -- transports --------------------------------------------------------------------

    async def _tcp_handler(self, reader, writer) -> None:
        await Connection(self, TcpIO(reader, writer)).serve()

    async def _ws_handler(self, websocket) -> None:
        await Connection(self, WsIO(websocket, packed="ws_packed" in self.defects)).serve()


class TcpIO:
    def __init__(self, reader, writer) -> None:
        self.reader, self.writer = reader, writer

    async def read_version(self) -> bytes:
        try:
            return await self.reader.readexactly(2)
        except asyncio.IncompleteReadError:
            return b""

    async def read(self) -> bytes:
        return await self.reader.read(65536)

    async def write(self, header: bytes, payload: bytes = b"") -> None:
        if not self.writer.is_closing():
            self.writer.write(header + payload)

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()


class WsIO:
    def __init__(self, websocket, packed: bool) -> None:
        self.websocket, self.packed = websocket, packed
        self.lock = asyncio.Lock()
        self.pending = b""

    async def read_version(self) -> bytes:
        data = await self.read()
        self.pending = data[2:]
        return data[:2]

    async def read(self) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        try:
            data = await self.websocket.recv()
        except Exception:
            return b""
        return data.encode() if isinstance(data, str) else data

    async def write(self, header: bytes, payload: bytes = b"") -> None:
        async with self.lock:
            try:
                if self.packed or not payload:
                    await self.websocket.send(header + payload)
                else:
                    await self.websocket.send(header)
                    await self.websocket.send(payload)
            except Exception:
                pass

    def abort(self) -> None:
        self.websocket.transport.abort()

    async def close(self) -> None:
        await self.websocket.close()


class Closing(Exception):
    """Raised inside the read loop to end the connection (after an optional f)."""


class Connection:
    def __init__(self, server: RawServer, io) -> None:
        self.server, self.io = server, io
        self.defects = server.defects
        self.decoder = Decoder(expect_version=False, max_payload_size=MAX_PAYLOAD)
        self.streams: dict[bytes, list[bytes]] = {}  # open stream ID -> parts held (reverse_stream)
        self.used_ids: set[bytes] = set()
        self.used_stream_ids: set[bytes] = set()
        self.latest_id = b""
        self.answered = 0
        self.queue: asyncio.Queue = asyncio.Queue()  # serialize: exchanges in arrival order
        self.stream_parts: dict[bytes, asyncio.Queue] = {}

    def has(self, defect: str) -> bool:
        return defect in self.defects

    async def serve(self) -> None:
        self.server._connections.add(self.io)
        tasks = []
        try:
            if not self.has("no_version"):
                await self.io.write(b"01")
            version = await self.io.read_version()
            if version != b"01" and not self.has("ignore_version"):
                if self.has("version_f1"):
                    await self.io.write(b"f00000001")
                return
            if self.has("bad_heartbeat_time") or self.has("good_heartbeats"):
                tasks.append(asyncio.ensure_future(self.heartbeats()))
            if self.has("serialize"):
                tasks.append(asyncio.ensure_future(self.worker()))
            await self.read_loop()
        except Closing as closing:
            if closing.args and closing.args[0] is not None and not self.has("close_without_f"):
                await self.io.write(encode(ProtocolError(closing.args[0])))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            self.server._connections.discard(self.io)
            try:
                await self.io.close()
            except Exception:
                pass

    async def heartbeats(self) -> None:
        while True:
            now = 0 if self.has("bad_heartbeat_time") else int(time.time())
            await self.io.write(encode(Heartbeat(0, now)))
            await asyncio.sleep(0.1)

    async def read_loop(self) -> None:
        while True:
            try:
                data = await (asyncio.wait_for(self.io.read(), 0.3) if self.has("idle_close") else self.io.read())
            except asyncio.TimeoutError:
                raise Closing(None)
            except ConnectionError:
                data = b""
            if not data:
                if self.decoder.buffered and self.has("crash_on_eof_mid_message"):
                    await self.server.close()
                return
            if self.has("tiny_reads_dropped") and len(data) < 13:
                continue
            if self.has("reject_uppercase") and re.match(rb"r.{4}[0-9a-f]{3}", data, re.S):
                name_end = 8 + int(data[5:8], 16)
                if re.search(rb"[A-F]", data[name_end : name_end + 8]):
                    raise Closing(None)
            if self.has("char_count_names") and data[:1] == b"n":
                self.char_counted_notification(data)
                continue
            if self.has("crash_on_huge_size") and re.match(rb"r.{4}[0-9a-f]{3}", data, re.S):
                name_end = 8 + int(data[5:8], 16)
                size = data[name_end : name_end + 8]
                if re.fullmatch(rb"[0-9a-fA-F]{8}", size) and int(size, 16) > MAX_PAYLOAD:
                    await self.server.close()
                    return
            try:
                messages = self.decoder.feed(data)
            except ProtocolViolation as violation:
                messages = violation.messages
                silent = (violation.field == "type" and self.has("silent_unknown_type")) or (
                    "size" in violation.field and self.has("silent_bad_size"))
                for message in messages:
                    await self.handle(message)
                if silent:
                    self.decoder = Decoder(expect_version=False, max_payload_size=MAX_PAYLOAD)
                    continue
                raise Closing(None if "size" in violation.field and self.has("go_silent_closes") else 2)
            if self.has("first_message_only"):
                messages = messages[:1]
            for message in messages:
                await self.handle(message)

    def char_counted_notification(self, data: bytes) -> None:
        size = int(data[1:4], 16)
        rest = data[4:].decode("utf-8", "replace")[size:].encode("utf-8")
        if not re.fullmatch(rb"[0-9a-fA-F]{8}", rest[:8]):
            raise Closing(2)

    async def write(self, message) -> None:
        header = encode_header(message)
        payload = payload_of(message)
        if isinstance(message, (SingleResult, StreamResult)):
            if self.has("decimal_sizes"):
                header = header[:5] + b"%08d" % len(payload)
            elif self.has("uppercase_sizes"):
                header = header[:5] + header[5:].upper()
        await self.io.write(header, payload)

    async def handle(self, message) -> None:
        if isinstance(message, SingleRequest):
            await self.single(message)
        elif isinstance(message, StreamRequest):
            await self.stream_start(message)
        elif isinstance(message, StreamRequestPart):
            await self.stream_part(message)
        elif isinstance(message, Notification):
            if self.has("name_limit_255") and len(message.name.encode()) > 255:
                raise Closing(2)
            if self.has("close_on_unknown_notification"):
                raise Closing(None)
            if self.has("answer_notifications"):
                await self.write(ErrorResult(b"\x00\x00\x00\x00", b"notifications are not supported"))
        elif isinstance(message, Heartbeat):
            if self.has("close_on_heartbeat"):
                raise Closing(2)
        else:  # results, retries, f: nothing of ours was asked
            raise Closing(2)

    # -- single requests ---------------------------------------------------------------------

    async def single(self, message: SingleRequest) -> None:
        if self.has("forget_reused_ids"):
            if message.request_id in self.used_ids:
                return
            self.used_ids.add(message.request_id)
        if self.has("flood_cap"):
            self.answered += 1
            if self.answered > 500:
                return
        if message.operation != "echo":
            if self.has("close_on_unknown_op"):
                raise Closing(None)
            await self.write(ErrorResult(message.request_id, f'unknown operation "{message.operation}"'.encode()))
            return
        if self.has("serialize"):
            await self.queue.put(("single", message))
            return
        if self.has("shared_id"):
            self.latest_id = message.request_id
            task = asyncio.ensure_future(self.late_answer(message))
            self.server._tasks.add(task)
            task.add_done_callback(self.server._tasks.discard)
            return
        await self.write(SingleResult(self.result_id(message.request_id), self.echoed(message.payload)))

    async def late_answer(self, message: SingleRequest) -> None:
        await asyncio.sleep(0.1)
        await self.write(SingleResult(self.latest_id, self.echoed(message.payload)))

    def result_id(self, request_id: bytes) -> bytes:
        if self.has("mangle_ids"):
            return request_id.decode("ascii", "replace").encode("ascii", "replace")
        return request_id

    def echoed(self, payload: bytes) -> bytes:
        if self.has("text_payloads"):
            payload = payload.decode("utf-8", "replace").encode("utf-8")
        if self.has("empty_as_null") and not payload:
            payload = b"null"
        if self.has("corrupt_large") and len(payload) > 65536:
            payload = payload[:65536] + b"?" * (len(payload) - 65536)
        return payload

    # -- streams ------------------------------------------------------------------------------

    async def stream_start(self, message: StreamRequest) -> None:
        request_id = message.request_id
        if message.operation != "upper-stream" or self.has("streams_disabled"):
            text = b"stream requests not supported" if self.has("streams_disabled") else b"unknown operation"
            await self.write(ErrorResult(request_id, text))
            return
        if request_id in self.streams or (self.has("forget_reused_stream_ids") and request_id in self.used_stream_ids):
            raise Closing(2)
        self.used_stream_ids.add(request_id)
        self.streams[request_id] = []
        if self.has("serialize"):
            self.stream_parts[request_id] = asyncio.Queue()
            await self.queue.put(("stream", request_id))
            await self.stream_parts[request_id].put(message.payload)
            if not message.payload:
                del self.streams[request_id]
            return
        if not message.payload and self.has("empty_first_part_waits"):
            return
        await self.part(request_id, message.payload)

    async def stream_part(self, message: StreamRequestPart) -> None:
        request_id = message.request_id
        if request_id not in self.streams:
            if self.has("stray_part_opens_stream"):
                await self.write(StreamResult(request_id, message.payload.upper()))
                return
            raise Closing(None if self.has("go_silent_closes") else 2)
        if self.has("serialize"):
            await self.stream_parts[request_id].put(message.payload)
            if not message.payload:
                del self.streams[request_id]
            return
        await self.part(request_id, message.payload)

    async def part(self, request_id: bytes, payload: bytes) -> None:
        if payload:
            if self.has("reverse_stream"):
                self.streams[request_id].append(payload)
            else:
                await self.write(StreamResult(request_id, payload.upper()))
            return
        for held in reversed(self.streams.pop(request_id)):
            await self.write(StreamResult(request_id, held.upper()))
        if not self.has("no_stream_end"):
            await self.write(StreamResult(request_id, b""))

    async def worker(self) -> None:
        """serialize: one exchange at a time; a stream holds everything behind it until it ends."""
        while True:
            kind, item = await self.queue.get()
            if kind == "single":
                await self.write(SingleResult(item.request_id, item.payload))
                continue
            parts = self.stream_parts[item]
            while True:
                payload = await parts.get()
                await self.write(StreamResult(item, payload.upper()))
                if not payload:
                    break


class HostileServer:
    """Not Gotalk at all: ``silent`` accepts and says nothing, ``closes`` hangs up at once,
    ``floods`` writes bytes without end."""

    def __init__(self, kind: str) -> None:
        assert kind in ("silent", "closes", "floods")
        self.kind = kind
        self.url = ""
        self._server = None
        self._writers: set = set()

    async def __aenter__(self) -> "HostileServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"tcp://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()

    async def _handle(self, reader, writer) -> None:
        self._writers.add(writer)
        try:
            if self.kind == "closes":
                writer.close()
                return
            if self.kind == "floods":
                chunk = bytes(range(256)) * 256
                while True:
                    writer.write(chunk)
                    await writer.drain()
            while await reader.read(65536):
                pass
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

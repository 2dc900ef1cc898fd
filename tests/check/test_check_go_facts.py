"""The checker judges the Go reference by the Go reference's own bytes.

A raw server set up as the Go server is by default (``GO_DEFAULTS``: streams disabled,
silent closes on bad size digits and stray parts) first reproduces the Go transcripts in
tests/data/conformance/ byte for byte; the checker run against it then gives no ``fail``,
and the verdicts the notebook 09 exercise asks about.
"""

from __future__ import annotations

import asyncio

import pytest
from check_servers import GO_DEFAULTS, RawServer
from conformance import CONFORMANCE_DIR, load_transcript

from gotalk_lab.checker import check
from gotalk_lab.exercises import GO_REFERENCE

#: Transcripts of behaviours the checker judges (the ones needing only echo and errors).
TRANSCRIPTS = ["10-protocol-error-unknown-type", "11-bad-size-digits", "12-version-mismatch", "13-stream-part-without-request"]


async def replay(url: str, sent: tuple[bytes, ...]) -> tuple[bytes, bool]:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    for chunk in sent:
        writer.write(chunk)
        await writer.drain()
        await asyncio.sleep(0.02)
    received, closed = b"", False
    try:
        while data := await asyncio.wait_for(reader.read(65536), 0.5):
            received += data
        closed = True
    except asyncio.TimeoutError:
        pass
    writer.close()
    return received, closed


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_the_go_like_server_reproduces_the_go_transcript(name):
    transcript = load_transcript(CONFORMANCE_DIR / f"{name}.json")

    async def main():
        async with RawServer(GO_DEFAULTS) as server:
            return await replay(server.url, transcript.chunks("send"))

    received, closed = asyncio.run(main())
    assert received == transcript.stream("recv")
    assert closed == transcript.closed_by_peer


def test_the_go_reference_gets_no_fail_and_the_verdicts_the_exercise_teaches():
    async def main():
        async with RawServer(GO_DEFAULTS) as server:
            return await check(server.url, echo="echo", stream_echo="upper-stream", aggressive=True, timeout=1.0)

    report = asyncio.run(main())
    assert report.with_verdict("fail") == [], report.text()
    assert report.with_verdict("non-strict") == ["4.3"]
    assert {"5.4", "6.3", "6.5", "7.1", "7.2", "7.3"} <= set(report.with_verdict("informational"))
    for case_id, (verdict, _) in GO_REFERENCE.items():
        assert report[case_id].verdict == verdict, case_id
    assert "without writing f" in report["1.2"].detail and "as the Go peer does" in report["7.4"].detail

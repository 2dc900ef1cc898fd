"""Every case passes against `gotalk-lab serve`, over TCP and over WebSocket, in well under 30 s."""

from __future__ import annotations

import asyncio
import time

import pytest
from check_support import ServeProcess

from gotalk_lab.checker import CASES, check

#: Where this kit's server does what gotalk.js does rather than the Go peer (both legitimate),
#: and the fact the checker can only report (no heartbeats from a server unless asked for).
EXPECTED_INFORMATIONAL = {"1.2", "5.4"}


@pytest.fixture(scope="module")
def serve():
    with ServeProcess() as process:
        yield process


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_every_case_passes_against_serve(serve, transport):
    url = getattr(serve, transport)
    started = time.monotonic()
    report = asyncio.run(check(url, echo="echo", stream_echo="upper-stream", aggressive=True))
    elapsed = time.monotonic() - started
    assert len(report) == len(CASES) >= 20
    skipped = {"2.6"} if transport == "tcp" else set()
    assert set(report.with_verdict("pass")) == {c.id for c in CASES} - EXPECTED_INFORMATIONAL - skipped, report.text()
    assert set(report.with_verdict("informational")) == EXPECTED_INFORMATIONAL
    assert set(report.with_verdict("skip")) == skipped
    assert report.exit_status(strict=True) == 0
    assert elapsed < 30


def test_without_options_the_cases_that_need_them_skip_never_pass(serve):
    report = asyncio.run(check(serve.tcp, timeout=2))
    for case in CASES:
        if case.needs or case.transport:
            assert report[case.id].verdict == "skip", case.id
            assert "needs" in report[case.id].detail or "WebSocket" in report[case.id].detail
    assert report["4.1"].verdict == "pass" and report["5.1"].verdict == "pass"
    assert "--aggressive" in report["8.2"].detail

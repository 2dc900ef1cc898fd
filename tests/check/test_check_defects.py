"""Each defect fails exactly the cases about it: the checker run whole against one broken server per defect.

The correct RawServer passes everything; each defective one (``check_servers.DEFECTS``)
must fail exactly the listed cases, and be non-strict on exactly the listed ones. The
neighbours are named where a defect by its nature touches more than one requirement.
"""

from __future__ import annotations

import asyncio

import pytest
from check_servers import DEFECTS, RawServer

from gotalk_lab.checker import CASES, check

ALL = {case.id for case in CASES}

#: defect -> (failing cases, non-strict cases).
MATRIX: dict[str, tuple[set[str], set[str]]] = {
    "baseline": (set(), set()),
    "no_version": ({"1.1"}, set()),
    "ignore_version": ({"1.2"}, set()),
    "version_f1": (set(), set()),  # gotalk.js's way: informational, not a defect
    # A decimal size reads the same below ten bytes: only the cases with longer results see it.
    "decimal_sizes": ({"2.1", "2.2", "8.1"}, set()),
    "uppercase_sizes": (set(), {"2.2"}),
    "reject_uppercase": (set(), {"2.3"}),
    "tiny_reads_dropped": ({"2.4"}, set()),
    # Both cases put several requests in one write.
    "first_message_only": ({"6.2", "8.3"}, set()),
    "char_count_names": ({"2.7"}, set()),
    "text_payloads": ({"3.1"}, set()),
    "empty_as_null": ({"3.2"}, set()),
    "mangle_ids": ({"3.3"}, set()),
    "close_on_unknown_op": ({"4.1"}, set()),
    "silent_unknown_type": ({"4.2"}, set()),
    "silent_bad_size": ({"4.3"}, set()),
    "close_without_f": (set(), {"4.2", "4.3"}),
    # 2.7 and 8.4 test name sizes with unknown notifications (so that they need no operation).
    "close_on_unknown_notification": ({"2.7", "5.1", "8.4"}, set()),
    "answer_notifications": ({"5.2"}, set()),
    "close_on_heartbeat": ({"5.3"}, set()),
    "bad_heartbeat_time": ({"5.4"}, set()),
    "good_heartbeats": (set(), set()),
    # Every case with two single requests in flight at once.
    "shared_id": ({"2.5", "6.1", "6.2", "8.3"}, set()),
    "serialize": ({"6.3"}, set()),
    "forget_reused_ids": ({"6.4"}, set()),
    "forget_reused_stream_ids": ({"6.5"}, set()),
    "reverse_stream": ({"7.1"}, set()),
    "empty_first_part_waits": ({"7.2"}, set()),
    # 7.2's stream ends at once: the end marker is all it gets.
    "no_stream_end": ({"7.2", "7.3"}, set()),
    "stray_part_opens_stream": ({"7.4"}, set()),
    "streams_disabled": (set(), set()),  # the Go default: informational
    "corrupt_large": ({"8.1"}, set()),
    # The server dies in 8.2: 8.2 fails saying so, every later case as "server gone".
    "crash_on_huge_size": ({"8.2", "8.3", "8.4", "9.1", "9.2"}, set()),
    "flood_cap": ({"8.3"}, set()),
    "name_limit_255": ({"8.4"}, set()),
    "idle_close": ({"9.1"}, set()),
    "crash_on_eof_mid_message": ({"9.2"}, set()),
    "go_silent_closes": (set(), {"4.3"}),  # the Go peer's way: 7.4 still passes
}
WEBSOCKET_MATRIX = {
    "baseline": (set(), set()),
    "ws_packed": ({"2.6"}, set()),
}


#: Whole runs at once: each spends most of its time waiting (timeouts, idle watches).
CONCURRENT_RUNS = 4


async def checked(defects, websocket=False, limit: asyncio.Semaphore | None = None):
    async with limit or asyncio.Semaphore(1):
        async with RawServer(defects, websocket=websocket) as server:
            return await check(server.url, echo="echo", stream_echo="upper-stream", aggressive=True, timeout=1.0)


def run_whole_checker(defects, websocket=False):
    return asyncio.run(checked(defects, websocket))


@pytest.fixture(scope="module")
def reports():
    """The checker run whole against every server of both matrices, a few at a time."""

    async def main():
        limit = asyncio.Semaphore(CONCURRENT_RUNS)
        jobs = [(name, False) for name in MATRIX] + [(name, True) for name in WEBSOCKET_MATRIX]
        done = await asyncio.gather(*(checked([] if name == "baseline" else [name], ws, limit) for name, ws in jobs))
        return dict(zip(jobs, done))

    return asyncio.run(main())


def test_every_defect_is_in_the_matrix_and_every_case_can_fail():
    assert set(DEFECTS) == (set(MATRIX) | set(WEBSOCKET_MATRIX)) - {"baseline"}
    can_fail = set().union(*(failing | non_strict for failing, non_strict in [*MATRIX.values(), *WEBSOCKET_MATRIX.values()]))
    # 1.2 and 8.2's non-failing verdicts are covered by version_f1 / silent_bad_size; every case has a defect that fails it.
    assert ALL - can_fail == set()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("defect", list(MATRIX))
def test_a_defect_fails_exactly_its_cases(defect, reports):
    report = reports[defect, False]
    failing, non_strict = MATRIX[defect]
    assert (set(report.with_verdict("fail")), set(report.with_verdict("non-strict"))) == (failing, non_strict), report.text()
    assert report.with_verdict("skip") == ["2.6"]  # every option was given; only the WebSocket case skips on TCP
    for case_id in failing | non_strict:
        assert report[case_id].detail
        assert report[case_id].frames or report[case_id].detail.startswith("server gone")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("defect", list(WEBSOCKET_MATRIX))
def test_a_websocket_defect_fails_exactly_its_cases(defect, reports):
    report = reports[defect, True]
    failing, non_strict = WEBSOCKET_MATRIX[defect]
    assert (set(report.with_verdict("fail")), set(report.with_verdict("non-strict"))) == (failing, non_strict), report.text()


def test_informational_where_the_reference_peers_differ(reports):
    assert reports["version_f1", False]["1.2"].verdict == "informational"
    report = reports["streams_disabled", False]
    for case_id in ("6.3", "6.5", "7.1", "7.2", "7.3"):
        assert report[case_id].verdict == "informational"
        assert "stream requests not supported" in report[case_id].detail


def test_a_server_that_dies_is_named_and_later_cases_say_server_gone(reports):
    report = reports["crash_on_huge_size", False]
    assert "took it down" in report["8.2"].detail
    for case_id in ("8.3", "8.4", "9.1", "9.2"):
        assert "server gone" in report[case_id].detail
    assert report.exit_status() == 1


def test_a_server_without_the_version_fails_only_the_handshake_case_and_others_say_so(reports):
    report = reports["no_version", False]
    assert report.with_verdict("fail") == ["1.1"]
    assert "first two bytes" in report["1.1"].detail
    assert report["2.1"].verdict == "pass" and "no version" in report["2.1"].detail

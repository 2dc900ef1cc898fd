"""`gotalk-lab check` as a command: report forms, exit statuses, and targets that are not Gotalk."""

from __future__ import annotations

import json
import time
from xml.etree import ElementTree

import pytest
from check_servers import HostileServer
from check_support import ServeProcess, ThreadedServer, raw_server

from gotalk_lab import cli
from gotalk_lab.checker import VERDICTS

CASE_KEYS = {"id", "section", "title", "requirement", "verdict", "detail", "frames"}


@pytest.fixture(scope="module")
def serve():
    with ServeProcess() as process:
        yield process


def run(capsys, *argv):
    status = cli.main(["check", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_json_on_stdout_has_the_documented_schema(serve, capsys):
    status, out, err = run(capsys, serve.tcp, "--echo", "echo", "--case", "2.1", "3.3", "4.2", "--json", "-")
    assert status == 0 and not err
    report = json.loads(out)
    assert report["target"] == serve.tcp
    assert set(report["counts"]) == set(VERDICTS) and report["counts"]["pass"] == 3
    assert [case["id"] for case in report["cases"]] == ["2.1", "3.3", "4.2"]
    for case in report["cases"]:
        assert CASE_KEYS <= set(case) and case["verdict"] in VERDICTS
        assert case["frames"] and {frame["direction"] for frame in case["frames"]} == {"sent", "received"}
        bytes.fromhex(case["frames"][0]["hex"])
    # The wire log is in order: the checker's version first, then the request, then the answers.
    frames = report["cases"][0]["frames"]
    assert bytes.fromhex(frames[0]["hex"]) == b"01" and frames[0]["direction"] == "sent"
    received = b"".join(bytes.fromhex(f["hex"]) for f in frames if f["direction"] == "received")
    assert received == b"01R000100000010sixteen bytes!!!"


def test_terminal_report_grouped_by_section_with_counts(serve, capsys):
    status, out, _ = run(capsys, serve.tcp, "--echo", "echo", "--stream-echo", "upper-stream")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == f"gotalk-lab check {serve.tcp}"
    assert "1. Handshake" in lines and "9. Robustness" in lines
    assert any(line.startswith("  [pass      ] 2.1") for line in lines)
    assert any(line.startswith("  [skip      ] 8.2") for line in lines)  # needs --aggressive
    assert lines[-1].startswith("34 cases: ") and " 0 fail," in lines[-1]


def test_junit_and_html_files(serve, capsys, tmp_path):
    junit, page, data = tmp_path / "check.xml", tmp_path / "check.html", tmp_path / "check.json"
    status, out, _ = run(capsys, serve.ws, "--echo", "echo", "--junit", str(junit), "--html", str(page), "--json", str(data))
    assert status == 0 and "gotalk-lab check" in out  # a JSON file does not replace the terminal report
    suites = ElementTree.fromstring(junit.read_text())
    cases = suites.findall("./testsuite/testcase")
    assert len(cases) == 34 and len(suites.findall("./testsuite")) == 9
    assert len(suites.findall("./testsuite/testcase/skipped")) == json.loads(data.read_text())["counts"]["skip"]
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text and "src=" not in text and "<link" not in text  # self-contained
    assert text.count("<section id='case-") == 34 and "href=\"#case-2.1\"" in text
    assert "R000100000005" in text  # the wire log, byte for byte
    assert "SingleResult" in text  # and annotated message by message


def test_junit_records_failures(capsys, tmp_path):
    junit = tmp_path / "check.xml"
    with raw_server("mangle_ids") as server:
        status, _, _ = run(capsys, server.url, "--echo", "echo", "--case", "3.3", "3.1", "--junit", str(junit), "--timeout", "1")
    assert status == 1
    failures = ElementTree.fromstring(junit.read_text()).findall(".//failure")
    assert len(failures) == 1 and "ID" in failures[0].get("message")


def test_strict_makes_non_strict_fail(capsys):
    with raw_server("uppercase_sizes") as server:
        assert run(capsys, server.url, "--echo", "echo", "--case", "2.2")[0] == 0
        status, out, _ = run(capsys, server.url, "--echo", "echo", "--case", "2.2", "--strict")
    assert status == 1 and "[non-strict] 2.2" in out


def test_unreachable_target_is_exit_2_and_one_line(capsys):
    with raw_server() as server:
        url = server.url
    status, out, err = run(capsys, url)  # the server has closed: nothing listens there
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "cannot reach" in err and url in err


@pytest.mark.parametrize("argv", [["http://127.0.0.1:1"], ["tcp://127.0.0.1"], ["tcp://127.0.0.1:1", "--case", "99.9"]])
def test_wrong_arguments_are_exit_2(capsys, argv):
    status, _, err = run(capsys, *argv)
    assert status == 2 and err.count("\n") == 1


def test_argparse_errors_are_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["check", "tcp://127.0.0.1:1", "--timeout", "0"])
    assert exit_info.value.code == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["silent", "closes", "floods"])
def test_targets_that_are_not_gotalk_get_clear_verdicts_fast(capsys, kind):
    started = time.monotonic()
    with ThreadedServer(lambda: HostileServer(kind)) as server:
        status, out, err = run(capsys, server.url, "--echo", "echo", "--stream-echo", "upper-stream", "--aggressive",
                               "--timeout", "0.3", "--json", "-")
    assert time.monotonic() - started < 40
    assert status == 1 and not err
    report = json.loads(out)
    assert report["cases"][0]["verdict"] == "fail" and report["counts"]["fail"] >= 20
    assert all(case["detail"] for case in report["cases"])
    assert "Traceback" not in out and "could not finish" not in out
    if kind == "silent":
        assert "received nothing" in report["cases"][0]["detail"]
    if kind == "floods":
        assert "not valid Gotalk" in report["cases"][2]["detail"] or "first two bytes" in report["cases"][0]["detail"]

"""The ``gotalk-lab check`` subcommand: its parser and its body (``cli.py`` registers it).

Prints the terminal report (or JSON with ``--json -``), writes the JSON, JUnit and
HTML forms asked for, and returns the exit status: 0 no case failed (with
``--strict``: none non-strict either), 1 some case failed, 2 the target could not
be reached or the arguments are wrong (one line on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..connect import tls_client_context
from .report import EXIT_UNREACHABLE
from .runner import DEFAULT_TIMEOUT, run_check
from .session import TargetError

DESCRIPTION = """\
Check that the Gotalk server at URL (tcp://HOST:PORT or ws://HOST:PORT/PATH) speaks
the protocol as the Go reference and gotalk.js do. Each case opens its own connection,
checks one requirement and gives a verdict: pass, fail, non-strict (works, but differs
from the Go reference), informational (a fact worth knowing) or skip (needs an option
that was not given)."""

EPILOG = """\
exit status: 0 no case failed (with --strict: and none non-strict); 1 some case
failed; 2 the target cannot be reached or the arguments are wrong.

examples:
  gotalk-lab check tcp://127.0.0.1:1234 --echo echo --stream-echo upper-stream
  gotalk-lab check ws://127.0.0.1:8080/gotalk/ --echo echo --json - | jq .counts
  gotalk-lab check tcp://127.0.0.1:1234 --echo echo --junit check.xml --html check.html"""


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"the timeout must be more than 0 s, got {text!r}")
    return value


def add_check_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check", help="conformance checker for someone else's Gotalk server",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL", help="tcp://HOST:PORT, tls://HOST:PORT, ws://HOST:PORT/PATH, wss://HOST:PORT/PATH or unix:///PATH")
    parser.add_argument("--echo", metavar="OP", help="an operation on the target that answers with its payload (unlocks payload, ID, multiplexing, fragmentation cases)")
    parser.add_argument("--stream-echo", metavar="OP", help="a streaming operation answering one part per part (the demo's upper-stream; unlocks the stream cases)")
    parser.add_argument("--aggressive", action="store_true", help="add the cases that may take a fragile server down (ID reuse, stray parts, huge sizes, floods)")
    parser.add_argument("--json", metavar="PATH|-", help="write the report as JSON to PATH ('-': stdout, instead of the terminal report)")
    parser.add_argument("--junit", metavar="PATH", help="write JUnit XML for CI")
    parser.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with each case's wire log")
    parser.add_argument("--strict", action="store_true", help="exit 1 on non-strict verdicts too")
    parser.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT, metavar="SECONDS", help=f"per case (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--case", nargs="+", action="extend", metavar="ID", help="run only these cases (e.g. 2.1 4.2)")
    parser.add_argument("--cacert", "--cafile", metavar="FILE", help="trust the CA certificates in FILE (PEM) when verifying a TLS target: how to trust a test certificate")
    parser.add_argument("-k", "--insecure", action="store_true", help="do not verify a TLS target's certificate or name")
    parser.set_defaults(run=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    tls = None
    if args.cacert or args.insecure:
        try:
            tls = tls_client_context(args.cacert, insecure=args.insecure)
        except OSError as error:  # ssl.SSLError is one too
            print(f"gotalk-lab check: cannot read --cacert {args.cacert}: {error.strerror or error}", file=sys.stderr)
            return EXIT_UNREACHABLE
    try:
        report = asyncio.run(run_check(
            args.url, echo=args.echo, stream_echo=args.stream_echo, aggressive=args.aggressive,
            timeout=args.timeout, cases=args.case, ssl=tls,
        ))
    except TargetError as error:
        print(f"gotalk-lab check: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    outputs = [(args.json, report.to_json(indent=1) + "\n"), (args.junit, report.junit()), (args.html, report.html())]
    for path, text in outputs:
        if path and path != "-":
            try:
                with open(path, "w", encoding="utf-8") as out:
                    out.write(text)
            except OSError as error:
                print(f"gotalk-lab check: cannot write {path}: {error.strerror or error}", file=sys.stderr)
                return EXIT_UNREACHABLE
    if args.json == "-":
        sys.stdout.write(report.to_json() + "\n")
    else:
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
        sys.stdout.write(report.text())
    sys.stdout.flush()
    return report.exit_status(args.strict)

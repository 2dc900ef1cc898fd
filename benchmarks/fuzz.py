"""The long fuzz run of the codec: a million inputs or more, no exception but the codec's own.

Every input goes through what reads untrusted bytes: ``Decoder.feed`` whole, in
chunks and one byte at a time (its first 96 bytes), with the default and a
tiny payload limit, with and without the version preamble; ``decode``;
``check_complete``; and ``annotate_stream`` (what ``gotalk-lab decode`` runs).
Anything other than a ``ProtocolViolation`` escaping, a violation that is not
located inside the input, chunkings that disagree, or frames that do not tile
the input is a failure. An input taking longer than ``--timeout`` seconds is a
hang; one pushing memory past ``--rss-limit-mb`` is a failure too (a size field
taken at its word would do that).

Inputs start from the conformance transcripts (both directions, whole) and one
message of every type, and are mutated as an attacker would: bit flips,
truncation, size fields rewritten (``ffffffff``, ``fff``, off by one, not hex),
type bytes swapped, messages duplicated, dropped or reordered, bytes inserted
and deleted. With atheris installed (``pip install -e '.[fuzz]'``) libFuzzer
drives the run, coverage-guided, our mutations mixed with its own; without it,
hypothesis draws the same mutations at a high example count.

    python benchmarks/fuzz.py                    # 1 000 000 inputs (atheris if installed)
    python benchmarks/fuzz.py --runs 20000 --engine hypothesis

Prints progress while it runs and a summary at the end: inputs, exceptions,
hangs, inputs per second. Exit status 0 only when there were no failures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_RUNS = 1_000_000
#: Seconds one input may take before it counts as a hang (libFuzzer's -timeout).
DEFAULT_TIMEOUT = 10
#: Longest input tried (longer seeds, such as the 5 KB Go client session, are also cut into windows).
DEFAULT_MAX_LEN = 2048
#: Bytes of each input also fed one byte at a time (all of it would make long inputs slow).
TRICKLE_BYTES = 96
#: A payload limit small enough that ordinary payloads in the seeds go over it.
SMALL_LIMIT = 16
#: Inputs between two progress lines / stats files.
REPORT_EVERY = 50_000
#: Inputs between two stats files of an atheris worker (the last one is what the summary counts).
STATS_EVERY = 1_000

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TYPE_BYTES = b"rspRSEenhf"
#: Replacement size fields, as an attacker would write them.
HOSTILE_SIZES_8 = [b"ffffffff", b"FFFFFFFF", b"00000000", b"7fffffff", b"80000000", b"0000000g", b"-0000001", b" 0000001", b"0x000001"]
HOSTILE_SIZES_3 = [b"fff", b"FFF", b"000", b"001", b"00g", b"-01", b"   "]


# -- the target -----------------------------------------------------------------------


def _codec():
    from gotalk_lab import annotate, decoder, errors, wire

    return annotate, decoder, errors, wire


class Stats:
    """What the inputs did (written to a JSON file so the parent can read it)."""

    def __init__(self) -> None:
        self.inputs = 0
        self.violations = 0  #: inputs the decoder refused (a located ProtocolViolation)
        self.clean = 0  #: inputs that decoded whole, or stopped in the middle of a message
        self.messages = 0  #: messages decoded, over all inputs
        self.started = time.monotonic()

    def as_dict(self) -> dict:
        elapsed = time.monotonic() - self.started
        return {
            "inputs": self.inputs,
            "violations": self.violations,
            "clean": self.clean,
            "messages": self.messages,
            "seconds": round(elapsed, 3),
            "inputs_per_second": round(self.inputs / elapsed, 1) if elapsed else None,
        }


def _feed(decoder_module, errors_module, chunks, **options):
    """Feed ``chunks`` to a fresh decoder; (frames, violation, decoder)."""
    decoder = decoder_module.Decoder(**options)
    frames: list = []
    violation = None
    for chunk in chunks:
        try:
            frames.extend(decoder.feed_frames(chunk))
        except errors_module.ProtocolViolation as error:
            frames.extend(error.messages)
            violation = error
            break
    return frames, violation, decoder


def _location(violation):
    return None if violation is None else (violation.offset, violation.field, violation.code)


def check_one(data: bytes, stats: Stats | None = None) -> None:
    """Run ``data`` through every reader of untrusted bytes; raise on anything that is a bug."""
    annotate, decoder_module, errors_module, wire = _codec()
    ProtocolViolation = errors_module.ProtocolViolation
    size = len(data)

    whole, violation, decoder = _feed(decoder_module, errors_module, [data])
    if violation is not None:
        assert 0 <= violation.offset <= size, f"violation outside the input: {violation.offset} of {size}"
        assert violation.code in (1, 2), f"violation code {violation.code}"
        assert violation.describe().startswith(f"byte {violation.offset}: ")
        try:  # sticky: the decoder stays stopped, with the same error
            decoder.feed(b"01")
        except ProtocolViolation as again:
            assert again is violation
        else:
            raise AssertionError("a stopped decoder accepted more bytes")
    else:
        try:
            decoder_module.check_complete(decoder, whole)
        except ProtocolViolation as cut:
            assert cut.offset == size, f"a cut input located at {cut.offset}, not its end {size}"
    # Frames tile the input from the start, and each re-encodes to its own length.
    position = 0
    for frame in whole:
        assert frame.offset == position, f"frame at {frame.offset}, expected {position}"
        assert frame.length == len(wire.encode(frame.message)), frame
        assert frame.header.lower() == wire.encode_header(frame.message).lower(), frame
        position += frame.length
    if violation is not None:
        assert position <= violation.offset

    # Any chunking gives the same frames and the same violation.
    step = 5 + size % 29  # 5..33 bytes: splits fall at every kind of place across inputs
    chunked, chunked_violation, _ = _feed(decoder_module, errors_module, [data[i : i + step] for i in range(0, size, step)])
    assert chunked == whole and _location(chunked_violation) == _location(violation), "chunked differs from whole"
    head = data[:TRICKLE_BYTES]
    head_whole, head_violation, _ = _feed(decoder_module, errors_module, [head])
    trickled, trickle_violation, _ = _feed(decoder_module, errors_module, [head[i : i + 1] for i in range(len(head))])
    assert trickled == head_whole and _location(trickle_violation) == _location(head_violation), "trickled differs from whole"

    # Other settings: a tiny payload limit, no preamble, one message.
    for options in ({"max_payload_size": SMALL_LIMIT}, {"expect_version": False}):
        _feed(decoder_module, errors_module, [data], **options)
    try:
        wire.encode(decoder_module.decode(data))
    except ProtocolViolation:
        pass
    annotation = annotate.annotate_stream(data)
    assert annotation.error is None or isinstance(annotation.error, ProtocolViolation)
    assert len(annotation.messages) == len(whole)

    if stats is not None:
        stats.inputs += 1
        stats.messages += len(whole)
        if violation is not None:
            stats.violations += 1
        else:
            stats.clean += 1


# -- seeds and mutations --------------------------------------------------------------


def conformance_dir() -> Path:
    """The Go reference peer's transcripts, kept in the repository."""
    return REPO / "tests" / "data" / "conformance"


def _windows(stream: bytes, max_len: int) -> list[bytes]:
    """A long conversation as shorter ones: whole messages, the version in front of each."""
    _, decoder_module, errors_module, _ = _codec()
    frames, _, _ = _feed(decoder_module, errors_module, [stream], max_payload_size=len(stream))
    windows, current = [], b""
    for frame in frames[1:]:
        raw = stream[frame.offset : frame.offset + frame.length]
        if current and 2 + len(current) + len(raw) > max_len:
            windows.append(b"01" + current)
            current = b""
        current += raw
    if current:
        windows.append(b"01" + current)
    return windows


def seeds(max_len: int = DEFAULT_MAX_LEN) -> list[bytes]:
    """Both directions of every transcript (long ones also in windows), and one message of every type."""
    from gotalk_lab import wire

    found = []
    directory = conformance_dir()
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        for direction in ("send", "recv"):
            stream = b"".join(bytes.fromhex(e["hex"]) for e in document["events"] if e["dir"] == direction)
            if stream:
                found.append(stream)
                if len(stream) > max_len:
                    found.extend(_windows(stream, max_len))
    if not found:
        sys.exit(f"fuzz: no conformance transcripts in {directory} (the checkout is incomplete)")
    examples = [
        wire.SingleRequest(b"0001", "echo", b"hello"),
        wire.StreamRequest(b"\x00\x00\x00\x00", "upper-stream", b"abc"),
        wire.StreamRequestPart(b"\x00\x00\x00\x00", b""),
        wire.SingleResult(b"0001", b"\x00\xff"),
        wire.StreamResult(b"0002", b"ABC"),
        wire.ErrorResult(b"0003", b"boom"),
        wire.RetryResult(b"0004", 500, b"request rate limit"),
        wire.Notification("hello", b'"hi"'),
        wire.Heartbeat(0x7FFF, 0x5F5E1000),
        wire.ProtocolError(2),
    ]
    found.append(b"01" + b"".join(wire.encode(message) for message in examples))
    found.extend(b"01" + wire.encode(message) for message in examples)
    return found


def _frame_spans(data: bytes) -> list[tuple[int, int, bytes]]:
    """(start, end of header, type byte) of each whole frame the decoder reads in ``data``."""
    _, decoder_module, errors_module, _ = _codec()
    frames, _, _ = _feed(decoder_module, errors_module, [data], max_payload_size=max(len(data), 1))
    return [(f.offset, f.offset + len(f.header), f.header[:1]) for f in frames if f.header[:1] in TYPE_BYTES]


def _size_fields(header: bytes, start: int) -> list[tuple[int, int]]:
    """Absolute (start, end) of every size-like hex field in a header at ``start``."""
    from gotalk_lab.decoder import LAYOUTS

    spans, cursor, name_size = [], start, 0
    for name, width, kind in LAYOUTS.get(header[:1], ()):
        if kind == "name":
            width = name_size
        if name == "name_size":
            try:
                name_size = int(header[cursor - start : cursor - start + 3], 16)
            except ValueError:
                return spans
        if kind == "hex":
            spans.append((cursor, cursor + width))
        cursor += width
    return spans


def mutate(data: bytes, rng: random.Random, max_size: int = DEFAULT_MAX_LEN) -> bytes:
    """One attacker's edit of ``data``."""
    out = bytearray(data)
    spans = _frame_spans(bytes(out)) if out else []
    edit = rng.choice(["flip", "cut", "size", "size", "type", "type", "duplicate", "drop", "swap", "insert", "delete", "replace", "hostile-tail"])
    if edit == "flip" and out:
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif edit == "cut" and out:
        del out[rng.randrange(len(out) + 1) :]
    elif edit == "size" and spans:
        start, header_end, _ = rng.choice(spans)
        fields = _size_fields(bytes(out[start:header_end]), start)
        if fields:
            field_start, field_end = rng.choice(fields)
            width = field_end - field_start
            old = bytes(out[field_start:field_end])
            choices = list(HOSTILE_SIZES_8 if width == 8 else HOSTILE_SIZES_3 if width == 3 else [b"ffff", b"FFFF", b"000g"])
            try:
                value = int(old, 16)
                for delta in (-1, 1, rng.randrange(1, 1 << 12)):
                    if 0 <= value + delta < 16**width:
                        choices.append(b"%0*x" % (width, value + delta))
            except ValueError:
                pass
            choices.append(bytes(rng.choice(b"0123456789abcdefABCDEFxyz ") for _ in range(width)))
            new = rng.choice(choices)[:width].ljust(width, b"0")
            out[field_start:field_end] = new
    elif edit == "type" and spans:
        start = rng.choice(spans)[0]
        out[start] = rng.choice(TYPE_BYTES + b"xq\x00\xff01")
    elif edit in ("duplicate", "drop", "swap") and spans:
        bounds = [s for s, _, _ in spans] + [len(out)]
        pieces = [bytes(out[bounds[i] : bounds[i + 1]]) for i in range(len(spans))]
        prefix, i = bytes(out[: bounds[0]]), rng.randrange(len(pieces))
        if edit == "duplicate":
            pieces.insert(i, pieces[i])
        elif edit == "drop":
            del pieces[i]
        elif len(pieces) > 1:
            j = rng.randrange(len(pieces))
            pieces[i], pieces[j] = pieces[j], pieces[i]
        out = bytearray(prefix + b"".join(pieces))
    elif edit == "insert":
        at = rng.randrange(len(out) + 1)
        out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif edit == "delete" and out:
        at = rng.randrange(len(out))
        del out[at : at + rng.randint(1, 8)]
    elif edit == "replace" and out:
        out[rng.randrange(len(out))] = rng.randrange(256)
    elif edit == "hostile-tail":
        out += rng.choice([b"r0001004echoffffffff", b"n" + b"fff" + b"x" * 20, b"rzzzzfff", b"E0001ffffffff", b"s0001fffname", b"h0000ffffffff"])
    else:  # the edit did not apply (no frames): flip a byte instead
        if out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        else:
            out += b"01"
    return bytes(out[:max_size])


# -- atheris (libFuzzer) engine -----------------------------------------------------------


def run_atheris_child(args: argparse.Namespace) -> None:
    """Runs inside the child process: libFuzzer calls ``check_one`` for every input."""
    import atheris

    # Coverage guidance for the code that parses; annotate only labels what it accepted.
    with atheris.instrument_imports(include=["gotalk_lab.decoder", "gotalk_lab.wire", "gotalk_lab.errors"]):
        _codec()
    stats = Stats()
    stats_path = Path(args.stats_file)

    def one_input(data: bytes) -> None:
        check_one(data, stats)
        if stats.inputs % STATS_EVERY == 0:
            stats_path.write_text(json.dumps(stats.as_dict()))

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        for _ in range(rng.choice((1, 1, 2, 3))):
            data = mutate(data, rng, max_size)
        return data

    libfuzzer_args = [
        sys.argv[0],
        f"-runs={args.runs}",
        f"-timeout={args.timeout}",
        f"-max_len={args.max_len}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-seed={args.seed}",
        f"-artifact_prefix={args.artifacts}/",
        "-print_final_stats=1",
        args.corpus,
    ]
    atheris.Setup(libfuzzer_args, one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def _worker_command(args: argparse.Namespace, worker: int, runs: int, corpus: Path, artifacts: Path, stats_file: Path) -> list[str]:
    return [
        sys.executable, __file__, "--child-atheris",
        "--runs", str(runs), "--timeout", str(args.timeout), "--max-len", str(args.max_len),
        "--rss-limit-mb", str(args.rss_limit_mb), "--seed", str(args.seed + worker),
        "--corpus", str(corpus), "--artifacts", str(artifacts), "--stats-file", str(stats_file),
    ]


def _relay(worker: int, process: subprocess.Popen, verdict: dict) -> None:
    """Print a worker's progress lines; keep its last lines and how many inputs it ran."""
    tail: list[str] = []
    for line in process.stderr:
        tail = (tail + [line])[-60:]
        if line.startswith("stat::number_of_executed_units:"):
            verdict["executed"] = int(line.split(":")[-1])
        if re.match(r"#\d+\s+(pulse|DONE|INITED)", line) or "ERROR" in line or "Uncaught" in line:
            print(f"  [{worker}] " + line.rstrip(), flush=True)
    verdict["tail"] = "".join(tail)


def run_atheris(args: argparse.Namespace) -> dict:
    """libFuzzer in ``--workers`` child processes (runs shared out), progress relayed, verdicts summed."""
    import threading

    work = Path(args.artifacts or tempfile.mkdtemp(prefix="gotalk-fuzz-"))
    workers = max(1, args.workers)
    per_worker = -(-args.runs // workers)
    seed_inputs = [seed[: args.max_len] for seed in seeds(args.max_len)]
    print(f"fuzz: atheris (libFuzzer), {per_worker * workers} inputs over {workers} worker(s); failing inputs go to {work}", flush=True)
    started = time.monotonic()
    runs = []
    for worker in range(workers):
        corpus = Path(args.corpus) / f"worker-{worker}" if args.corpus else work / f"corpus-{worker}"
        corpus.mkdir(parents=True, exist_ok=True)
        for index, seed in enumerate(seed_inputs):
            (corpus / f"seed-{index:03d}").write_bytes(seed)
        stats_file = work / f"stats-{worker}.json"
        process = subprocess.Popen(
            _worker_command(args, worker, per_worker, corpus, work, stats_file), stderr=subprocess.PIPE, text=True, errors="replace"
        )
        verdict: dict = {}
        relay = threading.Thread(target=_relay, args=(worker, process, verdict), daemon=True)
        relay.start()
        runs.append((process, relay, verdict, stats_file))
    inputs = exceptions = hangs = out_of_memory = violations = clean = 0
    status = 0
    for process, relay, verdict, stats_file in runs:
        code = process.wait()
        relay.join()
        text = verdict.get("tail", "")
        inputs += verdict.get("executed", 0)  # libFuzzer's final stats: printed after a crash too
        hang = "libFuzzer: timeout" in text
        oom = "out-of-memory" in text
        crash = "Uncaught Python exception" in text or "deadly signal" in text or (code != 0 and not (hang or oom))
        hangs, out_of_memory, exceptions = hangs + hang, out_of_memory + oom, exceptions + crash
        if code != 0:
            status = code
            print(text, file=sys.stderr)
        if stats_file.exists():
            child = json.loads(stats_file.read_text())
            violations += child.get("violations", 0)
            clean += child.get("clean", 0)
    elapsed = time.monotonic() - started
    return {
        "engine": "atheris",
        "workers": workers,
        "inputs": inputs,
        "exceptions": exceptions,
        "hangs": hangs,
        "out_of_memory": out_of_memory,
        "seconds": round(elapsed, 1),
        "inputs_per_second": round(inputs / elapsed, 1),
        "refused_with_a_located_violation": violations,
        "decoded_clean": clean,
        "exit_status": status,
    }


# -- hypothesis engine ------------------------------------------------------------------------


class Hang(Exception):
    pass


def run_hypothesis(args: argparse.Namespace) -> dict:
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from hypothesis import strategies as st

    corpus = seeds(args.max_len)
    stats = Stats()
    failures: list[tuple[bytes, str]] = []
    hangs = 0

    def on_alarm(signum, frame):
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)

    @seed(args.seed)
    @settings(
        max_examples=args.runs,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.sampled_from(corpus), st.randoms(use_true_random=False), st.integers(1, 3))
    def one_input(base: bytes, rng: random.Random, edits: int) -> None:
        nonlocal hangs
        data = base
        for _ in range(edits):
            data = mutate(data, rng, args.max_len)
        signal.alarm(args.timeout)
        try:
            check_one(data, stats)
        except Hang:
            hangs += 1
            failures.append((data, "hang"))
        except Exception as error:  # counted, not raised: the run goes on and reports them all
            failures.append((data, f"{type(error).__name__}: {error}"))
        finally:
            signal.alarm(0)
        if stats.inputs % REPORT_EVERY == 0 and stats.inputs:
            rate = stats.as_dict()["inputs_per_second"]
            print(f"  {stats.inputs} inputs, {len(failures)} failures, {rate} inputs/s", flush=True)

    print(f"fuzz: hypothesis, {args.runs} inputs", flush=True)
    started = time.monotonic()
    one_input()
    elapsed = time.monotonic() - started
    for data, what in failures[:10]:
        print(f"FAILURE {what}: {data[:200]!r}", file=sys.stderr)
    return {
        "engine": "hypothesis",
        "inputs": stats.inputs + len(failures),
        "exceptions": len(failures) - hangs,
        "hangs": hangs,
        "out_of_memory": 0,
        "seconds": round(elapsed, 1),
        "inputs_per_second": round((stats.inputs + len(failures)) / elapsed, 1),
        "refused_with_a_located_violation": stats.violations,
        "decoded_clean": stats.clean,
        "exit_status": 1 if failures else 0,
    }


# -- command line ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"inputs to try (default {DEFAULT_RUNS})")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds per input before it counts as a hang")
    parser.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN, help="longest input")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory limit of the run (atheris)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="atheris processes sharing the runs (default: one per CPU)")
    parser.add_argument("--corpus", help="keep the corpus here (atheris; default: a temporary folder)")
    parser.add_argument("--artifacts", help="write failing inputs here (atheris; default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--child-atheris", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stats-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    if args.child_atheris:
        run_atheris_child(args)
        return 0
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401

            engine = "atheris"
        except ImportError:
            print("fuzz: atheris is not installed (pip install -e '.[fuzz]'); using hypothesis", flush=True)
            engine = "hypothesis"
    summary = run_atheris(args) if engine == "atheris" else run_hypothesis(args)
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"fuzz summary ({summary['engine']}): {summary['inputs']} inputs, {summary['exceptions']} exceptions "
            f"other than ProtocolViolation, {summary['hangs']} hangs, {summary['out_of_memory']} out-of-memory, "
            f"{summary['inputs_per_second']} inputs/s over {summary['seconds']} s "
            f"({summary['refused_with_a_located_violation']} refused with a located violation, "
            f"{summary['decoded_clean']} decoded clean)"
        )
    failed = summary["exceptions"] or summary["hangs"] or summary["out_of_memory"] or summary["exit_status"]
    failed = failed or (summary["inputs"] or 0) < args.runs
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The blocking facade in a real IPython kernel, driven through jupyter_client as a front end drives it.

A notebook cell that calls ``a.sync.request(...)`` blocks the kernel's event loop from
inside: the facade re-enters that loop (nest-asyncio2) until the answer comes. Front
ends keep talking meanwhile -- JupyterLab sends kernel_info, completion and comm
messages (widget updates, clicks) whenever it likes -- and every one of those must be
answered, during the call or right after it, with nothing written on stderr. With the
unmaintained nest-asyncio 1.6 on ipykernel 7 they were dropped silently, each cell
printing ``RuntimeError: cannot enter context`` on stderr.

The check runs on both ends of the ipykernel range the project allows (pyproject's
"test" extra): the version installed in this environment and the lowest one, which
is installed once with pip into a cache folder under the virtualenv and put first on
the kernel's PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Blocking cells per check, and how long each one's request sleeps on the other peer.
CALLS = 20
SLEEP_MS = 300
#: A message sent during a blocking call must be answered at the latest this many
#: seconds after the call's cell has finished (in practice: milliseconds).
REPLY_GRACE = 3.0
#: Seconds for the kernel to start, and for any one cell (with its messages) to finish.
START_TIMEOUT = 60
CELL_TIMEOUT = 20

#: The front end's own comm target, registered by the set-up cell: it answers every
#: message with the message's data, as a widget answers a click.
SETUP = """
import ipykernel, ipywidgets
import gotalk_lab as gl

a, b = await gl.pipe(None, gl.demo.handlers())

def _echo_target(comm, open_msg):
    comm.on_msg(lambda msg: comm.send({"echo": msg["content"]["data"]}))

get_ipython().kernel.comm_manager.register_target("gotalk_lab_echo", _echo_target)
slider = ipywidgets.IntSlider()
print("IPYKERNEL=" + ipykernel.__version__)
print("IPYKERNEL_FILE=" + ipykernel.__file__)
print("WIDGET=" + slider.comm.comm_id)
"""
BLOCKING = f"a.sync.request('sleep', {{'ms': {SLEEP_MS}}})"
ANSWER = f"{{'slept': {SLEEP_MS}}}"
#: After the blocking cells: ``await`` still works, and the widget got every update.
AFTERWARDS = "print('AWAITED', await a.request('sleep', {'ms': 5})); print('SLIDER', slider.value)"


class FrontEnd:
    """A kernel started and spoken to through jupyter_client, the way JupyterLab does it."""

    def __init__(self, base: Path, pythonpath: Path | None = None) -> None:
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        base.mkdir(parents=True, exist_ok=True)
        spec_dir = base / "kernels" / "gotalk-check"
        spec_dir.mkdir(parents=True, exist_ok=True)
        env = {"IPYTHONDIR": str(base / "ipython"), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        if pythonpath is not None:
            # First on the path: this ipykernel shadows the one in site-packages.
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath.resolve()), os.environ.get("PYTHONPATH")]))
        spec = {
            "argv": [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "gotalk_lab check",
            "language": "python",
            "env": env,
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        self.manager = KernelManager(
            kernel_name="gotalk-check",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(base / "kernels")]),
            connection_file=str(base / "kernel-connection.json"),
        )
        self.log_path = base / "kernel.log"
        self._log = open(self.log_path, "wb")
        self.client = None
        #: Every message from the shell and iopub channels, with its arrival time.
        self.received: list[tuple[float, str, dict]] = []
        try:
            self.manager.start_kernel(cwd=str(base), stdout=self._log, stderr=subprocess.STDOUT)
            self.client = self.manager.client()
            self.client.start_channels()
            self.client.wait_for_ready(timeout=START_TIMEOUT)
        except BaseException:
            self.shutdown()
            raise

    def shutdown(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        try:
            if self.manager.has_kernel:
                self.manager.shutdown_kernel(now=True)
        finally:
            self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- sending -------------------------------------------------------------------

    def send(self, msg_type: str, content: dict) -> str:
        message = self.client.session.msg(msg_type, content)
        self.client.shell_channel.send(message)
        return message["header"]["msg_id"]

    def execute(self, code: str) -> str:
        return self.client.execute(code, store_history=True, allow_stdin=False)

    # -- receiving -----------------------------------------------------------------

    def pump(self, seconds: float) -> None:
        """Read whatever arrives on shell and iopub for up to ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            got = False
            for name, channel in (("shell", self.client.shell_channel), ("iopub", self.client.iopub_channel)):
                while True:
                    try:
                        message = channel.get_msg(timeout=0)
                    except queue.Empty:
                        break
                    self.received.append((time.monotonic(), name, message))
                    got = True
            if time.monotonic() >= deadline:
                return
            if not got:
                time.sleep(0.005)

    def wait_for(self, predicate, timeout: float, what: str):
        """Pump until ``predicate(message)`` holds for some message; return its (time, message)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for arrived, _, message in self.received[seen:]:
                if predicate(message):
                    return arrived, message
            seen = len(self.received)
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {what} within {timeout} s; kernel log:\n{self.log_tail()}")
            self.pump(0.02)

    def run_cell(self, code: str, timeout: float = CELL_TIMEOUT) -> tuple[float, dict, str]:
        """Execute ``code`` and wait for its reply: (arrival time, reply, everything it printed)."""
        msg_id = self.execute(code)
        arrived, reply = self.wait_for(lambda m: is_reply_to(m, msg_id, "execute_reply"), timeout, "execute_reply")
        self.wait_for(lambda m: is_idle_after(m, msg_id), timeout, "idle status")
        return arrived, reply, self.output_of(msg_id)

    def output_of(self, msg_id: str) -> str:
        parts = []
        for _, channel, message in self.received:
            if channel != "iopub" or message["parent_header"].get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "stream":
                parts.append(message["content"]["text"])
            elif message["msg_type"] in ("execute_result", "display_data"):
                parts.append(message["content"]["data"].get("text/plain", "") + "\n")
            elif message["msg_type"] == "error":
                parts.append("\n".join(message["content"]["traceback"]))
        return "".join(parts)

    def stderr(self) -> list[str]:
        return [
            message["content"]["text"]
            for _, channel, message in self.received
            if channel == "iopub" and message["msg_type"] == "stream" and message["content"]["name"] == "stderr"
        ]


def is_reply_to(message: dict, msg_id: str, msg_type: str) -> bool:
    return message["msg_type"] == msg_type and message["parent_header"].get("msg_id") == msg_id


def is_idle_after(message: dict, msg_id: str) -> bool:
    return (
        message["msg_type"] == "status"
        and message["content"]["execution_state"] == "idle"
        and message["parent_header"].get("msg_id") == msg_id
    )


def is_echo(message: dict, token: str) -> bool:
    """Our comm target's answer to the comm_msg that carried ``token``."""
    return message["msg_type"] == "comm_msg" and message["content"]["data"].get("echo", {}).get("token") == token


def is_widget_echo(message: dict, comm_id: str, value: int) -> bool:
    """ipywidgets' ``echo_update``: the kernel's acknowledgement of a front end's widget update."""
    data = message["content"].get("data", {}) if message["msg_type"] == "comm_msg" else {}
    return (
        message["content"].get("comm_id") == comm_id
        and data.get("method") == "echo_update"
        and data.get("state", {}).get("value") == value
    )


@dataclass
class Sent:
    """A message the front end sent while a blocking call ran, and how its answer is recognised."""

    kind: str
    call: int
    matches: object  # message -> bool
    sent_at: float
    answered_at: float | None = None


@dataclass
class Figures:
    ipykernel: str = "?"
    ipykernel_file: str = ""
    calls: int = 0
    answered_calls: int = 0
    sent: list[Sent] = field(default_factory=list)
    call_ends: dict[int, float] = field(default_factory=dict)
    stderr: list[str] = field(default_factory=list)
    afterwards: str = ""
    failures: list[str] = field(default_factory=list)

    def answered(self, kind: str) -> tuple[int, int]:
        mine = [s for s in self.sent if s.kind == kind]
        return sum(s.answered_at is not None for s in mine), len(mine)

    def late(self) -> list[str]:
        """Messages answered later than REPLY_GRACE after their call's cell finished (or never)."""
        out = []
        for s in self.sent:
            end = self.call_ends.get(s.call)
            if s.answered_at is None:
                out.append(f"call {s.call}: {s.kind} never answered")
            elif end is not None and s.answered_at - end > REPLY_GRACE:
                out.append(f"call {s.call}: {s.kind} answered {s.answered_at - end:.2f} s after the call")
        return out

    def summary(self) -> str:
        kinds = sorted({s.kind for s in self.sent})
        replies = ", ".join("{} {}/{}".format(kind, *self.answered(kind)) for kind in kinds)
        after = [s.answered_at - self.call_ends[s.call] for s in self.sent if s.answered_at is not None and s.call in self.call_ends]
        during = sum(delay < 0 for delay in after)
        latest = f"{max(after) * 1000:.0f} ms" if after else "-"
        return (
            f"ipykernel {self.ipykernel}: blocking calls answered {self.answered_calls}/{self.calls}; "
            f"messages sent meanwhile answered: {replies} ({during} during their call, the rest after it, "
            f"the latest {latest} after); stderr messages: {len(self.stderr)}"
        )


def blocking_check(front: FrontEnd, calls: int = CALLS) -> Figures:
    """Set up a pipe, run ``calls`` blocking cells while sending shell and comm messages, then await."""
    figures = Figures(calls=calls)
    _, reply, output = front.run_cell(SETUP, timeout=60)
    assert reply["content"]["status"] == "ok", output + front.log_tail()
    figures.ipykernel = re.search(r"IPYKERNEL=(\S+)", output).group(1)
    figures.ipykernel_file = re.search(r"IPYKERNEL_FILE=(.+)", output).group(1)
    widget = re.search(r"WIDGET=(\S+)", output).group(1)
    echo_comm = uuid.uuid4().hex
    front.send("comm_open", {"comm_id": echo_comm, "target_name": "gotalk_lab_echo", "data": {}})

    for call in range(calls):
        msg_id = front.execute(BLOCKING)
        # The cell has begun once its execute_input is published; the call then
        # blocks for SLEEP_MS: send everything well inside that window.
        front.wait_for(lambda m: is_reply_to(m, msg_id, "execute_input"), CELL_TIMEOUT, "execute_input")
        front.pump(0.03)
        now = time.monotonic()
        shell = {
            "kernel_info_request": ("kernel_info_reply", {}),
            "comm_info_request": ("comm_info_reply", {}),
            "complete_request": ("complete_reply", {"code": "gl.pi", "cursor_pos": 5}),
        }
        for request, (reply_type, content) in shell.items():
            request_id = front.send(request, content)
            figures.sent.append(Sent(request, call, lambda m, i=request_id, t=reply_type: is_reply_to(m, i, t), now))
        token = uuid.uuid4().hex
        front.send("comm_msg", {"comm_id": echo_comm, "data": {"token": token}})
        figures.sent.append(Sent("comm_msg to a comm", call, lambda m, t=token: is_echo(m, t), now))
        value = call + 1
        update = {"method": "update", "state": {"value": value}, "buffer_paths": []}
        front.send("comm_msg", {"comm_id": widget, "data": update})
        figures.sent.append(Sent("widget update", call, lambda m, c=widget, v=value: is_widget_echo(m, c, v), now))

        ended, reply, output = _finish(front, msg_id)
        figures.call_ends[call] = ended
        if reply["content"]["status"] == "ok" and ANSWER in output:
            figures.answered_calls += 1
        else:
            figures.failures.append(f"call {call}: {reply['content']['status']}: {output!r}")
        # Every message of this call is answered before the next cell starts, or it is late.
        _collect_answers(front, figures, ended + REPLY_GRACE)

    _, reply, figures.afterwards = front.run_cell(AFTERWARDS)
    front.pump(0.2)  # a stray stderr line published just after the last cell
    _collect_answers(front, figures, time.monotonic())
    figures.stderr = front.stderr()
    return figures


def _finish(front: FrontEnd, msg_id: str) -> tuple[float, dict, str]:
    ended, reply = front.wait_for(lambda m: is_reply_to(m, msg_id, "execute_reply"), CELL_TIMEOUT, "execute_reply")
    front.wait_for(lambda m: is_idle_after(m, msg_id), CELL_TIMEOUT, "idle status")
    return ended, reply, front.output_of(msg_id)


def _collect_answers(front: FrontEnd, figures: Figures, until: float) -> None:
    """Match arrived messages to what was sent; pump until all are answered or ``until`` passes."""
    while True:
        for s in figures.sent:
            if s.answered_at is None:
                for arrived, _, message in front.received:
                    if s.matches(message):
                        s.answered_at = arrived
                        break
        if all(s.answered_at is not None for s in figures.sent) or time.monotonic() >= until:
            return
        front.pump(0.05)


def assert_nothing_lost(figures: Figures) -> None:
    summary = figures.summary()
    print(summary, f"(ipykernel imported from {figures.ipykernel_file})")
    assert figures.answered_calls == figures.calls, f"{summary}\n{figures.failures[:5]}"
    late = figures.late()
    assert not late, f"{summary}\n" + "\n".join(late[:10])
    assert figures.stderr == [], f"{summary}\nthe kernel wrote on stderr:\n" + "".join(figures.stderr[:3])
    # Awaiting still works afterwards, and the widget holds the last value the front end set.
    assert "AWAITED {'slept': 5}" in figures.afterwards, figures.afterwards
    assert f"SLIDER {figures.calls}" in figures.afterwards, figures.afterwards


def pinned_ipykernel_range() -> tuple[str, str | None]:
    """(lowest, excluded upper bound or None) of ipykernel in pyproject's "test" extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    line = next(d for d in project["optional-dependencies"]["test"] if re.match(r"ipykernel\b", d))
    low = re.search(r">=\s*([\w.]+)", line)
    high = re.search(r"<\s*([\w.]+)", line)
    assert low, f"pyproject states no lowest ipykernel: {line!r}"
    return low.group(1), high.group(1) if high else None


def lowest_ipykernel() -> Path:
    """A folder holding the lowest allowed ipykernel (pip-installed once, then reused).

    Only ipykernel itself goes there (``--no-deps``): everything else it imports comes
    from this environment, as it would for a user pinned to that version. Its own
    dependency nest-asyncio (ipykernel < 7.3 needed it) comes too: this project no
    longer installs it.
    """
    low, _ = pinned_ipykernel_range()
    cache = Path(sys.prefix) / "gotalk-lab-cache" / f"ipykernel-{low}-py{sys.version_info.major}.{sys.version_info.minor}"
    if (cache / ".complete").exists():
        return cache
    partial = cache.with_name(cache.name + f".partial-{os.getpid()}")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--target", str(partial), f"ipykernel=={low}", "nest-asyncio>=1.5"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, f"pip could not install ipykernel=={low}:\n{result.stderr[-3000:]}"
    (partial / ".complete").write_text(f"installed in {time.monotonic() - started:.1f} s\n")
    if cache.exists():  # another run finished first
        subprocess.run(["rm", "-rf", str(partial)], check=False)
    else:
        partial.rename(cache)
    print(f"installed ipykernel=={low} into {cache} in {time.monotonic() - started:.1f} s")
    return cache


def ipykernel_ends() -> list:
    """The two ends of the allowed range, each named (in the test's ID) by the version it drives."""
    from importlib.metadata import version

    low, _ = pinned_ipykernel_range()
    return [
        pytest.param("installed", id=f"ipykernel-{version('ipykernel')}-installed"),
        pytest.param("lowest", id=f"ipykernel-{low}-lowest"),
    ]


@pytest.fixture(params=ipykernel_ends())
def front_end(request, tmp_path):
    """A kernel on one end of the range; shut down whatever the test does."""
    pythonpath = lowest_ipykernel() if request.param == "lowest" else None
    front = FrontEnd(tmp_path / "kernel", pythonpath=pythonpath)
    front.end = request.param
    try:
        yield front
    finally:
        front.shutdown()


@pytest.mark.timeout(420)
def test_blocking_calls_lose_no_front_end_message(front_end):
    """20 blocking cells, each with kernel_info, comm_info, completion and two comm messages sent meanwhile."""
    from packaging.version import Version

    figures = blocking_check(front_end)
    low, high = pinned_ipykernel_range()
    driven = Version(figures.ipykernel)
    if front_end.end == "lowest":
        assert driven == Version(low), f"the kernel imported ipykernel {driven} from {figures.ipykernel_file}"
    else:
        assert Version(low) <= driven and (high is None or driven < Version(high)), f"ipykernel {driven} is outside the range"
    assert_nothing_lost(figures)

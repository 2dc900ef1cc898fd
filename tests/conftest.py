"""Fixtures shared by the gotalk_lab test modules; each group is marked by a heading."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance import CONFORMANCE_DIR, PROTOCOL_DOCUMENT, Transcript, load_transcript

# -- conformance transcripts ----------------------------------------------------
# The transcripts live in tests/data/conformance/. A missing directory fails the
# tests that need it: silently skipping them would let a broken checkout look green.


def conformance_dir() -> Path:
    """Where the transcripts are: tests/data/conformance/ in this repository."""
    return CONFORMANCE_DIR


def conformance_paths() -> list[Path]:
    """Every transcript file, sorted; empty when the directory is missing or empty."""
    directory = conformance_dir()
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def fail_without_conformance() -> None:
    if not conformance_paths():
        pytest.fail(
            f"no conformance transcripts (*.json) in {conformance_dir()}: the checkout is incomplete",
            pytrace=False,
        )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test asking for ``conformance_transcript`` runs once per transcript file."""
    if "conformance_transcript" in metafunc.fixturenames:
        # One placeholder parameter when none are found, so that the test fails
        # (in the fixture below) instead of being skipped for an empty list.
        paths = conformance_paths() or [None]
        ids = [path.stem if path else "missing-conformance-dir" for path in paths]
        metafunc.parametrize("conformance_transcript", paths, ids=ids, indirect=True)


@pytest.fixture
def conformance_files() -> list[Path]:
    """Paths of all transcript files; fails the test when there are none."""
    fail_without_conformance()
    return conformance_paths()


@pytest.fixture
def conformance_transcript(request: pytest.FixtureRequest) -> Transcript:
    """One transcript per test run (parametrized by ``pytest_generate_tests``)."""
    fail_without_conformance()
    return load_transcript(request.param)


@pytest.fixture
def transcript_named(conformance_files: list[Path]):
    """Load a transcript by file stem, e.g. ``transcript_named("06-bidirectional")``."""
    by_stem = {path.stem: path for path in conformance_files}

    def load(stem: str) -> Transcript:
        if stem not in by_stem:
            pytest.fail(f"conformance transcript {stem}.json not found in {conformance_dir()}", pytrace=False)
        return load_transcript(by_stem[stem])

    return load


@pytest.fixture
def protocol_document() -> str:
    """The text of docs/PROTOCOL.md, the protocol reference kept in the repository."""
    if not PROTOCOL_DOCUMENT.is_file():
        pytest.fail(f"{PROTOCOL_DOCUMENT} not found: the checkout is incomplete", pytrace=False)
    return PROTOCOL_DOCUMENT.read_text(encoding="utf-8")


# -- async tests (peer layer) -----------------------------------------------------
# There is no pytest-asyncio here: an ``async def`` test runs in a fresh event
# loop with ``asyncio.run``, bounded so that a hung peer fails its test instead
# of stalling the whole run.

import asyncio as _asyncio
import inspect as _inspect

#: Seconds an async test may take; far above what any test needs when nothing hangs.
ASYNC_TEST_TIMEOUT = 30.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function):
    """Run ``async def`` tests in their own event loop, within ``ASYNC_TEST_TIMEOUT``."""
    function = pyfuncitem.obj
    if not _inspect.iscoroutinefunction(function):
        return None
    arguments = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    _asyncio.run(_asyncio.wait_for(function(**arguments), ASYNC_TEST_TIMEOUT))
    return True


# -- TLS certificates -------------------------------------------------------------
# Made by trustme for the session: a CA of the tests' own and a server certificate
# it signed for 127.0.0.1 and localhost, written as PEM files for the command line.
# Nothing is read from outside the repository.

import ssl as _ssl
from dataclasses import dataclass as _dataclass


@_dataclass
class Certificates:
    ca: object  #: the trustme CA that signed ``server``
    server: object  #: a trustme leaf certificate for 127.0.0.1 and localhost
    folder: Path

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.folder / "cert.pem"

    @property
    def key_file(self) -> Path:
        return self.folder / "key.pem"

    def server_context(self, certificate=None) -> _ssl.SSLContext:
        context = _ssl.SSLContext(_ssl.PROTOCOL_TLS_SERVER)
        (certificate or self.server).configure_cert(context)
        return context

    def client_context(self) -> _ssl.SSLContext:
        """A verifying client context that trusts the tests' CA (and nothing else)."""
        context = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        return context


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    made = Certificates(ca, server, tmp_path_factory.mktemp("tls"))
    ca.cert_pem.write_to_path(made.ca_file)
    server.private_key_pem.write_to_path(made.key_file)
    made.cert_file.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    return made

# gotalk_lab: every set-up step lives here, so a fresh clone needs only
# `make lab` (tutorials), `make site` (the tutorials in the browser alone) or
# `make test` (everything that is tested).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# JupyterLab refuses to start as root unless told; these machines and CI run as root.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
LAB_PORT ?= 8888
LAB_IP   ?= 127.0.0.1

.PHONY: install test lab site bench fuzz browser capture-tools bench-tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The tutorials need only the kit and JupyterLab (the "lab" extra), not the test tools.
LAB_STAMP := $(VENV)/.installed-lab
$(LAB_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[lab]'
	touch $(LAB_STAMP)

# Debian's Chromium drives the real-browser tests (Playwright's own browser
# download is not reachable here); install it when missing and we are root.
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; browser tests will fail"; \
	  else echo "warning: /usr/bin/chromium missing; run 'sudo apt-get install chromium' for the browser tests"; fi; \
	fi

# Debian's tshark and tcpdump drive the capture tests (tests/capture/); iproute2's ss
# shows the listen backlog to tests/test_cli_network.py. wireshark-common
# asks whether non-root users may capture; the answer is given here (no), so that
# apt-get never stops to ask.
capture-tools:
	@if ! command -v tshark >/dev/null || ! PATH="$$PATH:/usr/sbin" command -v tcpdump >/dev/null || ! command -v ss >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections \
	      && apt-get update -qq \
	      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark tcpdump iproute2 >/dev/null) \
	      || echo "warning: could not install tshark and tcpdump; the capture tests that need them are skipped"; \
	  else echo "warning: tshark or tcpdump missing; run 'sudo apt-get install tshark tcpdump' for the capture tests"; fi; \
	fi

# Debian's valgrind counts the instructions of benchmarks/instructions.py (its smoke
# run is part of the tests).
bench-tools:
	@if ! command -v valgrind >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null) \
	      || echo "warning: could not install valgrind; benchmarks/instructions.py will say so"; \
	  else echo "warning: valgrind missing; run 'sudo apt-get install valgrind' for benchmarks/instructions.py"; fi; \
	fi

# The layers (import-linter contracts in pyproject.toml) and the types of the
# core (mypy --strict, [tool.mypy]) are checked before the tests run. site/ is
# built first for tests/ui/test_site_browser.py, which runs it in Chromium.
test: install browser capture-tools bench-tools site
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Prints the URL of tutorial 1 (with its token) and serves until Ctrl-C. No browser is
# started here: open the printed URL (these machines have no display).
lab: $(LAB_STAMP)
	$(BIN)/jupyter lab $(ROOT_FLAG) --no-browser --ip=$(LAB_IP) --port=$(LAB_PORT) \
	  --ServerApp.root_dir=notebooks --LabApp.default_url=/lab/tree/01-wire-format.ipynb

# The browser edition: site/, a static JupyterLite holding the tutorials, the kit and
# the Pyodide runtime, for any static server (python3 -m http.server -d site). The
# first build fetches from PyPI and npm into .cache/site/; later ones reuse that.
site:
	$(PYTHON) tools/build_site.py

# Benchmarks print figures and ratios against baselines measured in the same run
# (benchmarks/README.md); they are not tests. BENCH_ARGS=--quick for a short run.
# BEFORE=REV also measures that older commit against this tree in the same run
# (benchmarks/versions.py: the before and after figures of the README's table).
bench: install bench-tools
	$(BIN)/python benchmarks/server_throughput.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/client_throughput.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/pipe_throughput.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/streams.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/tracing.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/codec.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/timeline.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/carriers.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/trace_memory.py $(if $(findstring --quick,$(BENCH_ARGS)),--quick)
	$(BIN)/python benchmarks/instructions.py $(if $(findstring --quick,$(BENCH_ARGS)),--quick)
	$(if $(BEFORE),$(BIN)/python benchmarks/versions.py --before $(BEFORE) $(BENCH_ARGS))

# The long fuzz run of the codec (benchmarks/fuzz.py): a million inputs by default,
# coverage-guided by atheris when it installs, else hypothesis. FUZZ_ARGS=--runs N.
fuzz: install
	$(BIN)/python -m pip install --quiet -e '.[fuzz]' || echo "atheris did not install: the run uses hypothesis"
	$(BIN)/python benchmarks/fuzz.py $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info site .cache/site

